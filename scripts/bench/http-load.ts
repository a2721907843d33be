import autocannon from 'autocannon'
import type { BenchContext } from './fixture.js'
import { round, type HttpFigures, type Outcome } from './figures.js'

export interface HttpRequest {
  path: string
  method: 'GET' | 'POST'
  headers: Record<string, string>
  body?: string
}

function cannon(context: BenchContext, request: HttpRequest, duration: number): Promise<autocannon.Result> {
  const { connections, pipelining } = context.options
  return autocannon({
    url: `${context.server.url}${request.path}`,
    method: request.method,
    headers: request.headers,
    ...(request.body !== undefined && { body: request.body }),
    connections,
    pipelining,
    duration,
  })
}

/** Every response must be a 200 and every connection must hold: otherwise req/s means nothing. */
function findProblems(result: autocannon.Result, phase: string): string[] {
  const problems: string[] = []
  const others = Object.entries(result.statusCodeStats ?? {}).filter(([status]) => status !== '200')
  if (result.non2xx > 0 || others.length > 0) {
    const detail = others.map(([status, stats]) => `${status}: ${stats.count ?? 0}`).join(', ')
    problems.push(`${phase}: ${result.non2xx} non-2xx responses (${detail})`)
  }
  if (result.errors > 0) problems.push(`${phase}: ${result.errors} connection errors (${result.timeouts} timeouts)`)
  if (result.requests.total === 0) problems.push(`${phase}: no responses at all`)
  return problems
}

/**
 * Loads one endpoint: `warmup` seconds discarded (JIT, connection set-up), then `duration`
 * seconds measured, with the same connections and pipelining.
 */
export async function loadEndpoint(context: BenchContext, request: HttpRequest, report: (message: string) => void): Promise<Outcome> {
  const { warmup, duration, connections } = context.options
  report(`${request.method} ${request.path}: warming up ${warmup} s`)
  const warm = await cannon(context, request, warmup)

  report(`${request.method} ${request.path}: loading ${duration} s, ${connections} connections`)
  const serverCpuBefore = await context.server.cpuSeconds()
  const benchCpuBefore = process.cpuUsage()
  const result = await cannon(context, request, duration)
  const benchCpu = process.cpuUsage(benchCpuBefore)
  const serverCpuAfter = await context.server.cpuSeconds()

  const cpuPct = (seconds: number) => round((100 * seconds) / result.duration)
  const figures: HttpFigures = {
    kind: 'http',
    requestsPerSecond: round(result.requests.mean),
    latencyMs: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99 },
    requests: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    statusCodes: Object.fromEntries(Object.entries(result.statusCodeStats ?? {}).map(([status, stats]) => [status, stats.count ?? 0])),
    serverCpuPct: serverCpuBefore === undefined || serverCpuAfter === undefined ? undefined : cpuPct(serverCpuAfter - serverCpuBefore),
    benchCpuPct: cpuPct((benchCpu.user + benchCpu.system) / 1e6),
  }
  return { figures, problems: [...findProblems(warm, 'warm-up'), ...findProblems(result, 'load')] }
}
