import type { Clock } from '../clock.js'
import {
  assertRevokedAt,
  assertUntil,
  clientRevocationCovers,
  DenylistUnavailableError,
  RevocationLimitError,
  type Denylist,
  type RevocationOwner,
} from './denylist.js'

export interface MemoryDenylistOptions {
  clock: Clock
  /** Upper bound on stored revocations (tokens, keys and clients together). Default 1,000,000. */
  maxEntries?: number
  /** How often expired entries are dropped in the background. Default 60 s. */
  sweepIntervalMs?: number
}

const DEFAULT_MAX_ENTRIES = 1_000_000
const DEFAULT_SWEEP_INTERVAL_MS = 60_000

/** A client-wide revocation: tokens with `iat <= revokedAt` are refused until `until`. */
interface ClientEntry {
  revokedAt: number
  until: number
}

/**
 * Single-instance denylist (RV-8): revocations apply at once inside this process and are lost on
 * restart. Memory is bounded; when it is full of live entries a revocation is refused with
 * DenylistUnavailableError rather than evicting another one, because evicting would un-revoke a token.
 */
export function createMemoryDenylist(options: MemoryDenylistOptions): Denylist {
  const { clock } = options
  const maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES
  // id -> until (epoch seconds), one map per namespace.
  const tokens = new Map<string, number>()
  const keys = new Map<string, number>()
  const clients = new Map<string, ClientEntry>()
  // client id -> (jti -> until): the revocations each client made, for its cap. Every member is
  // also in `tokens` with the same until, so this never holds more than `tokens` does.
  const owned = new Map<string, Map<string, number>>()
  let lastFullSweep = Number.NEGATIVE_INFINITY
  let closed = false

  const size = () => tokens.size + keys.size + clients.size

  function sweep(now: number): void {
    lastFullSweep = now
    for (const map of [tokens, keys]) {
      for (const [id, until] of map) if (until <= now) map.delete(id)
    }
    for (const [id, entry] of clients) if (entry.until <= now) clients.delete(id)
    for (const [clientId, mine] of owned) {
      dropExpired(mine, now)
      if (mine.size === 0) owned.delete(clientId)
    }
  }

  // Started here, never at import; unref'd so an idle denylist does not keep the process alive.
  const timer = setInterval(() => sweep(clock()), options.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS)
  timer.unref()

  function assertOpen(): void {
    if (closed) throw new DenylistUnavailableError('memory denylist is closed')
  }

  function isLive(map: Map<string, number>, id: string, now: number): boolean {
    const until = map.get(id)
    if (until === undefined) return false
    if (until > now) return true
    map.delete(id)
    return false
  }

  function isClientRevoked(clientId: string | undefined, iat: number | undefined, now: number): boolean {
    if (clientId === undefined) return false
    const entry = clients.get(clientId)
    if (entry === undefined) return false
    if (entry.until <= now) {
      clients.delete(clientId)
      return false
    }
    return clientRevocationCovers(entry.revokedAt, iat)
  }

  /** A full scan at most once per clock second, so a table full of live entries stays cheap to refuse. */
  function assertRoom(now: number): void {
    if (size() >= maxEntries && now > lastFullSweep) sweep(now)
    if (size() >= maxEntries) {
      throw new DenylistUnavailableError(`memory denylist is full (${maxEntries} live entries)`)
    }
  }

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

  async function revoke(map: Map<string, number>, id: string, until: number, owner?: RevocationOwner): Promise<void> {
    assertUntil(until)
    assertOpen()
    const now = clock()
    if (until <= now) return // already outside every verifier's window: nothing to remember
    if (isLive(map, id, now)) {
      // Idempotent, and a second revocation never shortens the first. Not a new entry, so it is
      // neither counted again nor refused.
      if (until > map.get(id)!) map.set(id, until)
      const mine = owner && owned.get(owner.clientId)
      if (mine?.has(id) && until > mine.get(id)!) mine.set(id, until)
      return
    }
    const mine = owner && ownedRoom(owner, now)
    assertRoom(now)
    map.set(id, until)
    if (owner && mine) {
      mine.set(id, until)
      owned.set(owner.clientId, mine)
    }
  }

  return {
    kind: 'memory',
    async isRevoked(token) {
      assertOpen()
      const now = clock()
      // Every check always runs, so an expired entry is dropped whichever way it is looked up.
      const byJti = isLive(tokens, token.jti, now)
      const byKid = token.kid !== undefined && isLive(keys, token.kid, now)
      const byClient = isClientRevoked(token.client_id, token.iat, now)
      return byJti || byKid || byClient
    },
    revokeToken: (jti, until, owner) => revoke(tokens, jti, until, owner),
    revokeKey: (kid, until) => revoke(keys, kid, until),
    async revokeClient(clientId, revokedAt, until) {
      assertUntil(until)
      assertRevokedAt(revokedAt)
      assertOpen()
      const now = clock()
      if (until <= now) return
      const current = clients.get(clientId)
      if (current !== undefined && current.until > now) {
        // The later instant covers every token the earlier one did; never shorten either.
        clients.set(clientId, { revokedAt: Math.max(current.revokedAt, revokedAt), until: Math.max(current.until, until) })
        return
      }
      clients.delete(clientId)
      assertRoom(now)
      clients.set(clientId, { revokedAt, until })
    },
    async ping() {
      assertOpen()
    },
    async close() {
      closed = true
      clearInterval(timer)
      tokens.clear()
      keys.clear()
      clients.clear()
      owned.clear()
    },
  }
}

function dropExpired(map: Map<string, number>, now: number): void {
  for (const [id, until] of map) if (until <= now) map.delete(id)
}
