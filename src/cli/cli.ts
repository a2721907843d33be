import { realpathSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import type { Clock } from '../clock.js'
import { ConfigError, loadConfig, type Config } from '../config.js'
import type { Denylist } from '../denylist/denylist.js'
import { createRedisDenylist, type RedisDenylistSettings, redisDenylistOptionsOf } from '../denylist/redis.js'
import { readEnv, type Env } from '../env.js'
import { createLogger } from '../observability/logger.js'

/** What a command touches of the outside world, so tests run it in-process and read stdout. */
export interface CliIo {
  stdout(text: string): void
  stderr(text: string): void
  env: Env
}

/** The real process. `env` is read when a command runs, never on import. */
export const processIo: CliIo = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  get env() {
    return process.env
  },
}

/** Exit codes: 0 success, 1 failure, 2 usage error. */
export class UsageError extends Error {}
export class CliFailure extends Error {}

type FlagOptions = NonNullable<ParseArgsConfig['options']>
/** The values parseArgs gives for `options`, strictly parsed without positionals. */
type Flags<T extends FlagOptions> = ReturnType<
  typeof parseArgs<{ args: string[]; options: T; strict: true; allowPositionals: false }>
>['values']

/**
 * Strict flag parsing. A string flag's value may start with '-' (kids and client ids can): node's
 * parser would take `--kid -abc` for two flags, so such pairs are joined as `--kid=-abc` first.
 */
export function parseFlags<T extends FlagOptions>(argv: string[], options: T): Flags<T> {
  // Own properties only: `--constructor` or `--__proto__` is no flag of ours, whatever objects inherit.
  const flag = (name: string) => (Object.hasOwn(options, name) ? options[name] : undefined)
  const takesValue = (arg: string) => arg.startsWith('--') && flag(arg.slice(2))?.type === 'string'
  // A dash-led word after a string flag is its value unless it names one of our flags.
  const isValue = (word: string | undefined) =>
    word?.startsWith('-') === true && !(word.startsWith('--') && flag(word.slice(2).split('=')[0] ?? '') !== undefined)
  const joined: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? ''
    const next = argv[i + 1]
    if (takesValue(arg) && isValue(next)) {
      joined.push(`${arg}=${next}`)
      i++
    } else joined.push(arg)
  }
  try {
    return parseArgs({ args: joined, options, strict: true, allowPositionals: false }).values
  } catch (error) {
    throw new UsageError((error as Error).message)
  }
}

export function cliConfig(io: CliIo): Config {
  try {
    return loadConfig(readEnv(io.env))
  } catch (error) {
    if (error instanceof ConfigError) throw new CliFailure(`configuration: ${error.problems.join('; ')}`)
    throw error
  }
}

/** Runs one subcommand; prints its JSON result on stdout, a message on stderr; returns the exit code. */
export async function runCommand(
  io: CliIo,
  usage: string,
  commands: Record<string, (argv: string[]) => Promise<unknown>>,
  argv: string[],
): Promise<number> {
  const [name, ...rest] = argv
  // Own properties only: `constructor`, `toString` or `__proto__` are no commands of ours.
  const command = name !== undefined && Object.hasOwn(commands, name) ? commands[name] : undefined
  try {
    if (!command) throw new UsageError(name === undefined ? 'missing command' : `unknown command ${name}`)
    const result = await command(rest)
    io.stdout(`${JSON.stringify(result, null, 2)}\n`)
    return 0
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr(`error: ${error.message}\n${usage}`)
      return 2
    }
    io.stderr(`error: ${(error as Error).message}\n`)
    return 1
  }
}

/** True when the module is the script node was started with (not imported by a test). */
export const isMain = (moduleUrl: string) => {
  const script = process.argv[1]
  if (script === undefined) return false
  // The module URL is the file's real path (Node resolves symlinks), argv[1] may not be: a symlinked
  // checkout or npm's bin links. Compare the real paths.
  let real: string
  try {
    real = realpathSync(script)
  } catch {
    return false
  }
  return moduleUrl === pathToFileURL(real).href || moduleUrl === pathToFileURL(script).href
}

/** The client connects in the background; give it a few seconds before the one write that matters. */
export async function waitForRedis(denylist: { ping(): Promise<void> }): Promise<void> {
  const deadline = Date.now() + 5000
  for (;;) {
    try {
      return await denylist.ping()
    } catch (error) {
      if (Date.now() > deadline) throw new CliFailure(`Redis is unreachable: ${(error as Error).message}`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
}

/** Why a CLI cannot write the denylist itself: it lives inside each server process. */
export const NO_REDIS = 'no Redis is configured (REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES)'

/**
 * One write to the Redis denylist (`config.redis`, from REDIS_URL, REDIS_SENTINELS or
 * REDIS_CLUSTER_NODES): connects (waiting for Redis as above), runs `write`, and always closes the
 * connection. The client's own warnings go to stderr.
 */
export async function withRedisDenylist<T>(
  config: RedisDenylistSettings,
  clock: Clock,
  io: CliIo,
  write: (denylist: Denylist) => Promise<T>,
): Promise<T> {
  const log = createLogger('warn', { write: (line: string) => void io.stderr(line) })
  const denylist = createRedisDenylist({ ...redisDenylistOptionsOf(config), clock, log })
  try {
    await waitForRedis(denylist)
    return await write(denylist)
  } finally {
    await denylist.close()
  }
}
