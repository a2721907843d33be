import type { Context } from 'hono'
import type { JWK } from 'jose'

import type { DpopReplay } from './dpop.js'
import type { RejectReason } from './errors.js'
import type { VerifierMetricsOptions } from './metrics.js'

/**
 * What the verifier needs from a denylist. Structurally identical to `RevocationCheck` in
 * `src/denylist/denylist.ts`; declared here so the exported verifier has no dependency on server code.
 * Any exception from `isRevoked` means "cannot answer": 503, never a pass (unless `failOpen`).
 *
 * The middleware passes the token's `jti`, the `kid` it was signed with, and its `client_id` and
 * `iat`: a token is revoked by its id, by its key, or because every token its client was issued
 * up to some instant was revoked (the client was deleted, or its tokens revoked). An
 * implementation that only knows ids may ignore the rest.
 */
export interface RevocationCheck {
  isRevoked(token: { jti: string; kid?: string; client_id?: string; iat?: number }): Promise<boolean>
}

/** The verified claims of an RFC 9068 access token, as placed on the context under `auth`. */
export interface AccessTokenClaims {
  /** RFC 9068 §2.2: the issuer identifier, byte-equal to the configured `issuer`. */
  iss: string
  /** RFC 9068 §2.2: for client credentials, equal to `client_id` (checked). */
  sub: string
  client_id: string
  /** RFC 9068 §2.2: one of these is the configured audience. */
  aud: string | string[]
  iat: number
  exp: number
  nbf?: number
  jti: string
  /** RFC 9068 §2.2.3: space-delimited scopes, when present. */
  scope?: string
  /**
   * RFC 7800 §3.1 confirmation: a DPoP-bound token carries `{ jkt }`, the base64url SHA-256 thumbprint of
   * the client's proof key (RFC 9449 §6.1). Such a token is accepted only with the DPoP scheme and a proof
   * signed by that key.
   */
  cnf?: { jkt: string; [member: string]: unknown }
  [claim: string]: unknown
}

/** The verified DPoP proof of a request that presented a DPoP-bound token (RFC 9449 §7.1). */
export interface DpopProofContext {
  /** RFC 7638 thumbprint of the proof key, equal to the token's `cnf.jkt`. */
  jkt: string
  /** The proof key: public members only. */
  jwk: JWK
  /** The proof's `jti`, recorded by the replay cache. */
  jti: string
  /** The proof's `iat`, epoch seconds. */
  iat: number
}

/**
 * Hono `Variables` set by `bearerAuth`: `auth`, the verified claims (with `cnf` for a DPoP-bound token),
 * and `dpop`, the request's verified proof when the token was DPoP-bound, `undefined` for a Bearer token.
 *
 * @example
 * ```ts
 * const app = new Hono<{ Variables: BearerAuthVariables }>()
 * app.get('/me', (c) => c.json({ client: c.get('auth').client_id, key: c.get('dpop')?.jkt }))
 * ```
 */
export type BearerAuthVariables = { auth: AccessTokenClaims; dpop: DpopProofContext | undefined }

/**
 * Passed to `onFailOpen` each time a request passes only because the denylist could not answer. */
export interface FailOpenInfo {
  jti: string
  kid: string
  clientId: string
  /** How many requests have passed this way since the middleware was created, this one included. */
  count: number
  /** Whatever `isRevoked` threw. */
  error: unknown
}

/** Passed to `onReject` for every refused request: fixed labels only, never token bytes. */
export interface RejectInfo {
  status: 400 | 401 | 403 | 503
  /** The RFC 6750 error code, or undefined for a bare 401 (no credentials). */
  error: string | undefined
  /** A fixed label such as `unknown_kid` or `revoked`. */
  reason: RejectReason
}

/** Counters kept by one middleware instance. */
export interface BearerAuthStats {
  /** Requests passed under `failOpen` while the denylist could not answer. */
  failOpenPasses: number
  /** JWKS fetches started (successful or not). Always 0 with a local `jwks: { keys }`. */
  jwksFetches: number
  /** Verified tokens remembered now (see `tokenCache`). */
  cachedTokens: number
}

/**
 * DPoP at the resource server (RFC 9449 §7). By default both schemes are accepted: `Bearer` for unbound
 * tokens, `DPoP` for tokens bound with `cnf.jkt`, each request with its own proof.
 */
export interface DpopOptions {
  /** Refuse the Bearer scheme entirely: only DPoP-bound tokens, with a proof, pass. Default false. */
  required?: boolean
  /**
   * The URL the client addressed, compared with the proof's `htu` (RFC 9449 §4.3 item 9) without query
   * and fragment. Default: the request URL as Hono sees it (`c.req.url`). Behind a proxy that rewrites
   * the scheme, host or path, return the public URL, e.g. `` (c) => `https://api.example.com${c.req.path}` ``.
   */
  url?: (c: Context) => string | URL
  /**
   * Where each proof `jti` is recorded, once per key (RFC 9449 §11.1). Default: an in-memory cache of
   * 100,000 live proofs per middleware (`createMemoryDpopReplay`). Several resource server instances
   * behind one URL must share one store, or a proof can be replayed once per instance. Whatever
   * `useOnce` throws is answered 503 `temporarily_unavailable`, never a pass.
   */
  replay?: DpopReplay
  /** Proof `alg` allowlist, advertised in `DPoP algs="…"`. Default `DPOP_ALGORITHMS`; `none`/HS* throw. */
  algorithms?: string[]
  /** Seconds a proof's `iat` may lie in the past, plus `clockTolerance` either way. Default 60. */
  maxAge?: number
}

/**
 * The issuer's JWK Set, fetched over HTTP and cached by the middleware (how: see `bearerAuth`). Times in
 * seconds; defaults in `BEARER_AUTH_DEFAULTS.jwks`.
 */
export interface RemoteJwks {
  /** The issuer's `jwks_uri` (RFC 8414 §2), http or https. */
  uri: string | URL
  /** Seconds before a fetched set is refreshed on the next request. Default 600. */
  cacheMaxAge?: number
  /** Minimum seconds between fetch attempts (unknown `kid`, refresh, retry). Default 30. */
  cooldown?: number
  /** Seconds allowed for one fetch, body included (fractions allowed, at most 60). Default 5. */
  timeout?: number
  /** Maximum body size in bytes. Default 65,536. */
  maxBytes?: number
  /** Seconds a fetched set may still be used while refreshes fail; at least `cacheMaxAge`. Default 3,600. */
  maxStale?: number
  keys?: never
}

/**
 * A fixed JWK Set (RFC 7517 §5), such as the issuer's `jwks.json` read at start-up. Keys without a
 * `kid` are ignored; a key that is symmetric, holds private material or has `use` other than `sig`
 * makes the whole set refused at start-up.
 */
export interface LocalJwks {
  keys: readonly JWK[]
  uri?: never
}

export interface BearerAuthOptions {
  /** Exact, byte-equal match on `iss` (RFC 9068 §4): no normalisation, a trailing slash differs. */
  issuer: string
  /** The token's `aud` (string or array) must contain one of these (RFC 9068 §4). */
  audience: string | string[]
  /** Where the verification keys come from: `{ uri, … }` for the issuer's JWK Set, or `{ keys }`. */
  jwks: RemoteJwks | LocalJwks
  /** All required; a token lacking any → 403 `insufficient_scope` (RFC 6750 §3.1). */
  scopes?: string[]
  /** Consulted after signature and claims verify, with `jti`, `kid`, `client_id` and `iat`. */
  denylist?: RevocationCheck
  /** Signature algorithm allowlist. Default `DEFAULT_ALGORITHMS`. `none` and `HS*` throw. */
  algorithms?: string[]
  /** Seconds of leeway for `exp`, `nbf` and a future `iat`. Default 30. */
  clockTolerance?: number
  /** `realm` of `WWW-Authenticate`. Default `'tokensmith'`. */
  realm?: string
  /** Denylist unreachable → pass instead of 503. Requires `onFailOpen`. Default false. */
  failOpen?: boolean
  /** Called for each request passed by `failOpen`. Required when `failOpen` is true. */
  onFailOpen?: (info: FailOpenInfo) => void
  /** Called for each refused request, for logs and metrics. */
  onReject?: (info: RejectInfo) => void
  /** Epoch seconds. Default `Date.now() / 1000`. Also drives the JWKS cache timers. */
  clock?: () => number
  /** Default `globalThis.fetch`, looked up at call time. */
  fetch?: typeof fetch
  /**
   * Remembers up to `maxEntries` verified tokens (default 1,000), so a client that presents the same
   * token again skips the signature check; its times, key set, denylist entry and scopes are checked on
   * every request all the same. Claims of a remembered token are frozen. `false` verifies every time.
   */
  tokenCache?: false | { maxEntries?: number }
  /**
   * DPoP-bound tokens (RFC 9449 §7): `Authorization: DPoP <token>` with one `DPoP` proof header. Default
   * `false`: Bearer only, and a bound token is refused whatever scheme it comes with (§7.2), so the
   * challenge resource servers send stays the plain Bearer one until they opt in. `{}`: Bearer for unbound
   * tokens and DPoP for bound ones. `{ required: true }`: DPoP only.
   */
  dpop?: false | DpopOptions
  /**
   * Prometheus metrics in the application's prom-client `Registry` (prom-client is then needed: an
   * optional peer dependency, loaded only when this is given):
   * - `tokensmith_rs_requests_total{outcome, reason}`: every request, once; `outcome` is `accepted`,
   *   `rejected` (400/401/403), `unavailable` (503) or `fail_open`; `reason` the stable reject reason
   *   (`RejectReason`, as given to `onReject`; `denylist_unavailable` for `fail_open`), `''` when accepted.
   * - `tokensmith_rs_jwks_fetches_total{outcome}`: JWK Set fetch attempts, `ok` or `error`.
   * Middlewares given the same registry share these series. Labels are closed sets: nothing from the
   * request or the token becomes a label.
   */
  metrics?: VerifierMetricsOptions
}
