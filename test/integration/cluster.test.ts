import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeAll, describe, expect, inject, it } from 'vitest'
import { run as clientCli } from '../../src/cli/client.js'
import { runCli, tempDir } from '../helpers/cli.js'
import { requestOnNewConnection, type PlainResponse } from '../helpers/fresh-connection.js'
import { basic } from '../helpers/make-deps.js'
import { buildIfStale, spawnServer, type SpawnedServer } from '../helpers/spawn-server.js'
import { waitFor } from '../helpers/wait-for.js'

// WORKERS=2: a cluster primary and two workers on one port, as `npm start` runs them (compiled).
// Each new connection goes to the next worker, so a handful of requests reach both.
const CRASH_HOOK = fileURLToPath(new URL('../helpers/crash-on-signal.mjs', import.meta.url))

const GRANT = 'grant_type=client_credentials'

type LogRecord = Record<string, unknown> & { msg?: string; worker?: number }

let servers: SpawnedServer[] = []
afterEach(async () => {
  for (const server of servers) server.kill('SIGKILL')
  await Promise.all(servers.map((server) => server.closed))
  servers = []
})

beforeAll(buildIfStale, 120_000)

const records = (server: SpawnedServer): LogRecord[] =>
  server.output.filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as LogRecord)
const listening = (server: SpawnedServer) => records(server).filter((r) => r.msg === 'tokensmith listening')

async function setup(extra: Record<string, string> = {}) {
  const dir = tempDir()
  const env = {
    KEYS_DIR: join(dir, 'keys'),
    CLIENTS_FILE: join(dir, 'clients.json'),
    LOG_LEVEL: 'info',
    WORKERS: '2',
    REDIS_URL: inject('redisUrl'),
    REDIS_KEY_PREFIX: `test:${randomBytes(6).toString('hex')}:`,
    ...extra,
  }
  const created = await runCli(
    clientCli,
    ['create', '--id', 'svc-a', '--scope', 'read', '--audience', 'https://api.example.com'],
    { ...env, WORKERS: '1' },
  )
  return { env, authorization: basic('svc-a', created.json().client_secret as string) }
}

/** Starts the cluster and waits until both workers listen. */
async function startCluster(env: Record<string, string>, nodeArgs: string[] = []) {
  const server = await spawnServer(env, { compiled: true, nodeArgs, timeoutMs: 20_000 })
  servers.push(server)
  await waitFor(() => expect(listening(server)).toHaveLength(2), 20_000)
  return server
}

/** `count` requests, each on a connection of its own; every one must be answered `status`. */
async function requestEach(
  count: number,
  url: string,
  options: Parameters<typeof requestOnNewConnection>[1],
  status = 200,
) {
  const responses: PlainResponse[] = []
  for (let i = 0; i < count; i++) responses.push(await requestOnNewConnection(url, options))
  expect(responses.map((r) => r.status)).toEqual(Array(count).fill(status))
  return responses
}

/**
 * `count` token requests, each on a connection of its own, sent but for their last bytes until
 * `release()`: requests in flight, given 300 ms to reach their workers.
 */
async function tokenRequestsInFlight(server: SpawnedServer, authorization: string, count: number) {
  let release!: () => void
  const hold = new Promise<void>((resolve) => (release = resolve))
  const inFlight = Array.from({ length: count }, () =>
    requestOnNewConnection(`${server.url}/oauth/token`, { authorization, form: GRANT, hold }),
  )
  await new Promise((resolve) => setTimeout(resolve, 300))
  return { release, inFlight }
}

/** The workers that logged a request for `path` after the first `skip` log records. */
async function workersThatServed(server: SpawnedServer, path: string, count: number, skip = 0) {
  // Lines reach stdout within 100 ms (they are written in batches).
  const served = await waitFor(() => {
    const lines = records(server)
      .slice(skip)
      .filter((r) => r.msg === 'request' && r.path === path)
    expect(lines.length).toBeGreaterThanOrEqual(count)
    return lines
  })
  return new Set(served.map((r) => r.worker))
}

describe('WORKERS=2', () => {
  it('serves tokens from two worker processes on one port, each line carrying its worker id', async () => {
    const { env, authorization } = await setup()
    const server = await startCluster(env)

    const primary = records(server).filter((r) => r.msg === 'tokensmith primary starting workers')
    expect(primary).toEqual([expect.objectContaining({ workers: 2, pid: server.proc.pid })])
    const workers = listening(server)
    expect(new Set(workers.map((r) => r.pid)).size).toBe(2)
    expect(workers.map((r) => r.pid)).not.toContain(server.proc.pid)
    expect(new Set(workers.map((r) => r.worker))).toEqual(new Set([1, 2]))

    await requestEach(8, `${server.url}/oauth/token`, { authorization, form: GRANT })
    expect(await workersThatServed(server, '/oauth/token', 8)).toEqual(new Set([1, 2]))
    // Every line a worker writes names it; only the primary's own lines have no worker id.
    const primaryMessages = [
      'tokensmith primary starting workers',
      'generated a signing key and a standby key in an empty KEYS_DIR',
    ]
    for (const record of records(server)) {
      if (!primaryMessages.includes(record.msg!)) expect(record.worker, record.msg).toBeOneOf([1, 2])
    }
  })

  it('refuses a token at every worker once one worker revoked it (the denylist is in Redis)', async () => {
    const { env, authorization } = await setup()
    const server = await startCluster(env)
    const issued = await requestOnNewConnection(`${server.url}/oauth/token`, { authorization, form: GRANT })
    const token = issued.json().access_token as string

    const introspect = { authorization, form: `token=${token}` }
    const before = await requestEach(6, `${server.url}/oauth/introspect`, introspect)
    expect(before.map((r) => r.json().active)).toEqual(Array(6).fill(true))
    expect(await workersThatServed(server, '/oauth/introspect', 6)).toEqual(new Set([1, 2]))

    const mark = records(server).length
    await requestEach(1, `${server.url}/oauth/revoke`, introspect)
    const after = await requestEach(6, `${server.url}/oauth/introspect`, introspect)
    expect(after.map((r) => r.json())).toEqual(Array(6).fill({ active: false }))
    expect(await workersThatServed(server, '/oauth/introspect', 6, mark)).toEqual(new Set([1, 2]))
  })

  it('passes SIGHUP on to every worker: a new client works at each at once', async () => {
    const { env } = await setup({ RELOAD_INTERVAL: '60' })
    const server = await startCluster(env)
    const created = await runCli(
      clientCli,
      ['create', '--id', 'svc-new', '--scope', 'read', '--audience', 'https://api.example.com'],
      env,
    )
    const options = { authorization: basic('svc-new', created.json().client_secret as string), form: GRANT }
    // Polling waits 60 s: until the SIGHUP, no worker knows the client.
    await requestEach(4, `${server.url}/oauth/token`, options, 401)

    const mark = records(server).length
    server.kill('SIGHUP')
    await waitFor(() =>
      expect(
        records(server)
          .slice(mark)
          .filter((r) => r.msg === 'clients reloaded'),
      ).toHaveLength(2),
    )
    await requestEach(6, `${server.url}/oauth/token`, options)
    const served = await waitFor(() => {
      const lines = records(server).filter((r) => r.msg === 'request' && r.client_id === 'svc-new' && r.status === 200)
      expect(lines).toHaveLength(6)
      return lines
    })
    expect(new Set(served.map((r) => r.worker))).toEqual(new Set([1, 2]))
  })

  it('drains every worker on SIGTERM: requests in flight finish, then the primary exits 0', async () => {
    const { env, authorization } = await setup()
    const server = await startCluster(env)

    const { release, inFlight } = await tokenRequestsInFlight(server, authorization, 4)
    server.kill('SIGTERM')
    await waitFor(() => expect(records(server).filter((r) => r.msg === 'shutting down')).toHaveLength(3))
    release()

    expect((await Promise.all(inFlight)).map((r) => r.status)).toEqual([200, 200, 200, 200])
    expect(await server.closed).toBe(0)
    const logged = records(server)
    expect(
      new Set(logged.filter((r) => r.msg === 'request' && r.path === '/oauth/token').map((r) => r.worker)),
    ).toEqual(new Set([1, 2]))
    expect(logged.filter((r) => r.msg === 'stopped').map((r) => r.worker)).toEqual(
      expect.arrayContaining([1, 2, undefined]),
    )
    expect(logged.filter((r) => r.msg === 'stopped')).toHaveLength(3)
  })

  it('drains a worker that gets the signal itself too, as a Ctrl-C reaches the whole process group', async () => {
    const { env, authorization } = await setup()
    const server = await startCluster(env)

    const { release, inFlight } = await tokenRequestsInFlight(server, authorization, 4)
    server.kill('SIGINT')
    await waitFor(() => expect(records(server).filter((r) => r.msg === 'shutting down')).toHaveLength(3))
    // The workers' own SIGINT, after the primary's shutdown: not a second signal.
    for (const { pid } of listening(server) as { pid: number }[]) process.kill(pid, 'SIGINT')
    await new Promise((resolve) => setTimeout(resolve, 200))
    release()

    expect((await Promise.all(inFlight)).map((r) => r.status)).toEqual([200, 200, 200, 200])
    expect(await server.closed).toBe(0)
    expect(records(server).filter((r) => r.msg === 'second signal, exiting now')).toEqual([])
  })

  it('exits at once on a second signal, a worker in the middle of a request writing out its log first', async () => {
    const { env, authorization } = await setup()
    const server = await startCluster(env)
    const held = requestOnNewConnection(`${server.url}/oauth/token`, {
      authorization,
      form: GRANT,
      hold: new Promise(() => {}),
    }).catch(() => undefined)
    await new Promise((resolve) => setTimeout(resolve, 300))
    server.kill('SIGTERM')
    await waitFor(() => expect(records(server).filter((r) => r.msg === 'shutting down')).toHaveLength(3))
    const second = Date.now()
    server.kill('SIGTERM')

    expect(await server.closed).toBe(1)
    expect(Date.now() - second).toBeLessThan(3_000) // not the 10 s a request in flight may take
    // The primary, and the worker still holding the request (the other one had already stopped).
    const forced = records(server).filter((r) => r.msg === 'second signal, exiting now')
    expect(forced.map((r) => r.worker)).toEqual(expect.arrayContaining([undefined, expect.any(Number)]))
    await held
  })

  it('replaces a worker killed with SIGKILL, logging it, while the port keeps answering', async () => {
    const { env, authorization } = await setup()
    const server = await startCluster(env)
    const [victim, survivor] = listening(server) as { pid: number; worker: number }[]

    process.kill(victim!.pid, 'SIGKILL')
    const died = await waitFor(() => {
      const line = records(server).find((r) => r.msg === 'worker died; starting a new one')
      expect(line).toBeDefined()
      return line!
    })
    expect(died).toMatchObject({ level: 50, workerId: victim!.worker, workerPid: victim!.pid, signal: 'SIGKILL' })
    // The other worker answers while the new one starts.
    await requestEach(4, `${server.url}/oauth/token`, { authorization, form: GRANT })

    await waitFor(() => expect(listening(server)).toHaveLength(3), 15_000)
    const replacement = listening(server)[2]!
    expect(replacement.pid).not.toBe(victim!.pid)
    expect(replacement.worker).not.toBe(victim!.worker)
    const mark = records(server).length
    await requestEach(6, `${server.url}/oauth/token`, { authorization, form: GRANT })
    expect(await workersThatServed(server, '/oauth/token', 6, mark)).toEqual(
      new Set([survivor!.worker, replacement.worker]),
    )
  })

  it('replaces a worker that fails, after it logged the error at fatal', async () => {
    const { env } = await setup()
    const server = await startCluster(env, ['--import', CRASH_HOOK])
    const [victim] = listening(server) as { pid: number; worker: number }[]

    process.kill(victim!.pid, 'SIGUSR2')
    await waitFor(() => expect(listening(server)).toHaveLength(3), 15_000)
    const logged = records(server)
    expect(logged).toContainEqual(
      expect.objectContaining({
        level: 60,
        worker: victim!.worker,
        msg: 'fatal error, exiting',
        err: expect.objectContaining({ message: 'test: an uncaught exception' }),
      }),
    )
    expect(logged).toContainEqual(
      expect.objectContaining({ msg: 'worker died; starting a new one', workerId: victim!.worker, code: 1 }),
    )
  })

  it('gives up with exit 1 when workers keep failing at start, waiting longer after each failure', async () => {
    const { env } = await setup({ TOKENSMITH_TEST_CRASH: 'worker-start' })
    const started = Date.now()
    const outcome = await spawnServer(env, {
      compiled: true,
      nodeArgs: ['--import', CRASH_HOOK],
      timeoutMs: 30_000,
    }).catch((error: Error) => error)
    expect(outcome).toBeInstanceOf(Error)
    const [first, ...lines] = (outcome as Error).message.split('\n')
    expect(first).toBe('server exited with 1:')
    const logged = lines.filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as LogRecord)
    expect(logged).toContainEqual(
      expect.objectContaining({ level: 60, msg: 'workers keep failing at start (5 in a row); giving up' }),
    )
    expect(logged.at(-1)).toMatchObject({ msg: 'stopped', exitCode: 1 })
    // 100, 200, 400 and 800 ms between the starts of one slot: no hot loop.
    const delays = logged.filter((r) => r.msg === 'worker failed at start; starting a new one').map((r) => r.delayMs)
    expect(new Set(delays)).toEqual(new Set([100, 200, 400, 800]))
    expect(Date.now() - started).toBeGreaterThan(1_500)
  }, 40_000)

  it('is refused without a shared Redis denylist, in one configuration line', async () => {
    const { env } = await setup({ REDIS_URL: '' })
    await expect(spawnServer(env, { compiled: true })).rejects.toThrow(
      /^server exited with 1:\ntokensmith: configuration: WORKERS="2" needs a shared denylist: [^\n]*in-memory denylist[^\n]*REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES[^\n]*$/,
    )
  })
})
