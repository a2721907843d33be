import { clientRevocationCovers, type RevocationQuery } from './denylist.js'

/**
 * Revocations held in memory, by the memory denylist and by each resource server's revocation feed:
 * id -> until (epoch seconds) for tokens and for keys, and for clients their revocation instant
 * too. Bounded: when it is full of live entries a new one is refused (`put*` answers false) rather
 * than evicting another, because evicting would un-revoke a token. An entry is only ever lengthened.
 */
export interface RevocationTable {
  /** Entries held, expired ones not yet swept included. */
  readonly size: number
  /** Whether a live entry holds this token or key id; an expired one is dropped on the way. */
  has(kind: 'jti' | 'kid', id: string, now: number): boolean
  /** Revoked by its id, its key, or its client (each looked up, so expired entries are dropped whichever way). */
  isRevoked(token: RevocationQuery, now: number): boolean
  /**
   * Hold `id` until `until`, or lengthen the entry already held. False when a new entry finds no
   * room: nothing was stored. `until <= now` is already outside every verifier's window: nothing to hold.
   */
  put(kind: 'jti' | 'kid', id: string, until: number, now: number): boolean
  /** A client revocation; of two, the later instant and the later until are kept. False as for `put`. */
  putClient(clientId: string, revokedAt: number, until: number, now: number): boolean
  /** Drop every expired entry. */
  sweep(now: number): void
  clear(): void
}

export interface RevocationTableOptions {
  maxEntries: number
  /** Called with every full sweep, so a caller's own index of these entries is swept with them. */
  onSweep?: (now: number) => void
}

/** A client-wide revocation: tokens with `iat <= revokedAt` are refused until `until`. */
interface ClientEntry {
  revokedAt: number
  until: number
}

export function createRevocationTable(options: RevocationTableOptions): RevocationTable {
  const { maxEntries, onSweep } = options
  const entries = { jti: new Map<string, number>(), kid: new Map<string, number>() }
  const clients = new Map<string, ClientEntry>()
  let lastFullSweep = Number.NEGATIVE_INFINITY

  const size = () => entries.jti.size + entries.kid.size + clients.size

  function sweep(now: number): void {
    lastFullSweep = now
    dropExpired(entries.jti, now)
    dropExpired(entries.kid, now)
    for (const [id, entry] of clients) if (entry.until <= now) clients.delete(id)
    onSweep?.(now)
  }

  /** A full sweep at most once per clock second, so a table full of live entries stays cheap to refuse. */
  function hasRoom(now: number): boolean {
    if (size() >= maxEntries && now > lastFullSweep) sweep(now)
    return size() < maxEntries
  }

  function has(kind: 'jti' | 'kid', id: string, now: number): boolean {
    const map = entries[kind]
    const until = map.get(id)
    if (until === undefined) return false
    if (until > now) return true
    map.delete(id)
    return false
  }

  function liveClient(clientId: string, now: number): ClientEntry | undefined {
    const entry = clients.get(clientId)
    if (entry === undefined || entry.until > now) return entry
    clients.delete(clientId)
    return undefined
  }

  return {
    get size() {
      return size()
    },
    has,
    isRevoked(token, now) {
      const byJti = has('jti', token.jti, now)
      const byKid = token.kid !== undefined && has('kid', token.kid, now)
      const client = token.client_id === undefined ? undefined : liveClient(token.client_id, now)
      return byJti || byKid || (client !== undefined && clientRevocationCovers(client.revokedAt, token.iat))
    },
    put(kind, id, until, now) {
      if (until <= now) return true
      const map = entries[kind]
      const current = map.get(id)
      if (current !== undefined && current > now) {
        if (until > current) map.set(id, until) // never shortened
        return true
      }
      map.delete(id)
      if (!hasRoom(now)) return false
      map.set(id, until)
      return true
    },
    putClient(clientId, revokedAt, until, now) {
      if (until <= now) return true
      const current = liveClient(clientId, now)
      if (current !== undefined) {
        // The later instant covers every token the earlier one did.
        clients.set(clientId, {
          revokedAt: laterInstant(current.revokedAt, revokedAt),
          until: Math.max(current.until, until),
        })
        return true
      }
      if (!hasRoom(now)) return false
      clients.set(clientId, { revokedAt, until })
      return true
    },
    sweep,
    clear() {
      entries.jti.clear()
      entries.kid.clear()
      clients.clear()
    },
  }
}

export function dropExpired(map: Map<string, number>, now: number): void {
  for (const [id, until] of map) if (until <= now) map.delete(id)
}

/** NaN (a client entry written by hand: every token of the client) wins over any instant. */
function laterInstant(a: number, b: number): number {
  return Number.isNaN(a) || Number.isNaN(b) ? Number.NaN : Math.max(a, b)
}
