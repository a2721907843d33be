import type { Context } from 'hono'

import { DEFAULT_ALGORITHMS, SUPPORTED_ALGORITHMS } from './algorithms.js'
import { DEFAULT_DPOP_MAX_AGE, DPOP_ALGORITHMS, type DpopReplay } from './dpop.js'
import { createMemoryDpopReplay } from './dpop-replay.js'
import type { AuthScheme } from './errors.js'
import { SCOPE_TOKEN } from './grammar.js'
import { parseJwkSet, type JwkSet } from './jwk-set.js'
import type { RemoteJwksSettings } from './key-source.js'
import { type VerifierMetrics, verifierMetrics } from './metrics.js'
import { DEFAULT_TOKEN_CACHE_ENTRIES } from './token-cache.js'
import type { BearerAuthOptions, FailOpenInfo, RejectInfo, RevocationCheck } from './types.js'

/**
 * Defaults of `bearerAuth`; times in seconds.
 *
 * @example
 * ```ts
 * bearerAuth({ issuer, audience, jwks: { uri, cooldown: BEARER_AUTH_DEFAULTS.jwks.cooldown * 2 } })
 * ```
 */
export const BEARER_AUTH_DEFAULTS = Object.freeze({
  clockTolerance: 30,
  realm: 'tokensmith',
  jwks: Object.freeze({ cacheMaxAge: 600, cooldown: 30, timeout: 5, maxBytes: 64 * 1024, maxStale: 3600 } as const),
  tokenCache: Object.freeze({ maxEntries: DEFAULT_TOKEN_CACHE_ENTRIES }),
  dpop: Object.freeze({ required: false, maxAge: DEFAULT_DPOP_MAX_AGE, algorithms: DPOP_ALGORITHMS }),
} as const)

/** Seconds a client is told to wait when the denylist cannot answer. */
export const DENYLIST_RETRY_AFTER = 5

/** Seconds a client is told to wait when the DPoP replay cache cannot record a proof (down or full). */
export const DPOP_REPLAY_RETRY_AFTER = 5

/** RFC 9110 §5.6.4 quoted-string content, minus `"` and `\` so no escaping is ever needed. */
const REALM = /^[\x20\x21\x23-\x5b\x5d-\x7e]+$/

/** Options of a remote JWK Set that mean nothing for a local one. */
const REMOTE_ONLY = ['cacheMaxAge', 'cooldown', 'timeout', 'maxBytes', 'maxStale'] as const

/** DPoP settings once validated (RFC 9449 §7). */
export interface ResolvedDpop {
  /** Bearer refused entirely. */
  required: boolean
  url: (c: Context) => string | URL
  replay: DpopReplay
  algorithms: ReadonlySet<string>
  maxAge: number
}

export interface ResolvedOptions {
  issuer: string
  audience: string[]
  jwks: ({ kind: 'remote' } & RemoteJwksSettings) | { kind: 'local'; set: JwkSet }
  scopes: string[]
  denylist: RevocationCheck | undefined
  algorithms: ReadonlySet<string>
  clockTolerance: number
  realm: string
  failOpen: boolean
  onFailOpen: ((info: FailOpenInfo) => void) | undefined
  onReject: ((info: RejectInfo) => void) | undefined
  clock: () => number
  fetch: typeof fetch
  /** 0: no token cache. */
  tokenCacheEntries: number
  /** undefined: the DPoP scheme is not accepted (`dpop: false`). */
  dpop: ResolvedDpop | undefined
  /** The schemes accepted, in the order their challenges are sent (RFC 9110 §11.6.1). */
  schemes: readonly AuthScheme[]
  /** undefined: no metrics (prom-client never loaded). */
  metrics: VerifierMetrics | undefined
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

function resolveJwks(jwks: BearerAuthOptions['jwks']): ResolvedOptions['jwks'] {
  if (typeof jwks !== 'object' || jwks === null) {
    return fail('jwks is required: { uri } to fetch a JWK Set, or { keys } for a local one')
  }
  if ((jwks.uri === undefined) === (jwks.keys === undefined)) return fail('jwks needs exactly one of uri and keys')
  if (jwks.keys !== undefined) {
    const remoteOnly = REMOTE_ONLY.find((name) => Reflect.get(jwks, name) !== undefined)
    if (remoteOnly !== undefined) fail(`jwks.${remoteOnly} applies only to a remote set (jwks.uri)`)
    try {
      return { kind: 'local', set: parseJwkSet({ keys: jwks.keys }) }
    } catch (error) {
      return fail(`jwks.keys is invalid: ${(error as Error).message}`)
    }
  }
  let url: URL
  try {
    url = new URL(jwks.uri)
  } catch {
    return fail('jwks.uri must be an absolute URL')
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') fail('jwks.uri must be http(s)')
  const defaults = BEARER_AUTH_DEFAULTS.jwks
  const cacheMaxAge = seconds('jwks.cacheMaxAge', jwks.cacheMaxAge, defaults.cacheMaxAge)
  const maxStale = seconds('jwks.maxStale', jwks.maxStale, defaults.maxStale)
  if (maxStale < cacheMaxAge) fail('jwks.maxStale must be at least jwks.cacheMaxAge')
  const timeout = seconds('jwks.timeout', jwks.timeout, defaults.timeout, 60)
  if (timeout === 0) fail('jwks.timeout must be positive')
  const maxBytes = jwks.maxBytes ?? defaults.maxBytes
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) fail('jwks.maxBytes must be a positive integer')
  const cooldown = seconds('jwks.cooldown', jwks.cooldown, defaults.cooldown)
  return { kind: 'remote', url, cacheMaxAge, cooldown, timeout, maxBytes, maxStale }
}

function resolveAlgorithms(algorithms: string[] | undefined): ReadonlySet<string> {
  const list = algorithms ?? [...DEFAULT_ALGORITHMS]
  if (!Array.isArray(list) || list.length === 0) fail('algorithms must be a non-empty array')
  for (const alg of list) {
    // Bad configuration throws at start-up: a verifier configured for `none` or HS* is never what anyone wants.
    if (!SUPPORTED_ALGORITHMS.has(alg))
      fail(`algorithm ${JSON.stringify(alg)} is not allowed (asymmetric JWS algorithms only)`)
  }
  return new Set(list)
}

function resolveTokenCache(option: BearerAuthOptions['tokenCache']): number {
  if (option === false) return 0
  if (option === undefined) return DEFAULT_TOKEN_CACHE_ENTRIES
  if (typeof option !== 'object' || option === null) return fail('tokenCache must be false or { maxEntries }')
  const entries = option.maxEntries ?? DEFAULT_TOKEN_CACHE_ENTRIES
  if (!Number.isSafeInteger(entries) || entries < 1 || entries > 1_000_000)
    fail('tokenCache.maxEntries must be an integer from 1 to 1000000')
  return entries
}

function resolveDpop(option: BearerAuthOptions['dpop'], clock: () => number): ResolvedDpop | undefined {
  // Opt-in: without it the challenge stays the plain Bearer one (and bound tokens are refused).
  if (option === undefined || option === false) return undefined
  const settings = option
  if (typeof settings !== 'object' || settings === null) {
    return fail('dpop must be false or { required, url, replay, algorithms, maxAge }')
  }
  if (settings.required !== undefined && typeof settings.required !== 'boolean') fail('dpop.required must be a boolean')
  if (settings.url !== undefined && typeof settings.url !== 'function') fail('dpop.url must be a function (c) => URL')
  if (settings.replay !== undefined && typeof settings.replay?.useOnce !== 'function') {
    fail('dpop.replay must have useOnce()')
  }
  const list = settings.algorithms ?? [...DPOP_ALGORITHMS]
  if (!Array.isArray(list) || list.length === 0) fail('dpop.algorithms must be a non-empty array')
  for (const alg of list) {
    // RFC 9449 §4.3 item 5: asymmetric only, never `none` or a MAC.
    if (!DPOP_ALGORITHMS.includes(alg))
      fail(`dpop algorithm ${JSON.stringify(alg)} is not allowed (asymmetric JWS algorithms only)`)
  }
  const maxAge = seconds('dpop.maxAge', settings.maxAge, DEFAULT_DPOP_MAX_AGE, 3600)
  if (maxAge === 0) fail('dpop.maxAge must be positive')
  return {
    required: settings.required === true,
    url: settings.url ?? ((c) => c.req.url),
    // One per middleware: the default serves a single process (see createMemoryDpopReplay).
    replay: settings.replay ?? createMemoryDpopReplay({ clock }),
    algorithms: new Set(list),
    maxAge,
  }
}

function resolveMetrics(option: BearerAuthOptions['metrics']): VerifierMetrics | undefined {
  if (option === undefined) return undefined
  const registry = typeof option === 'object' && option !== null ? option.registry : undefined
  if (
    typeof registry !== 'object' ||
    registry === null ||
    typeof registry.registerMetric !== 'function' ||
    typeof registry.getSingleMetric !== 'function'
  ) {
    return fail('metrics must be { registry }, a prom-client Registry')
  }
  return verifierMetrics(registry)
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
  const customFetch = options.fetch
  const clock = options.clock ?? (() => Date.now() / 1000)
  const dpop = resolveDpop(options.dpop, clock)
  return {
    dpop,
    // RFC 9449 §7.2: Bearer first, DPoP beside it; only DPoP when Bearer is refused.
    schemes: dpop === undefined ? ['Bearer'] : dpop.required ? ['DPoP'] : ['Bearer', 'DPoP'],
    tokenCacheEntries: resolveTokenCache(options.tokenCache),
    issuer: options.issuer,
    audience: audience as string[],
    jwks: resolveJwks(options.jwks),
    scopes,
    denylist: options.denylist,
    algorithms: resolveAlgorithms(options.algorithms),
    clockTolerance: seconds('clockTolerance', options.clockTolerance, BEARER_AUTH_DEFAULTS.clockTolerance),
    realm,
    failOpen: options.failOpen === true,
    onFailOpen: options.onFailOpen,
    onReject: options.onReject,
    clock,
    // Looked up per call, so a fetch patched after start-up (msw, instrumentation) is honoured.
    fetch: customFetch ?? ((input, init) => globalThis.fetch(input, init)),
    // Last: every other option is valid before anything is registered in the application's registry.
    metrics: resolveMetrics(options.metrics),
  }
}
