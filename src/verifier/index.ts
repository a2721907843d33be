/**
 * `tokensmith/verifier`: Hono middleware for resource servers that accept tokensmith's RFC 9068 JWT
 * access tokens, verified offline. See {@link bearerAuth} for the full contract.
 *
 * Choices worth knowing (security checklist section B and decision 10):
 * - Only the `Authorization` header carries tokens. A value outside RFC 6750 §2.1 `b64token` (spaces,
 *   quotes, a JWS JSON serialization) is a malformed request → 400 `invalid_request`. A well-formed
 *   `b64token` that is not exactly a canonical JWS compact serialization (2, 4 or 5 segments, `=`
 *   padding, `+`/`/`, a trailing dot, non-zero trailing bits, over 8 KiB) is a bad token → 401
 *   `invalid_token`.
 * - The protected header must name an allowed `alg` and a printable-ASCII `kid` of at most 256
 *   characters; `jku`, `x5u`, `jwk`, `x5c`, `crit` and `b64` are refused outright (never emitted by the AS).
 * - Duplicate JSON members are last-wins, as in `JSON.parse` and jose; the signature covers the text.
 * - ECDSA signatures are not normalised to low-S (TF-9): `(r, n − s)` verifies too. Revocation keys on
 *   `jti`, so both spellings share the token's fate.
 * - The `denylist` is asked with the token's `jti`, its `kid`, and its `client_id` and `iat`: a client
 *   that was deleted, or whose tokens were revoked, has every token issued up to that instant
 *   refused (a token issued in that very second too, `iat` having whole seconds).
 * - The remote JWKS is refused as a whole when a key has `use` other than `sig`, is symmetric or holds
 *   private material; keys without `kid` are ignored.
 *
 * @example
 * ```ts
 * import { bearerAuth } from 'tokensmith/verifier'
 * app.use('/api/*', bearerAuth({ issuer, audience: 'https://api.example.com', jwksUri: `${issuer}/.well-known/jwks.json` }))
 * ```
 */
export { bearerAuth, type BearerAuthMiddleware } from './bearer-auth.js'
export { scopesOf } from './claims.js'
export type { BearerErrorCode, RejectReason } from './errors.js'
export { BEARER_AUTH_DEFAULTS, DEFAULT_ALGORITHMS } from './options.js'
export type {
  AccessTokenClaims,
  BearerAuthOptions,
  BearerAuthStats,
  BearerAuthVariables,
  FailOpenInfo,
  RejectInfo,
  RevocationCheck,
} from './types.js'
