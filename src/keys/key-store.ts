import { createHash, type KeyObject } from 'node:crypto'
import type { Clock } from '../clock.js'
import type { SigningAlg } from './algorithms.js'
import type { KeyRecord } from './key-file.js'

/** What signing and verification need from the keys; the server holds one, swapped on reload. */
export interface KeyStore {
  /** The key that signs now. Throws if there is none (start-up makes sure there is). */
  signingKey(): { kid: string; alg: SigningAlg; privateKey: KeyObject }
  /** A published key by kid, for the server's own verification (introspection, revocation). */
  verificationKey(kid: string): { alg: SigningAlg; publicKey: KeyObject } | undefined
  /** The JWKS document (RFC 7517 §5), serialized once, with its ETag. */
  jwks(): { body: string; etag: string }
  readonly size: number
}

/**
 * The current key is the one activated most recently (activates <= now); keys whose activation
 * lies ahead are published but do not sign yet, so verifiers can cache them first.
 */
export function createKeyStore(records: readonly KeyRecord[], clock: Clock): KeyStore {
  if (records.length === 0) throw new Error('no signing keys')
  const byKid = new Map(records.map((record) => [record.kid, record]))
  // Newest first; ties broken by kid so every instance picks the same key.
  const byActivation = [...records].sort((a, b) => b.activates - a.activates || (a.kid < b.kid ? -1 : 1))

  const body = JSON.stringify({ keys: byActivation.map((record) => record.publicJwk) })
  const jwks = { body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` }

  return {
    size: records.length,
    signingKey() {
      const now = clock()
      const current = byActivation.find((record) => record.activates <= now)
      // Every key still ahead of its activation: sign with the earliest rather than fail.
      const key = current ?? byActivation[byActivation.length - 1]!
      return { kid: key.kid, alg: key.alg, privateKey: key.privateKey }
    },
    verificationKey(kid) {
      const record = byKid.get(kid)
      return record && { alg: record.alg, publicKey: record.publicKey }
    },
    jwks: () => jwks,
  }
}
