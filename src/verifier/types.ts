import type { JWK } from 'jose'

import type { RejectReason } from './errors.js'

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
  [claim: string]: unknown
}

/**
 * Hono `Variables` set by `bearerAuth`.
 *
 * @example
 * ```ts
 * const app = new Hono<{ Variables: BearerAuthVariables }>()
 * app.get('/me', (c) => c.text(c.get('auth').client_id))
 * ```
 */
export type BearerAuthVariables = { auth: AccessTokenClaims }

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
}
