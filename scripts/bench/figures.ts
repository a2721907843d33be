import type { BenchContext } from './fixture.js'

/** Throughput and latency of an HTTP endpoint under autocannon. */
export interface HttpFigures {
  kind: 'http'
  /** Mean of autocannon's per-second samples. */
  requestsPerSecond: number
  latencyMs: { p50: number; p90: number; p99: number }
  requests: number
  non2xx: number
  /** Connection errors, timeouts included. */
  errors: number
  timeouts: number
  statusCodes: Record<string, number>
  /** Share of one core used by the server and by this process (autocannon) during the load. */
  serverCpuPct: number | undefined
  benchCpuPct: number
}

/** Operations per second of an in-process loop, one operation at a time. */
export interface OpsFigures {
  kind: 'ops'
  opsPerSecond: number
  ops: number
  seconds: number
  /** Share of one core this process used (event loop plus libuv thread pool). */
  cpuPct: number
}

export type Figures = HttpFigures | OpsFigures

export interface Outcome {
  figures: Figures
  /** Anything that makes the figures untrustworthy (non-2xx, errors): the bench then fails. */
  problems: string[]
}

/** One line of the results table; measurements run one after another, in the order listed. */
export interface Measurement {
  name: string
  /** What was measured and how, in a few words, for the table. */
  what: string
  run(context: BenchContext, report: (message: string) => void): Promise<Outcome>
}

/** `numerator` throughput as a percentage of `denominator` throughput (measurement names). */
export interface Ratio {
  name: string
  label: string
  numerator: string
  denominator: string
}

export const throughput = (figures: Figures): number =>
  figures.kind === 'http' ? figures.requestsPerSecond : figures.opsPerSecond

export const round = (value: number, digits = 1): number => Math.round(value * 10 ** digits) / 10 ** digits
