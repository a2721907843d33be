/**
 * The denylist's Redis protocol, written in one place for both sides: the writer (`redis.ts`, the
 * authorization server) and the reader (`revocation-feed.ts`, on resource servers). Key names, the
 * pub/sub channel, the message each revocation is published as, and how stored values are read.
 *
 * Resource servers import this without the server's dependencies: it may import only the other
 * revocation-feed modules, ioredis and node builtins (test/unit/denylist/import-boundary.test.ts).
 *
 * Keys under the prefix:
 * - `${prefix}jti:${id}`, `${prefix}kid:${id}`: hold `1`; their TTL is the revocation's remaining lifetime.
 * - `${prefix}client:${id}`: holds the client revocation's instant (epoch seconds), same TTL rule.
 * - `${prefix}revoked-by:${clientId}`: the writer's per-client count, never read by a reader.
 * - `${prefix}replay:${namespace}:${hash}`: a used (clientId, jti) pair of a replay cache, holds `1`
 *   until the pair's `until`; never a revocation, never read by a reader.
 * - channel `${prefix}revocations`: one message per revocation, after its key is written.
 */
import { createHash } from 'node:crypto'
import { clientRevocationCovers, type EntryKind, type RevocationQuery } from './denylist.js'
import { unavailable } from './redis-error.js'
import type { RedisHandle } from './redis-target.js'

/** One revocation; `until` and `revokedAt` are epoch seconds. A client revocation covers its tokens with `iat <= revokedAt`. */
export type Revocation =
  | { kind: 'jti' | 'kid'; id: string; until: number }
  | { kind: 'client'; id: string; until: number; revokedAt: number }

/** The id is only ever a suffix: never parsed, never a pattern. */
export function entryKey(keyPrefix: string, kind: EntryKind, id: string): string {
  return `${keyPrefix}${kind}:${id}`
}

/**
 * The jtis a client revoked, scored by their `until`, to cap how many live revocations one client
 * holds. Not an entry: readers never read it.
 */
export function ownedKey(keyPrefix: string, clientId: string): string {
  return `${keyPrefix}revoked-by:${clientId}`
}

/**
 * A used (clientId, jti) pair of the replay cache `namespace`. The pair is hashed as JSON, so it is
 * unambiguous whatever characters either part holds (a client id may be a URL, a jti anything), and
 * the key stays short however long they are. Not an entry: `parseEntryKey` skips it.
 */
export function replayKey(keyPrefix: string, namespace: string, clientId: string, jti: string): string {
  const pair = createHash('sha256')
    .update(JSON.stringify([clientId, jti]))
    .digest('base64url')
  return `${keyPrefix}replay:${namespace}:${pair}`
}

export function revocationChannel(keyPrefix: string): string {
  return `${keyPrefix}revocations`
}

/** Key prefixes may contain glob characters; SCAN MATCH must treat them literally. */
export function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&')
}

/** Entries only: anything else under the prefix (rate limits, per-client counts, ...) is not a revocation. */
export function parseEntryKey(keyPrefix: string, key: string): { kind: EntryKind; id: string } | undefined {
  if (!key.startsWith(keyPrefix)) return undefined
  const rest = key.slice(keyPrefix.length)
  for (const kind of ['jti', 'kid', 'client'] as const) {
    if (rest.startsWith(`${kind}:`)) return { kind, id: rest.slice(kind.length + 1) }
  }
  return undefined
}

/**
 * A client entry's value as a revocation instant. Anything but a plain number (written by hand,
 * say) is NaN, which revokes every token of the client: the safe reading of a value we cannot read.
 */
export function parseRevokedAt(value: string): number {
  return /^\d{1,15}(\.\d+)?$/.test(value) ? Number(value) : Number.NaN
}

/**
 * Redis stores ids as UTF-8, which turns a lone surrogate into U+FFFD, so an id read back by SCAN
 * differs from the one published as JSON. A reader normalises every id it stores or looks up.
 */
export function normalizeId(id: string): string {
  return /[\uD800-\uDFFF]/.test(id) ? Buffer.from(id, 'utf8').toString('utf8') : id
}

/** The message published on the channel: JSON `{ t, id, until }`, plus `revokedAt` for a client. */
export function encodeRevocation(revocation: Revocation): string {
  const { kind: t, id, until } = revocation
  return JSON.stringify(
    revocation.kind === 'client' ? { t, id, until, revokedAt: revocation.revokedAt } : { t, id, until },
  )
}

/** The revocation a message carries, or undefined when it is not one (other fields are dropped). */
export function decodeRevocation(message: string): Revocation | undefined {
  let value: unknown
  try {
    value = JSON.parse(message)
  } catch {
    return undefined
  }
  if (typeof value !== 'object' || value === null) return undefined
  const { t, id, until, revokedAt } = value as Record<string, unknown>
  if (typeof id !== 'string' || typeof until !== 'number') return undefined
  if (t === 'jti' || t === 'kid') return { kind: t, id, until }
  if (t === 'client' && typeof revokedAt === 'number') return { kind: t, id, until, revokedAt }
  return undefined
}

/**
 * Asks Redis directly, every namespace in one round trip. Any failure means "don't know"
 * (DenylistUnavailableError), never "not revoked".
 */
export async function isRevokedInRedis(
  redis: RedisHandle,
  keyPrefix: string,
  token: RevocationQuery,
): Promise<boolean> {
  const keys = [entryKey(keyPrefix, 'jti', token.jti)]
  if (token.kid !== undefined) keys.push(entryKey(keyPrefix, 'kid', token.kid))
  if (token.client_id !== undefined) keys.push(entryKey(keyPrefix, 'client', token.client_id))
  let values: (string | null)[]
  try {
    values = await redis.mget(...keys)
  } catch (err) {
    throw unavailable('cannot check the revocation denylist', err)
  }
  if (values.length !== keys.length) throw unavailable('cannot check the revocation denylist: short reply')
  const clientValue = token.client_id === undefined ? null : (values.pop() ?? null)
  if (values.some((value) => value !== null)) return true
  return clientValue !== null && clientRevocationCovers(parseRevokedAt(clientValue), token.iat)
}
