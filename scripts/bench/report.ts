import type { BenchOptions } from './options.js'
import { round, throughput, type Figures, type Outcome, type Ratio } from './figures.js'

export interface MeasuredRow {
  name: string
  what: string
  outcome: Outcome
}

export interface RunInfo {
  options: BenchOptions
  node: string
  cpus: number
  platform: string
}

export function computeRatios(rows: readonly MeasuredRow[], ratios: readonly Ratio[]): { ratio: Ratio; pct: number | undefined }[] {
  const rate = (name: string) => {
    const row = rows.find((candidate) => candidate.name === name)
    return row && throughput(row.outcome.figures)
  }
  return ratios.map((ratio) => {
    const numerator = rate(ratio.numerator)
    const denominator = rate(ratio.denominator)
    return { ratio, pct: numerator === undefined || !denominator ? undefined : round((100 * numerator) / denominator) }
  })
}

const integer = (value: number) => Math.round(value).toLocaleString('en-US')
// autocannon records latency in whole milliseconds.
const ms = (value: number) => (Number.isInteger(value) ? String(value) : value.toFixed(1))
const pct = (value: number | undefined) => (value === undefined ? 'n/a' : `${Math.round(value)}%`)

function cells(figures: Figures): string[] {
  if (figures.kind === 'ops') return [`${integer(figures.opsPerSecond)} ops/s`, '-', '-', '-', '-', '-', pct(figures.cpuPct)]
  const { latencyMs: latency } = figures
  return [
    `${integer(figures.requestsPerSecond)} req/s`,
    ms(latency.p50),
    ms(latency.p90),
    ms(latency.p99),
    String(figures.non2xx),
    String(figures.errors),
    `${pct(figures.serverCpuPct)} server, ${pct(figures.benchCpuPct)} bench`,
  ]
}

/** The human summary: what ran where, one row per measurement, the ratios, then any problem. */
export function formatTable(info: RunInfo, rows: readonly MeasuredRow[], ratios: readonly Ratio[]): string {
  const { options } = info
  const header = ['measurement', 'mean', 'p50 ms', 'p90 ms', 'p99 ms', 'non-2xx', 'errors', 'cpu (100% = 1 core)']
  const body = rows.map((row) => [row.name, ...cells(row.outcome.figures)])
  const widths = header.map((title, column) => Math.max(title.length, ...body.map((cellsOfRow) => cellsOfRow[column]!.length)))
  // Names and the cpu column read left to right; figures line up on the right.
  const line = (values: readonly string[]) =>
    values.map((value, column) => (column === 0 || column === values.length - 1 ? value.padEnd(widths[column]!) : value.padStart(widths[column]!))).join('  ').trimEnd()

  const problems = rows.flatMap((row) => row.outcome.problems.map((problem) => `${row.name}: ${problem}`))
  return [
    `tokensmith bench: ${options.alg}, node ${info.node}, ${info.cpus} CPUs (${info.platform})`,
    `server:  its own process (node --import tsx src/main.ts), LOG_LEVEL=warn: per-request logs off during the load;`,
    `         one event loop, but jose signs through WebCrypto on libuv's thread pool, so it may use more than one core`,
    `load:    autocannon in the bench process, ${options.connections} connections, pipelining ${options.pipelining}, ${options.duration} s after ${options.warmup} s warm-up`,
    `raw:     in the bench process while the server is idle, ${options.rawSeconds} s after ${options.rawWarmup} s warm-up`,
    '',
    line(header),
    ...body.map(line),
    '',
    ...rows.map((row) => `${row.name}: ${row.what}`),
    ...computeRatios(rows, ratios).map(({ ratio, pct: value }) => `${ratio.label}: ${value === undefined ? 'n/a' : `${value.toFixed(1)} %`}`),
    ...(problems.length > 0 ? ['', ...problems.map((problem) => `PROBLEM ${problem}`)] : []),
  ].join('\n')
}

function figuresJson(figures: Figures): Record<string, unknown> {
  if (figures.kind === 'ops') {
    return { ops_per_s: figures.opsPerSecond, ops: figures.ops, seconds: figures.seconds, cpu_pct: figures.cpuPct }
  }
  return {
    req_per_s: figures.requestsPerSecond,
    latency_ms: figures.latencyMs,
    requests: figures.requests,
    non_2xx: figures.non2xx,
    errors: figures.errors,
    timeouts: figures.timeouts,
    status_codes: figures.statusCodes,
    server_cpu_pct: figures.serverCpuPct ?? null,
    bench_cpu_pct: figures.benchCpuPct,
  }
}

/** One line of JSON with every figure, for scripts and for comparing runs. */
export function formatJson(info: RunInfo, rows: readonly MeasuredRow[], ratios: readonly Ratio[]): string {
  const { options } = info
  const problems = rows.flatMap((row) => row.outcome.problems.map((problem) => `${row.name}: ${problem}`))
  return JSON.stringify({
    bench: 'tokensmith',
    ok: problems.length === 0,
    alg: options.alg,
    connections: options.connections,
    pipelining: options.pipelining,
    duration_s: options.duration,
    warmup_s: options.warmup,
    raw_seconds: options.rawSeconds,
    node: info.node,
    cpus: info.cpus,
    platform: info.platform,
    measurements: Object.fromEntries(rows.map((row) => [row.name, figuresJson(row.outcome.figures)])),
    ratios: Object.fromEntries(computeRatios(rows, ratios).map(({ ratio, pct: value }) => [ratio.name, value ?? null])),
    problems,
  })
}
