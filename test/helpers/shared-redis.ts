import { randomBytes } from 'node:crypto'
import { Cluster, Redis } from 'ioredis'
import { afterAll, beforeAll, inject } from 'vitest'
import type { Clock } from '../../src/clock.js'
import type { Denylist } from '../../src/denylist/denylist.js'
import { createRedisDenylist } from '../../src/denylist/redis.js'
import type { DenylistLog } from '../../src/denylist/redis-client.js'
import type { RedisHandle, RedisTarget } from '../../src/denylist/redis-target.js'
import { useCleanups, type Defer } from './cleanups.js'
import { keysUnder } from './redis-keys.js'
import { waitFor } from './wait-for.js'

/** A denylist log that says nothing. */
export const silentLog: DenylistLog = { info: () => undefined, warn: () => undefined, error: () => undefined }

/** The shared Redis deployments of the global set-up. */
export type Topology = 'single' | 'cluster' | 'sentinel'
export const TOPOLOGIES: readonly Topology[] = ['single', 'cluster', 'sentinel']

/** How code under test reaches the store: spread into createRedisDenylist / createRevocationFeed options. */
export type RedisConnection = { url: string } | { redis: RedisTarget }

export interface SharedRedis {
  readonly topology: Topology
  /** The shared single node's redis:// URL; only for the single topology (elsewhere use `connection`). */
  readonly url: string
  /** The shared deployment as a target (a single node as `kind: 'single'`). */
  readonly target: RedisTarget
  /** `{ url }` for the single node (the shorthand most callers use), `{ redis: target }` otherwise. */
  readonly connection: RedisConnection
  /** The environment a tokensmith process needs to use this deployment (REDIS_URL, REDIS_CLUSTER_NODES, ...). */
  readonly env: Record<string, string>
  /** A plain connection to it (a Cluster client on the cluster), for reading what the code under test wrote. */
  readonly admin: RedisHandle
  /** Another plain connection like `admin` (say, to SUBSCRIBE on), closed after the test. */
  client(): RedisHandle
  /** Runs `cleanup` after the current test; cleanups run last first. */
  defer: Defer
  /**
   * A fresh key prefix; every key under it is deleted after the test. It holds a hash tag
   * (`{label:random}:`) so every key under it, and its revocation channel, live in one Cluster slot.
   */
  prefix(label?: string): string
  /** Every key under `prefix`. */
  keysUnder(prefix: string): Promise<string[]>
  /** Deletes every key under `prefix`, and only those. */
  deleteKeys(prefix: string): Promise<void>
  /** A Redis denylist under `keyPrefix`, answering PING; closed after the test. */
  denylist(keyPrefix: string, clock: Clock, log?: DenylistLog): Promise<Denylist>
}

const hostList = (nodes: { host: string; port: number }[]) => nodes.map(({ host, port }) => `${host}:${port}`).join(',')

/** The shared deployment of `topology`, from the global set-up (vitest `inject`). */
export function sharedTarget(topology: Topology): RedisTarget {
  switch (topology) {
    case 'single':
      return { kind: 'single', url: inject('redisUrl') }
    case 'cluster':
      return { kind: 'cluster', nodes: inject('redisCluster').nodes }
    case 'sentinel': {
      const { sentinels, name } = inject('redisSentinel')
      return { kind: 'sentinel', sentinels, name }
    }
  }
}

/** `{ url }` for the single node (the shorthand most callers use), `{ redis: target }` otherwise. */
export function connectionOf(target: RedisTarget): RedisConnection {
  return target.kind === 'single' ? { url: target.url } : { redis: target }
}

/**
 * The environment variables (README, "Configuration") that point tokensmith at `target`. Cluster and
 * Sentinel revocations wait for a replica (REDIS_WAIT_REPLICAS defaults to 1 there); a loaded test
 * machine gets 3 s for it, since a slow acknowledgement is a correct 503 that these tests do not test.
 */
export function redisEnv(target: RedisTarget): Record<string, string> {
  switch (target.kind) {
    case 'single':
      return { REDIS_URL: target.url }
    case 'cluster':
      return { REDIS_CLUSTER_NODES: hostList(target.nodes), REDIS_WAIT_MS: '3000' }
    case 'sentinel':
      return { REDIS_SENTINELS: hostList(target.sentinels), REDIS_SENTINEL_NAME: target.name, REDIS_WAIT_MS: '3000' }
  }
}

/** A plain client for `target`, for a test's own reads and writes (not the code under test's options). */
export function adminClient(target: RedisTarget): RedisHandle {
  switch (target.kind) {
    case 'single':
      return new Redis(target.url, { maxRetriesPerRequest: 1 })
    case 'cluster':
      return new Cluster(target.nodes, { redisOptions: { maxRetriesPerRequest: 1 } })
    case 'sentinel':
      return new Redis({ sentinels: target.sentinels, name: target.name, maxRetriesPerRequest: 1 })
  }
}

/**
 * The shared Redis of one topology for one test file (or one `describe.each` block): call at its top
 * level. `options.defer` shares another's clean-ups (one order for everything a test made). Each test isolates itself with its own key prefix and deletes only its own keys, so files
 * run side by side on one deployment, which is never flushed.
 */
export function useSharedRedis(topology: Topology = 'single', options: { defer?: Defer } = {}): SharedRedis {
  const target = sharedTarget(topology)
  const defer = options.defer ?? useCleanups()
  let admin: RedisHandle | undefined
  beforeAll(async () => {
    admin = adminClient(target)
    // A Cluster client answers only once it has the slot map; a Sentinel one once it found the master.
    await waitFor(() => admin?.ping(), 10_000)
  })
  afterAll(async () => {
    await admin?.quit()
  })

  const shared: SharedRedis = {
    topology,
    get url() {
      if (target.kind !== 'single') throw new Error(`useSharedRedis('${topology}'): no URL; use \`connection\``)
      return target.url
    },
    target,
    connection: connectionOf(target),
    env: redisEnv(target),
    get admin() {
      if (!admin) throw new Error('useSharedRedis: the admin connection opens in beforeAll')
      return admin
    },
    client() {
      const client = adminClient(target)
      defer(() => client.disconnect())
      return client
    },
    defer,
    prefix(label = 'test') {
      const prefix = `{${label}:${randomBytes(6).toString('hex')}}:`
      defer(() => shared.deleteKeys(prefix))
      return prefix
    },
    keysUnder: (prefix) => keysUnder(shared.admin, prefix),
    async deleteKeys(prefix) {
      // One DEL per key: on a Cluster a multi-key DEL must stay within one slot.
      await Promise.all((await keysUnder(shared.admin, prefix)).map((key) => shared.admin.del(key)))
    },
    async denylist(keyPrefix, clock, log = silentLog) {
      const denylist = createRedisDenylist({ ...shared.connection, keyPrefix, clock, log })
      defer(() => denylist.close())
      await waitFor(() => denylist.ping())
      return denylist
    },
  }
  return shared
}
