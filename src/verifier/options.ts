import type { JwkSet } from './jwk-set.js'
import { parseJwkSet } from './jwk-set.js'
import { DEFAULT_TOKEN_CACHE_ENTRIES } from './token-cache.js'
import type { BearerAuthOptions, FailOpenInfo, RejectInfo, RevocationCheck } from './types.js'

/**
 * The default allowlist: what tokensmith signs with (SK-13).
 *
 * @example
 * ```ts
 * bearerAuth({ issuer, audience, jwksUri, algorithms: ['ES256'] }) // narrower than DEFAULT_ALGORITHMS
 * ```
 */
export const DEFAULT_ALGORITHMS = ['ES256', 'EdDSA', 'RS256', 'PS256'] as const

/** Asymmetric JWS algorithms jose verifies. `none` and `HS*` are absent on purpose (RFC 8725 §3.1, §3.2). */
const SUPPORTED_ALGORITHMS = new Set([
  'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519',
  'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512',
])

/**
 * Defaults of `bearerAuth`; times in seconds.
 *
 * @example
 * ```ts
 * bearerAuth({ issuer, audience, jwksUri, jwksCooldown: BEARER_AUTH_DEFAULTS.jwksCooldown * 2 })
 * ```
 */
export const BEARER_AUTH_DEFAULTS = {
  clockTolerance: 30,
  realm: 'tokensmith',
  jwksCacheMaxAge: 600,
  jwksCooldown: 30,
  jwksTimeout: 5,
  jwksMaxBytes: 64 * 1024,
  jwksMaxStale: 3600,
} as const

/** Seconds a client is told to wait when the denylist cannot answer (decision 4). */
export const DENYLIST_RETRY_AFTER = 5

/** RFC 6749 §3.3 scope-token: 1*NQCHAR. */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/

/** RFC 9110 §5.6.4 quoted-string content, minus `"` and `\` so no escaping is ever needed. */
const REALM = /^[\x20\x21\x23-\x5b\x5d-\x7e]+$/

export interface ResolvedOptions {
  issuer: string
  audience: string[]
  keys: { kind: 'remote'; url: URL } | { kind: 'local'; set: JwkSet }
  scopes: string[]
  denylist: RevocationCheck | undefined
  algorithms: ReadonlySet<string>
  clockTolerance: number
  realm: string
  failOpen: boolean
  onFailOpen: ((info: FailOpenInfo) => void) | undefined
  onReject: ((info: RejectInfo) => void) | undefined
  jwksCacheMaxAge: number
  jwksCooldown: number
  jwksTimeout: number
  jwksMaxBytes: number
  jwksMaxStale: number
  clock: () => number
  fetch: typeof fetch
  /** 0: no token cache. */
  tokenCacheEntries: number
}

const fail = (message: string): never => {
  throw new TypeError(`bearerAuth: ${message}`)
}

function seconds(name: string, value: number | undefined, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > max) {
    fail(`${name} must be a number of seconds between 0 and ${max}`)
  }
  return value
}

function resolveKeys(options: BearerAuthOptions): ResolvedOptions['keys'] {
  if ((options.jwksUri === undefined) === (options.jwks === undefined)) fail('give exactly one of jwksUri and jwks')
  if (options.jwks !== undefined) {
    try {
      return { kind: 'local', set: parseJwkSet(options.jwks) }
    } catch (error) {
      return fail(`jwks is invalid: ${(error as Error).message}`)
    }
  }
  let url: URL
  try {
    url = new URL(options.jwksUri as string | URL)
  } catch {
    return fail('jwksUri must be an absolute URL')
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') fail('jwksUri must be http(s)')
  return { kind: 'remote', url }
}

function resolveAlgorithms(algorithms: string[] | undefined): ReadonlySet<string> {
  const list = algorithms ?? [...DEFAULT_ALGORITHMS]
  if (!Array.isArray(list) || list.length === 0) fail('algorithms must be a non-empty array')
  for (const alg of list) {
    // Bad configuration throws at start-up: a verifier configured for `none` or HS* is never what anyone wants.
    if (!SUPPORTED_ALGORITHMS.has(alg)) fail(`algorithm ${JSON.stringify(alg)} is not allowed (asymmetric JWS algorithms only)`)
  }
  return new Set(list)
}

function resolveTokenCache(option: BearerAuthOptions['tokenCache']): number {
  if (option === false) return 0
  if (option === undefined) return DEFAULT_TOKEN_CACHE_ENTRIES
  if (typeof option !== 'object' || option === null) return fail('tokenCache must be false or { maxEntries }')
  const entries = option.maxEntries ?? DEFAULT_TOKEN_CACHE_ENTRIES
  if (!Number.isSafeInteger(entries) || entries < 1 || entries > 1_000_000) fail('tokenCache.maxEntries must be an integer from 1 to 1000000')
  return entries
}

/** Validates options and fills defaults. Throws `TypeError` on any misconfiguration. */
export function resolveOptions(options: BearerAuthOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) fail('options are required')
  if (typeof options.issuer !== 'string' || options.issuer === '') fail('issuer must be a non-empty string')
  const audience = typeof options.audience === 'string' ? [options.audience] : options.audience
  if (!Array.isArray(audience) || audience.length === 0 || !audience.every((a) => typeof a === 'string' && a !== '')) {
    fail('audience must be a non-empty string or array of non-empty strings')
  }
  const scopes = options.scopes ?? []
  if (!Array.isArray(scopes) || !scopes.every((scope) => typeof scope === 'string' && SCOPE_TOKEN.test(scope))) {
    fail('scopes must be RFC 6749 section 3.3 scope tokens')
  }
  const realm = options.realm ?? BEARER_AUTH_DEFAULTS.realm
  if (typeof realm !== 'string' || !REALM.test(realm)) fail('realm must be printable ASCII without " or \\')
  if (options.failOpen === true && typeof options.onFailOpen !== 'function') {
    fail('failOpen requires onFailOpen, so that every pass is logged')
  }
  if (options.denylist !== undefined && typeof options.denylist?.isRevoked !== 'function') {
    fail('denylist must have isRevoked()')
  }
  const jwksCacheMaxAge = seconds('jwksCacheMaxAge', options.jwksCacheMaxAge, BEARER_AUTH_DEFAULTS.jwksCacheMaxAge)
  const jwksMaxStale = seconds('jwksMaxStale', options.jwksMaxStale, BEARER_AUTH_DEFAULTS.jwksMaxStale)
  if (jwksMaxStale < jwksCacheMaxAge) fail('jwksMaxStale must be at least jwksCacheMaxAge')
  const jwksTimeout = seconds('jwksTimeout', options.jwksTimeout, BEARER_AUTH_DEFAULTS.jwksTimeout, 60)
  if (jwksTimeout === 0) fail('jwksTimeout must be positive')
  const jwksMaxBytes = options.jwksMaxBytes ?? BEARER_AUTH_DEFAULTS.jwksMaxBytes
  if (!Number.isSafeInteger(jwksMaxBytes) || jwksMaxBytes < 1) fail('jwksMaxBytes must be a positive integer')
  const customFetch = options.fetch
  return {
    tokenCacheEntries: resolveTokenCache(options.tokenCache),
    issuer: options.issuer,
    audience: audience as string[],
    keys: resolveKeys(options),
    scopes,
    denylist: options.denylist,
    algorithms: resolveAlgorithms(options.algorithms),
    clockTolerance: seconds('clockTolerance', options.clockTolerance, BEARER_AUTH_DEFAULTS.clockTolerance),
    realm,
    failOpen: options.failOpen === true,
    onFailOpen: options.onFailOpen,
    onReject: options.onReject,
    jwksCacheMaxAge,
    jwksCooldown: seconds('jwksCooldown', options.jwksCooldown, BEARER_AUTH_DEFAULTS.jwksCooldown),
    jwksTimeout,
    jwksMaxBytes,
    jwksMaxStale,
    clock: options.clock ?? (() => Date.now() / 1000),
    // Looked up per call, so a fetch patched after start-up (msw, instrumentation) is honoured.
    fetch: customFetch ?? ((input, init) => globalThis.fetch(input, init)),
  }
}
