import { closeSync, openSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CONFIG_VARIABLES } from '../../src/config.js'
import { spawnServer, type SpawnedServer } from '../../test/helpers/spawn-server.js'
import { waitFor } from '../../test/helpers/wait-for.js'
import { memoryOf, type ProcessMemory } from './host.js'

/**
 * The processes under test: each one node process, started through the test helper, pinned where
 * the placement says, with its log going to /dev/null or to a file (never through a pipe into this
 * process, which would make the load generator parse every log line).
 */

/** The compiled server, exactly what `npm start` runs (dist/main.js). */
export const MAIN = 'main'
/** The same assembly plus POST /bench/floor (a prepared token response): the framework floor. */
export const FLOOR = fileURLToPath(new URL('floor-server.mjs', import.meta.url))
/** The README's example resource server, compiled modules only, with the Redis revocation feed. */
export const RESOURCE = fileURLToPath(new URL('resource-server.mjs', import.meta.url))

export interface BenchServer {
  name: string
  url: string
  pid: number
  /** Wall time from spawn to the first /healthz 200, ms. */
  startMs: number
  /** A log file's path, when the log goes to one. */
  logFile: string | undefined
  /** What the process wrote on stderr (and on stdout when it was piped). */
  output(): string
  memory(): ProcessMemory[] | undefined
  stop(): Promise<void>
}

export interface ServerSpec {
  name: string
  /** MAIN, FLOOR or RESOURCE. */
  entry: string
  env: Record<string, string>
  /** 'null': stdout to /dev/null; 'file': to `<dir>/<name>.log`. */
  log: 'null' | 'file'
}

export interface Fleet {
  start(spec: ServerSpec): Promise<BenchServer>
  /** Every server still running. */
  readonly running: readonly BenchServer[]
  stopAll(): Promise<void>
}

const STOP_AFTER_MS = 5_000

/**
 * Every tokensmith variable blank (= its default), so neither the shell nor a .env changes the
 * figures; the working directory is the bench's temp dir, which has no .env. PORT and ISSUER come
 * from the helper. NODE_OPTIONS is cleared so nothing is preloaded into a server.
 */
export function shippedEnv(overrides: Record<string, string>): Record<string, string> {
  const blank = Object.fromEntries(
    CONFIG_VARIABLES.filter((name) => name !== 'PORT' && name !== 'ISSUER').map((name) => [name, '']),
  )
  return { ...blank, NODE_OPTIONS: '', ...overrides }
}

export function createFleet(options: {
  dir: string
  prefix: readonly string[]
  report: (message: string) => void
}): Fleet {
  const running: BenchServer[] = []

  async function start(spec: ServerSpec): Promise<BenchServer> {
    const logFile = spec.log === 'file' ? join(options.dir, `${spec.name}.log`) : undefined
    const fd = openSync(logFile ?? '/dev/null', 'a')
    const started = performance.now()
    let spawned: SpawnedServer
    try {
      spawned = await spawnServer(spec.env, {
        cwd: options.dir,
        ...(spec.entry === MAIN ? { compiled: true } : { entry: spec.entry }),
        prefix: options.prefix,
        stdout: fd,
        // RS256 generates two 3072-bit keys on a first start, on one core.
        timeoutMs: 120_000,
        pollIntervalMs: 10,
      })
    } finally {
      closeSync(fd) // the child holds its own copy
    }
    const startMs = performance.now() - started
    const pid = spawned.proc.pid!
    const exited = spawned.exited
    let stopping: Promise<void> | undefined
    const server: BenchServer = {
      name: spec.name,
      url: spawned.url,
      pid,
      startMs,
      logFile,
      output: () => spawned.output.slice(-50).join('\n'),
      memory: () => memoryOf(pid),
      stop: () =>
        (stopping ??= (async () => {
          if (spawned.proc.exitCode === null && spawned.proc.signalCode === null) {
            spawned.kill('SIGTERM')
            const timer = setTimeout(() => spawned.kill('SIGKILL'), STOP_AFTER_MS)
            await exited
            clearTimeout(timer)
          }
          const index = running.indexOf(server)
          if (index !== -1) running.splice(index, 1)
        })()),
    }
    running.push(server)
    options.report(`${spec.name}: pid ${pid} on ${spawned.url}, up in ${Math.round(startMs)} ms`)
    return server
  }

  return {
    start,
    get running() {
      return running
    },
    async stopAll() {
      await Promise.all([...running].map((server) => server.stop()))
    },
  }
}

/**
 * Waits until `server` answers /readyz with 200: for a resource server, its revocation feed is live
 * (subscribed and fully loaded). On a starved machine the feed's heartbeat can time out, and until
 * it is back the middleware asks Redis directly, so the figures would not be the feed's.
 */
export function untilReady(server: BenchServer, timeoutMs: number): Promise<void> {
  return waitFor(async () => {
    const response = await fetch(`${server.url}/readyz`)
    await response.arrayBuffer()
    if (response.status !== 200) {
      throw new Error(
        `${server.name}: /readyz still answers ${response.status} after ${timeoutMs / 1000} s (the revocation feed is not live): ${server.output()}`,
      )
    }
  }, timeoutMs)
}
