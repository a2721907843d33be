import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildIfStale } from '../test/helpers/spawn-server.js'
import { idleCheck, machine, placeProcesses } from './bench/host.js'
import { parseBenchOptions, USAGE, type BenchOptions } from './bench/options.js'
import { formatJson, formatTable } from './bench/report.js'
import type { Results } from './bench/results.js'
import { runBench } from './bench/run.js'
import { createFleet } from './bench/servers.js'
import { UsageError } from '../src/cli/cli.js'

/**
 * `npm run bench`: the project's performance report. Builds dist/ if src/ changed, starts its own
 * redis-server and every server it measures (compiled JavaScript, each in its own process pinned
 * to one core), loads them from this process pinned to the other core, and prints a table on
 * stdout; the same figures, every round included, go to a JSON file. Progress goes to stderr.
 * Exit 0 when every request got the answer it should, 1 when any did not, 2 on a usage error.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const report = (message: string) => void process.stderr.write(`bench: ${message}\n`)

/** `npm start` serves dist/: measure that, rebuilt first if any file under src/ is newer. */
function buildServed(): void {
  buildIfStale()
  for (const file of ['dist/main.js', 'dist/verifier/index.js', 'dist/denylist/revocation-feed.js']) {
    if (!existsSync(join(ROOT, file))) throw new Error(`${file} is missing after the build`)
  }
}

function loudFailure(problems: readonly string[]): void {
  process.stderr.write(
    [
      '',
      '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!',
      '!!! BENCH FAILED: some requests did not get the answer they should; the figures are invalid',
      ...problems.map((problem) => `!!! ${problem}`),
      '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!',
      '',
    ].join('\n'),
  )
}

async function main(): Promise<number> {
  let options: BenchOptions
  try {
    const parsed = parseBenchOptions(process.argv.slice(2))
    if (parsed === 'help') {
      process.stdout.write(USAGE)
      return 0
    }
    options = parsed
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    process.stderr.write(`error: ${error.message}\n${USAGE}`)
    return 2
  }
  const out = resolve(options.out)
  const startedAt = new Date()
  const host = machine()
  const placement = placeProcesses()
  for (const note of placement.notes) report(note)
  const cpuIds = [placement.serverCpu, placement.benchCpu].filter((cpu): cpu is number => cpu !== undefined)
  const busyBefore = await idleCheck(cpuIds, 2)
  const busyCpus = Object.entries(busyBefore).filter(([, pct]) => pct >= 10)
  if (busyCpus.length > 0) {
    report(
      `WARNING: the machine is not quiet: before the bench started, other work kept ${busyCpus.map(([cpu, pct]) => `CPU ${cpu} ${pct}%`).join(' and ')} busy; every figure will be low and noisy`,
    )
  }

  const dir = await mkdtemp(join(tmpdir(), 'tokensmith-bench-'))
  const fleet = createFleet({ dir, prefix: placement.serverPrefix, report })
  // Servers first (they hold connections to Redis), then what the run registered, last first, then the files.
  const cleanupSteps: (() => Promise<void>)[] = []
  let cleaning: Promise<void> | undefined
  const cleanup = () =>
    (cleaning ??= (async () => {
      const steps = [() => fleet.stopAll(), ...cleanupSteps.reverse(), () => rm(dir, { recursive: true, force: true })]
      for (const step of steps) await step().catch((error: unknown) => report(`cleanup: ${(error as Error).message}`))
    })())

  // Ctrl-C must not leave servers or a redis-server behind. The signal can arrive twice (the
  // terminal and the tsx wrapper both send it): the first one wins.
  let interrupted = false
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return
    interrupted = true
    report(`${signal}: cleaning up`)
    void cleanup().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143))
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)

  try {
    report('checking the build (npm start serves dist/)')
    buildServed()
    const measured = await runBench({
      options,
      fleet,
      placement,
      dir,
      report,
      onCleanup: (step) => void cleanupSteps.push(step),
    })
    const results: Results = {
      startedAt: startedAt.toISOString(),
      elapsedSeconds: Math.round((Date.now() - startedAt.getTime()) / 1000),
      machine: {
        ...host,
        loadAverageAtEnd: loadavg().map((value) => Math.round(value * 100) / 100),
        busyBeforeStartPct: busyBefore,
      },
      ...measured,
    }
    await writeFile(out, formatJson(results))
    process.stdout.write(`${formatTable(results)}\n`)
    report(`JSON results written to ${out}`)
    if (results.problems.length === 0) return 0
    // Loud on purpose: a req/s figure that includes failed requests must not be quoted.
    loudFailure(results.problems)
    return 1
  } catch (error) {
    report(`FAILED: ${(error as Error).stack ?? (error as Error).message}`)
    return 1
  } finally {
    await cleanup()
  }
}

process.exitCode = await main()
