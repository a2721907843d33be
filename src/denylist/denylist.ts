/**
 * The revocation denylist (RFC 7009 revocation for self-contained RFC 9068 tokens): a token stays
 * valid until `exp`, so revoking it means remembering its `jti` until `exp` plus the verifiers'
 * clock tolerance (checklist decision 5). Revoking a `kid` revokes every token signed by that key.
 *
 * Implementations: `memory.ts` (single instance, RV-8) and `redis.ts` (shared; `feed.ts` is the
 * resource-server side that answers from a local copy kept current over pub/sub).
 */

/** What a verifier needs: is this token (by jti) or its signing key (by kid) revoked? */
export interface RevocationCheck {
  /** Throws DenylistUnavailableError when it cannot answer. Never returns false for "don't know". */
  isRevoked(token: { jti: string; kid?: string }): Promise<boolean>
}

export interface Denylist extends RevocationCheck {
  readonly kind: 'memory' | 'redis'
  /**
   * Revoke one token until `until` (epoch seconds; the caller already added the verifiers' clock
   * tolerance: entry lives until exp + T, checklist decision 5). Idempotent; a second call never
   * shortens the remaining lifetime. `until` <= now is a no-op. Throws DenylistUnavailableError if
   * the write cannot be confirmed.
   */
  revokeToken(jti: string, until: number): Promise<void>
  /** Emergency: every token signed by this key is revoked until `until`. Same semantics. */
  revokeKey(kid: string, until: number): Promise<void>
  /** Resolves when the backend answers, rejects with DenylistUnavailableError otherwise (used by /readyz). */
  ping(): Promise<void>
  close(): Promise<void>
}

/**
 * The denylist cannot answer or cannot confirm a write. Callers map it to 503
 * `temporarily_unavailable` (checklist decision 4): never to 401, never to a silent pass.
 */
export class DenylistUnavailableError extends Error {
  override name = 'DenylistUnavailableError'
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
  }
}

/** Entries for tokens and for keys never share a namespace: a jti equal to some kid revokes nothing else. */
export type EntryKind = 'jti' | 'kid'

/** `until` comes from our own code (exp + T), so a non-finite value is a bug, not an outage. */
export function assertUntil(until: number): void {
  if (!Number.isFinite(until)) throw new RangeError(`revocation "until" must be a finite number, got ${until}`)
}
