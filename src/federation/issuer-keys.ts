/**
 * Where the verification keys of a trust entry's issuer come from, one cached `KeySource` per entry
 * configuration:
 *
 * - `jwks_file`: a pinned JWK Set (RFC 7517 §5) read from disk, never the network; re-read whenever the
 *   file's size, mtime, ctime or inode changes (an atomic rename or an edit in place);
 * - `jwks_uri`: that JWK Set, fetched;
 * - neither: OpenID Connect Discovery 1.0 §4: `GET issuer + /.well-known/openid-configuration` (a
 *   trailing `/` of the issuer removed first, §4.1), a JSON object whose `issuer` equals the entry's
 *   exactly (§4.3, so one issuer cannot speak for another) and whose `jwks_uri` is an https URL (http only
 *   with `allow_private_network`), then the JWK Set from there. Discovery is redone with each key-set
 *   refresh, so a moved `jwks_uri` is followed on the same schedule.
 *
 * Every fetch goes through `createGuardedFetch` (net-guard.ts) and the remote cache of the verifier
 * (`createRemoteKeySource`): a set is refreshed once `cacheMaxAge` old; fetch attempts of one source,
 * whatever their cause, are at least `cooldown` apart, so an issuer's rotated key (a new `kid`) costs one
 * fetch, and tokens with made-up `kid`s cost at most one fetch per cooldown; a good set stays in use for
 * `maxStale` while refreshes fail; keys that cannot be had are `temporarily_unavailable`, never a refusal.
 */
import { readFile, stat } from 'node:fs/promises'

import { fetchJwksJson } from '../verifier/jwks-fetch.js'
import { parseJwkSet, type JwkSet } from '../verifier/jwk-set.js'
import { createRemoteKeySource, type KeySource } from '../verifier/key-source.js'
import { invalidToken, temporarilyUnavailable } from '../verifier/errors.js'
import { createGuardedFetch, type ResolveHost } from './net-guard.js'
import type { TrustEntry } from './trust-entry.js'

/** Defaults, in seconds (`maxBytes` in bytes). */
export const ISSUER_KEYS_DEFAULTS = {
  /** A fetched set is refreshed on the first use after 5 minutes. */
  cacheMaxAge: 300,
  /** At most one fetch attempt per source every 30 s: a new `kid` is looked up once per cooldown. */
  cooldown: 30,
  /** One exchange (discovery plus JWK Set), body included. */
  timeout: 5,
  /** Each response body (discovery document, JWK Set). */
  maxBytes: 65_536,
  /** A good set keeps serving for an hour of failed refreshes, then 503. */
  maxStale: 3600,
} as const

/** Retry-After, in seconds, when a pinned `jwks_file` cannot be read or parsed. */
const FILE_RETRY_AFTER = 5

/** OpenID Connect Discovery 1.0 §4: the well-known path appended to the issuer. */
export const DISCOVERY_PATH = '/.well-known/openid-configuration'

export interface IssuerKeysOptions {
  /** Epoch seconds. */
  clock: () => number
  cacheMaxAge?: number
  cooldown?: number
  timeout?: number
  maxBytes?: number
  maxStale?: number
  /** Resolves `jwks_file`, `ca_file` and `bearer_token_file` (relative to the trust file); default identity. */
  resolvePath?: (path: string) => string
  /** Test hook: DNS resolution for guarded fetches (default `dns.lookup`, all addresses). */
  resolveHost?: ResolveHost
  /** Called after each fetch of an entry's keys (discovery and JWK Set count as one), for the metrics. */
  onFetch?: (entry: TrustEntry, outcome: 'ok' | 'error') => void
}

export interface IssuerKeys {
  /** The key source for `entry`; the same object for any entry with the same fetching configuration. */
  forEntry(entry: TrustEntry): KeySource
  /** Forgets the sources no entry of `entries` uses (call after a trust file reload). */
  retain(entries: readonly TrustEntry[]): void
}

export class DiscoveryError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'DiscoveryError'
  }
}

/** The discovery document URL of `issuer` (OpenID Connect Discovery 1.0 §4.1). */
export function discoveryUrl(issuer: string): URL {
  return new URL(`${issuer.replace(/\/$/, '')}${DISCOVERY_PATH}`)
}

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

/** Validates a discovery document for `entry` and returns its `jwks_uri`. */
export function jwksUriFromDiscovery(document: unknown, entry: TrustEntry): URL {
  if (!isPlainObject(document)) throw new DiscoveryError('discovery document is not a JSON object')
  // §4.3: the issuer in the document MUST be identical to the one the document was fetched for.
  if (document.issuer !== entry.issuer) throw new DiscoveryError('discovery issuer does not match the trust entry')
  const { jwks_uri: jwksUri } = document
  if (typeof jwksUri !== 'string' || jwksUri.length > 2048) throw new DiscoveryError('discovery jwks_uri missing')
  let url: URL
  try {
    url = new URL(jwksUri)
  } catch (cause) {
    throw new DiscoveryError('discovery jwks_uri is not a URL', { cause })
  }
  const httpAllowed = entry.allow_private_network && url.protocol === 'http:'
  if (url.protocol !== 'https:' && !httpAllowed) throw new DiscoveryError('discovery jwks_uri must be https')
  if (url.username || url.password || url.hash) throw new DiscoveryError('discovery jwks_uri is not a plain URL')
  return url
}

/** The fields that decide where and how an entry's keys are fetched: the cache key. */
function configurationOf(entry: TrustEntry, resolvePath: (path: string) => string): string {
  const resolve = (path: string | undefined) => (path === undefined ? null : resolvePath(path))
  return JSON.stringify([
    entry.issuer,
    resolve(entry.jwks_file),
    entry.jwks_uri ?? null,
    resolve(entry.ca_file),
    resolve(entry.bearer_token_file),
    entry.allow_private_network,
  ])
}

/** A pinned JWK Set on disk: no network, re-read when the file changes; unreadable means 503. */
function createFileKeySource(path: string): KeySource {
  let cached: { set: JwkSet; signature: string } | undefined
  let reads = 0
  const current = async (): Promise<JwkSet> => {
    try {
      const info = await stat(path)
      const signature = `${info.size}:${info.mtimeMs}:${info.ctimeMs}:${info.ino}`
      if (cached?.signature !== signature) {
        reads += 1
        cached = undefined
        cached = { set: parseJwkSet(JSON.parse(await readFile(path, 'utf8')) as unknown), signature }
      }
      return cached.set
    } catch (cause) {
      throw temporarilyUnavailable('jwks_unavailable', FILE_RETRY_AFTER, cause)
    }
  }
  return {
    setFor: async (kid) => {
      const set = await current()
      if (!set.kids.has(kid)) throw invalidToken('unknown_kid')
      return set
    },
    fetches: () => reads,
  }
}

export function createIssuerKeys(options: IssuerKeysOptions): IssuerKeys {
  const settings = {
    cacheMaxAge: options.cacheMaxAge ?? ISSUER_KEYS_DEFAULTS.cacheMaxAge,
    cooldown: options.cooldown ?? ISSUER_KEYS_DEFAULTS.cooldown,
    timeout: options.timeout ?? ISSUER_KEYS_DEFAULTS.timeout,
    maxBytes: options.maxBytes ?? ISSUER_KEYS_DEFAULTS.maxBytes,
    maxStale: Math.max(
      options.maxStale ?? ISSUER_KEYS_DEFAULTS.maxStale,
      options.cacheMaxAge ?? ISSUER_KEYS_DEFAULTS.cacheMaxAge,
    ),
  }
  const resolvePath = options.resolvePath ?? ((path: string) => path)
  const sources = new Map<string, KeySource>()

  const build = (entry: TrustEntry): KeySource => {
    if (entry.jwks_file !== undefined) return createFileKeySource(resolvePath(entry.jwks_file))

    const bearerOrigins = [new URL(entry.issuer).origin]
    if (entry.jwks_uri !== undefined) bearerOrigins.push(new URL(entry.jwks_uri).origin)
    const guarded = createGuardedFetch({
      allowPrivateNetwork: entry.allow_private_network,
      timeoutMs: settings.timeout * 1000,
      maxBytes: settings.maxBytes,
      caFile: entry.ca_file === undefined ? undefined : resolvePath(entry.ca_file),
      bearerTokenFile: entry.bearer_token_file === undefined ? undefined : resolvePath(entry.bearer_token_file),
      bearerOrigins,
      resolveHost: options.resolveHost,
    })
    const onFetch = options.onFetch && ((outcome: 'ok' | 'error') => options.onFetch?.(entry, outcome))
    const remote = { ...settings, clock: options.clock, ...(onFetch && { onFetch }) }
    if (entry.jwks_uri !== undefined) {
      return createRemoteKeySource({ ...remote, url: new URL(entry.jwks_uri), fetch: guarded })
    }

    // Discovery then the JWK Set, as one "fetch" of the remote source: both share its cache, cooldown
    // and time limit, and a failure of either keeps the last good set (up to maxStale).
    const discovery = discoveryUrl(entry.issuer)
    const discoverThenFetch = async (_input: Parameters<typeof fetch>[0], init?: RequestInit): Promise<Response> => {
      let document: unknown
      try {
        document = await fetchJwksJson(discovery, {
          fetch: guarded,
          timeoutMs: settings.timeout * 1000,
          maxBytes: settings.maxBytes,
        })
      } catch (cause) {
        throw new DiscoveryError('discovery document could not be fetched', { cause })
      }
      return guarded(jwksUriFromDiscovery(document, entry), init)
    }
    return createRemoteKeySource({ ...remote, url: discovery, fetch: discoverThenFetch as typeof fetch })
  }

  return {
    forEntry(entry) {
      const key = configurationOf(entry, resolvePath)
      let source = sources.get(key)
      if (source === undefined) {
        source = build(entry)
        sources.set(key, source)
      }
      return source
    },
    retain(entries) {
      const keep = new Set(entries.map((entry) => configurationOf(entry, resolvePath)))
      for (const key of sources.keys()) if (!keep.has(key)) sources.delete(key)
    },
  }
}
