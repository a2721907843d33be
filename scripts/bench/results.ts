import type { HttpRound } from './load.js'
import type { OpsRound } from './ops.js'
import { round, summarize, type Summary } from './stats.js'

/** The report's sections, in the order they are printed. */
export const SECTIONS = {
  throughput: 'Throughput under load (autocannon)',
  raw: 'Raw single-thread operations (bench process, servers idle)',
  revocation: 'Revocation propagation: POST /oauth/revoke until the resource server answers 401',
  growth: 'How cost grows',
  memory: 'Memory',
} as const
export type Section = keyof typeof SECTIONS

export type Unit = 'req/s' | 'ops/s' | 'ms' | 'MiB' | 'MiB/min'

/** One figure: a value per round, summarised as median and min–max. */
export interface MeasuredRow {
  id: string
  section: Section
  label: string
  /** What was measured and how, in a few words. */
  what: string
  unit: Unit
  rounds: number[]
  summary: Summary
  /** HTTP rows: latency and CPU per round, and their summaries. */
  http?: {
    rounds: HttpRound[]
    p50: Summary
    p99: Summary
    serverCpuPct: Summary | undefined
    benchCpuPct: Summary
    othersPct: Summary | undefined
    cpuUsPerRequest: Summary | undefined
  }
  /** `othersPct`: other processes' share of the measured core (the server's for HTTP, the bench's for ops). */
  ops?: { rounds: OpsRound[]; cpuPct: Summary; othersPct: Summary | undefined; cpuUsPerOp: Summary }
  /** Anything else worth keeping in the JSON (and some of it in the table). */
  detail?: Record<string, unknown>
  /** Anything that makes the figure untrustworthy (a non-2xx, an error): the bench then fails. */
  problems: string[]
}

/**
 * One row as a percentage of another: the median (and range) of the per-round quotients when both
 * have every round (`paired`), else the quotient of their medians. `numerator` and `denominator`
 * are the medians, for reference.
 */
export interface Ratio {
  id: string
  label: string
  numerator: number
  denominator: number
  pct: number
  pctMin?: number | undefined
  pctMax?: number | undefined
  paired: boolean
  /**
   * The same comparison by CPU time per request or operation (denominator's cost ÷ numerator's),
   * which other processes taking part of a core disturb far less than req/s.
   */
  byCpuPct: number | undefined
  /** How the denominator was obtained, for the table (e.g. the ceiling's parts). */
  detail?: string
}

export interface Results {
  startedAt: string
  elapsedSeconds: number
  machine: Record<string, unknown>
  settings: Record<string, unknown>
  /** How the processes were placed and configured, in words. */
  setup: string[]
  rows: MeasuredRow[]
  ratios: Ratio[]
  ceilings: Record<
    string,
    {
      floor: number
      sign: number
      signWith: string
      ceiling: number
      floorCpuUs?: number
      signCpuUs?: number
      ceilingCpuUs?: number
    }
  >
  notes: string[]
  problems: string[]
}

/** A row measured once or a few times outside the load rounds (start-up, memory, a slope). */
export function singleRow(
  id: string,
  section: Section,
  label: string,
  what: string,
  unit: Unit,
  values: number[],
  detail?: Record<string, unknown>,
): MeasuredRow {
  const rounded = values.map((value) => round(value, 2))
  return {
    id,
    section,
    label,
    what,
    unit,
    rounds: rounded,
    summary: summarize(rounded),
    problems: [],
    ...(detail && { detail }),
  }
}
