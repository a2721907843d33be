import type { Redis } from 'ioredis'
import { escapeGlob, parseEntryKey, parseRevokedAt, revocationChannel, type Revocation } from './protocol.js'
import { isCluster } from './redis-client.js'
import { unavailable } from './redis-error.js'
import type { RedisHandle } from './redis-target.js'
import { clusterSlotOwner } from './revocation-feed-subscriber.js'

const SCAN_COUNT = 1_000

export interface LoadOptions {
  /** A connection in normal mode: a subscriber cannot SCAN. */
  redis: RedisHandle
  keyPrefix: string
  clock: () => number
  store(revocation: Revocation): void
  /** Turns false once this load is superseded (the connection dropped or a newer load began): stop then. */
  current(): boolean
}

/**
 * Every entry under the prefix, each with its remaining lifetime: SCAN, then PTTL for each entry
 * (and GET for a client's instant) in one pipeline per batch. SCAN matches the prefix only,
 * escaped, so glob characters inside a prefix or an id cannot change what matches. Rejects with
 * DenylistUnavailableError when Redis fails; the caller retries.
 *
 * On a Cluster, SCAN has no key and ioredis would send it to any node: it runs on the primary that
 * owns the prefix's slot (every entry is there, the prefix's hash tag sees to it), on that node's
 * own connection, and that node is asked again afterwards whether it still owns the slot. Had the
 * slot moved meanwhile (a failover, a resharding), the load is rejected and retried: scanning a
 * node that no longer holds the entries would find none and go live without them. Scanning every
 * primary and merging would also miss them when the map is stale, and costs a SCAN of every node.
 */
export async function loadRevocations(options: LoadOptions): Promise<void> {
  const { keyPrefix, current } = options
  if (!isCluster(options.redis)) return scanNode(options.redis, options)
  const probe = revocationChannel(keyPrefix)
  const owner = await clusterSlotOwner(options.redis, probe)
  if (!current()) return
  await scanNode(owner, options)
  if (!current()) return
  try {
    await owner.exists(probe)
  } catch (err) {
    throw unavailable('revocation feed load: the slot moved while loading', err)
  }
}

async function scanNode(redis: Redis, options: LoadOptions): Promise<void> {
  const { keyPrefix, clock, store, current } = options
  const match = `${escapeGlob(keyPrefix)}*`
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', match, 'COUNT', SCAN_COUNT)
    if (!current()) return
    cursor = next
    const found = keys.flatMap((key) => {
      const entry = parseEntryKey(keyPrefix, key)
      return entry === undefined ? [] : [{ key, ...entry }]
    })
    if (found.length === 0) continue
    // A client entry's value is its revocation instant: read it with its PTTL.
    const pipeline = redis.pipeline()
    for (const entry of found) {
      pipeline.pttl(entry.key)
      if (entry.kind === 'client') pipeline.get(entry.key)
    }
    const replies = await pipeline.exec()
    if (!current()) return
    if (replies === null) throw unavailable('revocation feed load aborted')
    const now = clock()
    let index = 0
    const reply = (): unknown => {
      const [err, value] = replies[index++] ?? [unavailable('missing reply'), undefined]
      if (err) throw unavailable('revocation feed load failed', err)
      return value
    }
    for (const { kind, id } of found) {
      const until = untilFromPttl(Number(reply()), now)
      const value = kind === 'client' ? reply() : undefined
      if (until === undefined) continue
      if (kind !== 'client') store({ kind, id, until })
      // Gone meanwhile: nothing to store. Not a number (written by hand): every token of the client.
      else if (typeof value === 'string') store({ kind, id, until, revokedAt: parseRevokedAt(value) })
    }
  } while (cursor !== '0')
}

/**
 * PTTL -> until. -2: gone meanwhile. -1: no TTL (written by hand), revoked for good. The extra second
 * covers `clock()` being whole seconds; erring long is harmless, the token expires by exp + tolerance anyway.
 */
function untilFromPttl(pttl: number, now: number): number | undefined {
  if (pttl === -2 || Number.isNaN(pttl)) return undefined
  if (pttl === -1) return Number.POSITIVE_INFINITY
  return now + Math.ceil(pttl / 1000) + 1
}
