import { constants, sign, type KeyObject, type SignKeyObjectInput } from 'node:crypto'
import type { SigningAlg } from './algorithms.js'

/**
 * Compact JWS (RFC 7515 §7.1) for the token endpoint, signed with node:crypto directly: the
 * protected header segment is encoded once per key, so a token costs one payload encoding and one
 * signature. jose keeps every other job (key generation, import and export, JWKS, verification).
 *
 * Signatures are made on this thread, together, at the end of the event-loop turn that asked for
 * them (see signAtEndOfTurn). Not on the libuv pool (WebCrypto, which jose uses, or crypto.sign
 * with a callback): with a busy event loop on every core, the pool runs on the same cores, so each
 * token costs the same signature plus a hand-over and a wake-up.
 */
export interface JwsSigner {
  readonly kid: string
  readonly alg: SigningAlg
  readonly typ: string
  /** The compact JWS of `payload`, a JSON text, under the protected header {alg, kid, typ}. */
  sign(payload: string): Promise<string>
}

interface SigningKey {
  kid: string
  alg: SigningAlg
  privateKey: KeyObject
}

interface Scheme {
  digest: string | null
  key: KeyObject | SignKeyObjectInput
}

/** RFC 7518 §3.1: the digest and signature scheme each `alg` names. */
function signatureScheme(alg: SigningAlg, key: KeyObject): Scheme {
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

interface Pending {
  signingInput: string
  scheme: Scheme
  resolve: (jws: string) => void
  reject: (error: unknown) => void
}

let pending: Pending[] = []

function signPending(): void {
  const batch = pending
  pending = []
  for (const job of batch) {
    try {
      // The signing input is base64url, so ASCII: latin1 is its exact byte encoding, and the fastest.
      const signature = sign(job.scheme.digest, Buffer.from(job.signingInput, 'latin1'), job.scheme.key)
      job.resolve(`${job.signingInput}.${signature.toString('base64url')}`)
    } catch (error) {
      job.reject(error)
    }
  }
}

/**
 * Signs once the current event-loop turn has handled its I/O (setImmediate), together with every
 * other signature asked for in that turn. A busy server reads many requests per turn; signed one by
 * one between them, an ES256 signature cost half as much again as in a loop, its code and tables
 * pushed out of the CPU caches by the HTTP work and system calls in between. Back to back they
 * stay warm: measured on one core, a token request took a quarter less CPU. The answers go out in
 * the same turn, right after the batch.
 */
function signAtEndOfTurn(signingInput: string, scheme: Scheme): Promise<string> {
  return new Promise((resolve, reject) => {
    if (pending.push({ signingInput, scheme, resolve, reject }) === 1) setImmediate(signPending)
  })
}

export function createJwsSigner(key: SigningKey, typ: string): JwsSigner {
  // Member order as jose writes it, so tokens look as they always did.
  const header = Buffer.from(JSON.stringify({ alg: key.alg, kid: key.kid, typ })).toString('base64url')
  const scheme = signatureScheme(key.alg, key.privateKey)
  return {
    kid: key.kid,
    alg: key.alg,
    typ,
    sign: (payload) => signAtEndOfTurn(`${header}.${Buffer.from(payload, 'utf8').toString('base64url')}`, scheme),
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
