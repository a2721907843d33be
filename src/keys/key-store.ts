import { createHash, type KeyObject } from 'node:crypto'
import type { Clock } from '../clock.js'
import { SIGNING_ALGS, type SigningAlg } from './algorithms.js'
import type { KeyRecord } from './key-file.js'
import { isPublished, keyTimelines, nextTransition, type KeyTimeline } from './key-states.js'

/** What signing and verification need from the keys; the server holds one, swapped on reload. */
export interface KeyStore {
  /** The key that signs now. */
  signingKey(): { kid: string; alg: SigningAlg; privateKey: KeyObject }
  /** A published key by kid, for the server's own verification (introspection, revocation). */
  verificationKey(kid: string): { alg: SigningAlg; publicKey: KeyObject } | undefined
  /** The JWKS document (RFC 7517 §5) of every published key, serialized once per change, with its ETag. */
  jwks(): { body: string; etag: string }
  /** The algorithms of every published key, once each, in SIGNING_ALGS order (for server metadata). */
  publishedAlgorithms(): readonly SigningAlg[]
  /** Each key's state now, for `keys list` and reload checks. */
  timelines(): KeyTimeline[]
  /** The records this store was built from. */
  readonly records: readonly KeyRecord[]
  /** Published keys now. */
  readonly size: number
}

/** Longest access token lifetime any client may have (config and registry both cap it). */
export const MAX_TOKEN_TTL = 3600
/** How long instances may take to notice a change in KEYS_DIR (reload poll plus margin). */
export const RELOAD_LAG = 60

/** A retired key stays published until every token it could have signed has expired, plus T. */
export const keyRetention = (clockTolerance: number) => MAX_TOKEN_TTL + clockTolerance + RELOAD_LAG

interface View {
  from: number
  until: number
  current: KeyRecord
  published: Map<string, KeyRecord>
  timelines: KeyTimeline[]
  jwks: { body: string; etag: string }
  algorithms: readonly SigningAlg[]
}

/**
 * Keys and their states at the injected clock's time. States change with time alone, so the view
 * is computed once and reused until the next transition (no work per request beyond a comparison).
 */
export function createKeyStore(records: readonly KeyRecord[], clock: Clock, options: { retention: number }): KeyStore {
  if (records.length === 0) throw new Error('no signing keys')
  const byKid = new Map(records.map((record) => [record.kid, record]))
  let view: View | undefined

  function compute(now: number): View {
    const timelines = keyTimelines(records, now, options.retention)
    const published = new Map<string, KeyRecord>()
    let current: KeyRecord | undefined
    for (const timeline of timelines) {
      const record = byKid.get(timeline.kid)
      if (!record) continue // keyTimelines gives one timeline per record
      if (isPublished(timeline.state)) published.set(record.kid, record)
      if (timeline.state === 'current') current = record
    }
    // Stable order (by kid), so instances with the same keys serve byte-identical bodies and ETags.
    const keys = [...published.values()].sort((a, b) => (a.kid < b.kid ? -1 : 1)).map((record) => record.publicJwk)
    const body = JSON.stringify({ keys })
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`
    const publishedAlgs = new Set([...published.values()].map((record) => record.alg))
    const algorithms = SIGNING_ALGS.filter((alg) => publishedAlgs.has(alg))
    // keyTimelines names one current key whenever there are keys, and there are (checked above).
    if (!current) throw new Error('no signing key is current')
    return {
      from: now,
      until: nextTransition(records, timelines, now),
      current,
      published,
      timelines,
      jwks: { body, etag },
      algorithms,
    }
  }

  const at = (): View => {
    const now = clock()
    if (!view || now < view.from || now >= view.until) view = compute(now)
    return view
  }

  return {
    records,
    get size() {
      return at().published.size
    },
    signingKey() {
      const { kid, alg, privateKey } = at().current
      return { kid, alg, privateKey }
    },
    verificationKey(kid) {
      const record = at().published.get(kid)
      return record && { alg: record.alg, publicKey: record.publicKey }
    },
    jwks: () => at().jwks,
    publishedAlgorithms: () => at().algorithms,
    timelines: () => at().timelines,
  }
}
