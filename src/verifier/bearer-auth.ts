import { errors as joseErrors, jwtVerify, type JWTVerifyGetKey, type JWTVerifyOptions, type JWTPayload } from 'jose'
import type { Context, MiddlewareHandler } from 'hono'

import { bareChallenge, errorResponseParts } from './challenge.js'
import { checkAccessTokenClaims, scopesOf } from './claims.js'
import { assertCompactJws, readProtectedHeader } from './compact-jws.js'
import { extractBearerToken } from './credentials.js'
import { BearerError, insufficientScope, invalidToken, temporarilyUnavailable, type RejectReason } from './errors.js'
import { createLocalKeySource, createRemoteKeySource, type KeySource } from './key-source.js'
import { createTokenCache } from './token-cache.js'
import { DENYLIST_RETRY_AFTER, resolveOptions, type ResolvedOptions } from './options.js'
import type { AccessTokenClaims, BearerAuthOptions, BearerAuthStats, BearerAuthVariables } from './types.js'

/** RFC 9068 §2.2: every claim tokensmith issues, besides the optional `scope`. */
const REQUIRED_CLAIMS = ['iss', 'aud', 'exp', 'iat', 'jti', 'sub', 'client_id']

/** The middleware, plus counters for metrics. */
export type BearerAuthMiddleware = MiddlewareHandler<{ Variables: BearerAuthVariables }> & {
  stats(): BearerAuthStats
}

function createKeySource(options: ResolvedOptions): KeySource {
  if (options.keys.kind === 'local') return createLocalKeySource(options.keys.set)
  return createRemoteKeySource({
    url: options.keys.url,
    fetch: options.fetch,
    clock: options.clock,
    cacheMaxAge: options.jwksCacheMaxAge,
    cooldown: options.jwksCooldown,
    timeout: options.jwksTimeout,
    maxBytes: options.jwksMaxBytes,
    maxStale: options.jwksMaxStale,
  })
}

/**
 * jose's local set throws `JWKSMultipleMatchingKeys` when a `kid` is published twice (say, once per
 * algorithm); it then yields each candidate, and the first whose signature verifies wins.
 */
async function verifyWithSet(token: string, getKey: JWTVerifyGetKey, options: JWTVerifyOptions): Promise<JWTPayload> {
  try {
    return (await jwtVerify(token, getKey, options)).payload
  } catch (error) {
    if (!(error instanceof joseErrors.JWKSMultipleMatchingKeys)) throw error
    for await (const key of error) {
      try {
        return (await jwtVerify(token, key, options)).payload
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
 * Hono middleware for resource servers: verifies tokensmith's RFC 9068 JWT access tokens offline and puts
 * the verified claims on the context as `auth`.
 *
 * Answers (RFC 6750 §3, §3.1; decisions 4 and 8 of the security checklist), all with `Cache-Control: no-store`:
 * - no Bearer credentials (no header, another scheme, a token only in `?access_token=` or in the
 *   body) → 401, `WWW-Authenticate: Bearer realm="…"` without `error`, empty body;
 * - a malformed header (empty value, characters outside `b64token`), or a header token and
 *   `?access_token=` together → 400 `invalid_request`. The request body is never read: the
 *   middleware reads no unauthenticated body of unknown size, and leaves the body to the handler;
 * - a token that is not exactly a canonical JWS compact serialization, or fails any check → 401
 *   `invalid_token`. The checks are the RFC 9068 §4 / RFC 8725 set: `alg` on the allowlist, `typ` `at+jwt`
 *   (jose: case-insensitive, `application/` prefix allowed), signature, exact `iss`, `aud` containing one
 *   configured audience, `exp`/`nbf`/`iat` with `clockTolerance`, every claim present, integer times,
 *   `sub === client_id`, then the denylist;
 * - a required scope missing → 403 `insufficient_scope` with `scope="…"`;
 * - denylist or JWKS unable to answer → 503 `temporarily_unavailable` with `Retry-After`, unless
 *   `failOpen` (denylist only), which passes, calls `onFailOpen` and counts.
 *
 * Defaults: algorithms ES256, EdDSA, RS256, PS256; clockTolerance 30 s; realm `tokensmith`; JWKS cache
 * max age 600 s, cooldown 30 s, timeout 5 s, 64 KiB cap, max stale age 3,600 s. Throws `TypeError` on bad
 * options, at start-up.
 *
 * @example
 * ```ts
 * import { Hono } from 'hono'
 * import { bearerAuth, type BearerAuthVariables } from 'tokensmith/verifier'
 *
 * const app = new Hono<{ Variables: BearerAuthVariables }>()
 * app.use('/reports/*', bearerAuth({
 *   issuer: 'https://auth.example.com',
 *   audience: 'https://api.example.com',
 *   jwksUri: 'https://auth.example.com/.well-known/jwks.json',
 *   scopes: ['reports:read'],
 * }))
 * app.get('/reports/latest', (c) => c.json({ client: c.get('auth').client_id }))
 * ```
 */
export function bearerAuth(options: BearerAuthOptions): BearerAuthMiddleware {
  const config = resolveOptions(options)
  const keys = createKeySource(config)
  const cache = config.tokenCacheEntries > 0 ? createTokenCache(config.tokenCacheEntries, config.clockTolerance) : undefined
  let failOpenPasses = 0

  const verifyOptions = (now: number): JWTVerifyOptions => ({
    algorithms: [...config.algorithms],
    typ: 'at+jwt', // RFC 9068 §4: explicit typing (RFC 8725 §3.11)
    issuer: config.issuer,
    audience: config.audience,
    requiredClaims: REQUIRED_CLAIMS,
    clockTolerance: config.clockTolerance,
    currentDate: new Date(now * 1000),
  })

  /**
   * Signature first, then claims: nothing in the payload is read before jose has verified it. A token
   * verified before against the same key set skips the signature; its times are checked again.
   */
  async function verify(token: string): Promise<{ claims: AccessTokenClaims; kid: string }> {
    assertCompactJws(token)
    const { kid } = readProtectedHeader(token, config.algorithms)
    const set = await keys.setFor(kid)
    const now = Math.floor(config.clock())
    const remembered = cache?.get(token, set, now)
    if (remembered) return remembered
    let payload: JWTPayload
    try {
      payload = await verifyWithSet(token, set.getKey, verifyOptions(now))
    } catch (cause) {
      throw invalidToken(joseReason(cause), cause)
    }
    const verified = { claims: checkAccessTokenClaims(payload, now, config.clockTolerance), kid }
    cache?.remember(token, set, verified)
    return verified
  }

  /** Revocation keys on `jti` (TF-9): every spelling of a token's signature shares its fate. */
  async function checkRevocation(claims: AccessTokenClaims, kid: string): Promise<void> {
    if (!config.denylist) return
    let revoked: boolean
    try {
      // Also by signing key, and by client with `iat` (a deleted client, or one whose tokens were revoked).
      revoked = await config.denylist.isRevoked({ jti: claims.jti, kid, client_id: claims.client_id, iat: claims.iat })
      // Only a boolean is an answer; anything else from a broken implementation is "cannot answer".
      if (typeof revoked !== 'boolean') throw new TypeError('isRevoked answered a non-boolean')
    } catch (error) {
      if (!config.failOpen) throw temporarilyUnavailable('denylist_unavailable', DENYLIST_RETRY_AFTER, error)
      failOpenPasses += 1
      try {
        config.onFailOpen?.({ jti: claims.jti, kid, clientId: claims.client_id, count: failOpenPasses, error })
      } catch {
        // A failing logger must not turn an explicit fail-open decision into a 500.
      }
      return
    }
    if (revoked) throw invalidToken('revoked')
  }

  function checkScopes(claims: AccessTokenClaims): void {
    const granted = new Set(scopesOf(claims))
    if (!config.scopes.every((scope) => granted.has(scope))) throw insufficientScope()
  }

  function reject(c: Context, error: BearerError | undefined): Response {
    try {
      config.onReject?.({ status: error?.status ?? 401, error: error?.code, reason: error?.reason ?? 'no_credentials' })
    } catch {
      // Observability hooks never change the answer.
    }
    if (!error) {
      // RFC 6750 §3.1: no credentials → no error code, so no body either.
      return c.body(null, 401, { 'WWW-Authenticate': bareChallenge(config.realm), 'Cache-Control': 'no-store' })
    }
    const { status, headers, body } = errorResponseParts(config.realm, error, config.scopes)
    return c.body(body, status, headers)
  }

  const middleware: MiddlewareHandler<{ Variables: BearerAuthVariables }> = async (c, next) => {
    let claims: AccessTokenClaims
    try {
      // Header and query string only: the unauthenticated body is never read (any size, any rate).
      const token = extractBearerToken({
        authorization: c.req.header('authorization'),
        queryHasToken: c.req.query('access_token') !== undefined,
      })
      if (token === undefined) return reject(c, undefined)
      const verified = await verify(token)
      claims = verified.claims
      await checkRevocation(claims, verified.kid)
      checkScopes(claims)
    } catch (error) {
      // Anything unexpected inside verification is still a refusal of the token, never a 500 or a pass.
      return reject(c, error instanceof BearerError ? error : invalidToken('signature_or_claims', error))
    }
    c.set('auth', claims)
    await next()
  }

  return Object.assign(middleware, {
    stats: (): BearerAuthStats => ({ failOpenPasses, jwksFetches: keys.fetches(), cachedTokens: cache?.size ?? 0 }),
  })
}
