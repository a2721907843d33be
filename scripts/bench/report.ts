import { SECTIONS, type MeasuredRow, type Ratio, type Results, type Section, type Unit } from './results.js'
import { integer, type Summary } from './stats.js'

function number(value: number, unit: Unit): string {
  if (Number.isNaN(value)) return 'n/a'
  switch (unit) {
    case 'req/s':
    case 'ops/s':
      return integer(value)
    case 'MiB':
      return value.toFixed(1)
    case 'MiB/min':
      return `${value >= 0 ? '+' : ''}${value.toFixed(2)}`
    case 'ms':
      return value >= 100 ? integer(value) : value >= 10 ? value.toFixed(1) : value.toFixed(2)
  }
}

const range = (summary: Summary, unit: Unit) =>
  summary.n < 2 ? '' : `${number(summary.min, unit)}–${number(summary.max, unit)}`
const pct = (summary: Summary | undefined) => (summary === undefined ? '' : `${Math.round(summary.median)}%`)
// autocannon records latency in whole milliseconds.
const latency = (summary: Summary) =>
  summary.n < 2 ? `${summary.median}` : `${summary.median} (${summary.min}–${summary.max})`

const COLUMNS = [
  '',
  'median',
  'min–max',
  'p50 ms',
  'p99 ms (min–max)',
  'cpu µs each',
  'server cpu',
  'bench cpu',
  'others',
] as const
const micros = (summary: Summary | undefined) =>
  summary === undefined ? '' : summary.median >= 100 ? integer(summary.median) : summary.median.toFixed(1)

function cells(row: MeasuredRow): string[] {
  return [
    row.label,
    `${number(row.summary.median, row.unit)} ${row.unit}`,
    range(row.summary, row.unit),
    row.http ? latency(row.http.p50) : '',
    row.http ? latency(row.http.p99) : '',
    row.http ? micros(row.http.cpuUsPerRequest) : row.ops ? micros(row.ops.cpuUsPerOp) : '',
    row.http ? pct(row.http.serverCpuPct) : '',
    row.http ? pct(row.http.benchCpuPct) : row.ops ? pct(row.ops.cpuPct) : '',
    // Other processes on the measured core (median): more than a few percent and the figure is low.
    row.http ? pct(row.http.othersPct) : row.ops ? pct(row.ops.othersPct) : '',
  ]
}

/** Columns empty in every row are dropped; labels read left to right, figures line up right. */
function table(title: string, rows: readonly MeasuredRow[]): string[] {
  const body = rows.map(cells)
  const header = [title, ...COLUMNS.slice(1)]
  const keep = header.map((_, column) => column === 0 || body.some((line) => line[column] !== ''))
  const widths = header.map((cell, column) => Math.max(cell.length, ...body.map((line) => line[column]!.length)))
  const line = (values: readonly string[]) =>
    values
      .map((value, column) => (column === 0 ? value.padEnd(widths[column]!) : value.padStart(widths[column]!)))
      .filter((_, column) => keep[column])
      .join('   ')
      .trimEnd()
  return [line(header), ...body.map(line)]
}

const busyText = (busy: unknown) =>
  busy && typeof busy === 'object' && Object.keys(busy).length > 0
    ? `${Object.entries(busy as Record<string, number>)
        .map(([cpu, pct]) => `CPU ${cpu} ${pct}%`)
        .join(', ')} (a quiet machine: ~0%)`
    : 'unknown'
/** The human summary: set-up, one table per section, ratios, notes, problems. */
export function formatTable(results: Results): string {
  const out: string[] = []
  const machine = results.machine
  out.push(
    `tokensmith bench: node ${machine.node}, ${machine.cpus} CPUs (${machine.cpuModel}), ${machine.platform}, ${integer(results.elapsedSeconds)} s`,
    `  before the start, other work kept the CPUs busy: ${busyText(machine.busyBeforeStartPct)}; load average at start ${String(machine.loadAverageAtStart)}, at end ${String(machine.loadAverageAtEnd)}`,
    ...results.setup.map((line) => `  ${line}`),
    '  columns: median and min–max over the rounds; p50/p99 latency from autocannon, median of the rounds; cpu µs each: CPU time of',
    '  the server per response (of the bench process per raw operation); server cpu, bench cpu: share of one core used by the server',
    "  process and by the bench process; others: share of the measured process's core used by other processes (a quiet machine: ~0%)",
    '  ratios: round i of one row against round i of the other (measured close in time), median and range over the rounds; of req/s',
    '  (ops/s), and "by cpu": of CPU time per request, which other processes on the core disturb far less',
    '',
  )
  for (const section of Object.keys(SECTIONS) as Section[]) {
    const rows = results.rows.filter((row) => row.section === section)
    if (rows.length === 0) continue
    out.push(...table(SECTIONS[section], rows), '')
    if (section === 'raw') {
      const cellsOf = (ratio: Ratio) => [
        ratio.label,
        `${ratio.pct.toFixed(1)}%${ratio.paired ? '' : '*'}`,
        ratio.pctMin === undefined ? '' : `${ratio.pctMin.toFixed(0)}–${ratio.pctMax!.toFixed(0)}%`,
        ratio.byCpuPct === undefined ? '' : `${ratio.byCpuPct.toFixed(1)}%`,
      ]
      const lines = [
        ['Ceilings and ratios (per round, median)', 'req/s', 'min–max', 'by cpu'],
        ...results.ratios.map(cellsOf),
      ]
      const widths = lines[0]!.map((_, column) => Math.max(...lines.map((line) => line[column]!.length)))
      lines.forEach((line, index) => {
        const detail = index === 0 ? '' : results.ratios[index - 1]!.detail
        out.push(
          `${line.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('   ')}${detail ? `   ${detail}` : ''}`,
        )
      })
      if (results.ratios.some((ratio) => !ratio.paired))
        out.push('* a row lacks a round: the quotient of the medians, not paired by round')
      out.push('')
    }
  }
  out.push('What each row measures')
  const labels = Math.max(...results.rows.map((row) => row.label.length))
  for (const row of results.rows) out.push(`  ${row.label.padEnd(labels)}  ${row.what}`)
  if (results.notes.length > 0) out.push('', 'Notes', ...results.notes.map((note) => `  ${note}`))
  if (results.problems.length > 0) out.push('', ...results.problems.map((problem) => `PROBLEM ${problem}`))
  return out.join('\n')
}

/** Every figure, each round included, for scripts and for comparing runs. */
export function formatJson(results: Results): string {
  const rows = Object.fromEntries(
    results.rows.map((row) => [
      row.id,
      {
        label: row.label,
        section: row.section,
        what: row.what,
        unit: row.unit,
        median: row.summary.median,
        min: row.summary.min,
        max: row.summary.max,
        rounds: row.rounds,
        ...(row.http && {
          latency_ms: { p50: row.http.p50, p99: row.http.p99 },
          server_cpu_pct: row.http.serverCpuPct ?? null,
          bench_cpu_pct: row.http.benchCpuPct,
          others_on_server_core_pct: row.http.othersPct ?? null,
          server_cpu_us_per_request: row.http.cpuUsPerRequest ?? null,
          round_details: row.http.rounds,
        }),
        ...(row.ops && {
          cpu_pct: row.ops.cpuPct,
          others_on_bench_core_pct: row.ops.othersPct ?? null,
          cpu_us_per_op: row.ops.cpuUsPerOp,
          round_details: row.ops.rounds,
        }),
        ...(row.detail && { detail: row.detail }),
        problems: row.problems,
      },
    ]),
  )
  return `${JSON.stringify(
    {
      bench: 'tokensmith',
      ok: results.problems.length === 0,
      started_at: results.startedAt,
      elapsed_s: results.elapsedSeconds,
      machine: results.machine,
      settings: results.settings,
      setup: results.setup,
      rows,
      ceilings: results.ceilings,
      ratios: Object.fromEntries(results.ratios.map(({ id, ...ratio }) => [id, ratio])),
      notes: results.notes,
      problems: results.problems,
    },
    null,
    2,
  )}\n`
}
