import type { Clock } from '../clock.js'
import { createMemoryReplayCache, ReplayCacheFullError, type ReplayCache } from '../oauth/replay-cache.js'
import {
  assertReplayNamespace,
  assertRevokedAt,
  assertUntil,
  DenylistUnavailableError,
  RevocationLimitError,
  type Denylist,
  type RevocationOwner,
} from './denylist.js'
import { createRevocationTable, dropExpired } from './revocation-table.js'

export interface MemoryDenylistOptions {
  clock: Clock
  /** Upper bound on stored revocations (tokens, keys and clients together). Default 1,000,000. */
  maxEntries?: number
  /** How often expired entries are dropped in the background. Default 60 s. */
  sweepIntervalMs?: number
}

const DEFAULT_MAX_ENTRIES = 1_000_000
const DEFAULT_SWEEP_INTERVAL_MS = 60_000

/**
 * Single-instance denylist: revocations apply at once inside this process and are lost on
 * restart; instances that must share them use the Redis one (`REDIS_URL`). Memory is bounded
 * (`revocation-table.ts`): when it is full of live entries a revocation is refused with
 * DenylistUnavailableError rather than evicting another one, because evicting would un-revoke a token.
 */
export function createMemoryDenylist(options: MemoryDenylistOptions): Denylist {
  const { clock } = options
  const maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES
  // client id -> (jti -> until): the revocations each client made, for its cap. Every member is
  // also in the table with the same until, and is swept with it.
  const owned = new Map<string, Map<string, number>>()
  const table = createRevocationTable({
    maxEntries,
    onSweep(now) {
      for (const [clientId, mine] of owned) {
        dropExpired(mine, now)
        if (mine.size === 0) owned.delete(clientId)
      }
    },
  })
  const replayCaches = new Map<string, ReplayCache>()
  let closed = false

  // Started here, never at import; unref'd so an idle denylist does not keep the process alive.
  const timer = setInterval(() => table.sweep(clock()), options.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS)
  timer.unref()

  function assertOpen(): void {
    if (closed) throw new DenylistUnavailableError('memory denylist is closed')
  }

  const full = () => new DenylistUnavailableError(`memory denylist is full (${maxEntries} live entries)`)

  /** The client's live revocations; throws RevocationLimitError when a new one would exceed its limit. */
  function ownedRoom(owner: RevocationOwner, now: number): Map<string, number> {
    const mine = owned.get(owner.clientId) ?? new Map<string, number>()
    if (mine.size >= owner.limit) dropExpired(mine, now)
    if (mine.size >= owner.limit) {
      let oldest = Number.POSITIVE_INFINITY
      for (const until of mine.values()) oldest = Math.min(oldest, until)
      throw new RevocationLimitError(owner.clientId, owner.limit, oldest - now)
    }
    return mine
  }

  async function revoke(kind: 'jti' | 'kid', id: string, until: number, owner?: RevocationOwner): Promise<void> {
    assertUntil(until)
    assertOpen()
    const now = clock()
    if (until <= now) return // already outside every verifier's window: nothing to remember
    if (table.has(kind, id, now)) {
      // Idempotent, and a second revocation never shortens the first. Not a new entry, so it is
      // neither counted again nor refused.
      table.put(kind, id, until, now)
      const mine = owner && owned.get(owner.clientId)
      const counted = mine?.get(id)
      if (mine && counted !== undefined && until > counted) mine.set(id, until)
      return
    }
    const mine = owner && ownedRoom(owner, now)
    if (!table.put(kind, id, until, now)) throw full()
    if (owner && mine) {
      mine.set(id, until)
      owned.set(owner.clientId, mine)
    }
  }

  /**
   * One in-process cache per namespace. Like the revocations, it refuses once the denylist is closed,
   * and a full cache is DenylistUnavailableError too (a 503: never the client's fault).
   */
  function replayCache(namespace: string): ReplayCache {
    assertReplayNamespace(namespace)
    const existing = replayCaches.get(namespace)
    if (existing) return existing
    const inner = createMemoryReplayCache({ clock })
    const cache: ReplayCache = {
      async useOnce(clientId, jti, until) {
        assertOpen()
        try {
          return await inner.useOnce(clientId, jti, until)
        } catch (err) {
          if (err instanceof ReplayCacheFullError) throw new DenylistUnavailableError(err.message, { cause: err })
          throw err
        }
      },
    }
    replayCaches.set(namespace, cache)
    return cache
  }

  return {
    kind: 'memory',
    async isRevoked(token) {
      assertOpen()
      return table.isRevoked(token, clock())
    },
    revokeToken: (jti, until, owner) => revoke('jti', jti, until, owner),
    revokeKey: (kid, until) => revoke('kid', kid, until),
    async revokeClient(clientId, revokedAt, until) {
      assertUntil(until)
      assertRevokedAt(revokedAt)
      assertOpen()
      if (!table.putClient(clientId, revokedAt, until, clock())) throw full()
    },
    replayCache,
    async ping() {
      assertOpen()
    },
    async close() {
      closed = true
      clearInterval(timer)
      table.clear()
      owned.clear()
      replayCaches.clear()
    },
  }
}
