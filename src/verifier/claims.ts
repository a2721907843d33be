import type { JWTPayload } from 'jose'

import { invalidToken } from './errors.js'
import type { AccessTokenClaims } from './types.js'

/** Longest `jti` accepted: tokensmith's are 22 characters; this bounds denylist keys. */
const MAX_JTI_LENGTH = 256

/** RFC 7519 §2 NumericDate, narrowed to what tokensmith issues: a non-negative integer (TF-17). */
const isEpochSeconds = (value: unknown): value is number =>
  typeof value === 'number' && Number.isSafeInteger(value) && value >= 0

const isNonEmptyString = (value: unknown): value is string => typeof value === 'string' && value.length > 0

/**
 * Checks jose leaves to the caller, on a payload whose signature, `typ`, `iss`, `aud`, `exp` and `nbf`
 * jose has already verified:
 * - time claims are finite integers (jose lets `1e309`, i.e. Infinity, and fractions through);
 * - `iat` is not beyond `now + tolerance` (jose checks `iat` only with `maxTokenAge`);
 * - `sub`, `client_id`, `jti` are non-empty strings and `sub === client_id` (RFC 9068 §2.2, TF-23);
 * - `aud` is a string or an array of strings, `scope` a string when present (RFC 9068 §2.2.3).
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
  const audOk = typeof aud === 'string' || (Array.isArray(aud) && aud.every((entry) => typeof entry === 'string'))
  if (!audOk) throw invalidToken('claims_invalid')
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
