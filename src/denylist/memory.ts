import type { Clock } from '../clock.js'
import { assertUntil, DenylistUnavailableError, type Denylist, type EntryKind } from './denylist.js'

export interface MemoryDenylistOptions {
  clock: Clock
  /** Upper bound on stored revocations (tokens and keys together). Default 1,000,000. */
  maxEntries?: number
  /** How often expired entries are dropped in the background. Default 60 s. */
  sweepIntervalMs?: number
}

const DEFAULT_MAX_ENTRIES = 1_000_000
const DEFAULT_SWEEP_INTERVAL_MS = 60_000

/**
 * Single-instance denylist (RV-8): revocations apply at once inside this process and are lost on
 * restart. Memory is bounded; when it is full of live entries a revocation is refused with
 * DenylistUnavailableError rather than evicting another one, because evicting would un-revoke a token.
 */
export function createMemoryDenylist(options: MemoryDenylistOptions): Denylist {
  const { clock } = options
  const maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES
  // id -> until (epoch seconds), one map per namespace.
  const entries: Record<EntryKind, Map<string, number>> = { jti: new Map(), kid: new Map() }
  let lastFullSweep = Number.NEGATIVE_INFINITY
  let closed = false

  const size = () => entries.jti.size + entries.kid.size

  function sweep(now: number): void {
    lastFullSweep = now
    for (const map of Object.values(entries)) {
      for (const [id, until] of map) if (until <= now) map.delete(id)
    }
  }

  // Started here, never at import; unref'd so an idle denylist does not keep the process alive.
  const timer = setInterval(() => sweep(clock()), options.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS)
  timer.unref()

  function assertOpen(): void {
    if (closed) throw new DenylistUnavailableError('memory denylist is closed')
  }

  function isLive(kind: EntryKind, id: string, now: number): boolean {
    const until = entries[kind].get(id)
    if (until === undefined) return false
    if (until > now) return true
    entries[kind].delete(id)
    return false
  }

  async function revoke(kind: EntryKind, id: string, until: number): Promise<void> {
    assertUntil(until)
    assertOpen()
    const now = clock()
    if (until <= now) return // already outside every verifier's window: nothing to remember
    const map = entries[kind]
    const current = map.get(id)
    if (current !== undefined) {
      // Idempotent, and a second revocation never shortens the first (RV-6).
      if (until > current) map.set(id, until)
      return
    }
    // A full scan at most once per clock second, so a table full of live entries stays cheap to refuse.
    if (size() >= maxEntries && now > lastFullSweep) sweep(now)
    if (size() >= maxEntries) {
      throw new DenylistUnavailableError(`memory denylist is full (${maxEntries} live entries)`)
    }
    map.set(id, until)
  }

  return {
    kind: 'memory',
    async isRevoked(token) {
      assertOpen()
      const now = clock()
      // Both checks always run, so an expired entry is dropped whichever way it is looked up.
      const byJti = isLive('jti', token.jti, now)
      const byKid = token.kid !== undefined && isLive('kid', token.kid, now)
      return byJti || byKid
    },
    revokeToken: (jti, until) => revoke('jti', jti, until),
    revokeKey: (kid, until) => revoke('kid', kid, until),
    async ping() {
      assertOpen()
    },
    async close() {
      closed = true
      clearInterval(timer)
      entries.jti.clear()
      entries.kid.clear()
    },
  }
}
