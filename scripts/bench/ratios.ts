import type { MeasuredRow, Ratio, Results } from './results.js'
import { integer, median, round } from './stats.js'

/**
 * The comparisons the issue asks for: each token figure against its in-run ceiling
 * `1 / (1/floor + 1/sign)`, and the other pairs. Rows are paired round by round (round i of one
 * with round i of the other, measured within a minute of each other) and the median of those
 * ratios is reported with their range: on a shared host the machine's speed drifts between
 * rounds, and a ratio of medians would mix a fast round of one row with a slow round of another.
 */

/** Per round (index = round): a rate (req/s or ops/s) and CPU µs per request or operation. */
interface Figure {
  rates: number[]
  costs: (number | undefined)[]
}

const complete = (figure: Figure, rounds: number) =>
  figure.rates.length === rounds && figure.rates.every(Number.isFinite)

/** The median and range of per-round quotients, or of the medians when a row lacks a round. */
function quotients(
  numerators: readonly (number | undefined)[],
  denominators: readonly (number | undefined)[],
  paired: boolean,
) {
  const values = paired
    ? numerators.flatMap((value, index) => {
        const denominator = denominators[index]
        return value !== undefined && denominator ? [(100 * value) / denominator] : []
      })
    : []
  if (values.length === 0) {
    const top = median(numerators.filter((value): value is number => value !== undefined))
    const bottom = median(denominators.filter((value): value is number => value !== undefined))
    return { median: round((100 * top) / bottom), min: undefined, max: undefined }
  }
  return { median: round(median(values)), min: round(Math.min(...values)), max: round(Math.max(...values)) }
}

export function computeRatios(
  rows: readonly MeasuredRow[],
  setup: { algs: readonly string[]; clientCounts: readonly number[]; revokedIds: number; rounds: number },
): { ratios: Ratio[]; ceilings: Results['ceilings'] } {
  const { clientCounts, revokedIds, rounds } = setup
  const figure = (id: string): Figure => {
    const row = rows.find((candidate) => candidate.id === id)
    if (!row) throw new Error(`no row ${id}`)
    const costs = row.http
      ? row.http.rounds.map((r) => r.serverCpuUsPerRequest)
      : (row.ops?.rounds.map((r) => r.cpuUsPerOp) ?? [])
    return { rates: row.rounds, costs }
  }
  const ratios: Ratio[] = []
  const ratio = (id: string, label: string, numerator: Figure, denominator: Figure, detail?: string) => {
    const paired = complete(numerator, rounds) && complete(denominator, rounds)
    const byRate = quotients(numerator.rates, denominator.rates, paired)
    // By CPU the cheaper one is the faster: the denominator's cost over the numerator's.
    const byCpu = quotients(denominator.costs, numerator.costs, paired)
    ratios.push({
      id,
      label,
      numerator: median(numerator.rates),
      denominator: round(median(denominator.rates)),
      pct: byRate.median,
      ...(byRate.min !== undefined && { pctMin: byRate.min, pctMax: byRate.max }),
      byCpuPct: Number.isFinite(byCpu.median) ? byCpu.median : undefined,
      paired,
      ...(detail !== undefined && { detail }),
    })
  }

  const ceilings: Results['ceilings'] = {}
  const floor = figure('floor')
  for (const alg of setup.algs) {
    const jose = figure(`sign_jose_${alg}`)
    const node = figure(`sign_node_${alg}`)
    // The ceiling signs with the faster signer (by median); its CPU view with the cheaper one.
    const signWith = median(node.rates) >= median(jose.rates) ? 'node:crypto' : 'jose'
    const faster = signWith === 'node:crypto' ? node : jose
    const cheaper = median(node.costs.map(Number)) <= median(jose.costs.map(Number)) ? node : jose
    const ceiling: Figure = {
      rates: floor.rates.map((rate, index) => 1 / (1 / rate + 1 / (faster.rates[index] ?? Number.NaN))),
      costs: floor.costs.map((cost, index) => {
        const sign = cheaper.costs[index]
        return cost === undefined || sign === undefined ? undefined : cost + sign
      }),
    }
    const floorCpuUs = median(floor.costs.map(Number))
    const signCpuUs = median(cheaper.costs.map(Number))
    ceilings[alg] = {
      floor: median(floor.rates),
      sign: median(faster.rates),
      signWith,
      ceiling: round(median(ceiling.rates)),
      ...(Number.isFinite(floorCpuUs + signCpuUs) && {
        floorCpuUs,
        signCpuUs,
        ceilingCpuUs: round(floorCpuUs + signCpuUs),
      }),
    }
    const c = ceilings[alg]!
    ratio(
      `token_${alg}_vs_ceiling`,
      `token ${alg} ÷ in-run ceiling`,
      figure(`token_${alg}`),
      ceiling,
      `floor ${integer(c.floor)} req/s, sign ${integer(c.sign)} ops/s (${signWith}) → ceiling ${integer(c.ceiling)} req/s` +
        (c.ceilingCpuUs === undefined
          ? ''
          : `; CPU: floor ${c.floorCpuUs} + sign ${c.signCpuUs} = ${c.ceilingCpuUs} µs/token`),
    )
  }
  const rsSignWith = ceilings.RS256?.signWith ?? 'node:crypto'
  const rsSign = figure(rsSignWith === 'jose' ? 'sign_jose_RS256' : 'sign_node_RS256')
  ratio(
    'token_RS256_vs_raw_sign',
    'token RS256 ÷ raw RS256 signing',
    figure('token_RS256'),
    rsSign,
    `raw RS256 sign ${integer(median(rsSign.rates))} ops/s (${rsSignWith})`,
  )
  ratio(
    'token_vs_limiter_off',
    'token ES256 ÷ limiter off',
    figure('token_ES256'),
    figure('token_ES256_limiter_off'),
    'the failed-authentication limits on the success path: one in-memory check per request',
  )
  ratio(
    'token_vs_metrics_off',
    'token ES256 ÷ metrics off',
    figure('token_ES256'),
    figure('token_ES256_metrics_off'),
    'metrics on the success path: a request timer, the counters of the token.issued event (metrics must cost no more than a few percent)',
  )
  ratio('token_EdDSA_vs_ES256', 'token EdDSA ÷ token ES256', figure('token_EdDSA'), figure('token_ES256'))
  ratio(
    'protected_vs_raw_verify',
    'protected route ÷ raw jose jwtVerify',
    figure('protected'),
    figure('verify_jose_ES256'),
  )
  ratio(
    'protected_no_token_cache_vs_raw_verify',
    'protected, no token cache ÷ raw jose jwtVerify',
    figure('protected_no_token_cache'),
    figure('verify_jose_ES256'),
  )
  ratio('jwks_vs_floor', 'JWKS ÷ floor', figure('jwks'), floor)
  ratio(
    'token_logfile_vs_main',
    'token ES256 log to file ÷ token ES256 (log to /dev/null)',
    figure('token_ES256_logfile'),
    figure('token_ES256'),
  )
  ratio(
    'token_logfile_vs_warn',
    'token ES256 log to file ÷ LOG_LEVEL=warn',
    figure('token_ES256_logfile'),
    figure('token_ES256_warn'),
  )
  for (const count of clientCounts.slice(1)) {
    ratio(
      `token_${count}_clients_vs_${clientCounts[0]}`,
      `token ES256, ${count.toLocaleString('en-US')} ÷ ${clientCounts[0]} clients`,
      figure(`token_ES256_${count}_clients`),
      figure('token_ES256'),
    )
  }
  const loaded = `protected_${revokedIds}_revoked`
  ratio(
    `protected_${revokedIds}_vs_0_revoked`,
    `protected, ${revokedIds.toLocaleString('en-US')} ÷ 0 revoked ids`,
    figure(loaded),
    figure('protected'),
  )
  ratio(
    `${loaded}_vs_raw_verify`,
    `protected, ${revokedIds.toLocaleString('en-US')} revoked ÷ raw jose jwtVerify`,
    figure(loaded),
    figure('verify_jose_ES256'),
  )
  return { ratios, ceilings }
}
