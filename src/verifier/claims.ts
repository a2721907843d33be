import type { JWTPayload } from 'jose'

import { invalidToken } from './errors.js'
import type { AccessTokenClaims } from './types.js'

/** Longest `jti` accepted: tokensmith's are 22 characters; this bounds denylist keys. */
const MAX_JTI_LENGTH = 256

/** RFC 7519 §2 NumericDate, narrowed to what tokensmith issues: a non-negative safe integer. */
const isEpochSeconds = (value: unknown): value is number =>
  typeof value === 'number' && Number.isSafeInteger(value) && value >= 0

const isString = (value: unknown): value is string => typeof value === 'string'

const isNonEmptyString = (value: unknown): value is string => isString(value) && value.length > 0

/** RFC 7519 §4.1.3: a string, or an array of strings (non-empty: an empty one names no audience). */
const isAudience = (value: unknown): value is string | string[] =>
  Array.isArray(value) ? value.length > 0 && value.every(isString) : isString(value)

/**
 * Checks jose leaves to the caller, on a payload whose signature, `typ`, `iss`, `exp`, `nbf` and,
 * when an audience is required, `aud` jose has already verified:
 * - time claims are finite integers (jose lets `1e309`, i.e. Infinity, and fractions through);
 * - `iat` is not beyond `now + tolerance` (jose checks `iat` only with `maxTokenAge`);
 * - `iss`, `sub`, `client_id`, `jti` are non-empty strings, `jti` of at most 256 characters, and
 *   `sub === client_id` (RFC 9068 §2.2: for client credentials, `sub` names the client itself);
 * - `aud` is a string or a non-empty array of strings (RFC 7519 §4.1.3; jose checks its type only when
 *   given an audience, and the server's own view gives none), `scope` a string when present
 *   (RFC 9068 §2.2.3).
 */
export function checkAccessTokenClaims(payload: JWTPayload, now: number, tolerance: number): AccessTokenClaims {
  const { iss, sub, aud, iat, exp, nbf, jti, scope } = payload
  const clientId = payload.client_id
  if (!isEpochSeconds(iat) || !isEpochSeconds(exp) || (nbf !== undefined && !isEpochSeconds(nbf))) {
    throw invalidToken('claims_invalid')
  }
  if (iat > now + tolerance) throw invalidToken('iat_in_future')
  if (!isNonEmptyString(iss) || !isNonEmptyString(sub) || !isNonEmptyString(clientId)) {
    throw invalidToken('claims_invalid')
  }
  if (!isNonEmptyString(jti) || jti.length > MAX_JTI_LENGTH) throw invalidToken('claims_invalid')
  if (!isAudience(aud)) throw invalidToken('claims_invalid')
  if (scope !== undefined && typeof scope !== 'string') throw invalidToken('claims_invalid')
  // RFC 9068 §2.2: for client credentials, sub names the client itself.
  if (sub !== clientId) throw invalidToken('sub_client_id_mismatch')
  return { ...payload, iss, sub, client_id: clientId, aud, iat, exp, jti } as AccessTokenClaims
}

/**
 * The token's scopes as a list. RFC 6749 §3.3: scope is space-delimited; empty entries carry no meaning.
 *
 * @example
 * ```ts
 * app.get('/reports', (c) => c.json({ canExport: scopesOf(c.get('auth')).includes('reports:export') }))
 * ```
 */
export function scopesOf(claims: Pick<AccessTokenClaims, 'scope'>): string[] {
  return (claims.scope ?? '').split(' ').filter((entry) => entry !== '')
}
