import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startRedisServer, type RedisServer } from '../../test/helpers/redis-server.js'
import { AUDIENCE, clientEntries, createBenchClient, writeClientsFile } from './clients-file.js'
import { measureReload, writeRevokedIds } from './growth.js'
import { totalPeak, totalRss, type Placement } from './host.js'
import { cannon, findProblems, loadRound, type HttpRound, type HttpTarget } from './load.js'
import { opsRound, warmUp, type OpsRound } from './ops.js'
import type { BenchOptions } from './options.js'
import { computeRatios } from './ratios.js'
import { getStatus, requestToken, tokenTarget } from './requests.js'
import { singleRow, type MeasuredRow, type Results, type Section } from './results.js'
import { measureRevocation } from './revocation.js'
import { FLOOR, MAIN, RESOURCE, shippedEnv, untilReady, type BenchServer, type Fleet } from './servers.js'
import { checkSameToken, joseSigner, joseVerifier, nodeSigner, readServerKey, type ServerKey } from './signing.js'
import { measureSoak } from './soak.js'
import { integer, round, summarize } from './stats.js'

/**
 * One `npm run bench`: every server up at once (idle ones cost nothing), then rounds in which each
 * row runs once in turn, so slow drift on the machine spreads over every row instead of landing on
 * one; then the figures that are not throughput (revocation, start-up, reload, the RSS soak).
 */

export interface RunContext {
  options: BenchOptions
  fleet: Fleet
  placement: Placement
  /** The bench's temp dir: keys, clients files, logs. */
  dir: string
  report(message: string): void
  /** Registers a cleanup step (run last first). */
  onCleanup(step: () => Promise<void>): void
}

const ALGS = ['ES256', 'EdDSA', 'RS256'] as const
/** METRICS_TOKEN of the token servers (32 to 256 visible characters); nothing scrapes with it. */
const BENCH_METRICS_TOKEN = 'bench-metrics-token-not-a-secret-0123456789'
type Alg = (typeof ALGS)[number]
const ISSUER_PREFIX = 'bench-a:'
const LOADED_PREFIX = 'bench-b:'

/** A row measured in the rounds: an HTTP endpoint under autocannon, or an in-process loop. */
interface HttpRowSpec {
  kind: 'http'
  id: string
  section: Section
  label: string
  what: string
  server: BenchServer
  /** Called before each run: the protected rows fetch a fresh token, so none expires mid-bench. */
  target(): Promise<HttpTarget>
  rounds: HttpRound[]
  problems: string[]
}
interface OpsRowSpec {
  kind: 'ops'
  id: string
  label: string
  what: string
  /** Called before each round: the verify row takes a fresh token, so none expires mid-bench. */
  prepare(): Promise<() => unknown>
  rounds: OpsRound[]
  problems: string[]
}

export async function runBench(
  context: RunContext,
): Promise<Omit<Results, 'startedAt' | 'elapsedSeconds' | 'machine'>> {
  const { options, fleet, dir, report } = context
  const notes: string[] = []

  // --- Fixtures: clients files, Redis -----------------------------------------------------------
  const client = createBenchClient('bench-client')
  const clientsFiles = new Map<number, string>()
  for (const count of options.clientCounts) {
    const path = join(dir, `clients-${count}.json`)
    await writeClientsFile(path, clientEntries(client, count))
    clientsFiles.set(count, path)
  }
  const mainClients = clientsFiles.get(options.clientCounts[0]!)!
  report(
    `clients files written: ${options.clientCounts.map((count) => count.toLocaleString('en-US')).join(', ')} clients`,
  )

  const redis: RedisServer = await startRedisServer()
  context.onCleanup(() => redis.stop())
  report(`redis-server (the bench's own) on ${redis.url}`)

  // --- Servers --------------------------------------------------------------------------------
  const keysDir = (name: string) => join(dir, 'keys', name)
  await mkdir(join(dir, 'keys'), { mode: 0o700 })
  // Metrics on, as an operator runs the server (METRICS_TOKEN; never scraped during the bench): the
  // "metrics off" server below has them off as the product does without METRICS_TOKEN and METRICS_PORT.
  const tokenEnv = (alg: Alg, keys: string, clientsFile: string, extra: Record<string, string> = {}) =>
    shippedEnv({
      SIGNING_ALG: alg,
      KEYS_DIR: keysDir(keys),
      CLIENTS_FILE: clientsFile,
      METRICS_TOKEN: BENCH_METRICS_TOKEN,
      ...extra,
    })

  report('starting the servers (the first start of each KEYS_DIR generates its keys)')
  const servers = {} as Record<Alg, BenchServer>
  for (const alg of ALGS) {
    servers[alg] = await fleet.start({
      name: `token-${alg}`,
      entry: MAIN,
      env: tokenEnv(alg, alg, mainClients),
      log: 'null',
    })
  }
  const floor = await fleet.start({
    name: 'floor',
    entry: FLOOR,
    env: tokenEnv('ES256', 'floor', mainClients, { FLOOR_AUTHORIZATION: client.authorization }),
    log: 'null',
  })
  // These share the ES256 server's KEYS_DIR (its keys exist by now), as instances of one deployment do.
  const logToFile = await fleet.start({
    name: 'token-ES256-logfile',
    entry: MAIN,
    env: tokenEnv('ES256', 'ES256', mainClients, { LOG_LEVEL: 'info' }),
    log: 'file',
  })
  // The same server with the failed-authentication limits off (floor-server.mjs, FLOOR_LIMITER=off):
  // what the limits cost a successful token request.
  const limiterOff = await fleet.start({
    name: 'token-ES256-limiter-off',
    entry: FLOOR,
    env: tokenEnv('ES256', 'ES256', mainClients, { FLOOR_AUTHORIZATION: client.authorization, FLOOR_LIMITER: 'off' }),
    log: 'null',
  })
  // The same server with no metrics (no METRICS_TOKEN, no METRICS_PORT): what they cost a token request.
  const metricsOff = await fleet.start({
    name: 'token-ES256-metrics-off',
    entry: MAIN,
    env: tokenEnv('ES256', 'ES256', mainClients, { METRICS_TOKEN: '' }),
    log: 'null',
  })
  const logWarn = await fleet.start({
    name: 'token-ES256-warn',
    entry: MAIN,
    env: tokenEnv('ES256', 'ES256', mainClients, { LOG_LEVEL: 'warn' }),
    log: 'null',
  })
  const byClients = new Map<number, BenchServer>([[options.clientCounts[0]!, servers.ES256]])
  for (const count of options.clientCounts.slice(1)) {
    byClients.set(
      count,
      await fleet.start({
        name: `token-ES256-${count}-clients`,
        entry: MAIN,
        env: tokenEnv('ES256', 'ES256', clientsFiles.get(count)!),
        log: 'null',
      }),
    )
  }
  const issuer = await fleet.start({
    name: 'issuer-redis',
    entry: MAIN,
    env: tokenEnv('ES256', 'issuer', mainClients, { REDIS_URL: redis.url, REDIS_KEY_PREFIX: ISSUER_PREFIX }),
    log: 'null',
  })
  const resourceEnv = (prefix: string) => ({
    NODE_OPTIONS: '',
    ISSUER: issuer.url,
    AUDIENCE,
    REDIS_URL: redis.url,
    REDIS_KEY_PREFIX: prefix,
  })
  const startResourceServer = async (name: string, prefix: string, extra: Record<string, string> = {}) => {
    const server = await fleet.start({ name, entry: RESOURCE, env: { ...resourceEnv(prefix), ...extra }, log: 'null' })
    const started = performance.now()
    await untilReady(server, 60_000)
    return { server, liveMs: performance.now() - started, idleMemory: server.memory() }
  }
  const rsEmpty = await startResourceServer('resource-0-revoked', ISSUER_PREFIX)
  const rsUncached = await startResourceServer('resource-no-token-cache', ISSUER_PREFIX, { TOKEN_CACHE: 'off' })

  report(
    `writing ${options.revokedIds.toLocaleString('en-US')} live revoked token ids under ${LOADED_PREFIX} (pipelined)`,
  )
  await writeRevokedIds(redis.url, LOADED_PREFIX, options.revokedIds)
  const rsLoaded = await startResourceServer(`resource-${options.revokedIds}-revoked`, LOADED_PREFIX)
  report(`${rsLoaded.server.name}: feed live ${Math.round(rsLoaded.liveMs)} ms after listening`)

  // --- Samples and yardsticks -----------------------------------------------------------------
  const samples = {} as Record<Alg, { token: string; body: string; key: ServerKey }>
  for (const alg of ALGS) {
    const sample = await requestToken(servers[alg], client)
    samples[alg] = { ...sample, key: await readServerKey(keysDir(alg), sample.token) }
  }
  for (const server of [floor, logToFile, logWarn, ...byClients.values()]) await requestToken(server, client)
  const floorResponse = await fetch(`${floor.url}/bench/floor`, {
    method: 'POST',
    headers: tokenTarget(floor, client).headers,
    body: 'grant_type=client_credentials',
  })
  const floorBody = await floorResponse.text()
  if (floorResponse.status !== 200) throw new Error(`POST /bench/floor answered ${floorResponse.status}: ${floorBody}`)
  const issuerSample = await requestToken(issuer, client)
  const issuerKey = await readServerKey(keysDir('issuer'), issuerSample.token)
  for (const rs of [rsEmpty, rsUncached, rsLoaded]) {
    const status = await getStatus(`${rs.server.url}/invoices`, issuerSample.token)
    if (status !== 200)
      throw new Error(`${rs.server.name}: GET /invoices with a fresh token answered ${status}: ${rs.server.output()}`)
  }

  const ops = (spec: Omit<OpsRowSpec, 'kind' | 'rounds' | 'problems'>): OpsRowSpec => ({
    kind: 'ops',
    rounds: [],
    problems: [],
    ...spec,
  })
  const signRows = {} as Record<Alg, OpsRowSpec[]>
  for (const alg of ALGS) {
    const { key, token } = samples[alg]
    const jose = joseSigner(key, token)
    const node = nodeSigner(key, token)
    await checkSameToken(token, await jose(), key, `jose SignJWT ${alg}`)
    await checkSameToken(token, node(), key, `node:crypto sign ${alg}`)
    signRows[alg] = [
      ops({
        id: `sign_jose_${alg}`,
        label: `sign ${alg}, jose`,
        what: 'jose SignJWT of the same claims, awaited one at a time (WebCrypto)',
        prepare: async () => jose,
      }),
      ops({
        id: `sign_node_${alg}`,
        label: `sign ${alg}, node:crypto`,
        what: 'crypto.sign of the same JWS signing input, synchronous',
        prepare: async () => node,
      }),
    ]
  }
  const freshVerifier = async () => {
    const verify = joseVerifier(issuerKey, (await requestToken(issuer, client)).token)
    await verify() // a token that does not verify fails here, not as a loop of errors
    return verify
  }
  await freshVerifier()
  const verifyRow = ops({
    id: 'verify_jose_ES256',
    label: 'verify ES256, jose',
    what: "jose jwtVerify of the protected route's token (alg, typ, iss, aud, required claims)",
    prepare: freshVerifier,
  })

  // --- Rows measured in rounds ----------------------------------------------------------------
  const freshBearer = (rs: BenchServer) => async (): Promise<HttpTarget> => ({
    url: `${rs.url}/invoices`,
    method: 'GET',
    headers: { authorization: `Bearer ${(await requestToken(issuer, client)).token}` },
  })
  const http = (spec: Omit<HttpRowSpec, 'kind' | 'rounds' | 'problems'>): HttpRowSpec => ({
    kind: 'http',
    rounds: [],
    problems: [],
    ...spec,
  })
  const tokenRow = (id: string, section: Section, label: string, what: string, server: BenchServer) =>
    http({ id, section, label, what, server, target: async () => tokenTarget(server, client) })
  const tokenRows = {} as Record<Alg, HttpRowSpec>
  for (const alg of ALGS)
    tokenRows[alg] = tokenRow(
      `token_${alg}`,
      'throughput',
      `token ${alg}`,
      'POST /oauth/token, client_secret_basic',
      servers[alg],
    )
  const clientRows = options.clientCounts
    .slice(1)
    .map((count) =>
      tokenRow(
        `token_ES256_${count}_clients`,
        'growth',
        `token ES256, ${count.toLocaleString('en-US')} clients`,
        `as token ES256 (${options.clientCounts[0]} clients), CLIENTS_FILE with ${count.toLocaleString('en-US')}`,
        byClients.get(count)!,
      ),
    )
  // The order within a round: rows compared with each other run close together in time, since on
  // a shared host the machine's speed drifts from minute to minute (ratios pair rows round by round).
  const plan: (HttpRowSpec | OpsRowSpec)[] = [
    http({
      id: 'floor',
      section: 'throughput',
      label: 'floor',
      what: 'POST /bench/floor: the same app answering a prepared token response',
      server: floor,
      target: async () => tokenTarget(floor, client, '/bench/floor'),
    }),
    // On the floor's process: two routes of one app, and the token servers serve nothing but tokens.
    http({
      id: 'jwks',
      section: 'throughput',
      label: 'JWKS',
      what: 'GET /.well-known/jwks.json, on the floor server (the same app, ES256 keys)',
      server: floor,
      target: async () => ({ url: `${floor.url}/.well-known/jwks.json`, method: 'GET', headers: {} }),
    }),
    tokenRows.ES256,
    tokenRow(
      'token_ES256_limiter_off',
      'throughput',
      'token ES256, limiter off',
      'as token ES256, failed-authentication limits off (floor-server.mjs, FLOOR_LIMITER=off)',
      limiterOff,
    ),
    tokenRow(
      'token_ES256_metrics_off',
      'throughput',
      'token ES256, metrics off',
      'as token ES256, without METRICS_TOKEN: no metrics collected (the default when neither METRICS_TOKEN nor METRICS_PORT is set)',
      metricsOff,
    ),
    ...signRows.ES256,
    tokenRow(
      'token_ES256_logfile',
      'throughput',
      'token ES256, log to file',
      'as token ES256, LOG_LEVEL=info, log written to a file',
      logToFile,
    ),
    tokenRow(
      'token_ES256_warn',
      'throughput',
      'token ES256, LOG_LEVEL=warn',
      'as token ES256, no per-request log line',
      logWarn,
    ),
    ...clientRows,
    tokenRows.EdDSA,
    ...signRows.EdDSA,
    tokenRows.RS256,
    ...signRows.RS256,
    http({
      id: 'protected',
      section: 'throughput',
      label: 'protected route',
      what: 'GET /invoices behind bearerAuth, Redis feed live, 0 revoked ids',
      server: rsEmpty.server,
      target: freshBearer(rsEmpty.server),
    }),
    verifyRow,
    http({
      id: 'protected_no_token_cache',
      section: 'throughput',
      label: 'protected, no token cache',
      what: 'as protected route, with tokenCache: false (every request verifies the signature)',
      server: rsUncached.server,
      target: freshBearer(rsUncached.server),
    }),
    http({
      id: `protected_${options.revokedIds}_revoked`,
      section: 'growth',
      label: `protected, ${options.revokedIds.toLocaleString('en-US')} revoked`,
      what: `as protected route, with ${options.revokedIds.toLocaleString('en-US')} live revoked ids in the feed`,
      server: rsLoaded.server,
      target: freshBearer(rsLoaded.server),
    }),
  ]

  for (let index = 0; index < options.rounds; index++) {
    report(`round ${index + 1} of ${options.rounds}`)
    // A row that throws (a server gone, a token refused) fails loudly at the end, with the rest measured.
    for (const row of plan) {
      const measured =
        row.kind === 'http' ? measureHttpRound(row, index, context) : measureOpsRound(row, index, context)
      await measured.catch((error: unknown) => row.problems.push(`round ${index + 1}: ${(error as Error).message}`))
    }
  }

  // The phases after the rounds: one that fails is a problem (the bench then fails loudly), and the
  // others still run, so a long run is not thrown away for one broken figure.
  const failures: string[] = []
  const attempt = async <T>(phase: string, work: () => Promise<T>, fallback: T): Promise<T> => {
    try {
      return await work()
    } catch (error) {
      failures.push(`${phase}: ${(error as Error).message}`)
      report(`${phase} FAILED: ${(error as Error).message}`)
      return fallback
    }
  }

  // --- Revocation propagation ----------------------------------------------------------------
  const revocationRows = await attempt(
    'revocation propagation',
    () => measureRevocation(options, report, { issuer, rs: rsEmpty.server, client }),
    [],
  )

  // --- Start-up and reload --------------------------------------------------------------------
  const startup = new Map<number, number[]>()
  for (const count of options.clientCounts) {
    const times: number[] = []
    for (let index = 0; index < options.rounds; index++) {
      await attempt(
        `start-up with ${count} clients`,
        async () => {
          const server = await fleet.start({
            name: `startup-${count}-clients-${index + 1}`,
            entry: MAIN,
            env: tokenEnv('ES256', 'ES256', clientsFiles.get(count)!),
            log: 'null',
          })
          times.push(server.startMs)
          await server.stop()
        },
        undefined,
      )
    }
    startup.set(count, times)
  }
  const largest = options.clientCounts.at(-1)!
  const reloadRows = await attempt(
    'reload',
    async () => [
      await measureReload(options, report, {
        server: byClients.get(largest)!,
        path: clientsFiles.get(largest)!,
        client,
        count: largest,
      }),
    ],
    [],
  )

  // --- RSS under sustained load ---------------------------------------------------------------
  const soakRows = await attempt(
    'RSS soak',
    () => measureSoak(options, report, servers.ES256, tokenTarget(servers.ES256, client)),
    [],
  )

  // --- Memory at the end ----------------------------------------------------------------------
  const memory = (server: BenchServer) => {
    const members = server.memory()
    return (
      members && { peakMiB: round(totalPeak(members)), rssMiB: round(totalRss(members)), processes: members.length }
    )
  }
  const logLines = logToFile.logFile
    ? (await readFile(logToFile.logFile, 'utf8')).split('\n').filter(Boolean).length
    : 0
  const logRequests = plan
    .flatMap((row) => (row.kind === 'http' && row.id === 'token_ES256_logfile' ? row.rounds : []))
    .reduce((sum, r) => sum + r.requests, 0)

  // --- Rows and ratios ------------------------------------------------------------------------
  const rows: MeasuredRow[] = []
  for (const row of plan) rows.push(row.kind === 'http' ? httpResult(row, notes) : opsResult(row, notes))
  rows.push(...revocationRows)
  for (const count of options.clientCounts) {
    rows.push(
      singleRow(
        `startup_${count}_clients`,
        'growth',
        `start-up, ${count.toLocaleString('en-US')} clients`,
        'spawn of node dist/main.js until /healthz answers (keys exist)',
        'ms',
        startup.get(count)!,
      ),
    )
  }
  rows.push(...reloadRows)
  rows.push(
    singleRow(
      'feed_live_0',
      'growth',
      'feed live, 0 revoked',
      'resource server listening until its feed is subscribed and loaded',
      'ms',
      [rsEmpty.liveMs],
    ),
  )
  rows.push(
    singleRow(
      `feed_live_${options.revokedIds}`,
      'growth',
      `feed live, ${options.revokedIds.toLocaleString('en-US')} revoked`,
      'the same, SCAN + PTTL of every revoked id',
      'ms',
      [rsLoaded.liveMs],
    ),
  )
  for (const [rs, count] of [
    [rsEmpty, 0],
    [rsLoaded, options.revokedIds],
  ] as const) {
    const idle = rs.idleMemory && totalRss(rs.idleMemory)
    const end = memory(rs.server)
    if (idle !== undefined)
      rows.push(
        singleRow(
          `resource_rss_idle_${count}`,
          'growth',
          `resource server RSS, ${count.toLocaleString('en-US')} revoked, idle`,
          'VmRSS once the feed is live, before any load',
          'MiB',
          [idle],
        ),
      )
    if (end)
      rows.push(
        singleRow(
          `resource_peak_${count}`,
          'growth',
          `resource server peak RSS, ${count.toLocaleString('en-US')} revoked`,
          'VmHWM after its load',
          'MiB',
          [end.peakMiB],
        ),
      )
  }
  rows.push(...soakRows)
  const memoryServers: [string, BenchServer][] = [
    ...ALGS.map((alg): [string, BenchServer] => [`token ${alg}`, servers[alg]]),
    ['floor', floor],
    ['token ES256, log to file', logToFile],
    ['token ES256, limiter off', limiterOff],
    ['token ES256, metrics off', metricsOff],
    ...[...byClients]
      .slice(1)
      .map(([count, server]): [string, BenchServer] => [
        `token ES256, ${count.toLocaleString('en-US')} clients`,
        server,
      ]),
  ]
  for (const [label, server] of memoryServers) {
    const figures = memory(server)
    if (!figures) continue
    rows.push(
      singleRow(
        `peak_rss_${server.name}`,
        'memory',
        `peak RSS, ${label}`,
        `VmHWM of the server process at the end${figures.processes > 1 ? ` (sum over ${figures.processes} processes)` : ''}`,
        'MiB',
        [figures.peakMiB],
        { rss_mib_at_end: figures.rssMiB },
      ),
    )
  }

  const { ratios, ceilings } = computeRatios(rows, {
    algs: ALGS,
    clientCounts: options.clientCounts,
    revokedIds: options.revokedIds,
    rounds: options.rounds,
  })
  notes.push(
    `response bodies: floor ${floorBody.length} B; token ${ALGS.map((alg) => `${alg} ${samples[alg].body.length} B`).join(', ')} (the floor answers the ES256 server's token, so RS256's ceiling is a little generous)`,
    `log to file: ${logLines.toLocaleString('en-US')} lines written for ${logRequests.toLocaleString('en-US')} measured requests (plus warm-up)`,
  )

  return {
    settings: {
      rounds: options.rounds,
      http_round_s: options.duration,
      warmup_s: options.warmup,
      connections: options.connections,
      raw_round_s: options.rawSeconds,
      soak_s: options.soakSeconds,
      revocations_per_round: options.revocationsPerRound,
      client_counts: options.clientCounts,
      revoked_ids: options.revokedIds,
      quick: options.quick,
    },
    setup: [
      ...context.placement.notes,
      'token servers: node dist/main.js (npm start without npm), shipped defaults; KEYS_DIR fresh per algorithm; the log (LOG_LEVEL=info, one line per request) goes to /dev/null',
      "floor: scripts/bench/floor-server.mjs, the same assembly from dist/ plus POST /bench/floor (a token response prepared at start-up, the endpoint's own headers)",
      'metrics: every token server runs with METRICS_TOKEN set (metrics collected, /metrics never scraped during the load); metrics off: the ES256 server without it, so nothing is collected',
      'limiter off: floor-server.mjs with FLOOR_LIMITER=off, POST /oauth/token with the failed-authentication limits switched off (they are always on in the product)',
      'protected route: scripts/bench/resource-server.mjs (bearerAuth from dist/, remote JWKS of an ES256 server with REDIS_URL, Redis revocation feed live)',
      `load: autocannon in the bench process, ${options.connections} connections, ${options.rounds} round(s) of ${options.duration} s per row after ${options.warmup} s warm-up; rows take turns within each round`,
      `raw: one operation at a time in the bench process, ${options.rounds} round(s) of ${options.rawSeconds} s after ${options.rawWarmup} s warm-up`,
    ],
    rows,
    ratios,
    ceilings,
    notes,
    problems: [...rows.flatMap((row) => row.problems.map((problem) => `${row.label}: ${problem}`)), ...failures],
  }
}

const defined = (values: readonly (number | undefined)[]) =>
  values.filter((value): value is number => value !== undefined)

/** An HTTP row's rounds as a result row; a round other processes disturbed gets a note. */
function httpResult(row: HttpRowSpec, notes: string[]): MeasuredRow {
  const cpu = defined(row.rounds.map((r) => r.serverCpuPct))
  const others = defined(row.rounds.map((r) => r.othersOnServerCorePct))
  const costs = defined(row.rounds.map((r) => r.serverCpuUsPerRequest))
  const bench = summarize(row.rounds.map((r) => r.benchCpuPct))
  const result: MeasuredRow = {
    id: row.id,
    section: row.section,
    label: row.label,
    what: row.what,
    unit: 'req/s',
    rounds: row.rounds.map((r) => r.reqPerSec),
    summary: summarize(row.rounds.map((r) => r.reqPerSec)),
    http: {
      rounds: row.rounds,
      p50: summarize(row.rounds.map((r) => r.latencyMs.p50)),
      p99: summarize(row.rounds.map((r) => r.latencyMs.p99)),
      serverCpuPct: cpu.length > 0 ? summarize(cpu) : undefined,
      benchCpuPct: bench,
      othersPct: others.length > 0 ? summarize(others) : undefined,
      cpuUsPerRequest: costs.length > 0 ? summarize(costs) : undefined,
    },
    problems: row.problems,
  }
  if (others.length > 0 && Math.max(...others) >= 10) {
    notes.push(
      `${row.label}: other processes took up to ${Math.max(...others)}% of the server's core in a round: that round's figures are low`,
    )
  }
  // autocannon on a saturated core under-reports the server: flag it rather than let it pass.
  if (bench.median >= 90)
    notes.push(
      `${row.label}: the bench process used ${Math.round(bench.median)}% of its core, so autocannon may be the limit, not the server`,
    )
  return result
}

/** An in-process loop's rounds as a result row. */
function opsResult(row: OpsRowSpec, notes: string[]): MeasuredRow {
  const others = defined(row.rounds.map((r) => r.othersOnBenchCorePct))
  if (others.length > 0 && Math.max(...others) >= 10) {
    notes.push(
      `${row.label}: other processes took up to ${Math.max(...others)}% of the bench's core in a round: that round's figures are low`,
    )
  }
  return {
    id: row.id,
    section: 'raw',
    label: row.label,
    what: row.what,
    unit: 'ops/s',
    rounds: row.rounds.map((r) => r.opsPerSec),
    summary: summarize(row.rounds.map((r) => r.opsPerSec)),
    ops: {
      rounds: row.rounds,
      cpuPct: summarize(row.rounds.map((r) => r.cpuPct)),
      othersPct: others.length > 0 ? summarize(others) : undefined,
      cpuUsPerOp: summarize(row.rounds.map((r) => r.cpuUsPerOp)),
    },
    problems: row.problems,
  }
}

async function measureHttpRound(row: HttpRowSpec, index: number, context: RunContext): Promise<void> {
  const { options, report } = context
  const target = await row.target()
  if (index === 0) {
    report(`  ${row.label}: warm-up ${options.warmup} s`)
    row.problems.push(...findProblems(await cannon(target, options.warmup, options.connections), 'warm-up'))
  }
  const { figures, problems } = await loadRound(target, {
    seconds: options.duration,
    connections: options.connections,
    serverPid: row.server.pid,
    serverCpu: context.placement.serverCpu,
  })
  row.rounds.push(figures)
  row.problems.push(...problems.map((problem) => `round ${index + 1} ${problem}`))
  const others =
    figures.othersOnServerCorePct === undefined ? '' : `, others on its core ${figures.othersOnServerCorePct}%`
  const trouble = problems.length > 0 ? `  !! ${problems.join('; ')}` : ''
  report(
    `  ${row.label}: ${integer(figures.reqPerSec)} req/s, p99 ${figures.latencyMs.p99} ms, server cpu ${figures.serverCpuPct ?? '?'}%${others}${trouble}`,
  )
}

async function measureOpsRound(row: OpsRowSpec, index: number, context: RunContext): Promise<void> {
  const { options, report } = context
  const operation = await row.prepare()
  if (index === 0) await warmUp(operation, options.rawWarmup)
  const figures = await opsRound(operation, options.rawSeconds, context.placement.benchCpu)
  row.rounds.push(figures)
  const others =
    figures.othersOnBenchCorePct === undefined ? '' : `, others on its core ${figures.othersOnBenchCorePct}%`
  report(`  ${row.label}: ${integer(figures.opsPerSec)} ops/s${others}`)
}
