/**
 * DPoP (RFC 9449) at the token endpoint: the proof check that binds an access token to the client's key
 * (`cnf.jkt`, RFC 9449 §6.1), and the stateless server nonces of RFC 9449 §8.
 *
 * Nonces. With DPOP_NONCE=true every proof must carry a nonce this server handed out (RFC 9449 §8). A
 * nonce is `base64url(window || HMAC-SHA256(secret, window)[0..16])`, 27 characters, where `window` is
 * the current 5-minute period (epoch seconds / 300, 4 bytes big-endian) and `secret` is derived by HKDF
 * (RFC 5869, SHA-256) from the private key of the current signing key. No state is kept, and every
 * instance reading the same KEYS_DIR validates every other instance's nonces: a nonce is accepted when
 * its MAC matches under any published key (instances that have not reloaded yet still sign with the
 * previous key, which stays published) and its window is the current one, the previous one, or the next
 * one (clock skew between instances). A nonce therefore lives 5 to 10 minutes. It is not secret and not
 * bound to a client or key: it only proves the proof was made after the server said so (RFC 9449 §11.2).
 */
import { createHmac, hkdfSync, type KeyObject, timingSafeEqual } from 'node:crypto'

import type { Client } from '../clients/registry.js'
import type { Clock } from '../clock.js'
import type { Config } from '../config.js'
import type { Denylist } from '../denylist/denylist.js'
import { invalidDpopProof, type OAuthError, useDpopNonce } from '../errors.js'
import { isPublished } from '../keys/key-states.js'
import type { KeyStore } from '../keys/key-store.js'
import { type DpopRejectReason, DpopRejected, verifyDpopProof } from '../verifier/dpop.js'

/** Seconds per nonce window. */
export const DPOP_NONCE_WINDOW = 300

const WINDOW_BYTES = 4
const MAC_BYTES = 16
const NONCE_LENGTH = Math.ceil(((WINDOW_BYTES + MAC_BYTES) * 4) / 3)
const HKDF_SALT = Buffer.from('tokensmith')
const HKDF_INFO = Buffer.from('dpop-nonce v1')

/** One derived secret per private key object; key reloads bring new objects, and old ones are collected. */
const secrets = new WeakMap<KeyObject, Buffer>()

function secretOf(privateKey: KeyObject): Buffer {
  let secret = secrets.get(privateKey)
  if (secret === undefined) {
    const ikm = privateKey.export({ format: 'der', type: 'pkcs8' })
    secret = Buffer.from(hkdfSync('sha256', ikm, HKDF_SALT, HKDF_INFO, 32))
    secrets.set(privateKey, secret)
  }
  return secret
}

function macOf(secret: Buffer, window: Buffer): Buffer {
  return createHmac('sha256', secret).update(window).digest().subarray(0, MAC_BYTES)
}

export interface DpopNonces {
  /** The nonce to hand out now (RFC 9449 §8.1 `DPoP-Nonce`). */
  current(): string
  /** Whether a proof's `nonce` claim is one this deployment handed out, recently enough. */
  check(value: string | undefined): 'ok' | 'missing' | 'invalid'
}

/** Stateless nonces over the deployment's signing keys; `keys` is read per call (it is replaced on reload). */
export function createDpopNonces(deps: { keys: () => KeyStore; clock: Clock }): DpopNonces {
  let cached: { privateKey: KeyObject; window: number; nonce: string } | undefined
  const windowOf = () => Math.floor(deps.clock() / DPOP_NONCE_WINDOW)

  return {
    current() {
      const { privateKey } = deps.keys().signingKey()
      const window = windowOf()
      if (cached?.privateKey !== privateKey || cached.window !== window) {
        const bytes = Buffer.alloc(WINDOW_BYTES)
        bytes.writeUInt32BE(window >>> 0)
        const nonce = Buffer.concat([bytes, macOf(secretOf(privateKey), bytes)]).toString('base64url')
        cached = { privateKey, window, nonce }
      }
      return cached.nonce
    },
    check(value) {
      if (value === undefined) return 'missing'
      if (value.length !== NONCE_LENGTH || !/^[A-Za-z0-9_-]+$/.test(value)) return 'invalid'
      const raw = Buffer.from(value, 'base64url')
      if (raw.length !== WINDOW_BYTES + MAC_BYTES) return 'invalid'
      const windowBytes = raw.subarray(0, WINDOW_BYTES)
      const mac = raw.subarray(WINDOW_BYTES)
      const distance = windowBytes.readUInt32BE() - (windowOf() >>> 0)
      if (distance < -1 || distance > 1) return 'invalid'
      const keys = deps.keys()
      const published = new Set(
        keys
          .timelines()
          .filter((t) => isPublished(t.state))
          .map((t) => t.kid),
      )
      for (const record of keys.records) {
        if (published.has(record.kid) && timingSafeEqual(mac, macOf(secretOf(record.privateKey), windowBytes))) {
          return 'ok'
        }
      }
      return 'invalid'
    },
  }
}

export interface DpopBindingDeps {
  config: Pick<Config, 'issuer' | 'clockTolerance' | 'dpopNonce'>
  clock: Clock
  /** Read per request: the key store is replaced as a whole on reload. */
  keys: () => KeyStore
  denylist: Pick<Denylist, 'replayCache'>
}

/** A token request's proven key, and the `DPoP-Nonce` to answer with when nonces are on. */
export interface DpopBinding {
  jkt: string
  nonce?: string
}

/**
 * The 400 `invalid_dpop_proof` answer for a refusal (RFC 9449 §5). Descriptions are literals (checked by
 * test/unit/errors.test.ts); `reason` itself goes to the log as the error detail.
 */
function invalidProof(reason: DpopRejectReason): OAuthError {
  const detail = `dpop_${reason}`
  switch (reason) {
    case 'format':
      return invalidDpopProof('DPoP proof is not a compact JWS', detail)
    case 'typ':
      return invalidDpopProof('DPoP proof typ must be dpop+jwt', detail)
    case 'alg_not_allowed':
      return invalidDpopProof('DPoP proof alg is not supported', detail)
    case 'jwk_private':
      return invalidDpopProof('DPoP proof jwk must be a public key', detail)
    case 'jwk_invalid':
      return invalidDpopProof('DPoP proof jwk is not a supported public key', detail)
    case 'bad_signature':
      return invalidDpopProof('DPoP proof signature is invalid', detail)
    case 'htm_mismatch':
      return invalidDpopProof('DPoP proof htm does not match the request method', detail)
    case 'htu_mismatch':
      return invalidDpopProof('DPoP proof htu does not match the token endpoint', detail)
    case 'iat_missing':
    case 'iat_out_of_window':
      return invalidDpopProof('DPoP proof iat is missing or not recent', detail)
    case 'jti_invalid':
      return invalidDpopProof('DPoP proof jti is invalid', detail)
    case 'jti_replayed':
      return invalidDpopProof('DPoP proof was already used', detail)
    default:
      return invalidDpopProof('DPoP proof is invalid', detail)
  }
}

/**
 * The DPoP step of the token endpoint (RFC 9449 §5), run after client authentication. `header` is the
 * request's `DPoP` header (several fields arrive joined by commas, which no compact JWS contains).
 * Returns undefined without a proof (a Bearer token), the key to bind otherwise. Throws 400
 * `invalid_dpop_proof` for a bad proof, for several `DPoP` fields (RFC 9449 §4.3 item 1), and for a
 * client registered with `require_dpop` that sent none (RFC 9449 §5.2 `dpop_bound_access_tokens`: such
 * requests MUST be refused; the RFC names no code, and this one tells a DPoP client what is wrong); 400
 * `use_dpop_nonce` with `DPoP-Nonce` when nonces are on and the proof lacks a valid one (RFC 9449 §8).
 * A replay cache that cannot answer throws through unchanged (503).
 */
export function createDpopBinder(deps: DpopBindingDeps) {
  const replay = deps.denylist.replayCache('dpop')
  const nonces = deps.config.dpopNonce ? createDpopNonces({ keys: deps.keys, clock: deps.clock }) : undefined
  const htu = `${deps.config.issuer}/oauth/token`

  return async (header: string | undefined, client: Client): Promise<DpopBinding | undefined> => {
    if (header === undefined) {
      if (client.requireDpop) throw invalidDpopProof('this client must send a DPoP proof', 'dpop_required')
      return undefined
    }
    if (header.includes(',')) throw invalidDpopProof('exactly one DPoP header is allowed', 'dpop_multiple')
    const check = { method: 'POST', url: htu, ...(nonces !== undefined && { nonce: nonces.check }) }
    let jkt: string
    try {
      ;({ jkt } = await verifyDpopProof(header.trim(), check, {
        clock: deps.clock,
        clockTolerance: deps.config.clockTolerance,
        replay,
      }))
    } catch (error) {
      if (!(error instanceof DpopRejected)) throw error
      if (nonces !== undefined && (error.reason === 'nonce_missing' || error.reason === 'nonce_invalid')) {
        throw useDpopNonce(nonces.current(), `dpop_${error.reason}`)
      }
      throw invalidProof(error.reason)
    }
    return nonces === undefined ? { jkt } : { jkt, nonce: nonces.current() }
  }
}
