import { pathToFileURL } from 'node:url'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { ConfigError, loadConfig, type Config } from '../../src/config.js'
import { readEnv, type Env } from '../../src/env.js'

/** What a script touches of the outside world, so tests run it in-process and read stdout. */
export interface CliIo {
  stdout(text: string): void
  stderr(text: string): void
  env: Env
}

export const processIo: CliIo = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
}

/** Exit codes: 0 success, 1 failure, 2 usage error. */
export class UsageError extends Error {}
export class CliFailure extends Error {}

/**
 * Strict flag parsing. A string flag's value may start with '-' (kids and client ids can): node's
 * parser would take `--kid -abc` for two flags, so such pairs are joined as `--kid=-abc` first.
 */
export function parseFlags<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T) {
  // Own properties only: `--constructor` or `--__proto__` is no flag of ours, whatever objects inherit.
  const isFlag = (name: string) => Object.hasOwn(options, name)
  const takesValue = (arg: string | undefined) =>
    arg?.startsWith('--') === true && isFlag(arg.slice(2)) && options[arg.slice(2)]!.type === 'string'
  // A dash-led word after a string flag is its value unless it names one of our flags.
  const isValue = (word: string | undefined) =>
    word !== undefined && word.startsWith('-') && !(word.startsWith('--') && isFlag(word.slice(2).split('=')[0]!))
  const joined: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (takesValue(arg) && isValue(argv[i + 1])) joined.push(`${arg}=${argv[++i]}`)
    else joined.push(arg)
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
export const isMain = (moduleUrl: string) =>
  process.argv[1] !== undefined && moduleUrl === pathToFileURL(process.argv[1]).href

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
