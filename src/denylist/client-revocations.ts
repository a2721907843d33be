import type { ClientRegistry } from '../clients/registry.js'
import type { Deps } from '../deps.js'
import { MAX_TOKEN_TTL } from '../keys/key-store.js'

/** Every token of `clientId` issued at or before `revokedAt` is refused until `until` (epoch seconds). */
export interface ClientRevocation {
  clientId: string
  revokedAt: number
  until: number
}

/**
 * How long a client revocation must last after its instant: the longest lifetime any token may
 * have had (3600 s: the client's own access_token_ttl may have been longer when the token was
 * issued), plus the verifiers' clock tolerance.
 */
export const clientRevocationLifetime = (clockTolerance: number) => MAX_TOKEN_TTL + clockTolerance

/** What the sync needs of one CLIENTS_FILE load: who is in it, and who has `tokens_revoked_at`. */
export type ClientRoster = Pick<ClientRegistry, 'has' | 'ids' | 'tokensRevokedAt'>

/**
 * Which clients need a denylist entry after CLIENTS_FILE went from `previous` to `current`
 * (`previous` undefined: the first load, nothing known before it):
 * - a client that was removed: its tokens issued up to now;
 * - a client with `tokens_revoked_at`: its tokens issued up to that instant. When the instant is
 *   new since the previous load, up to now if that is later: until this load the server still
 *   took the old secrets, so the tokens it issued meanwhile are covered too.
 * Each lasts until its last covered token has expired; those already over are left out.
 */
export function clientRevocations(
  previous: ClientRoster | undefined,
  current: ClientRoster,
  now: number,
  clockTolerance: number,
): ClientRevocation[] {
  const lifetime = clientRevocationLifetime(clockTolerance)
  const revocation = (clientId: string, revokedAt: number) => ({ clientId, revokedAt, until: revokedAt + lifetime })

  const found: ClientRevocation[] = []
  if (previous) for (const clientId of previous.ids()) if (!current.has(clientId)) found.push(revocation(clientId, now))
  for (const [clientId, at] of current.tokensRevokedAt) {
    const isNew = previous !== undefined && previous.tokensRevokedAt.get(clientId) !== at
    found.push(revocation(clientId, isNew ? Math.max(at, now) : at))
  }
  return found.filter((r) => r.until > now)
}

export interface ClientRevocationSync {
  /**
   * Call with every CLIENTS_FILE load, the first one included. Writes what `clientRevocations`
   * finds, and whatever an earlier call could not write. Throws when a write failed: call again
   * (at the next check) to retry.
   */
  apply(clients: ClientRoster): Promise<void>
}

/**
 * Keeps the denylist in step with CLIENTS_FILE, the way revoked keys follow KEYS_DIR. The CLI
 * writes the same entries to Redis itself; every server repeats them when it loads the file,
 * which also covers the in-memory denylist. Idempotent.
 */
export function createClientRevocationSync(
  deps: Pick<Deps, 'denylist' | 'clock' | 'config' | 'log'>,
): ClientRevocationSync {
  // The roster of the last load: the registry in force, so no second copy of the clients is kept.
  let known: ClientRoster | undefined
  const pending = new Map<string, ClientRevocation>()

  return {
    async apply(clients) {
      const now = deps.clock()
      for (const found of clientRevocations(known, clients, now, deps.config.clockTolerance)) {
        const earlier = pending.get(found.clientId)
        pending.set(
          found.clientId,
          earlier === undefined
            ? found
            : {
                clientId: found.clientId,
                revokedAt: Math.max(earlier.revokedAt, found.revokedAt),
                until: Math.max(earlier.until, found.until),
              },
        )
      }
      known = clients

      const failed: string[] = []
      for (const { clientId, revokedAt, until } of pending.values()) {
        try {
          await deps.denylist.revokeClient(clientId, revokedAt, until)
          pending.delete(clientId)
          deps.log.info({ client_id: clientId, revoked_at: revokedAt, until }, 'tokens of client denylisted')
        } catch {
          failed.push(clientId)
        }
      }
      if (failed.length > 0) {
        throw new Error(
          `clients applied, but the tokens of client ${failed.join(', ')} are not in the denylist yet; retrying`,
        )
      }
    },
  }
}
