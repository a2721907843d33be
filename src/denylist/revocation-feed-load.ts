import type { Redis } from 'ioredis'
import { escapeGlob, parseEntryKey, parseRevokedAt, type Revocation } from './protocol.js'
import { unavailable } from './redis-error.js'

const SCAN_COUNT = 1_000

export interface LoadOptions {
  /** A connection in normal mode: a subscriber cannot SCAN. */
  redis: Redis
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
 */
export async function loadRevocations(options: LoadOptions): Promise<void> {
  const { redis, keyPrefix, clock, store, current } = options
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
