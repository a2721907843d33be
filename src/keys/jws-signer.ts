import { constants, sign, type KeyObject, type SignKeyObjectInput } from 'node:crypto'
import type { SigningAlg } from './algorithms.js'

/**
 * Compact JWS (RFC 7515 §7.1) for the token endpoint, signed with node:crypto directly: the
 * protected header segment is encoded once per key, so a token costs one payload encoding and one
 * signature. jose keeps every other job (key generation, import and export, JWKS, verification).
 *
 * The signature is synchronous on purpose. The asynchronous forms (WebCrypto, which jose uses, or
 * crypto.sign with a callback) hand each signature to the libuv pool: on a server with as many busy
 * event loops as cores, that pool runs on the same cores, so a token costs the same CPU plus a
 * dispatch and a wake-up, and the event loop sits idle waiting.
 */
export interface JwsSigner {
  readonly kid: string
  readonly alg: SigningAlg
  readonly typ: string
  /** The compact JWS of `payload`, a JSON text, under the protected header {alg, kid, typ}. */
  sign(payload: string): string
}

interface SigningKey {
  kid: string
  alg: SigningAlg
  privateKey: KeyObject
}

/** RFC 7518 §3.1: the digest and signature scheme each `alg` names. */
function signatureScheme(alg: SigningAlg, key: KeyObject): { digest: string | null; key: KeyObject | SignKeyObjectInput } {
  switch (alg) {
    case 'ES256':
      // RFC 7518 §3.4: R and S as two 32-byte big-endian integers, not DER.
      return { digest: 'sha256', key: { key, dsaEncoding: 'ieee-p1363' } }
    case 'EdDSA':
      // RFC 8037 §3.1: Ed25519 signs the message itself, no prehash.
      return { digest: null, key }
    case 'RS256':
      return { digest: 'sha256', key: { key, padding: constants.RSA_PKCS1_PADDING } }
    case 'PS256':
      // RFC 7518 §3.5: MGF1 with SHA-256 and a salt as long as the hash.
      return { digest: 'sha256', key: { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } }
  }
}

export function createJwsSigner(key: SigningKey, typ: string): JwsSigner {
  // Member order as jose writes it, so tokens look as they always did.
  const header = Buffer.from(JSON.stringify({ alg: key.alg, kid: key.kid, typ })).toString('base64url')
  const scheme = signatureScheme(key.alg, key.privateKey)
  return {
    kid: key.kid,
    alg: key.alg,
    typ,
    sign(payload) {
      const signingInput = `${header}.${Buffer.from(payload, 'utf8').toString('base64url')}`
      // The signing input is base64url, so ASCII: latin1 is its exact byte encoding, and the fastest.
      const signature = sign(scheme.digest, Buffer.from(signingInput, 'latin1'), scheme.key)
      return `${signingInput}.${signature.toString('base64url')}`
    },
  }
}

const prepared = new WeakMap<KeyObject, JwsSigner>()

/**
 * The signer of `key`, prepared on first use and kept as long as the key itself (a reload brings
 * new key objects, and the old signers go with the old keys).
 */
export function jwsSigner(key: SigningKey, typ: string): JwsSigner {
  const signer = prepared.get(key.privateKey)
  if (signer && signer.kid === key.kid && signer.alg === key.alg && signer.typ === typ) return signer
  const fresh = createJwsSigner(key, typ)
  prepared.set(key.privateKey, fresh)
  return fresh
}
