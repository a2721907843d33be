import { parseArgs } from 'node:util'
import { UsageError } from '../../src/cli/cli.js'

export const USAGE = `usage:
  npm run bench [-- --quick] [-- --rounds N] [-- --duration SECONDS] [-- --soak SECONDS] [-- --out FILE]

  --quick            one short round of everything, for development (about 2.5 minutes); figures are rough
  --rounds N         rounds of every throughput and latency figure (default 3; --quick: 1)
  --duration SECONDS measured load per HTTP round (default 6; --quick: 2)
  --soak SECONDS     token load while the server's RSS is sampled (default 120; --quick: 10)
  --out FILE         where the JSON results go (default bench-results.json in the working directory)

  The table goes to stdout, progress to stderr. Exit 0 when every request got the answer it should,
  1 when any did not (the figures are then invalid), 2 on a usage error.
`

export interface BenchOptions {
  quick: boolean
  /** Rounds of every throughput and latency figure; the report gives their median and min–max. */
  rounds: number
  /** Seconds of measured load per HTTP round. */
  duration: number
  /** Seconds of load before a row's first round, discarded: JIT, connection set-up, JWKS fetch. */
  warmup: number
  connections: number
  /** Seconds per round of an in-process ops/s loop, and of its warm-up before the first round. */
  rawSeconds: number
  rawWarmup: number
  /** Seconds of token load while the server's RSS is sampled, and the sampling period. */
  soakSeconds: number
  soakSampleSeconds: number
  /** Revocations timed per round (the minimum the issue asks for is 200). */
  revocationsPerRound: number
  /** Registered clients for the "how cost grows" token rows; the first is the main rows' file. */
  clientCounts: readonly number[]
  /** Live revoked token ids written to Redis for the second protected-route row. */
  revokedIds: number
  out: string
}

function positiveInteger(value: string | undefined, name: string, max: number): number | undefined {
  if (value === undefined) return undefined
  if (!/^[0-9]+$/.test(value) || Number(value) < 1 || Number(value) > max)
    throw new UsageError(`${name} must be an integer from 1 to ${max}`)
  return Number(value)
}

/** The command line's flags; a usage error for anything parseArgs refuses. */
function parseFlags(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      options: {
        quick: { type: 'boolean' },
        rounds: { type: 'string' },
        duration: { type: 'string' },
        soak: { type: 'string' },
        out: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }).values
  } catch (error) {
    throw new UsageError((error as Error).message)
  }
}

export function parseBenchOptions(argv: string[]): BenchOptions | 'help' {
  const flags = parseFlags(argv)
  if (flags.help) return 'help'
  if (flags.out === '') throw new UsageError('--out needs a file name')
  const quick = flags.quick === true
  return {
    quick,
    rounds: positiveInteger(flags.rounds, '--rounds', 20) ?? (quick ? 1 : 3),
    duration: positiveInteger(flags.duration, '--duration', 600) ?? (quick ? 2 : 6),
    // A freshly started server with a big heap (100,000 clients, or a feed holding 100,000 ids) costs
    // several times more per request during its first seconds of load: 1 s of warm-up was not enough.
    warmup: 3,
    connections: 32,
    rawSeconds: quick ? 1 : 3,
    rawWarmup: 1,
    soakSeconds: positiveInteger(flags.soak, '--soak', 3600) ?? (quick ? 10 : 120),
    soakSampleSeconds: quick ? 2 : 5,
    revocationsPerRound: 200,
    clientCounts: [10, 10_000, 100_000],
    revokedIds: 100_000,
    out: flags.out ?? 'bench-results.json',
  }
}
