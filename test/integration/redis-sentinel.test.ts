import { randomUUID } from 'node:crypto'
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { systemClock } from '../../src/clock.js'
import { entryKey } from '../../src/denylist/protocol.js'
import { createRedisDenylist } from '../../src/denylist/redis.js'
import type { HostPort, RedisTarget } from '../../src/denylist/redis-target.js'
import { createRevocationFeed, type RevocationFeed } from '../../src/denylist/revocation-feed.js'
import { adminCommand } from '../helpers/redis-admin.js'
import { type RedisSentinelGroup, startRedisSentinelGroup } from '../helpers/redis-sentinel.js'
import { silentLog } from '../helpers/shared-redis.js'
import { waitFor } from '../helpers/wait-for.js'

// Redis Sentinel (https://redis.io/docs/latest/operate/oss_and_stack/management/sentinel/): both the
// commands connection and the feed's subscriber find the master through the sentinels, follow it
// after a failover, and the feed then loads everything again.

const clock = systemClock
const until = () => clock() + 600
const live = (feed: { live: boolean }) => () =>
  feed.live ? Promise.resolve() : Promise.reject(new Error('revocation feed not live'))

describe('on the shared Sentinel group', () => {
  it('revokes, checks and feeds through the master the sentinels name', async () => {
    const { sentinels, name } = inject('redisSentinel')
    const target: RedisTarget = { kind: 'sentinel', sentinels, name }
    const keyPrefix = `{sentinel-${randomUUID()}}:`
    const denylist = createRedisDenylist({ redis: target, keyPrefix, clock, log: silentLog })
    let feed: RevocationFeed | undefined
    try {
      await waitFor(() => denylist.ping(), 10_000)
      await denylist.revokeToken('jti-1', until())
      // Made after the revocation: its load finds it.
      feed = createRevocationFeed({ redis: target, keyPrefix, log: silentLog })
      await feed.ready()
      expect(await feed.isRevoked({ jti: 'jti-1' })).toBe(true)
      await denylist.revokeKey('kid-1', until())
      // Announced by its message.
      await expect.poll(() => feed?.isRevoked({ jti: 'x', kid: 'kid-1' }), { timeout: 1_000 }).toBe(true)
      expect(feed.live).toBe(true)
    } finally {
      await Promise.all([feed?.close(), denylist.close()])
    }
  })
})

describe('a Sentinel failover', () => {
  let group: RedisSentinelGroup
  let target: RedisTarget

  beforeAll(async () => {
    // A group of its own: this test kills its primary.
    group = await startRedisSentinelGroup({ downAfterMs: 1_000 })
    target = { kind: 'sentinel', sentinels: group.sentinels, name: group.name }
  }, 60_000)
  afterAll(async () => {
    await group?.stop()
  })

  it('moves both connections to the new master; the feed loads everything again', async () => {
    const keyPrefix = `{sentinel-failover-${randomUUID()}}:`
    const denylist = createRedisDenylist({ redis: target, keyPrefix, clock, log: silentLog })
    const feed = createRevocationFeed({ redis: target, keyPrefix, log: silentLog, heartbeatMs: 200 })
    try {
      await waitFor(() => denylist.ping(), 10_000)
      await denylist.revokeToken('before', until())
      await feed.ready()
      const primary = await group.primary()

      // Written without a message, as a revocation whose message was lost: only a full load finds it.
      await adminCommand(primary.port, 'SET', [entryKey(keyPrefix, 'jti', 'unannounced'), '1', 'PX', 600_000])
      await waitFor(async () => {
        const [replica] = await group.replicas()
        if ((await adminCommand(replica?.port as number, 'EXISTS', [entryKey(keyPrefix, 'jti', 'unannounced')])) !== 1)
          throw new Error('not replicated yet')
      })
      expect(await feed.isRevoked({ jti: 'unannounced' })).toBe(false)

      await primary.kill('SIGKILL')
      await waitFor(() => (feed.live ? Promise.reject(new Error('still live')) : Promise.resolve()), 5_000)
      const promoted = await group.waitForFailover(primary.port)
      expect(promoted.port).not.toBe(primary.port)

      // The commands connection follows: writes and direct checks work again on the new master.
      await waitFor(() => denylist.revokeToken('after', until()), 20_000)
      expect(await denylist.isRevoked({ jti: 'unannounced' })).toBe(true)
      // The subscriber follows, and the new session loads what no message announced.
      await waitFor(live(feed), 20_000)
      expect(await feed.isRevoked({ jti: 'unannounced' })).toBe(true)
      expect(await feed.isRevoked({ jti: 'before' })).toBe(true)
      await expect.poll(() => feed.isRevoked({ jti: 'after' }), { timeout: 2_000 }).toBe(true)
      const clients = String(await adminCommand(promoted.port, 'CLIENT', ['LIST']))
      expect(clients).toContain(' name=tokensmith-revocation-feed ')
      expect(clients).toContain(' name=tokensmith-denylist ')
      expect(feed.live).toBe(true)
    } finally {
      await Promise.all([feed.close(), denylist.close()])
    }
  }, 90_000)
})

/**
 * A TCP proxy in front of each sentinel that holds every chunk `delayMs` each way: a connection
 * that lost its master then spends most of each reconnect asking the sentinels for the new one,
 * the moment at which ioredis's failover detector (+switch-master) used to end it for good.
 */
async function slowSentinels(sentinels: HostPort[], delayMs: number) {
  const servers: Server[] = []
  const sockets = new Set<Socket>()
  const track = (socket: Socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => socket.destroy())
  }
  const pipe = (from: Socket, to: Socket) => {
    from.on('data', (chunk) => setTimeout(() => to.destroyed || to.write(chunk), delayMs))
    from.on('close', () => setTimeout(() => to.destroy(), delayMs))
  }
  const proxies: HostPort[] = []
  for (const sentinel of sentinels) {
    const server = createServer((client) => {
      const upstream = connect(sentinel.port, sentinel.host)
      track(client)
      track(upstream)
      pipe(client, upstream)
      pipe(upstream, client)
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    servers.push(server)
    proxies.push({ host: '127.0.0.1', port: (server.address() as AddressInfo).port })
  }
  return {
    proxies,
    async close() {
      for (const socket of sockets) socket.destroy()
      await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))))
    },
  }
}

describe('a Sentinel failover while the connections ask slow sentinels for the master', () => {
  let group: RedisSentinelGroup
  let proxies: Awaited<ReturnType<typeof slowSentinels>>
  let target: RedisTarget

  beforeAll(async () => {
    group = await startRedisSentinelGroup({ downAfterMs: 1_000 })
    // 250 ms each way: asking for the master takes about 1.5 s (handshake, the query, the list of
    // sentinels), most of each reconnect cycle; the command timeout below leaves room for it.
    proxies = await slowSentinels(group.sentinels, 250)
    target = { kind: 'sentinel', sentinels: proxies.proxies, name: group.name }
  }, 60_000)
  afterAll(async () => {
    await proxies?.close()
    await group?.stop()
  })

  it('no connection ends for good: each one reaches the new master', async () => {
    const keyPrefix = `{sentinel-slow-${randomUUID()}}:`
    const commandTimeoutMs = 2_000
    const denylist = createRedisDenylist({ redis: target, keyPrefix, clock, log: silentLog, commandTimeoutMs })
    const feed = createRevocationFeed({ redis: target, keyPrefix, log: silentLog, heartbeatMs: 200, commandTimeoutMs })
    try {
      await waitFor(() => denylist.ping(), 10_000)
      await feed.ready()
      const primary = await group.primary()
      await primary.kill('SIGKILL')
      const promoted = await group.waitForFailover(primary.port, 30_000)

      await waitFor(() => denylist.revokeToken('after-slow-failover', until()), 20_000)
      await waitFor(live(feed), 20_000)
      await expect.poll(() => feed.isRevoked({ jti: 'after-slow-failover' }), { timeout: 2_000 }).toBe(true)
      const clients = String(await adminCommand(promoted.port, 'CLIENT', ['LIST']))
      expect(clients).toContain(' name=tokensmith-denylist ')
      expect(clients).toContain(' name=tokensmith-revocation-check ')
      expect(clients).toContain(' name=tokensmith-revocation-feed ')
    } finally {
      await Promise.all([feed.close(), denylist.close()])
    }
  }, 90_000)
})
