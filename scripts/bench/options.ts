import { parseArgs } from 'node:util'
import { isSigningAlg, SIGNING_ALGS, type SigningAlg } from '../../src/keys/algorithms.js'
import type { Env } from '../../src/env.js'
import { UsageError } from '../lib/cli.js'

export const USAGE = `usage:
  npm run bench [-- --duration SECONDS]

  BENCH_DURATION=SECONDS   measured load per HTTP measurement (default 10; --duration wins)
  SIGNING_ALG=ALG          ${SIGNING_ALGS.join(', ')} (default ES256), for the server and the raw figures
`

export interface BenchOptions {
  alg: SigningAlg
  /** Seconds of measured load for each HTTP measurement. */
  duration: number
  /** Seconds of load before each HTTP measurement, discarded: JIT and connection set-up. */
  warmup: number
  connections: number
  pipelining: number
  /** Seconds of each in-process ops/s loop, after `rawWarmup` seconds discarded. */
  rawSeconds: number
  rawWarmup: number
}

const DEFAULT_DURATION = 10

function parseSeconds(value: string, name: string): number {
  const seconds = Number(value)
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > 3600) throw new UsageError(`${name} must be an integer number of seconds from 1 to 3600`)
  return seconds
}

export function parseBenchOptions(argv: string[], env: Env): BenchOptions {
  let flags: { duration?: string | undefined }
  try {
    flags = parseArgs({ args: argv, options: { duration: { type: 'string' } }, strict: true, allowPositionals: false }).values
  } catch (error) {
    throw new UsageError((error as Error).message)
  }
  const duration =
    flags.duration !== undefined
      ? parseSeconds(flags.duration, '--duration')
      : env.BENCH_DURATION
        ? parseSeconds(env.BENCH_DURATION, 'BENCH_DURATION')
        : DEFAULT_DURATION

  const alg = env.SIGNING_ALG || 'ES256'
  if (!isSigningAlg(alg)) throw new UsageError(`SIGNING_ALG must be one of ${SIGNING_ALGS.join(', ')}`)

  return { alg, duration, warmup: 3, connections: 32, pipelining: 1, rawSeconds: 3, rawWarmup: 1 }
}
