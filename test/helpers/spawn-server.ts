import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { freePort } from './free-port.js'

export interface SpawnedServer {
  proc: ChildProcess
  url: string
  port: number
  /** stdout+stderr lines so far */
  output: string[]
  exited: Promise<number | null>
  kill(signal?: NodeJS.Signals): void
}

export interface SpawnServerOptions {
  /** Working directory (where `.env` is read); default this repository. */
  cwd?: string
  timeoutMs?: number
  /** Run the compiled server (`dist/main.js`, what `npm start` serves) instead of `src/main.ts`. */
  compiled?: boolean
}

/** `node` on the source through tsx, usable from any working directory. */
const SOURCE_COMMAND = [
  process.execPath,
  '--import',
  import.meta.resolve('tsx'),
  fileURLToPath(new URL('../../src/main.ts', import.meta.url)),
] as const

/** `node` with the arguments `npm start` gives it: the compiled build, no TypeScript loader. */
const COMPILED_COMMAND = [process.execPath, fileURLToPath(new URL('../../dist/main.js', import.meta.url))] as const

/** Starts the server in its own process, as `npm start` does, and waits until it listens. */
export async function spawnServer(env: Record<string, string>, options: SpawnServerOptions = {}): Promise<SpawnedServer> {
  const { cwd, timeoutMs = 15_000, compiled = false } = options
  const port = env.PORT ? Number(env.PORT) : await freePort()
  // node itself, as `npm start` runs it, so signals (SIGHUP, SIGKILL) reach the server, not a wrapper.
  const [node, ...args] = compiled ? COMPILED_COMMAND : SOURCE_COMMAND
  const proc = spawn(node, args, {
    cwd,
    env: { ...process.env, PORT: String(port), ISSUER: `http://127.0.0.1:${port}`, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const output: string[] = []
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)))
  const onData = (chunk: Buffer) => output.push(...chunk.toString().split('\n').filter(Boolean))
  proc.stdout!.on('data', onData)
  proc.stderr!.on('data', onData)
  let exitCode: number | null | undefined
  void exited.then((code) => (exitCode = code))
  const url = `http://127.0.0.1:${port}`
  // Listening is when /healthz answers (whatever LOG_LEVEL hides).
  for (const deadline = Date.now() + timeoutMs; ; ) {
    if (exitCode !== undefined) throw new Error(`server exited with ${exitCode}:\n${output.join('\n')}`)
    if (Date.now() > deadline) {
      proc.kill('SIGKILL')
      throw new Error(`server did not start:\n${output.join('\n')}`)
    }
    const up = await fetch(`${url}/healthz`).then((r) => r.ok, () => false)
    if (up) break
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return { proc, url, port, output, exited, kill: (signal = 'SIGTERM') => void proc.kill(signal) }
}
