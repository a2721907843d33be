/**
 * The revocation denylist (RFC 7009 revocation for self-contained RFC 9068 tokens): a token stays
 * valid until `exp`, so revoking it means remembering its `jti` until `exp` plus the verifiers'
 * clock tolerance, since a verifier still accepts it that long after `exp`. Revoking a `kid`
 * revokes every token signed by that key. Revoking a client revokes every token issued to it up to
 * an instant.
 *
 * Implementations: `memory.ts` (a single instance) and `redis.ts` (shared, written in the format
 * of `protocol.ts`); `revocation-feed.ts` is the resource-server side that answers from a local
 * copy kept current over pub/sub.
 */

import type { RedisHandle } from './redis-target.js'

/** What a verifier knows of a token when it asks whether the token is revoked. */
export interface RevocationQuery {
  jti: string
  kid?: string
  /** With `iat`, lets a client-wide revocation apply. A listed client without `iat` counts as revoked. */
  client_id?: string
  /** Epoch seconds (RFC 7519 §4.1.6). */
  iat?: number
}

/** What a verifier needs: is this token (by jti), its signing key (by kid) or its client (by client_id and iat) revoked? */
export interface RevocationCheck {
  /** Throws DenylistUnavailableError when it cannot answer. Never returns false for "don't know". */
  isRevoked(token: RevocationQuery): Promise<boolean>
}

/** Counts a revocation against the client that asked for it (see `revokeToken`). */
export interface RevocationOwner {
  clientId: string
  /** How many live revocations this client may hold; a new one past it is refused. */
  limit: number
}

export interface Denylist extends RevocationCheck {
  readonly kind: 'memory' | 'redis'
  /**
   * The Redis connection and key prefix of a Redis denylist (undefined in memory), for the other state
   * instances share in the same store: rate-limit counters and quotas. Keys go under `keyPrefix`, never
   * under the entry kinds of protocol.ts, and always with a TTL.
   */
  readonly shared?: { readonly redis: RedisHandle; readonly keyPrefix: string }
  /**
   * Revoke one token until `until` (epoch seconds; the caller already added the verifiers' clock
   * tolerance: the entry lives until exp + tolerance). Idempotent; a second call never
   * shortens the remaining lifetime. `until` <= now is a no-op. Throws DenylistUnavailableError if
   * the write cannot be confirmed.
   *
   * With `owner`, the new entry counts against that client's live revocations, so one client
   * cannot fill the table everyone shares: past `owner.limit` it throws RevocationLimitError and
   * writes nothing. A jti that is already revoked is not a new entry: it never counts twice and
   * is never refused. Counting and writing are one atomic step.
   */
  revokeToken(jti: string, until: number, owner?: RevocationOwner): Promise<void>
  /** Emergency: every token signed by this key is revoked until `until`. Same semantics. */
  revokeKey(kid: string, until: number): Promise<void>
  /**
   * Every token issued to `clientId` at or before `revokedAt` (its `iat`, epoch seconds) is
   * revoked until `until`: the client was deleted, or its tokens revoked. Tokens issued later stay
   * valid. Idempotent; a second call keeps the later `revokedAt` (it covers every token the earlier
   * one did, and more) and the later `until`. `until` <= now is a no-op. Throws
   * DenylistUnavailableError if the write cannot be confirmed.
   */
  revokeClient(clientId: string, revokedAt: number, until: number): Promise<void>
  /**
   * A replay cache kept in this denylist's store, so every instance on one Redis shares it: a `jti`
   * used once at any instance is a replay at all of them (RFC 7523 §3 item 7, RFC 7519 §4.1.7). Each
   * namespace (`client-assertion`, `federation`, `dpop`, ...) keeps its own records; calls with the same
   * namespace share them. Throws on a namespace outside `REPLAY_NAMESPACE`: it is our own code.
   * A cache that cannot record throws DenylistUnavailableError, so the caller refuses with a 503.
   */
  replayCache(namespace: string): StoredReplayCache
  /** Resolves when the backend answers, rejects with DenylistUnavailableError otherwise (used by /readyz). */
  ping(): Promise<void>
  close(): Promise<void>
}

/**
 * `ReplayCache` of `src/oauth/replay-cache.ts` (read its contract there), restated because resource
 * servers import this file without the server's modules (test/unit/denylist/import-boundary.test.ts).
 * The two are the same type: test/unit/denylist/replay-cache-namespace.test.ts checks it.
 */
export interface StoredReplayCache {
  useOnce(clientId: string, jti: string, until: number): Promise<boolean>
}

/** Replay cache namespaces: short, lower case, safe inside a Redis key. */
export const REPLAY_NAMESPACE = /^[a-z0-9-]{1,32}$/

export function assertReplayNamespace(namespace: string): void {
  if (!REPLAY_NAMESPACE.test(namespace))
    throw new RangeError(`replay cache namespace must match ${REPLAY_NAMESPACE}, got ${JSON.stringify(namespace)}`)
}

/**
 * The denylist cannot answer or cannot confirm a write. Callers map it to 503
 * `temporarily_unavailable`: "don't know" is never "not revoked" (so never a silent pass), and
 * never the client's fault (so never a 401).
 */
export class DenylistUnavailableError extends Error {
  override name = 'DenylistUnavailableError'
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
  }
}

/** The client already holds as many live revocations as it may; nothing was written. */
export class RevocationLimitError extends Error {
  override name = 'RevocationLimitError'
  /** Seconds until the client's oldest live revocation expires and makes room; at least 1. */
  readonly retryAfter: number
  constructor(clientId: string, limit: number, retryAfter: number) {
    super(`client ${clientId} holds ${limit} live revocations, the most it may`)
    this.retryAfter = Math.max(1, Math.ceil(retryAfter))
  }
}

/** Entries for tokens, keys and clients never share a namespace: a jti equal to some kid revokes nothing else. */
export type EntryKind = 'jti' | 'kid' | 'client'

/** `until` comes from our own code (exp + clock tolerance), so a non-finite value is a bug, not an outage. */
export function assertUntil(until: number): void {
  if (!Number.isFinite(until)) throw new RangeError(`revocation "until" must be a finite number, got ${until}`)
}

/** Same for a client revocation's instant. */
export function assertRevokedAt(revokedAt: number): void {
  if (!Number.isFinite(revokedAt))
    throw new RangeError(`client revocation instant must be a finite number, got ${revokedAt}`)
}

/**
 * Whether a client-wide revocation made at `revokedAt` covers this token. `iat` has whole
 * seconds, so a token issued in the very second of the revocation is covered too: it cannot be
 * told apart from one issued just before. Without `iat` (or with a `revokedAt` that is not a
 * number, written by hand) the token counts as covered.
 */
export function clientRevocationCovers(revokedAt: number, iat: number | undefined): boolean {
  return iat === undefined || Number.isNaN(revokedAt) || iat <= revokedAt
}
