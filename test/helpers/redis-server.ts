import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import net from 'node:net'
import tls from 'node:tls'
import { freePort } from './free-port.js'
import { GiveUp, waitFor } from './wait-for.js'

export interface RedisServer {
  readonly url: string
  readonly port: number
  /** SIGTERM (after SIGCONT if paused) and wait for exit. Idempotent. */
  stop(): Promise<void>
  /** Send a signal (default SIGKILL) and wait for the process to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>
  /** SIGSTOP: the port stays open and connections stay up, but nothing is answered: a frozen Redis. */
  pause(): void
  /** SIGCONT. */
  resume(): void
  /** Start again on the same port (after stop or kill; stops a running one first). */
  restart(): Promise<void>
}

export interface StartRedisServerOptions {
  /** Defaults to a free loopback port. */
  port?: number
  /** Extra redis-server arguments, e.g. ['--appendonly', 'yes']. */
  args?: string[]
  /** How long to wait for PING to answer. Default 10 s. */
  startTimeoutMs?: number
  /**
   * A config file, passed first (redis-server reads a config file only as its first argument).
   * Sentinel needs one it can rewrite: https://redis.io/docs/latest/operate/oss_and_stack/management/sentinel/
   */
  configFile?: string
  /**
   * TLS only: `--port 0 --tls-port <port>` with this certificate and key, clients not asked for
   * one (`--tls-auth-clients no`); `url` is then rediss://, and PING goes over TLS trusting `caFile`.
   * https://redis.io/docs/latest/operate/oss_and_stack/management/security/encryption/
   */
  tls?: RedisServerTls
}

export interface RedisServerTls {
  certFile: string
  keyFile: string
  caFile: string
}

export type { HostPort } from '../../src/denylist/redis-target.js'

const running = new Set<ChildProcess>()
let exitHookInstalled = false

/** If the test process dies, do not leave redis-servers behind. */
function installExitHook(): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.once('exit', () => {
    for (const child of running) child.kill('SIGKILL')
  })
}

/**
 * Raw RESP PING, so waiting for a server needs no client library and logs nothing (nor a password).
 * With `ca`, over TLS, trusting that CA.
 */
export function pingRedis(port: number, timeoutMs = 500, ca?: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    const socket =
      ca === undefined ? net.connect({ port, host: '127.0.0.1' }) : tls.connect({ port, host: '127.0.0.1', ca })
    let reply = ''
    const finish = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(timeoutMs, () => finish(false))
    socket.on('error', () => finish(false))
    socket.on(ca === undefined ? 'connect' : 'secureConnect', () => socket.write('PING\r\n'))
    socket.on('data', (chunk) => {
      reply += chunk.toString()
      // A server with requirepass answers NOAUTH: it is up all the same.
      if (reply.includes('\r\n')) finish(reply.startsWith('+PONG') || reply.startsWith('-NOAUTH'))
    })
  })
}

/** Starts a throwaway redis-server (no persistence unless `args` says so) and waits for PING. */
export async function startRedisServer(options: StartRedisServerOptions = {}): Promise<RedisServer> {
  installExitHook()
  const startTimeoutMs = options.startTimeoutMs ?? 10_000
  const fixedPort = options.port !== undefined
  let port = options.port ?? (await freePort())
  let child: ChildProcess | undefined
  let paused = false

  async function launch(): Promise<void> {
    // A port picked by freePort can be taken before redis binds it; pick another and retry.
    for (let attempt = 1; ; attempt++) {
      const started = spawnRedis(port, options.args ?? [], options.configFile, options.tls)
      child = started.child
      try {
        return await waitUntilAnswering(port, started, startTimeoutMs, options.tls)
      } catch (error) {
        await terminate(started.child, 'SIGKILL')
        if (fixedPort || attempt >= 3) {
          throw new Error(
            `redis-server did not start on port ${port}: ${(error as Error).message}\n${started.output()}`,
          )
        }
      }
      port = await freePort()
    }
  }

  async function kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const current = child
    if (current === undefined) return
    if (paused && signal !== 'SIGKILL') current.kill('SIGCONT')
    paused = false
    await terminate(current, signal)
    child = undefined
  }

  await launch()
  return {
    get url() {
      return `${options.tls ? 'rediss' : 'redis'}://127.0.0.1:${port}`
    },
    get port() {
      return port
    },
    stop: () => kill('SIGTERM'),
    kill,
    pause() {
      child?.kill('SIGSTOP')
      paused = true
    },
    resume() {
      child?.kill('SIGCONT')
      paused = false
    },
    async restart() {
      await kill('SIGTERM')
      await launch()
    },
  }
}

function spawnRedis(
  port: number,
  extraArgs: string[],
  configFile: string | undefined,
  tlsFiles: RedisServerTls | undefined,
) {
  const listen =
    tlsFiles === undefined
      ? ['--port', String(port)]
      : [
          ...['--port', '0', '--tls-port', String(port)],
          ...['--tls-cert-file', tlsFiles.certFile, '--tls-key-file', tlsFiles.keyFile],
          ...['--tls-ca-cert-file', tlsFiles.caFile, '--tls-auth-clients', 'no'],
        ]
  const child = spawn(
    'redis-server',
    [
      ...(configFile === undefined ? [] : [configFile]),
      ...listen,
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--daemonize',
      'no',
      ...extraArgs,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  running.add(child)
  let output = ''
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4_000) // enough for a start-up error, bounded
  }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  const exited = once(child, 'exit').then(() => {
    running.delete(child)
  })
  child.on('error', () => undefined) // spawn failure surfaces through `exited` / the timeout
  return { child, exited, output: () => output }
}

/** Resolves once our redis-server answers PING; rejects when it exits or stays silent for `timeoutMs`. */
async function waitUntilAnswering(
  port: number,
  started: { child: ChildProcess; exited: Promise<void> },
  timeoutMs: number,
  tlsFiles?: RedisServerTls,
): Promise<void> {
  const ca = tlsFiles === undefined ? undefined : readFileSync(tlsFiles.caFile)
  let exited = false
  void started.exited.then(() => {
    exited = true
  })
  const gone = () => new GiveUp(`exited with code ${started.child.exitCode}`)
  await waitFor(
    async () => {
      if (exited) throw gone()
      if (!(await pingRedis(port, 200, ca))) throw new Error(`no PING reply within ${timeoutMs} ms`)
      // Someone else may own the port: make sure our process is still the one alive.
      if (exited) throw gone()
    },
    timeoutMs,
    25,
  )
}

async function terminate(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill(signal)
  const forced = setTimeout(() => child.kill('SIGKILL'), 3_000)
  try {
    await exited
  } finally {
    clearTimeout(forced)
  }
}
