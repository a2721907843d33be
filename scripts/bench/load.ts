import autocannon from 'autocannon'
import { cpuSeconds, cpuTicks, othersPct } from './host.js'
import { round } from './stats.js'

/** One request, sent over and over by autocannon. */
export interface HttpTarget {
  url: string
  method: 'GET' | 'POST'
  headers: Record<string, string>
  body?: string
}

/** One round of load on one endpoint. */
export interface HttpRound {
  /** Mean of autocannon's per-second samples. */
  reqPerSec: number
  latencyMs: { p50: number; p90: number; p99: number; max: number }
  requests: number
  non2xx: number
  /** Connection errors, timeouts included. */
  errors: number
  timeouts: number
  statusCodes: Record<string, number>
  /** Share of one core used by the server process (every thread) and by this process (autocannon). */
  serverCpuPct: number | undefined
  benchCpuPct: number
  /** Share of the server's core used by other processes meanwhile (the machine was not quiet). */
  othersOnServerCorePct: number | undefined
  /**
   * Server CPU time (every thread) per response, µs: what a request costs the server whatever share
   * of the core it got, so it stays comparable when something else takes part of the core.
   */
  serverCpuUsPerRequest: number | undefined
}

export function cannon(target: HttpTarget, seconds: number, connections: number): Promise<autocannon.Result> {
  return autocannon({
    url: target.url,
    method: target.method,
    headers: target.headers,
    ...(target.body !== undefined && { body: target.body }),
    connections,
    pipelining: 1,
    duration: seconds,
  })
}

/** Every response must be a 2xx and every connection must hold: otherwise req/s means nothing. */
export function findProblems(result: autocannon.Result, phase: string): string[] {
  const problems: string[] = []
  const statuses = Object.entries(result.statusCodeStats ?? {})
  const others = statuses.filter(([status]) => !status.startsWith('2'))
  if (result.non2xx > 0 || others.length > 0) {
    problems.push(
      `${phase}: ${result.non2xx} non-2xx responses (${others.map(([status, stats]) => `${status}: ${stats.count ?? 0}`).join(', ')})`,
    )
  }
  if (result.errors > 0) problems.push(`${phase}: ${result.errors} connection errors (${result.timeouts} timeouts)`)
  if (result.requests.total === 0) problems.push(`${phase}: no responses at all`)
  return problems
}

/** One measured round; CPU of the server (pid) and of this process over the same span. */
export async function loadRound(
  target: HttpTarget,
  options: { seconds: number; connections: number; serverPid: number; serverCpu: number | undefined },
) {
  const core = () => (options.serverCpu === undefined ? undefined : cpuTicks(options.serverCpu))
  const coreBefore = core()
  const serverBefore = cpuSeconds(options.serverPid)
  const benchBefore = process.cpuUsage()
  const result = await cannon(target, options.seconds, options.connections)
  const bench = process.cpuUsage(benchBefore)
  const serverAfter = cpuSeconds(options.serverPid)
  const coreAfter = core()
  const pct = (seconds: number) => round((100 * seconds) / result.duration)
  const serverSeconds = serverBefore === undefined || serverAfter === undefined ? undefined : serverAfter - serverBefore
  const serverCpuPct = serverSeconds === undefined ? undefined : pct(serverSeconds)
  const figures: HttpRound = {
    reqPerSec: round(result.requests.mean),
    latencyMs: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, max: result.latency.max },
    requests: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    statusCodes: Object.fromEntries(
      Object.entries(result.statusCodeStats ?? {}).map(([status, stats]) => [status, stats.count ?? 0]),
    ),
    serverCpuPct,
    benchCpuPct: pct((bench.user + bench.system) / 1e6),
    othersOnServerCorePct: othersPct(coreBefore, coreAfter, serverCpuPct),
    serverCpuUsPerRequest:
      serverSeconds === undefined || result.requests.total === 0
        ? undefined
        : round((serverSeconds * 1e6) / result.requests.total),
  }
  return { figures, problems: findProblems(result, 'load') }
}
