import { spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

/** The tokensmith server in its own process, so its event loop has a core to itself. */
export interface ServerProcess {
  url: string
  pid: number
  /** CPU seconds (user + system, every thread) the server has used so far; undefined off Linux. */
  cpuSeconds(): Promise<number | undefined>
  /** Resolves at GET /readyz 200; rejects, with the server's output, if it exits or takes too long. */
  ready(): Promise<void>
  /** The tail of what the server printed (warnings and errors only, at LOG_LEVEL=warn). */
  output(): string
  /** SIGTERM, then SIGKILL after 5 s. Safe to call twice or after the process died. */
  stop(): Promise<void>
}

const OUTPUT_TAIL = 16 * 1024
const READY_TIMEOUT_MS = 60_000 // two RSA-3072 keys are generated on first start
const KILL_AFTER_MS = 5_000

/**
 * A port that was free a moment ago. The server needs it before it starts because ISSUER must name
 * it; another process could take it in between, and then the server fails to start and says so.
 */
export function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer()
    probe.once('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address()
      probe.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))))
    })
  })
}

/**
 * Starts `node --import tsx src/main.ts` in `root`: node itself, not the tsx CLI, so the pid is the
 * server's and signals reach it directly. Returns at once, so the caller can register `stop` for
 * cleanup before waiting for `ready`.
 */
export function spawnServer(options: { root: string; env: NodeJS.ProcessEnv; port: number; entry?: string }): ServerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', options.entry ?? 'src/main.ts'], {
    cwd: options.root,
    env: options.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let tail = ''
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-OUTPUT_TAIL)
  }
  child.stdout.on('data', keep)
  child.stderr.on('data', keep)
  let spawnError: Error | undefined
  child.once('error', (error) => {
    spawnError = error
  })
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()))
  const isRunning = () => child.exitCode === null && child.signalCode === null && spawnError === undefined

  const url = `http://127.0.0.1:${options.port}`
  const fail = (problem: string) => new Error(`${problem}\n--- server output (tail) ---\n${tail.trimEnd()}`)
  const server: ServerProcess = {
    url,
    pid: child.pid ?? -1,
    cpuSeconds: () => processCpuSeconds(child.pid),
    output: () => tail,
    async ready() {
      const deadline = Date.now() + READY_TIMEOUT_MS
      for (;;) {
        if (!isRunning()) {
          if (spawnError === undefined) await exited // 'close' comes after the last output
          throw fail(`the server exited before it was ready (${spawnError?.message ?? `code ${child.exitCode}, signal ${child.signalCode}`})`)
        }
        const status = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(1000) }).then(
          (response) => response.status,
          () => 0, // not listening yet
        )
        if (status === 200) return
        if (Date.now() > deadline) throw fail(`the server was not ready within ${READY_TIMEOUT_MS / 1000} s (last /readyz: ${status || 'no answer'})`)
        await sleep(100)
      }
    },
    async stop() {
      if (!isRunning()) return
      child.kill('SIGTERM')
      const stopped = await Promise.race([exited.then(() => true), sleep(KILL_AFTER_MS, false)])
      if (!stopped && isRunning()) {
        child.kill('SIGKILL')
        await exited
      }
    },
  }
  return server
}

/**
 * utime + stime of the whole process from /proc/<pid>/stat (fields 14 and 15, in USER_HZ ticks,
 * 100 on Linux). Process-wide on purpose: jose signs through WebCrypto, which runs on libuv's
 * thread pool, so the server can use more than its one event-loop core.
 */
async function processCpuSeconds(pid: number | undefined): Promise<number | undefined> {
  if (pid === undefined || process.platform !== 'linux') return undefined
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return undefined
  }
}
