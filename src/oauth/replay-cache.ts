import type { Clock } from '../clock.js'

/**
 * Remembers which client assertions were used, so each `jti` authenticates once (RFC 7523 §3 item 7,
 * RFC 7519 §4.1.7).
 */
export interface ReplayCache {
  /**
   * Records (`clientId`, `jti`) until `until` (epoch seconds) and answers true, or answers false when the
   * pair is already recorded and not yet past its `until`: a replay. A `jti` is scoped to its client, so two
   * clients choosing the same value never collide. Throws when the pair cannot be recorded (store down or
   * full): the caller must refuse the assertion then, never accept it unrecorded.
   */
  useOnce(clientId: string, jti: string, until: number): Promise<boolean>
}

export class ReplayCacheFullError extends Error {
  constructor(maxEntries: number) {
    super(`replay cache full: ${maxEntries} live client assertion ids; refusing to record more until some expire`)
    this.name = 'ReplayCacheFullError'
  }
}

export interface MemoryReplayCacheOptions {
  clock: Clock
  /** Live entries kept at most; past it, new assertions are refused until old ones expire. */
  maxEntries?: number
}

/**
 * An in-process `ReplayCache`. It serves one instance only: behind several instances each keeps its own
 * record and an assertion could be replayed once per instance, so a shared (Redis-backed) cache comes with
 * the wiring of private_key_jwt into the token endpoint.
 *
 * When full, it throws rather than forgetting a live entry: forgetting one would let that very assertion
 * be replayed before its `exp`, which is what this cache exists to prevent. Expired entries are swept
 * when the cache is full, and only once something may have expired, so a full cache of live entries
 * refuses in constant time.
 */
export function createMemoryReplayCache({ clock, maxEntries = 100_000 }: MemoryReplayCacheOptions): ReplayCache {
  if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new Error('maxEntries must be a positive integer')
  const entries = new Map<string, number>()
  /** The earliest `until` held, so a sweep that cannot free anything is skipped. */
  let earliest = Number.POSITIVE_INFINITY

  const sweep = (now: number): void => {
    if (now < earliest) return
    earliest = Number.POSITIVE_INFINITY
    for (const [key, until] of entries) {
      if (until <= now) entries.delete(key)
      else if (until < earliest) earliest = until
    }
  }

  return {
    async useOnce(clientId, jti, until) {
      const now = clock()
      // Past `until` the assertion is refused on its `exp` anyway; there is nothing left to remember.
      if (until <= now) return true
      // JSON keeps the pair unambiguous whatever characters either part holds.
      const key = JSON.stringify([clientId, jti])
      const seen = entries.get(key)
      if (seen !== undefined && seen > now) return false
      if (seen === undefined && entries.size >= maxEntries) {
        sweep(now)
        if (entries.size >= maxEntries) throw new ReplayCacheFullError(maxEntries)
      }
      entries.set(key, until)
      if (until < earliest) earliest = until
      return true
    },
  }
}
