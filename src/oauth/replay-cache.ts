import { createMemoryDpopReplay, DpopReplayFullError } from '../verifier/dpop-replay.js'
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
 * record and an assertion could be replayed once per instance, so servers with REDIS_URL use the
 * denylist's shared cache (`Denylist.replayCache`).
 *
 * The same bounded cache resource servers use for DPoP proofs (src/verifier/dpop-replay.ts): when full
 * it throws rather than forget a live entry, which would let that very assertion be replayed.
 */
export function createMemoryReplayCache({ clock, maxEntries = 100_000 }: MemoryReplayCacheOptions): ReplayCache {
  const cache = createMemoryDpopReplay({ clock, maxEntries })
  return {
    async useOnce(clientId, jti, until) {
      try {
        return await cache.useOnce(clientId, jti, until)
      } catch (error) {
        if (error instanceof DpopReplayFullError) throw new ReplayCacheFullError(maxEntries)
        throw error
      }
    },
  }
}
