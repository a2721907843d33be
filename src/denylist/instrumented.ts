import type { DenylistOperation, DenylistOutcome, Metrics } from '../observability/metrics.js'
import { type Denylist, DenylistUnavailableError, RevocationLimitError, type StoredReplayCache } from './denylist.js'

/**
 * A denylist that counts and times every operation (tokensmith_denylist_operations_total,
 * tokensmith_denylist_operation_duration_seconds) and otherwise is `denylist`: same answers, same
 * errors, same `kind` and `shared`. Outcomes: `ok` when the store answered (a refusal it made, such
 * as a client at its revocation limit, included), `unavailable` when it could not
 * (DenylistUnavailableError: the caller answers 503), `error` for anything else.
 */
export function instrumentDenylist(
  denylist: Denylist,
  metrics: Pick<Metrics, 'denylistOperations' | 'denylistDuration'>,
): Denylist {
  const timed = async <T>(operation: DenylistOperation, run: () => Promise<T>): Promise<T> => {
    const started = performance.now()
    let outcome: DenylistOutcome = 'ok'
    try {
      return await run()
    } catch (error) {
      outcome = outcomeOf(error)
      throw error
    } finally {
      metrics.denylistOperations.inc({ operation, outcome })
      metrics.denylistDuration.observe({ operation }, (performance.now() - started) / 1000)
    }
  }
  const replayCaches = new WeakMap<StoredReplayCache, StoredReplayCache>()
  return {
    get kind() {
      return denylist.kind
    },
    get shared() {
      return denylist.shared
    },
    isRevoked: (token) => timed('is_revoked', () => denylist.isRevoked(token)),
    revokeToken: (jti, until, owner) => timed('revoke_token', () => denylist.revokeToken(jti, until, owner)),
    revokeKey: (kid, until) => timed('revoke_key', () => denylist.revokeKey(kid, until)),
    revokeClient: (clientId, revokedAt, until) =>
      timed('revoke_client', () => denylist.revokeClient(clientId, revokedAt, until)),
    replayCache(namespace): StoredReplayCache {
      // Asked of the plain denylist every time (it checks the namespace); wrapped once per cache it returns.
      const cache = denylist.replayCache(namespace)
      let wrapped = replayCaches.get(cache)
      if (!wrapped) {
        wrapped = { useOnce: (clientId, jti, until) => timed('replay', () => cache.useOnce(clientId, jti, until)) }
        replayCaches.set(cache, wrapped)
      }
      return wrapped
    },
    ping: () => timed('ping', () => denylist.ping()),
    close: () => denylist.close(),
  }
}

function outcomeOf(error: unknown): DenylistOutcome {
  if (error instanceof DenylistUnavailableError) return 'unavailable'
  if (error instanceof RevocationLimitError) return 'ok'
  return 'error'
}
