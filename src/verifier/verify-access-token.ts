import {
  errors as joseErrors,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
  type JWTVerifyResult,
  type KeyInput,
} from 'jose'

import { checkAccessTokenClaims } from './claims.js'
import { assertCompactJws, readProtectedHeader, type CompactHeader } from './compact-jws.js'
import { invalidToken, type RejectReason } from './errors.js'
import type { TokenCache } from './token-cache.js'
import type { AccessTokenClaims } from './types.js'

/** RFC 9068 §2.2: every claim tokensmith issues, besides the optional `scope`. */
const REQUIRED_CLAIMS = ['iss', 'aud', 'exp', 'iat', 'jti', 'sub', 'client_id']

/** The key a token's signature is checked against, found from its protected header. */
export interface VerificationKey {
  /** A public key, or jose's resolver over a JWK Set (it matches `kid`, `alg`, `kty`, `crv` and `use`). */
  readonly key: KeyInput | JWTVerifyGetKey
  /**
   * The algorithms this key verifies, when narrower than the allowlist: a key bound to its own `alg`
   * (RFC 8725 §3.1), so the header cannot pick another one the allowlist also holds.
   */
  readonly algorithms?: readonly string[]
}

/**
 * Finds the key for a header whose `alg` is on the allowlist and whose `kid` is well formed. Throws a
 * `BearerError`: `invalid_token` (`unknown_kid`) when no key has that `kid`, `temporarily_unavailable`
 * when the keys cannot be had right now.
 */
export type KeyResolver = (header: CompactHeader) => VerificationKey | Promise<VerificationKey>

/** What `verifyAccessToken` needs: the rules a token must meet, where its key comes from, and the time. */
export interface AccessTokenVerifierDeps {
  /** Exact, byte-equal `iss` (RFC 9068 §4). */
  issuer: string
  /** `aud` must contain one of these (RFC 9068 §4). `undefined` accepts any audience: the issuer's own view. */
  audience: readonly string[] | undefined
  /** The `alg` allowlist, checked on the header before any key is looked up (RFC 8725 §3.1). */
  algorithms: ReadonlySet<string>
  /** Seconds of leeway for `exp`, `nbf` and a future `iat` (RFC 7519 §4.1.4, §4.1.5). */
  clockTolerance: number
  /** Epoch seconds; read once the key is found, so a slow JWKS fetch does not age the token. */
  clock: () => number
  resolveKey: KeyResolver
  /** Verified tokens by their exact text; a remembered one skips only the signature check. */
  cache?: TokenCache
}

/** A token that passed every check: its claims, and the `kid` of the key that signed it. */
export interface VerifiedAccessToken {
  claims: AccessTokenClaims
  kid: string
}

/**
 * jose's local set throws `JWKSMultipleMatchingKeys` when a `kid` is published twice (say, once per
 * algorithm); it then yields each candidate, and the first whose signature verifies wins.
 */
export async function verifySignature(
  token: string,
  key: VerificationKey['key'],
  options: JWTVerifyOptions,
): Promise<JWTVerifyResult> {
  try {
    return await jwtVerify(token, key, options)
  } catch (error) {
    if (!(error instanceof joseErrors.JWKSMultipleMatchingKeys)) throw error
    for await (const candidate of error) {
      try {
        return await jwtVerify(token, candidate, options)
      } catch (inner) {
        if (!(inner instanceof joseErrors.JWSSignatureVerificationFailed)) throw inner
      }
    }
    throw new joseErrors.JWSSignatureVerificationFailed()
  }
}

/** A fixed label for a jose failure, so operators can tell a clock problem from a forgery (`onReject`). */
function joseReason(error: unknown): RejectReason {
  if (error instanceof joseErrors.JWTExpired) return 'expired'
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return 'bad_signature'
  if (error instanceof joseErrors.JWKSNoMatchingKey) return 'no_matching_key'
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return 'alg_not_allowed'
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    if (error.reason === 'missing') return 'claim_missing'
    if (error.claim === 'typ') return 'typ_mismatch'
    if (error.claim === 'iss') return 'iss_mismatch'
    if (error.claim === 'aud') return 'aud_mismatch'
    if (error.claim === 'nbf') return 'nbf_in_future'
    return 'claims_invalid'
  }
  return 'signature_or_claims'
}

/**
 * Verifies an RFC 9068 JWT access token: the one verification core of tokensmith, used by `bearerAuth`
 * at resource servers and by the server itself (revocation, introspection, the token CLI).
 *
 * In order: the canonical JWS compact serialization and the 8 KiB cap, the protected header (`alg` on
 * the allowlist, a well-formed `kid`, no key-carrying or `crit` parameter), the key, then the signature
 * together with `typ` `at+jwt`, `iss`, `aud`, `exp` and `nbf` (jose), then the claim shapes
 * (`checkAccessTokenClaims`). Nothing in the payload is read before the signature verified. A token in
 * `cache`, verified before against the same key, skips only the signature; its times are checked again.
 *
 * Throws a `BearerError` for every refusal: `invalid_token` with a fixed `reason`, or whatever
 * `resolveKey` threw.
 */
export async function verifyAccessToken(deps: AccessTokenVerifierDeps, token: string): Promise<VerifiedAccessToken> {
  assertCompactJws(token)
  const header = readProtectedHeader(token, deps.algorithms)
  const key = await deps.resolveKey(header)
  const now = Math.floor(deps.clock())
  const remembered = deps.cache?.get(token, key, now)
  if (remembered) return remembered
  const options: JWTVerifyOptions = {
    algorithms: key.algorithms ? key.algorithms.filter((alg) => deps.algorithms.has(alg)) : [...deps.algorithms],
    typ: 'at+jwt', // RFC 9068 §4: explicit typing (RFC 8725 §3.11)
    issuer: deps.issuer,
    audience: deps.audience && [...deps.audience],
    requiredClaims: REQUIRED_CLAIMS,
    clockTolerance: deps.clockTolerance,
    currentDate: new Date(now * 1000),
  }
  let payload: JWTPayload
  try {
    payload = (await verifySignature(token, key.key, options)).payload
  } catch (cause) {
    throw invalidToken(joseReason(cause), cause)
  }
  const verified = { claims: checkAccessTokenClaims(payload, now, deps.clockTolerance), kid: header.kid }
  deps.cache?.remember(token, key, verified)
  return verified
}
