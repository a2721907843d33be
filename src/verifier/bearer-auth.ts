import type { Context, MiddlewareHandler } from 'hono'

import { bareChallenge, type ChallengeSettings, errorResponseParts } from './challenge.js'
import { scopesOf } from './claims.js'
import { extractCredentials, schemeOf } from './credentials.js'
import { DpopRejected, type DpopReplay, verifyDpopProof } from './dpop.js'
import {
  type AuthScheme,
  BearerError,
  insufficientScope,
  invalidDpopProof,
  invalidToken,
  temporarilyUnavailable,
} from './errors.js'
import { createLocalKeySource, createRemoteKeySource, type KeySource } from './key-source.js'
import {
  DENYLIST_RETRY_AFTER,
  DPOP_REPLAY_RETRY_AFTER,
  type ResolvedDpop,
  resolveOptions,
  type ResolvedOptions,
} from './options.js'
import { createTokenCache } from './token-cache.js'
import type {
  AccessTokenClaims,
  BearerAuthOptions,
  BearerAuthStats,
  BearerAuthVariables,
  DpopProofContext,
} from './types.js'
import { verifyAccessToken, type AccessTokenVerifierDeps } from './verify-access-token.js'

/** The middleware, plus counters for metrics. */
export type BearerAuthMiddleware = MiddlewareHandler<{ Variables: BearerAuthVariables }> & {
  stats(): BearerAuthStats
}

function createKeySource(options: ResolvedOptions): KeySource {
  if (options.jwks.kind === 'local') return createLocalKeySource(options.jwks.set)
  return createRemoteKeySource({
    ...options.jwks,
    fetch: options.fetch,
    clock: options.clock,
    onFetch: options.metrics?.jwksFetch,
  })
}

/** RFC 9449 §6.1: a SHA-256 JWK thumbprint (RFC 7638), base64url without padding. */
const JKT = /^[A-Za-z0-9_-]{43}$/

/**
 * The key a token is bound to (RFC 9449 §6.1 `cnf.jkt`), or undefined for an unbound token. A `cnf`
 * without a well-formed `jkt` binds the token in a way this verifier cannot check (RFC 7800 §3.1), so
 * the token is refused rather than treated as a bearer token.
 */
function boundKey(claims: AccessTokenClaims): string | undefined {
  const cnf: unknown = claims.cnf
  if (cnf === undefined) return undefined
  if (typeof cnf !== 'object' || cnf === null || Array.isArray(cnf)) throw invalidToken('cnf_invalid')
  const jkt: unknown = (cnf as Record<string, unknown>).jkt
  if (typeof jkt !== 'string' || !JKT.test(jkt)) throw invalidToken('cnf_invalid')
  return jkt
}

/** Whatever the replay store threw: the proof could not be recorded, so the request cannot be judged. */
class ReplayUnavailable extends Error {
  constructor(cause: unknown) {
    super('DPoP replay store cannot answer', { cause })
    this.name = 'ReplayUnavailable'
  }
}

/** The store, with its failures told apart from refusals: a non-boolean answer is "cannot answer" too. */
function guardedReplay(replay: DpopReplay): DpopReplay {
  return {
    async useOnce(scope, jti, until) {
      let fresh: unknown
      try {
        fresh = await replay.useOnce(scope, jti, until)
      } catch (error) {
        throw new ReplayUnavailable(error)
      }
      if (typeof fresh !== 'boolean') throw new ReplayUnavailable(new TypeError('useOnce answered a non-boolean'))
      return fresh
    },
  }
}

/**
 * The request's one `DPoP` header (RFC 9449 §4.1, §4.3 item 1). Repeated fields arrive joined with
 * `, ` (RFC 9110 §5.3), and a proof (a compact JWS) never holds a comma.
 */
function proofHeader(c: Context): string {
  const value = c.req.raw.headers.get('dpop')
  if (value === null) throw invalidDpopProof('dpop_proof_missing')
  if (value.includes(',')) throw invalidDpopProof('dpop_proof_multiple')
  return value
}

/**
 * Hono middleware for resource servers: verifies tokensmith's RFC 9068 JWT access tokens offline and puts
 * the verified claims on the context as `auth`. This comment is the verifier's contract; the README
 * summarises it.
 *
 * **Credentials** (RFC 6750 §2, RFC 9449 §7.1). Only the `Authorization` header carries a token, with
 * the `Bearer` or the `DPoP` scheme (case-insensitive, RFC 9110 §11.1; which ones: `dpop`). The request
 * body is never read: it is unauthenticated and may be of any size, so the middleware leaves it,
 * `access_token` included, to the handler. With the DPoP scheme the request carries exactly one `DPoP`
 * header, the proof (RFC 9449 §4).
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
 * 6. The binding (RFC 9449 §7): a token with `cnf.jkt` (RFC 9449 §6.1) is accepted only with the DPoP
 *    scheme, never as Bearer (§7.2); the DPoP scheme only with such a token; a `cnf` without a
 *    well-formed `jkt` is refused. With the DPoP scheme, the proof (`verifyDpopProof`, RFC 9449 §4.3):
 *    `typ` `dpop+jwt`, an `alg` of `dpop.algorithms`, a public `jwk` only, its signature, `htm` = the
 *    request method, `htu` = the request URL without query or fragment (`dpop.url`), `iat` within
 *    `dpop.maxAge` and `clockTolerance`, `ath` = the token's hash, the key's thumbprint = `cnf.jkt`, and
 *    its `jti` used once per key (`dpop.replay`). The proof is checked on every request: the token cache
 *    never spares it.
 * 7. The `denylist`, asked with the token's `jti`, its `kid`, and its `client_id` and `iat` (a client
 *    deleted, or whose tokens were revoked, has every token issued up to that instant refused).
 * 8. Every scope in `scopes` is granted (RFC 6749 §3.3: `scope` is space-delimited).
 *
 * **Answers**, all with `Cache-Control: no-store` (RFC 6750 §3). `WWW-Authenticate` holds one challenge
 * per accepted scheme, Bearer first (RFC 9449 §7.2), e.g. `Bearer realm="tokensmith", DPoP
 * realm="tokensmith", algs="ES256 …"`; `error` (and `scope`) go in the challenge of the scheme the request
 * used, the other stays bare:
 * - no credentials of an accepted scheme (no header, another scheme, a token only in `?access_token=` or
 *   in the body) → 401 with the bare challenges, without `error` (RFC 6750 §3.1), empty body;
 * - a malformed header (empty value, characters outside `b64token`, §2.1), or a header token and
 *   `?access_token=` together (§2: one method per request) → 400 `invalid_request`;
 * - a token failing checks 1 to 7, a bound token sent as Bearer, an unbound one sent as DPoP, or a proof
 *   whose key is not the token's → 401 `invalid_token` (RFC 9449 §7.1);
 * - with the DPoP scheme, no `DPoP` header, several, or an invalid proof → 401 `invalid_dpop_proof`
 *   (RFC 9449 §7.1);
 * - a required scope missing → 403 `insufficient_scope` with `scope="…"`;
 * - the denylist or the DPoP replay store cannot answer, or no trustworthy JWK Set can be had → 503
 *   `temporarily_unavailable` with `Retry-After` and no challenge: never 401, which would make clients
 *   discard good tokens, and never a silent pass. With `failOpen` (denylist only) the request passes
 *   instead, `onFailOpen` is called and the pass counted in `stats().failOpenPasses`.
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
 * repeat skips only the signature check. Its times, key set, binding and proof, denylist entry and
 * scopes are checked on every request, and its claims are frozen.
 *
 * **DPoP replay** (`dpop.replay`). By default each middleware remembers proofs in memory (at most
 * 100,000 live ones; past that, 503 until some expire). Resource server instances behind one URL should
 * share one store, or a proof can be replayed once per instance.
 *
 * **Recorded behaviours.** ECDSA signatures are not normalised to low-S: `(r, n − s)` verifies too,
 * and since revocation keys on `jti`, both spellings share the token's fate. Duplicate JSON members are
 * last-wins, as in `JSON.parse` and jose; the signature covers the text either way.
 *
 * **Metrics** (`metrics: { registry }`, a prom-client `Registry`). Every request is counted once in
 * `tokensmith_rs_requests_total{outcome, reason}` (`accepted` with reason `''`, `rejected`, `unavailable`
 * for a 503, `fail_open`) and every JWK Set fetch in `tokensmith_rs_jwks_fetches_total{outcome}` (`ok`,
 * `error`); labels are fixed sets. Without the option prom-client is never loaded.
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
 * app.get('/reports/latest', (c) => c.json({ client: c.get('auth').client_id, key: c.get('dpop')?.jkt }))
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
  const challenges: ChallengeSettings = {
    realm: config.realm,
    schemes: config.schemes,
    dpopAlgorithms: config.dpop?.algorithms,
  }
  /** The DPoP settings, with the replay store's failures told apart from refusals. */
  const dpop: ResolvedDpop | undefined = config.dpop && { ...config.dpop, replay: guardedReplay(config.dpop.replay) }
  let failOpenPasses = 0

  /**
   * Revocation keys on `jti`: every spelling of a token's signature shares its fate. True when the
   * token passes only under `failOpen`.
   */
  async function checkRevocation(claims: AccessTokenClaims, kid: string): Promise<boolean> {
    if (!config.denylist) return false
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
      return true
    }
    if (revoked) throw invalidToken('revoked')
    return false
  }

  /**
   * RFC 9449 §7.1: the proof fits this request and this token, and is used for the first time. A proof
   * from another key than the token's is `invalid_token` (RFC 9449 §7.1: the key binding is the
   * token's); any other fault of the proof is `invalid_dpop_proof`.
   */
  async function checkProof(
    c: Context,
    dpop: ResolvedDpop,
    proof: string,
    token: string,
    jkt: string,
  ): Promise<DpopProofContext> {
    let url: string | URL
    try {
      url = dpop.url(c)
    } catch (error) {
      throw invalidDpopProof('dpop_htu_mismatch', error)
    }
    try {
      const verified = await verifyDpopProof(
        proof,
        { method: c.req.method, url, accessToken: token, expectedJkt: jkt },
        {
          clock: config.clock,
          clockTolerance: config.clockTolerance,
          maxAge: dpop.maxAge,
          replay: dpop.replay,
          algorithms: dpop.algorithms,
        },
      )
      return Object.freeze({
        jkt: verified.jkt,
        jwk: Object.freeze(verified.jwk),
        jti: verified.jti,
        iat: verified.iat,
      })
    } catch (error) {
      if (error instanceof ReplayUnavailable) {
        throw temporarilyUnavailable('dpop_replay_unavailable', DPOP_REPLAY_RETRY_AFTER, error.cause)
      }
      if (!(error instanceof DpopRejected)) throw invalidDpopProof('dpop_format', error)
      if (error.reason === 'jkt_mismatch') throw invalidToken('dpop_jkt_mismatch', error)
      throw invalidDpopProof(`dpop_${error.reason}`, error)
    }
  }

  function checkScopes(claims: AccessTokenClaims): void {
    const granted = new Set(scopesOf(claims))
    if (!config.scopes.every((scope) => granted.has(scope))) throw insufficientScope()
  }

  function reject(c: Context, error: BearerError | undefined, scheme: AuthScheme | undefined): Response {
    const reason = error?.reason ?? 'no_credentials'
    config.metrics?.request(error?.status === 503 ? 'unavailable' : 'rejected', reason)
    try {
      config.onReject?.({ status: error?.status ?? 401, error: error?.code, reason })
    } catch {
      // Observability hooks never change the answer.
    }
    if (!error) {
      // RFC 6750 §3.1: no credentials → no error code, so no body either.
      return c.body(null, 401, { 'WWW-Authenticate': bareChallenge(challenges), 'Cache-Control': 'no-store' })
    }
    const { status, headers, body } = errorResponseParts(challenges, error, scheme, config.scopes)
    return c.body(body, status, headers)
  }

  const middleware: MiddlewareHandler<{ Variables: BearerAuthVariables }> = async (c, next) => {
    let claims: AccessTokenClaims
    let proven: DpopProofContext | undefined
    let scheme: AuthScheme | undefined
    let failedOpen: boolean
    try {
      // Header and query string only: the unauthenticated body is never read (any size, any rate).
      const authorization = c.req.header('authorization')
      scheme = schemeOf(authorization, config.schemes)
      const credentials = extractCredentials(
        { authorization, queryHasToken: c.req.query('access_token') !== undefined },
        config.schemes,
      )
      if (credentials === undefined) return reject(c, undefined, undefined)
      // The DPoP scheme is accepted only when `dpop` is configured.
      const proof = scheme === 'DPoP' && dpop !== undefined ? { dpop, value: proofHeader(c) } : undefined
      const verified = await verifyAccessToken(verifier, credentials.token)
      claims = verified.claims
      const jkt = boundKey(claims)
      // RFC 9449 §7.2: a bound token is never a bearer token, whatever the configuration.
      if (scheme === 'Bearer' && jkt !== undefined) throw invalidToken('dpop_bound_as_bearer')
      if (proof !== undefined) {
        if (jkt === undefined) throw invalidToken('dpop_token_not_bound')
        // Per request, after the token cache: a remembered token still needs a fresh proof.
        proven = await checkProof(c, proof.dpop, proof.value, credentials.token, jkt)
      }
      failedOpen = await checkRevocation(claims, verified.kid)
      checkScopes(claims)
    } catch (error) {
      // Anything unexpected inside verification is still a refusal of the token, never a 500 or a pass.
      return reject(c, error instanceof BearerError ? error : invalidToken('signature_or_claims', error), scheme)
    }
    if (failedOpen) config.metrics?.request('fail_open', 'denylist_unavailable')
    else config.metrics?.request('accepted', '')
    c.set('auth', claims)
    c.set('dpop', proven)
    return next()
  }

  return Object.assign(middleware, {
    stats: (): BearerAuthStats => ({ failOpenPasses, jwksFetches: keys.fetches(), cachedTokens: cache?.size ?? 0 }),
  })
}
