import type { Audit } from '../observability/audit.js'
import type { Tombstone } from './key-file.js'
import type { KeyStore } from './key-store.js'

/**
 * The signing-key state changes this server sees, as audit events, each once per instance per change:
 * - `key.rotated`: a key file it had not seen appears (a rotation writes one: the scheduled key, or
 *   the standby key restored after a promotion, RFC 7517 §5 set membership changing);
 * - `key.activated`: the key that signs changes, on a reload (an immediate rotation, a revocation of
 *   the signing key) or on the clock reaching a key's `activates` (src/keys/key-states.ts), or the
 *   later instant KEY_PUBLISH_MIN lets a key this server published late sign (key-store.ts);
 * - `key.revoked`: a key becomes a tombstone (`keys revoke`).
 * Tombstones are known from KEYS_DIR reads only (a key store holds none): those present at the first
 * read are the state the server starts from, not news, unless the key was one it held.
 */
export interface KeyEvents {
  /** Compares `store` (and, after a read of KEYS_DIR, its tombstones) with what was seen last. */
  observe(store: KeyStore, tombstones?: readonly Tombstone[]): void
}

export function keyEvents(audit: Pick<Audit, 'emit'>, initial: KeyStore): KeyEvents {
  /** The records last seen (a store's list: the same list means the same keys) and their kids. */
  let seen = initial.records
  let known = new Set(seen.map((record) => record.kid))
  let signing = initial.signingKey().kid
  let revoked: Set<string> | undefined

  return {
    observe(store, tombstones) {
      const changed = store.records !== seen
      if (changed) {
        for (const record of store.records) {
          if (!known.has(record.kid)) audit.emit('key.rotated', { kid: record.kid, alg: record.alg })
        }
      }
      if (tombstones !== undefined) {
        for (const tombstone of tombstones) {
          if (revoked?.has(tombstone.kid)) continue
          if (revoked !== undefined || known.has(tombstone.kid))
            audit.emit('key.revoked', { kid: tombstone.kid, alg: tombstone.alg })
        }
        revoked = new Set(tombstones.map((tombstone) => tombstone.kid))
      }
      if (changed) {
        seen = store.records
        known = new Set(seen.map((record) => record.kid))
      }
      const { kid, alg } = store.signingKey()
      if (kid !== signing) audit.emit('key.activated', { kid, alg })
      signing = kid
    },
  }
}
