import { waitFor } from '../../test/helpers/wait-for.js'
import type { BenchClient } from './clients-file.js'
import type { BenchOptions } from './options.js'
import { getStatus, requestToken } from './requests.js'
import type { MeasuredRow } from './results.js'
import { untilReady, type BenchServer } from './servers.js'
import { percentile, round, summarize } from './stats.js'

/**
 * Per round: fresh tokens, each first accepted by the resource server; then one at a time, from
 * just before POST /oauth/revoke, the resource server is asked with the revoked token back to back
 * until it answers 401. Round figures: p50 and p99 of that round's revocations.
 */
export async function measureRevocation(
  options: BenchOptions,
  report: (message: string) => void,
  servers: { issuer: BenchServer; rs: BenchServer; client: BenchClient },
): Promise<MeasuredRow[]> {
  const { issuer, rs, client } = servers
  const p50: number[] = []
  const p99: number[] = []
  const revokeP50: number[] = []
  const all: number[] = []
  const problems: string[] = []
  const polls: number[] = []
  for (let index = 0; index < options.rounds; index++) {
    report(
      `revocation propagation, round ${index + 1} of ${options.rounds}: ${options.revocationsPerRound} revocations`,
    )
    const tokens: string[] = []
    for (let i = 0; i < options.revocationsPerRound; i++) tokens.push((await requestToken(issuer, client)).token)
    // Measured against a live feed, not the middleware asking Redis directly (or answering 503).
    await untilReady(rs, 30_000)
    for (const token of tokens) {
      await waitFor(
        async () => {
          const status = await getStatus(`${rs.url}/invoices`, token)
          if (status !== 200)
            throw new Error(`the resource server refused a fresh token (${status}) for 10 s: ${rs.output()}`)
        },
        10_000,
        50,
      )
    }
    const times: number[] = []
    const revokeTimes: number[] = []
    for (const token of tokens) {
      const started = performance.now()
      const response = await fetch(`${issuer.url}/oauth/revoke`, {
        method: 'POST',
        headers: { authorization: client.authorization, 'content-type': 'application/x-www-form-urlencoded' },
        body: `token=${token}&token_type_hint=access_token`,
      })
      const text = await response.text()
      if (response.status !== 200) {
        problems.push(`round ${index + 1}: POST /oauth/revoke answered ${response.status}: ${text}`)
        continue
      }
      revokeTimes.push(performance.now() - started)
      let attempts = 0
      try {
        await waitFor(
          async () => {
            attempts++
            const status = await getStatus(`${rs.url}/invoices`, token)
            if (status !== 401)
              throw new Error(`the resource server still answers ${status} to a revoked token after 5 s`)
          },
          5_000,
          0,
        )
      } catch (error) {
        problems.push(`round ${index + 1}: ${(error as Error).message}`)
        continue
      }
      times.push(performance.now() - started)
      polls.push(attempts)
    }
    p50.push(percentile(times, 50))
    p99.push(percentile(times, 99))
    revokeP50.push(percentile(revokeTimes, 50))
    all.push(...times)
    report(
      `  p50 ${p50.at(-1)!.toFixed(2)} ms, p99 ${p99.at(-1)!.toFixed(2)} ms (POST /oauth/revoke alone: p50 ${revokeP50.at(-1)!.toFixed(2)} ms)`,
    )
  }
  const detail = {
    revocations: all.length,
    all_p50_ms: round(percentile(all, 50), 2),
    all_p99_ms: round(percentile(all, 99), 2),
    all_max_ms: round(Math.max(...all), 2),
    polls_per_revocation_p50: percentile(polls, 50),
    polls_per_revocation_max: Math.max(...polls),
  }
  const row = (id: string, label: string, what: string, values: number[]): MeasuredRow => ({
    id,
    section: 'revocation',
    label,
    what,
    unit: 'ms',
    rounds: values.map((value) => round(value, 2)),
    summary: summarize(values.map((value) => round(value, 2))),
    problems: [],
  })
  return [
    {
      ...row(
        'revocation_p50',
        'revocation p50',
        `revoke to 401 at a bearerAuth in another process, ${options.revocationsPerRound} per round`,
        p50,
      ),
      detail,
      problems,
    },
    row('revocation_p99', 'revocation p99', 'the same, 99th percentile of each round', p99),
    row(
      'revoke_request_p50',
      'POST /oauth/revoke p50',
      'the revoke request alone (its response), for comparison',
      revokeP50,
    ),
  ]
}
