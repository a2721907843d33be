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
 *
 * One instance may hold a key back further: a key file that appears late (GitOps syncing a file whose
 * `activates` is already past) signs only once this instance has published it for KEY_PUBLISH_MIN
 * (`eligibleFrom`, from key-store.ts). Until then it is `next` and the key before it keeps signing;
 * the order of keys is still the files' order, so instances that saw a file at different times
 * disagree for a while on which key signs, never on which keys are published.
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
  /**
   * When it signs at the earliest, present only when that is later than its `activates` (a key
   * waiting for this instance to have published it long enough; see `eligibleFrom`).
   */
  signsFrom?: number
}

/**
 * When a key may sign: its `activates`, or later when `eligibleFrom` (the instant this instance
 * will have published it for KEY_PUBLISH_MIN) is later. -Infinity: no publish rule for it.
 */
export type EligibleFrom = (key: KeyTimes) => number

const noPublishRule: EligibleFrom = () => -Infinity

const signsFrom = (key: KeyTimes & { activates: number }, eligibleFrom: EligibleFrom) =>
  Math.max(key.activates, eligibleFrom(key))

export const isPublished = (state: KeyState) => state !== 'expired'

/** Most recently activated first; ties broken by creation then kid, so every instance picks the same key. */
const byActivationDesc = (a: KeyTimes, b: KeyTimes) =>
  (b.activates ?? 0) - (a.activates ?? 0) || b.created - a.created || (a.kid < b.kid ? -1 : a.kid > b.kid ? 1 : 0)

/**
 * Every key's state at `now`. `retention` is how long a retired key stays published: the longest
 * token lifetime plus the verifiers' clock tolerance plus the reload lag. Without `eligibleFrom`,
 * the states the files alone give (what `keys list` shows); with it, this instance's.
 */
export function keyTimelines(
  keys: readonly KeyTimes[],
  now: number,
  retention: number,
  eligibleFrom: EligibleFrom = noPublishRule,
): KeyTimeline[] {
  const active = keys
    .filter((k): k is KeyTimes & { activates: number } => k.activates !== null && k.activates <= now)
    .sort(byActivationDesc)
  // The newest key (in the files' order) that may sign now signs; newer ones wait for the publish
  // rule. When none may (the key that signed was revoked, and what is left appeared after it), the
  // one published longest signs rather than none: a lone unpublished key must still sign.
  const signing =
    active.find((k) => signsFrom(k, eligibleFrom) <= now) ??
    [...active].sort((a, b) => signsFrom(a, eligibleFrom) - signsFrom(b, eligibleFrom))[0]
  const timelines = new Map<string, KeyTimeline>()
  // Each key older than the signing one retired when the key after it in this order started
  // signing here (its `activates`, or later under the publish rule, so never too early).
  let successor: number | undefined
  let passed = false
  for (const key of active) {
    if (key === signing) {
      timelines.set(key.kid, { kid: key.kid, state: 'current', retired: null, unpublishes: null })
      passed = true
    } else if (!passed || successor === undefined) {
      timelines.set(key.kid, waitingTimeline(key, eligibleFrom))
    } else {
      const unpublishes = successor + retention
      timelines.set(key.kid, {
        kid: key.kid,
        state: now < unpublishes ? 'retired' : 'expired',
        retired: successor,
        unpublishes,
      })
    }
    successor = signsFrom(key, eligibleFrom)
  }
  // Nothing has activated yet (a clock far behind the files): sign with the key due first, or the
  // oldest standby, rather than not at all.
  const [fallback] =
    active.length === 0
      ? [...keys].sort((a, b) => (a.activates ?? Infinity) - (b.activates ?? Infinity) || a.created - b.created)
      : []
  if (fallback) timelines.set(fallback.kid, { kid: fallback.kid, state: 'current', retired: null, unpublishes: null })
  return keys.map((key) => timelines.get(key.kid) ?? waitingTimeline(key, eligibleFrom))
}

/** A standby key, or a next one (scheduled, or active by its file but held back by the publish rule). */
function waitingTimeline(key: KeyTimes, eligibleFrom: EligibleFrom): KeyTimeline {
  if (key.activates === null) return { kid: key.kid, state: 'standby', retired: null, unpublishes: null }
  const from = signsFrom({ ...key, activates: key.activates }, eligibleFrom)
  return {
    kid: key.kid,
    state: 'next',
    retired: null,
    unpublishes: null,
    ...(from > key.activates && { signsFrom: from }),
  }
}

/** The next instant after `now` at which some key changes state (to cache views until then). */
export function nextTransition(keys: readonly KeyTimes[], timelines: readonly KeyTimeline[], now: number): number {
  const events = [
    ...keys.map((k) => k.activates).filter((t): t is number => t !== null && t > now),
    ...timelines.map((t) => t.signsFrom).filter((t): t is number => t !== undefined && t > now),
    ...timelines.map((t) => t.unpublishes).filter((t): t is number => t !== null && t > now),
  ]
  return events.length > 0 ? Math.min(...events) : Infinity
}
