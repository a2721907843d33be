import { availableParallelism } from 'node:os'
import { createCleanup, setUpBench } from './bench/fixture.js'
import { MEASUREMENTS, RATIOS } from './bench/measurements.js'
import { parseBenchOptions, USAGE } from './bench/options.js'
import { formatJson, formatTable, type MeasuredRow, type RunInfo } from './bench/report.js'
import { UsageError } from './lib/cli.js'

/**
 * `npm run bench`: a throwaway server in its own process with a fresh key and client, then every
 * measurement in bench/measurements.ts against it. Stdout: a table, then one JSON line. Progress
 * goes to stderr. Exit 0 when every figure is clean, 1 when any request failed, 2 on a usage error.
 */

const report = (message: string) => void process.stderr.write(`bench: ${message}\n`)

async function main(): Promise<number> {
  let options
  try {
    options = parseBenchOptions(process.argv.slice(2), process.env)
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    process.stderr.write(`error: ${error.message}\n${USAGE}`)
    return 2
  }

  const cleanup = createCleanup(report)
  // Ctrl-C must not leave a server on the port or keys in the temp dir. The signal can arrive twice
  // (the terminal and the tsx wrapper both send it): the first one wins.
  let interrupted = false
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return
    interrupted = true
    report(`${signal}: cleaning up`)
    void cleanup.run().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143))
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)

  try {
    const context = await setUpBench(options, cleanup, report)
    const rows: MeasuredRow[] = []
    for (const measurement of MEASUREMENTS) {
      rows.push({ name: measurement.name, what: measurement.what, outcome: await measurement.run(context, report) })
    }

    const info: RunInfo = { options, node: process.version, cpus: availableParallelism(), platform: `${process.platform} ${process.arch}` }
    process.stdout.write(`${formatTable(info, rows, RATIOS)}\n\n${formatJson(info, rows, RATIOS)}\n`)

    const problems = rows.flatMap((row) => row.outcome.problems.map((problem) => `${row.name}: ${problem}`))
    if (problems.length === 0) return 0
    // Loud on purpose: a req/s figure that includes failed requests must not be quoted.
    process.stderr.write(
      [
        '',
        '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!',
        '!!! BENCH FAILED: some requests did not get a 200; the figures are invalid',
        ...problems.map((problem) => `!!! ${problem}`),
        '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!',
        '--- server output (tail) ---',
        context.server.output().trimEnd(),
        '',
      ].join('\n'),
    )
    return 1
  } catch (error) {
    report(`FAILED: ${(error as Error).message}`)
    return 1
  } finally {
    await cleanup.run()
  }
}

process.exitCode = await main()
