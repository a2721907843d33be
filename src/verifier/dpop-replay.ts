import type { DpopReplay } from './dpop.js'

/** Default bound on the proofs one middleware remembers: about 15 MiB at worst. */
export const DEFAULT_DPOP_REPLAY_ENTRIES = 100_000

/** Thrown by a full in-memory replay cache: the request is answered 503, never let through unrecorded. */
export class DpopReplayFullError extends Error {
  constructor(maxEntries: number) {
    super(`DPoP replay cache full: ${maxEntries} live proofs; refusing to record more until some expire`)
    this.name = 'DpopReplayFullError'
  }
}

export interface MemoryDpopReplayOptions {
  /** Epoch seconds. Default `Date.now() / 1000`. */
  clock?: () => number
  /** Live proofs remembered at most; past it, new proofs are refused until old ones expire. Default 100,000. */
  maxEntries?: number
}

/**
 * An in-process {@link DpopReplay}: each proof `jti` is accepted once per key until its `until`
 * (RFC 9449 §11.1). It serves one process only: resource servers running several instances behind one
 * URL should pass a shared store instead (`bearerAuth({ dpop: { replay } })`), or a proof could be
 * replayed once per instance within its lifetime.
 *
 * When full it throws rather than forget a live entry, which would let that very proof be replayed.
 * Expired entries are swept only when the cache is full and something may have expired, so a full
 * cache of live entries refuses in constant time.
 *
 * @example
 * ```ts
 * const replay = createMemoryDpopReplay({ maxEntries: 10_000 })
 * app.use('/api/*', bearerAuth({ issuer, audience, jwks, dpop: { replay } }))
 * ```
 */
export function createMemoryDpopReplay(options: MemoryDpopReplayOptions = {}): DpopReplay {
  const clock = options.clock ?? (() => Date.now() / 1000)
  const maxEntries = options.maxEntries ?? DEFAULT_DPOP_REPLAY_ENTRIES
  if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) throw new TypeError('maxEntries must be a positive integer')
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
    async useOnce(scope, jti, until) {
      const now = clock()
      // Past `until` the proof is refused on its `iat` anyway; there is nothing left to remember.
      if (until <= now) return true
      // JSON keeps the pair unambiguous whatever characters either part holds.
      const key = JSON.stringify([scope, jti])
      const seen = entries.get(key)
      if (seen !== undefined && seen > now) return false
      if (seen === undefined && entries.size >= maxEntries) {
        sweep(now)
        if (entries.size >= maxEntries) throw new DpopReplayFullError(maxEntries)
      }
      entries.set(key, until)
      if (until < earliest) earliest = until
      return true
    },
  }
}
