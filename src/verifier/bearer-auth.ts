import type { Context, MiddlewareHandler } from 'hono'

import { bareChallenge, errorResponseParts } from './challenge.js'
import { scopesOf } from './claims.js'
import { extractBearerToken } from './credentials.js'
import { BearerError, insufficientScope, invalidToken, temporarilyUnavailable } from './errors.js'
import { createLocalKeySource, createRemoteKeySource, type KeySource } from './key-source.js'
import { DENYLIST_RETRY_AFTER, resolveOptions, type ResolvedOptions } from './options.js'
import { createTokenCache } from './token-cache.js'
import type { AccessTokenClaims, BearerAuthOptions, BearerAuthStats, BearerAuthVariables } from './types.js'
import { verifyAccessToken, type AccessTokenVerifierDeps } from './verify-access-token.js'

/** The middleware, plus counters for metrics. */
export type BearerAuthMiddleware = MiddlewareHandler<{ Variables: BearerAuthVariables }> & {
  stats(): BearerAuthStats
}

function createKeySource(options: ResolvedOptions): KeySource {
  if (options.jwks.kind === 'local') return createLocalKeySource(options.jwks.set)
  return createRemoteKeySource({ ...options.jwks, fetch: options.fetch, clock: options.clock })
}

/**
 * Hono middleware for resource servers: verifies tokensmith's RFC 9068 JWT access tokens offline and puts
 * the verified claims on the context as `auth`. This comment is the verifier's contract; the README
 * summarises it.
 *
 * **Credentials** (RFC 6750 §2). Only the `Authorization: Bearer` header carries a token (the scheme is
 * case-insensitive, RFC 9110 §11.1). The request body is never read: it is unauthenticated and may be
 * of any size, so the middleware leaves it, `access_token` included, to the handler.
 *
 * **Checks**, in order; the first that fails decides the answer. Nothing in the payload is read before
 * the signature verified.
 * 1. The token is exactly a canonical JWS compact serialization of at most 8 KiB (RFC 7515 §7.1): not
 *    2, 4 or 5 segments, no `=` padding, no `+` or `/`, no trailing dot, no non-zero trailing bits.
 * 2. The protected header names an `alg` on the allowlist (RFC 8725 §3.1; `DEFAULT_ALGORITHMS`, never
 *    `none` or `HS*`) and a printable-ASCII `kid` of at most 256 characters; `jku`, `x5u`, `jwk`, `x5c`,
 *    `crit` and `b64` are refused outright (the issuer never emits them; RFC 8725 §3.10).
 * 3. The `kid` is in the JWK Set (`jwks`), and the key's own algorithm matches.
 * 4. The signature, `typ` `at+jwt` (RFC 9068 §4, RFC 8725 §3.11; case-insensitive, `application/`
 *    prefix allowed), the exact `iss`, an `aud` containing one configured audience, `exp` and `nbf` with
 *    `clockTolerance`.
 * 5. Every RFC 9068 §2.2 claim is present (`iss aud exp iat jti sub client_id`), times are non-negative
 *    integers, `iat` is not beyond now plus the tolerance, `sub === client_id`, `scope` is a string.
 * 6. The `denylist`, asked with the token's `jti`, its `kid`, and its `client_id` and `iat` (a client
 *    deleted, or whose tokens were revoked, has every token issued up to that instant refused).
 * 7. Every scope in `scopes` is granted (RFC 6749 §3.3: `scope` is space-delimited).
 *
 * **Answers**, all with `Cache-Control: no-store` (RFC 6750 §3):
 * - no Bearer credentials (no header, another scheme, a token only in `?access_token=` or in the body)
 *   → 401, `WWW-Authenticate: Bearer realm="…"` without `error` (§3.1), empty body;
 * - a malformed header (empty value, characters outside `b64token`, §2.1), or a header token and
 *   `?access_token=` together (§2: one method per request) → 400 `invalid_request`;
 * - a token failing checks 1 to 6 → 401 `invalid_token`;
 * - a required scope missing → 403 `insufficient_scope` with `scope="…"`;
 * - the denylist cannot answer, or no trustworthy JWK Set can be had → 503 `temporarily_unavailable`
 *   with `Retry-After` and no challenge: never 401, which would make clients discard good tokens, and
 *   never a silent pass. With `failOpen` (denylist only) the request passes instead, `onFailOpen` is
 *   called and the pass counted in `stats().failOpenPasses`.
 * The JSON body is `{"error":"<code>"}`; `onReject` gets a fixed `reason` label, never token bytes.
 *
 * **Remote JWK Set** (`jwks: { uri }`). A fetched set is refreshed on the next request once older than
 * `cacheMaxAge`. A token naming an unknown `kid` (a key published since the last fetch) triggers a
 * refetch; fetch attempts, whatever their cause, are at least `cooldown` apart and concurrent requests
 * share one, so random `kid`s cannot drive fetches. A fetch follows no redirect, is aborted after
 * `timeout` and cut at `maxBytes`. The whole set is refused when a key has `use` other than `sig`, is
 * symmetric or holds private material; keys without `kid` are ignored. After failed refreshes the last
 * good set stays in use until it is `maxStale` old, then 503; an unknown `kid` while the latest fetch
 * failed is 503 too. A clock stepped backwards counts as the timers having run out.
 *
 * **Token cache** (`tokenCache`). A token that verified is remembered by its exact text and key set; a
 * repeat skips only the signature check. Its times, key set, denylist entry and scopes are checked on
 * every request, and its claims are frozen.
 *
 * **Recorded behaviours.** ECDSA signatures are not normalised to low-S: `(r, n − s)` verifies too,
 * and since revocation keys on `jti`, both spellings share the token's fate. Duplicate JSON members are
 * last-wins, as in `JSON.parse` and jose; the signature covers the text either way.
 *
 * Defaults are in `BEARER_AUTH_DEFAULTS` and `DEFAULT_ALGORITHMS`. Bad options throw a `TypeError` at
 * start-up; creating the middleware does no I/O.
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
 *   jwks: { uri: 'https://auth.example.com/.well-known/jwks.json' },
 *   scopes: ['reports:read'],
 * }))
 * app.get('/reports/latest', (c) => c.json({ client: c.get('auth').client_id }))
 * ```
 */
export function bearerAuth(options: BearerAuthOptions): BearerAuthMiddleware {
  const config = resolveOptions(options)
  const keys = createKeySource(config)
  const cache =
    config.tokenCacheEntries > 0 ? createTokenCache(config.tokenCacheEntries, config.clockTolerance) : undefined
  const verifier: AccessTokenVerifierDeps = {
    issuer: config.issuer,
    audience: config.audience,
    algorithms: config.algorithms,
    clockTolerance: config.clockTolerance,
    clock: config.clock,
    resolveKey: ({ kid }) => keys.setFor(kid),
    cache,
  }
  let failOpenPasses = 0

  /** Revocation keys on `jti`: every spelling of a token's signature shares its fate. */
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
      const verified = await verifyAccessToken(verifier, token)
      claims = verified.claims
      await checkRevocation(claims, verified.kid)
      checkScopes(claims)
    } catch (error) {
      // Anything unexpected inside verification is still a refusal of the token, never a 500 or a pass.
      return reject(c, error instanceof BearerError ? error : invalidToken('signature_or_claims', error))
    }
    c.set('auth', claims)
    return next()
  }

  return Object.assign(middleware, {
    stats: (): BearerAuthStats => ({ failOpenPasses, jwksFetches: keys.fetches(), cachedTokens: cache?.size ?? 0 }),
  })
}
