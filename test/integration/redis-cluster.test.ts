import { randomUUID } from 'node:crypto'
import { Cluster } from 'ioredis'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { systemClock } from '../../src/clock.js'
import type { Denylist } from '../../src/denylist/denylist.js'
import { entryKey, ownedKey, replayKey, revocationChannel } from '../../src/denylist/protocol.js'
import { createRedisDenylist } from '../../src/denylist/redis.js'
import type { RedisTarget } from '../../src/denylist/redis-target.js'
import { createRevocationFeed } from '../../src/denylist/revocation-feed.js'
import { adminCommand } from '../helpers/redis-admin.js'
import { keySlot, type RedisCluster, startRedisCluster } from '../helpers/redis-cluster.js'
import { keysUnder } from '../helpers/redis-keys.js'
import { silentLog } from '../helpers/shared-redis.js'
import { waitFor } from '../helpers/wait-for.js'

// Redis Cluster (https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/): the key
// prefix's hash tag keeps every key and the channel in one slot; the feed scans the primary owning
// it, and starts over (subscribe, then a full load) whenever its subscriber has to move to another node.

const clock = systemClock
const until = () => clock() + 600

/** The (port of the) node whose CLIENT LIST shows a connection named `name`. */
async function nodeWithClient(ports: number[], name: string): Promise<number | undefined> {
  for (const port of ports) {
    const list = await adminCommand(port, 'CLIENT', ['LIST']).catch(() => '')
    if (String(list).includes(` name=${name} `)) return port
  }
  return undefined
}

/** The primary serving `slot`, as CLUSTER SLOTS on `port` says. */
async function primaryPortFor(port: number, slot: number): Promise<number> {
  const ranges = (await adminCommand(port, 'CLUSTER', ['SLOTS'])) as [number, number, [string, number]][]
  const range = ranges.find(([from, to]) => from <= slot && slot <= to)
  if (range === undefined) throw new Error(`no primary serves slot ${slot}`)
  return Number(range[2][1])
}

describe('on the shared Redis Cluster', () => {
  const { nodes } = inject('redisCluster')
  const target: RedisTarget = { kind: 'cluster', nodes }
  const opened: { close(): Promise<unknown> }[] = []
  let admin: Cluster

  beforeAll(async () => {
    admin = new Cluster(nodes, { redisOptions: { maxRetriesPerRequest: 1 } })
    await waitFor(() => admin.ping(), 10_000)
  })
  afterAll(async () => {
    await Promise.all(opened.map((item) => item.close()))
    admin.disconnect()
  })

  async function denylistAt(keyPrefix: string): Promise<Denylist> {
    const denylist = createRedisDenylist({ redis: target, keyPrefix, clock, log: silentLog })
    opened.push(denylist)
    await waitFor(() => denylist.ping(), 10_000)
    return denylist
  }

  it('keeps every key and the channel of a prefix in the slot of its hash tag', async () => {
    const keyPrefix = `{cluster-slot-${randomUUID()}}:`
    const denylist = await denylistAt(keyPrefix)
    await denylist.revokeToken('jti-1', until())
    await denylist.revokeToken('jti-2', until(), { clientId: 'svc-a', limit: 10 })
    await denylist.revokeKey('kid-1', until())
    await denylist.revokeClient('svc-b', clock(), until())
    expect(await denylist.replayCache('assertion').useOnce('svc-a', 'jti-3', until())).toBe(true)
    const keys = await keysUnder(admin, keyPrefix)
    expect(keys.sort()).toEqual(
      [
        entryKey(keyPrefix, 'jti', 'jti-1'),
        entryKey(keyPrefix, 'jti', 'jti-2'),
        entryKey(keyPrefix, 'kid', 'kid-1'),
        entryKey(keyPrefix, 'client', 'svc-b'),
        ownedKey(keyPrefix, 'svc-a'),
        replayKey(keyPrefix, 'assertion', 'svc-a', 'jti-3'),
      ].sort(),
    )
    const slot = keySlot(revocationChannel(keyPrefix))
    for (const key of keys) expect(Number(await admin.cluster('KEYSLOT', key))).toBe(slot)
    expect(await denylist.isRevoked({ jti: 'jti-1' })).toBe(true)
    expect(await denylist.isRevoked({ jti: 'other', kid: 'kid-1' })).toBe(true)
    expect(await denylist.isRevoked({ jti: 'other', client_id: 'svc-b', iat: clock() - 10 })).toBe(true)
    await admin.del(...keys)
  })

  it('loads the entries of prefixes served by each primary: SCAN runs on the one owning the slot', async () => {
    // One prefix per primary, so a SCAN sent to any other node finds nothing for at least two of them.
    const seed = nodes[0]?.port as number
    const byPrimary = new Map<number, string>()
    for (let i = 0; byPrimary.size < 3 && i < 1000; i++) {
      const keyPrefix = `{cluster-load-${i}-${randomUUID().slice(0, 8)}}:`
      const primary = await primaryPortFor(seed, keySlot(keyPrefix))
      if (!byPrimary.has(primary)) byPrimary.set(primary, keyPrefix)
    }
    expect(byPrimary.size).toBe(3)
    for (const keyPrefix of byPrimary.values()) {
      const denylist = await denylistAt(keyPrefix)
      for (let i = 0; i < 20; i++) await denylist.revokeToken(`jti-${i}`, until())
      await denylist.revokeClient('svc-c', clock(), until())
      const feed = createRevocationFeed({ redis: target, keyPrefix, log: silentLog })
      opened.push(feed)
      await feed.ready()
      expect(feed.live).toBe(true)
      for (let i = 0; i < 20; i++) expect(await feed.isRevoked({ jti: `jti-${i}` })).toBe(true)
      expect(await feed.isRevoked({ jti: 'x', client_id: 'svc-c', iat: clock() - 5 })).toBe(true)
      expect(await feed.isRevoked({ jti: 'not-revoked' })).toBe(false)
      await admin.del(...(await keysUnder(admin, keyPrefix)))
    }
  })
})

describe('a Redis Cluster losing the node the feed subscribes on', () => {
  let cluster: RedisCluster
  let target: RedisTarget
  let admin: Cluster
  const opened: { close(): Promise<unknown> }[] = []

  beforeAll(async () => {
    // A cluster of its own: this test kills a node.
    cluster = await startRedisCluster({ nodeTimeoutMs: 1_500 })
    target = { kind: 'cluster', nodes: cluster.nodes }
    admin = new Cluster(cluster.nodes, { redisOptions: { maxRetriesPerRequest: 1 } })
    await waitFor(() => admin.ping(), 10_000)
  }, 60_000)
  afterAll(async () => {
    await Promise.all(opened.map((item) => item.close()))
    admin?.disconnect()
    await cluster?.stop()
  })

  it('subscribes again on another node and loads everything again, revocations made meanwhile included', async () => {
    const keyPrefix = `{cluster-failover-${randomUUID()}}:`
    const denylist = createRedisDenylist({ redis: target, keyPrefix, clock, log: silentLog })
    opened.push(denylist)
    await waitFor(() => denylist.ping(), 10_000)
    await denylist.revokeToken('before', until())
    const feed = createRevocationFeed({ redis: target, keyPrefix, log: silentLog, heartbeatMs: 200 })
    opened.push(feed)
    await feed.ready()
    expect(await feed.isRevoked({ jti: 'before' })).toBe(true)

    // Written without a message, as a revocation whose message was lost: only a full load finds it,
    // and until then the live feed answers from memory that it is not revoked.
    await admin.set(entryKey(keyPrefix, 'jti', 'unannounced'), '1', 'PX', 600_000)
    await admin.wait(1, 1_000)
    expect(feed.live).toBe(true)
    expect(await feed.isRevoked({ jti: 'unannounced' })).toBe(false)

    const ports = cluster.nodes.map(({ port }) => port)
    const subscribedOn = await nodeWithClient(ports, 'tokensmith-revocation-feed')
    expect(subscribedOn).toBeDefined()
    await cluster.serverAt(subscribedOn as number).kill('SIGKILL')
    await waitFor(() => (feed.live ? Promise.reject(new Error('still live')) : Promise.resolve()), 5_000)

    await cluster.waitForFailover(subscribedOn as number)
    // Revoked while the feed may still be away: retried until the cluster takes writes again.
    await waitFor(() => denylist.revokeToken('meanwhile', until()), 20_000)
    await waitFor(() => (feed.live ? Promise.resolve() : Promise.reject(new Error('not live'))), 20_000)
    const movedTo = await nodeWithClient(
      ports.filter((port) => port !== subscribedOn),
      'tokensmith-revocation-feed',
    )
    expect(movedTo).toBeDefined()
    expect(movedTo).not.toBe(subscribedOn)
    expect(await feed.isRevoked({ jti: 'unannounced' })).toBe(true)
    expect(await feed.isRevoked({ jti: 'before' })).toBe(true)
    await expect.poll(() => feed.isRevoked({ jti: 'meanwhile' }), { timeout: 2_000 }).toBe(true)
    expect(feed.live).toBe(true)
  }, 90_000)
})
