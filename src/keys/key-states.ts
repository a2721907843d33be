/**
 * The signing-key lifecycle, decided by timestamps alone so that every instance sharing KEYS_DIR
 * agrees without talking (OIDC Core §10.1.1 rotation; rotation.ts writes the timestamps):
 *
 *   standby ── promoted ──▶ next ── activates ──▶ current ── successor activates ──▶ retired ──▶ expired
 *   (published,            (published,            (signs)                           (published until
 *    not scheduled)         scheduled)                                               its last token expired)
 *
 * A key is published long before it signs, so verifiers have it cached when the first token
 * arrives, and stays published until every token it signed has expired (plus clock tolerance).
 */
export type KeyState = 'standby' | 'next' | 'current' | 'retired' | 'expired'

export interface KeyTimes {
  kid: string
  created: number
  /** null: standby */
  activates: number | null
}

export interface KeyTimeline {
  kid: string
  state: KeyState
  /** When a successor took over (retired and expired keys), else null. */
  retired: number | null
  /** When it stops being published (retired and expired keys), else null. */
  unpublishes: number | null
}

export const isPublished = (state: KeyState) => state !== 'expired'

/** Most recently activated first; ties broken by creation then kid, so every instance picks the same key. */
const byActivationDesc = (a: KeyTimes, b: KeyTimes) =>
  (b.activates ?? 0) - (a.activates ?? 0) || b.created - a.created || (a.kid < b.kid ? -1 : a.kid > b.kid ? 1 : 0)

/**
 * Every key's state at `now`. `retention` is how long a retired key stays published: the longest
 * token lifetime plus the verifiers' clock tolerance plus the reload lag.
 */
export function keyTimelines(keys: readonly KeyTimes[], now: number, retention: number): KeyTimeline[] {
  const active = keys
    .filter((k): k is KeyTimes & { activates: number } => k.activates !== null && k.activates <= now)
    .sort(byActivationDesc)
  const timelines = new Map<string, KeyTimeline>()
  // The first is current; each other one retired when the key before it in this order activated.
  let successor: number | undefined
  for (const key of active) {
    if (successor === undefined)
      timelines.set(key.kid, { kid: key.kid, state: 'current', retired: null, unpublishes: null })
    else {
      const unpublishes = successor + retention
      timelines.set(key.kid, {
        kid: key.kid,
        state: now < unpublishes ? 'retired' : 'expired',
        retired: successor,
        unpublishes,
      })
    }
    successor = key.activates
  }
  // Nothing has activated yet (a clock far behind the files): sign with the key due first, or the
  // oldest standby, rather than not at all.
  const [fallback] =
    active.length === 0
      ? [...keys].sort((a, b) => (a.activates ?? Infinity) - (b.activates ?? Infinity) || a.created - b.created)
      : []
  if (fallback) timelines.set(fallback.kid, { kid: fallback.kid, state: 'current', retired: null, unpublishes: null })
  return keys.map(
    (key) =>
      timelines.get(key.kid) ?? {
        kid: key.kid,
        state: key.activates === null ? 'standby' : 'next',
        retired: null,
        unpublishes: null,
      },
  )
}

/** The next instant after `now` at which some key changes state (to cache views until then). */
export function nextTransition(keys: readonly KeyTimes[], timelines: readonly KeyTimeline[], now: number): number {
  const events = [
    ...keys.map((k) => k.activates).filter((t): t is number => t !== null && t > now),
    ...timelines.map((t) => t.unpublishes).filter((t): t is number => t !== null && t > now),
  ]
  return events.length > 0 ? Math.min(...events) : Infinity
}
