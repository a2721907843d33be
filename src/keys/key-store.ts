import { createHash, type KeyObject } from 'node:crypto'
import type { Clock } from '../clock.js'
import type { Logger } from '../observability/logger.js'
import { SIGNING_ALGS, type SigningAlg } from './algorithms.js'
import type { KeyRecord } from './key-file.js'
import { isPublished, keyTimelines, nextTransition, type EligibleFrom, type KeyTimeline } from './key-states.js'

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
  /** Each key's state now, as this instance sees it (reload checks, metrics). */
  timelines(): KeyTimeline[]
  /**
   * When this instance first published the key (epoch seconds), -Infinity for a key trusted as
   * published at start-up, undefined for a kid it does not hold. Carried from store to store (a
   * store without it, a test double, passes on nothing: its keys count as published by the next).
   */
  firstPublished?(kid: string): number | undefined
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

export interface KeyStoreOptions {
  /** How long a retired key stays published (keyRetention). */
  retention: number
  /**
   * KEY_PUBLISH_MIN: a key signs only once this instance has published it (served it in the JWKS,
   * RFC 7517 §5) for this many seconds, whatever its `activates` says, so that verifiers caching
   * the set have fetched it before its first token. 0 or absent: no such rule.
   */
  publishMin?: number | undefined
  /**
   * The store this one replaces (a reload): when this instance first published each key is carried
   * over from it, and a key it did not hold is first published now. Absent: the first store of the
   * instance (process start), see createKeyStore.
   */
  previous?: Pick<KeyStore, 'firstPublished' | 'timelines'> | undefined
  /** Where a key held back by the publish rule is reported (info). */
  log?: Pick<Logger, 'info'> | undefined
}

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
 *
 * The publish rule (`publishMin`) counts from when this instance first published each key, which
 * only it knows (in memory). At process start (no `previous`) it cannot know what other instances
 * have been serving, and it must sign at once, so:
 * - a key whose `activates` has come is trusted as published (the instances sharing KEYS_DIR have
 *   been serving it; holding it back could leave the instance with nothing to sign with);
 * - any other key (scheduled or standby) is first published now, and so signs at
 *   max(activates, start + publishMin).
 * A key that appears later (a reload) is first published then. Whatever the rule holds back, some
 * key always signs: the previous one while it may, else the one published longest (keyTimelines).
 */
export function createKeyStore(records: readonly KeyRecord[], clock: Clock, options: KeyStoreOptions): KeyStore {
  if (records.length === 0) throw new Error('no signing keys')
  const byKid = new Map(records.map((record) => [record.kid, record]))
  const publishMin = options.publishMin ?? 0
  const created = clock()
  const publishedAt = new Map<string, number>()
  for (const record of records) {
    const before = options.previous?.firstPublished?.(record.kid)
    const trusted = options.previous === undefined && record.activates !== null && record.activates <= created
    publishedAt.set(record.kid, before ?? (trusted ? -Infinity : created))
  }
  const eligibleFrom: EligibleFrom = (key) =>
    publishMin > 0 ? (publishedAt.get(key.kid) ?? -Infinity) + publishMin : -Infinity
  let view: View | undefined

  function compute(now: number): View {
    const timelines = keyTimelines(records, now, options.retention, eligibleFrom)
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

  // A key the publish rule holds back (new, or a standby key just promoted): said once, here.
  const heldBefore = new Map(options.previous?.timelines().map((t) => [t.kid, t.signsFrom]))
  for (const timeline of at().timelines) {
    if (timeline.signsFrom === undefined || heldBefore.get(timeline.kid) === timeline.signsFrom) continue
    options.log?.info(
      { kid: timeline.kid, activates: byKid.get(timeline.kid)?.activates, signsFrom: timeline.signsFrom },
      'signing key published; it signs once verifiers have had time to fetch it',
    )
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
    firstPublished: (kid) => publishedAt.get(kid),
  }
}
