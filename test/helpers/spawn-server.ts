import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { freePort } from './free-port.js'
import { GiveUp, waitFor } from './wait-for.js'

export interface SpawnedServer {
  proc: ChildProcess
  url: string
  port: number
  /** stdout+stderr lines so far */
  output: string[]
  exited: Promise<number | null>
  /** The exit code once stdout and stderr are read to their end too, so `output` has every line. */
  closed: Promise<number | null>
  kill(signal?: NodeJS.Signals): void
}

export interface SpawnServerOptions {
  /** Working directory (where `.env` is read); default this repository. */
  cwd?: string
  timeoutMs?: number
  /** Run the compiled server (`dist/main.js`, what `npm start` serves) instead of `src/main.ts`. */
  compiled?: boolean
  /** A JavaScript file to run with plain `node` instead (a bench-only entry, say); wins over `compiled`. */
  entry?: string
  /**
   * A command put in front of `node` that execs it, so the pid stays node's: `['taskset', '-c', '0']`
   * pins the server to CPU 0.
   */
  prefix?: readonly string[]
  /**
   * Where the server's stdout (its log) goes: collected into `output` (default), or an open file
   * descriptor (a log file, /dev/null), so a load test neither buffers nor parses every log line.
   */
  stdout?: 'pipe' | number
  /** How often /healthz is asked while waiting for the server to listen. Default 50 ms. */
  pollIntervalMs?: number
  /** Options for `node` itself, before the script (`--import` a test hook); cluster workers get them too. */
  nodeArgs?: readonly string[]
}

/** `node` on the source through tsx, usable from any working directory. */
const SOURCE_COMMAND = [
  process.execPath,
  '--import',
  import.meta.resolve('tsx'),
  fileURLToPath(new URL('../../src/main.ts', import.meta.url)),
] as const

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/**
 * What `npm start` does before it serves (its `prestart`): build dist/ if a file under src/ changed
 * since the last build. Run it before spawning `compiled` servers.
 */
export function buildIfStale(): void {
  const build = spawnSync(process.execPath, ['scripts/build-if-stale.mjs'], {
    cwd: ROOT,
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  if (build.status !== 0)
    throw new Error(`the build failed (scripts/build-if-stale.mjs exited ${build.status ?? build.signal})`)
}

/** `node` with the arguments `npm start` gives it: the compiled build, no TypeScript loader. */
const COMPILED_COMMAND = [process.execPath, fileURLToPath(new URL('../../dist/main.js', import.meta.url))] as const

/** Starts the server in its own process, as `npm start` does, and waits until it listens. */
export async function spawnServer(
  env: Record<string, string>,
  options: SpawnServerOptions = {},
): Promise<SpawnedServer> {
  const { cwd, timeoutMs = 15_000, compiled = false, prefix = [], stdout = 'pipe', pollIntervalMs = 50 } = options
  const port = env.PORT ? Number(env.PORT) : await freePort()
  // node itself, as `npm start` runs it, so signals (SIGHUP, SIGKILL) reach the server, not a wrapper.
  const command =
    options.entry !== undefined ? [process.execPath, options.entry] : compiled ? COMPILED_COMMAND : SOURCE_COMMAND
  const [node, ...script] = command
  const [program, ...args] = [...prefix, node, ...(options.nodeArgs ?? []), ...script]
  const proc = spawn(program!, args, {
    cwd,
    env: { ...process.env, PORT: String(port), ISSUER: `http://127.0.0.1:${port}`, ...env },
    stdio: ['ignore', stdout, 'pipe'],
  })
  const output: string[] = []
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)))
  const closed = new Promise<number | null>((resolve) => proc.once('close', (code) => resolve(code)))
  // A read may end inside a line (a long one, or a full pipe): each stream keeps its unfinished line.
  const collect = () => {
    let rest = ''
    return (chunk: Buffer) => {
      const lines = (rest + chunk.toString()).split('\n')
      rest = lines.pop()!
      output.push(...lines.filter(Boolean))
    }
  }
  proc.stdout?.on('data', collect())
  proc.stderr!.on('data', collect())
  let exitCode: number | null | undefined
  void exited.then((code) => (exitCode = code))
  // A program that cannot be started (a prefix command not installed) never exits: report it instead.
  let spawnError: Error | undefined
  proc.once('error', (error) => (spawnError = error))
  const url = `http://127.0.0.1:${port}`
  // Listening is when /healthz answers (whatever LOG_LEVEL hides).
  try {
    await waitFor(
      async () => {
        if (spawnError !== undefined) throw new GiveUp(`cannot start ${program}: ${spawnError.message}`)
        if (exitCode !== undefined) {
          // Its last lines may still be in the pipe.
          await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 1000))])
          throw new GiveUp(`server exited with ${exitCode}:\n${output.join('\n')}`)
        }
        const health = await fetch(`${url}/healthz`)
        if (!health.ok) throw new Error(`/healthz answered ${health.status}`)
      },
      timeoutMs,
      pollIntervalMs,
    )
  } catch (error) {
    if (error instanceof GiveUp) throw error
    proc.kill('SIGKILL')
    throw new Error(`server did not start:\n${output.join('\n')}`)
  }
  return { proc, url, port, output, exited, closed, kill: (signal = 'SIGTERM') => void proc.kill(signal) }
}
