import { invalidToken } from './errors.js'
import type { AccessTokenClaims } from './types.js'
import type { VerificationKey, VerifiedAccessToken } from './verify-access-token.js'

/** Default bound on remembered tokens: at most 8 KiB each, so a few MiB at worst. */
export const DEFAULT_TOKEN_CACHE_ENTRIES = 1000

interface Entry extends VerifiedAccessToken {
  /** The key the signature was verified against; another one (a JWKS refresh) means verify again. */
  key: VerificationKey
}

/**
 * Tokens whose signature and claims have been verified, by their exact compact serialization.
 *
 * A machine client sends the same token on every call until it nears expiry, and the signature check is
 * by far the largest cost of a protected request. The outcome of that check depends only on the token's
 * bytes and the key, so it is remembered per token and per key (a whole JWK Set, for `bearerAuth`);
 * everything that depends on the moment is checked again on every request: the time claims (`exp`,
 * `nbf`, `iat` with the tolerance, RFC 7519 §4.1.4, §4.1.5), the key still in use, and, by the caller,
 * the denylist and the scopes.
 * Only tokens that verified are remembered, so a forged token never takes a place; the oldest entry
 * makes room for a new one.
 */
export interface TokenCache {
  /** The claims of a remembered token if they may be used at `now` with this `key`; else undefined. */
  get(token: string, key: VerificationKey, now: number): VerifiedAccessToken | undefined
  remember(token: string, key: VerificationKey, verified: VerifiedAccessToken): void
  readonly size: number
}

/**
 * RFC 7519 §4.1.5 / §4.1.4 with `tolerance` seconds of leeway, in jose's order and with its bounds
 * (`nbf > now + tolerance` is not yet valid, `exp <= now - tolerance` is expired), then an `iat` in the
 * future, as `checkAccessTokenClaims` refuses it.
 */
export function checkTokenTimes(claims: AccessTokenClaims, now: number, tolerance: number): void {
  if (claims.nbf !== undefined && claims.nbf > now + tolerance) throw invalidToken('nbf_in_future')
  if (claims.exp <= now - tolerance) throw invalidToken('expired')
  if (claims.iat > now + tolerance) throw invalidToken('iat_in_future')
}

/** Claims handed to every request that presents the token: no handler may change them for the next. */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const member of Object.values(value)) deepFreeze(member)
  }
  return value
}

export function createTokenCache(maxEntries: number, tolerance: number): TokenCache {
  const entries = new Map<string, Entry>()
  return {
    get(token, key, now) {
      const entry = entries.get(token)
      if (entry === undefined) return undefined
      if (entry.key !== key) {
        entries.delete(token)
        return undefined
      }
      try {
        checkTokenTimes(entry.claims, now, tolerance)
      } catch (error) {
        // The same refusal a fresh verification gives; the entry goes, as it is of no further use.
        entries.delete(token)
        throw error
      }
      return entry
    },
    remember(token, key, { claims, kid }) {
      const oldest = entries.keys().next()
      if (entries.size >= maxEntries && !oldest.done) entries.delete(oldest.value)
      entries.set(token, { claims: deepFreeze(claims), kid, key })
    },
    get size() {
      return entries.size
    },
  }
}
