import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import net from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Clock } from '../../src/clock.js'
import { DenylistUnavailableError } from '../../src/denylist/denylist.js'
import { createRedisDenylist } from '../../src/denylist/redis.js'
import type { DenylistLog } from '../../src/denylist/redis-client.js'
import { createRevocationFeed, type RevocationFeed } from '../../src/denylist/revocation-feed.js'
import type { Denylist } from '../../src/denylist/denylist.js'
import { useCleanups } from '../helpers/cleanups.js'
import { freePort } from '../helpers/free-port.js'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'
import { waitFor } from '../helpers/wait-for.js'

// Every operation gives up within about a second while Redis is gone or frozen, and everything
// recovers on its own once Redis is back. Each test owns its server.

const clock: Clock = () => Date.now() / 1000
const FAIL_FAST_MS = 1_500
const RECOVERY_MS = 5_000

const unhandled: unknown[] = []
const onUnhandled = (reason: unknown) => unhandled.push(reason)
beforeAll(() => {
  process.on('unhandledRejection', onUnhandled)
})
afterAll(() => {
  process.off('unhandledRejection', onUnhandled)
  expect(unhandled).toEqual([])
})

const defer = useCleanups()

async function server(options: { port?: number } = {}): Promise<RedisServer> {
  const started = await startRedisServer(options)
  defer(() => started.stop())
  return started
}

function recordingLog() {
  const lines: { level: 'info' | 'warn' | 'error'; msg: string }[] = []
  const at = (level: 'info' | 'warn' | 'error') => (objOrMsg: unknown, msg?: unknown) => {
    lines.push({ level, msg: typeof objOrMsg === 'string' ? objOrMsg : String(msg) })
  }
  const log: DenylistLog = { info: at('info'), warn: at('warn'), error: at('error') }
  return { log, lines }
}

function denylist(url: string, log: DenylistLog = recordingLog().log): Denylist {
  const created = createRedisDenylist({ url, keyPrefix: prefix(), clock, log })
  defer(() => created.close())
  return created
}

function feed(url: string, keyPrefix: string, log: DenylistLog = recordingLog().log): RevocationFeed {
  const created = createRevocationFeed({ url, keyPrefix, clock, log })
  defer(() => created.close())
  return created
}

const prefix = () => `tokensmith-fault:${randomBytes(6).toString('hex')}:`
const id = () => randomBytes(16).toString('base64url')

/** Asserts `operation` rejects with DenylistUnavailableError, and quickly. */
async function expectFastUnavailable(operation: () => Promise<unknown>): Promise<number> {
  const started = performance.now()
  const outcome = await operation().then(
    (value) => ({ ok: true as const, value }),
    (err: unknown) => ({ ok: false as const, err }),
  )
  const elapsed = performance.now() - started
  expect(outcome.ok, `resolved with ${JSON.stringify(outcome.ok && outcome.value)}`).toBe(false)
  if (!outcome.ok) expect(outcome.err).toBeInstanceOf(DenylistUnavailableError)
  expect(elapsed).toBeLessThan(FAIL_FAST_MS)
  return elapsed
}

async function expectAllUnavailable(d: Denylist): Promise<void> {
  await expectFastUnavailable(() => d.revokeToken(id(), clock() + 60))
  await expectFastUnavailable(() => d.revokeKey(id(), clock() + 60))
  await expectFastUnavailable(() => d.isRevoked({ jti: id(), kid: id() }))
  await expectFastUnavailable(() => d.ping())
}

async function expectWorks(d: Denylist): Promise<void> {
  const jti = id()
  await d.revokeToken(jti, clock() + 60)
  expect(await d.isRevoked({ jti })).toBe(true)
}

describe('redis denylist under faults', () => {
  it('fails fast while Redis is killed and recovers after a restart on the same port', async () => {
    const redis = await server()
    const { log, lines } = recordingLog()
    const d = denylist(redis.url, log)
    await waitFor(() => expectWorks(d))

    await redis.kill('SIGKILL')
    // Repeatedly across the outage, while ioredis is reconnecting in the background.
    for (let round = 0; round < 3; round++) {
      await expectAllUnavailable(d)
      await sleep(300)
    }

    await redis.restart()
    const started = performance.now()
    await waitFor(() => expectWorks(d))
    expect(performance.now() - started).toBeLessThan(RECOVERY_MS)

    // One line per transition, not one per reconnect attempt.
    expect(lines.filter((l) => l.level === 'warn' || l.level === 'error')).toHaveLength(1)
    expect(lines.filter((l) => l.msg === 'redis connection ready')).toHaveLength(2)
  })

  it('fails within the command timeout while Redis is frozen (SIGSTOP) and recovers on SIGCONT', async () => {
    const redis = await server()
    const d = denylist(redis.url)
    await waitFor(() => expectWorks(d))

    redis.pause()
    try {
      const revokeMs = await expectFastUnavailable(() => d.revokeToken(id(), clock() + 60))
      // Bounded by commandTimeout (500 ms), where default ioredis settings would hang.
      expect(revokeMs).toBeLessThan(1_000)
      await expectAllUnavailable(d)
    } finally {
      redis.resume()
    }
    await waitFor(() => expectWorks(d))
  })

  it('starts with Redis down, fails fast, and becomes ready within 5 s of Redis appearing', async () => {
    const port = await freePort()
    const url = `redis://127.0.0.1:${port}`
    const keyPrefix = prefix()
    const d = denylist(url)
    const check = feed(url, keyPrefix)

    await sleep(200)
    await expectAllUnavailable(d)
    await expectFastUnavailable(() => check.isRevoked({ jti: id() }))
    expect(check.live).toBe(false)

    await server({ port })
    const started = performance.now()
    await waitFor(() => d.ping())
    await check.ready()
    expect(performance.now() - started).toBeLessThan(RECOVERY_MS)
    await expectWorks(d)
  })
})

describe('redis revocation feed under faults', () => {
  it('never answers false while Redis is killed, and goes live again after a restart', async () => {
    const redis = await server()
    const keyPrefix = prefix()
    const writer = createRedisDenylist({ url: redis.url, keyPrefix, clock, log: recordingLog().log })
    defer(() => writer.close())
    const check = feed(redis.url, keyPrefix)
    await check.ready()
    const revoked = id()
    await waitFor(() => writer.revokeToken(revoked, clock() + 60))
    await waitFor(async () => expect(await check.isRevoked({ jti: revoked })).toBe(true), 1_000)

    await redis.kill('SIGKILL')
    await waitFor(() => expect(check.live).toBe(false), 1_000)
    await expectFastUnavailable(() => check.isRevoked({ jti: id() }))
    await expectFastUnavailable(() => check.isRevoked({ jti: revoked }))

    await redis.restart()
    const started = performance.now()
    await check.ready()
    expect(performance.now() - started).toBeLessThan(RECOVERY_MS)
    // Redis restarted without persistence (the README asks for it; this one has none), but what the
    // feed already knew stays known.
    expect(await check.isRevoked({ jti: revoked })).toBe(true)
    const after = id()
    await waitFor(() => writer.revokeToken(after, clock() + 60))
    await waitFor(async () => expect(await check.isRevoked({ jti: after })).toBe(true), 1_000)
  })

  it('stops answering locally when Redis freezes, then recovers on SIGCONT', async () => {
    const redis = await server()
    const keyPrefix = prefix()
    const check = feed(redis.url, keyPrefix)
    await check.ready()

    redis.pause()
    try {
      // The heartbeat (1 s) with the command timeout (500 ms) notices the freeze.
      await waitFor(() => expect(check.live).toBe(false), 2_500)
      await expectFastUnavailable(() => check.isRevoked({ jti: id() }))
    } finally {
      redis.resume()
    }
    const started = performance.now()
    await check.ready()
    expect(performance.now() - started).toBeLessThan(RECOVERY_MS)
    expect(await check.isRevoked({ jti: id() })).toBe(false)
  })

  it('learns of revocations made while it was disconnected by reloading on reconnect', async () => {
    const redis = await server()
    const keyPrefix = prefix()
    const proxy = await startTcpProxy(redis.port)
    defer(() => proxy.close())
    const writer = createRedisDenylist({ url: redis.url, keyPrefix, clock, log: recordingLog().log })
    defer(() => writer.close())
    const check = feed(proxy.url, keyPrefix)
    await check.ready()
    await waitFor(() => writer.ping())

    proxy.cut()
    await waitFor(() => expect(check.live).toBe(false), 1_000)
    await expectFastUnavailable(() => check.isRevoked({ jti: id() }))
    // Published while the feed is not subscribed: only the reload on reconnect can bring these.
    const jti = id()
    const kid = id()
    await writer.revokeToken(jti, clock() + 60)
    await writer.revokeKey(kid, clock() + 60)
    await expectFastUnavailable(() => check.isRevoked({ jti }))

    proxy.restore()
    await check.ready()
    expect(check.live).toBe(true)
    expect(await check.isRevoked({ jti })).toBe(true)
    expect(await check.isRevoked({ jti: id(), kid })).toBe(true)
  })
})

/** A TCP relay whose link can be cut and restored, to disconnect one client while Redis stays up. */
async function startTcpProxy(targetPort: number) {
  const sockets = new Set<net.Socket>()
  let open = true
  const server = net.createServer((client) => {
    if (!open) {
      client.destroy()
      return
    }
    const upstream = net.connect(targetPort, '127.0.0.1')
    const drop = () => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    for (const socket of [client, upstream]) {
      sockets.add(socket)
      socket.on('error', drop)
      socket.on('close', drop)
    }
    client.pipe(upstream)
    upstream.pipe(client)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address() as net.AddressInfo
  return {
    url: `redis://127.0.0.1:${address.port}`,
    cut() {
      open = false
      for (const socket of sockets) socket.destroy()
    },
    restore() {
      open = true
    },
    async close() {
      open = false
      for (const socket of sockets) socket.destroy()
      server.close()
      await once(server, 'close')
    },
  }
}
