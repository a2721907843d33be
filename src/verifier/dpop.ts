/**
 * DPoP proof verification (RFC 9449), shared by the authorization server's token endpoint and by
 * resource servers (`bearerAuth`). It imports only jose, node builtins and other `src/verifier` modules,
 * so resource servers can carry it.
 *
 * @example
 * ```ts
 * const { jkt } = await verifyDpopProof(proof, { method: 'POST', url: `${issuer}/oauth/token` }, {
 *   clock: () => Math.floor(Date.now() / 1000),
 *   clockTolerance: 5,
 *   replay, // useOnce(scope, jti, until), e.g. a shared Redis-backed replay cache
 * })
 * ```
 */
import { createHash, timingSafeEqual } from 'node:crypto'

import { calculateJwkThumbprint, compactVerify, errors as joseErrors, importJWK, type JWK } from 'jose'

import { SUPPORTED_ALGORITHMS } from './algorithms.js'
import { COMPACT_JWS, MAX_TOKEN_LENGTH } from './compact-jws.js'

/** RFC 9449 §4.2: the `typ` of a DPoP proof JWT. */
export const DPOP_TYP = 'dpop+jwt'

/**
 * The algorithms a proof may be signed with, advertised as `dpop_signing_alg_values_supported`
 * (RFC 9449 §5.1) and in `WWW-Authenticate: DPoP algs=...` (RFC 9449 §7.1): asymmetric only, never
 * `none` or a MAC (RFC 9449 §4.3 item 5).
 */
export const DPOP_ALGORITHMS: readonly string[] = Object.freeze([...SUPPORTED_ALGORITHMS])

/** Default for `maxAge`: seconds a proof's `iat` may lie in the past (RFC 9449 §4.3 item 11, §11.1). */
export const DEFAULT_DPOP_MAX_AGE = 60

/** Longest `jti` accepted; it is stored in the replay cache (RFC 9449 §11.1). */
export const MAX_DPOP_JTI_LENGTH = 256

/** Why a proof was refused: a closed set of stable codes for logs and metrics, never proof text. */
export type DpopRejectReason =
  | 'format'
  | 'typ'
  | 'alg_not_allowed'
  | 'jwk_invalid'
  | 'jwk_private'
  | 'bad_signature'
  | 'htm_mismatch'
  | 'htu_mismatch'
  | 'iat_missing'
  | 'iat_out_of_window'
  | 'jti_invalid'
  | 'jti_replayed'
  | 'ath_missing'
  | 'ath_mismatch'
  | 'nonce_missing'
  | 'nonce_invalid'
  | 'jkt_mismatch'

/**
 * A refused proof. The token endpoint answers `invalid_dpop_proof` (or `use_dpop_nonce` for the nonce
 * reasons, RFC 9449 §8); a resource server answers the same codes with 401 (RFC 9449 §7.1, §9).
 */
export class DpopRejected extends Error {
  readonly reason: DpopRejectReason
  constructor(reason: DpopRejectReason, cause?: unknown) {
    super(`DPoP proof rejected: ${reason}`, { cause })
    this.name = 'DpopRejected'
    this.reason = reason
  }
}

/** Same shape as the server's `ReplayCache`: records (`scope`, `jti`) until `until` (epoch s); false on a replay. */
export interface DpopReplay {
  useOnce(scope: string, jti: string, until: number): Promise<boolean>
}

/** What the request the proof accompanies looks like. */
export interface DpopCheck {
  /** The request's HTTP method, compared with `htm` (RFC 9449 §4.3 item 8). */
  method: string
  /** The request URL, compared with `htu` without query and fragment (RFC 9449 §4.3 item 9). */
  url: string | URL
  /** When set, `ath` must be base64url(SHA-256(token)) (RFC 9449 §4.3 item 10, §7.1). */
  accessToken?: string
  /** When set, the proof key's RFC 7638 thumbprint must equal it: the token's `cnf.jkt` (RFC 9449 §7.1). */
  expectedJkt?: string
  /** Server-provided nonces (RFC 9449 §8, §9); absent: nonces are not used and any `nonce` claim is ignored. */
  nonce?: (value: string | undefined) => 'ok' | 'missing' | 'invalid'
}

export interface DpopVerifyOptions {
  /** Epoch seconds. */
  clock: () => number
  /** Seconds of leeway on `iat`, both ways. */
  clockTolerance: number
  /** Seconds an `iat` may lie in the past (RFC 9449 §11.1); default 60. */
  maxAge?: number
  /** Where each `jti` is recorded, scoped by the key thumbprint (RFC 9449 §11.1). */
  replay: DpopReplay
  /** Accepted `alg` values; default (and always narrowed to) the asymmetric `SUPPORTED_ALGORITHMS`. */
  algorithms?: ReadonlySet<string>
}

export interface VerifiedDpopProof {
  /** base64url SHA-256 JWK thumbprint of the proof key (RFC 7638, RFC 9449 §6.1). */
  jkt: string
  /** The public proof key, its required members only. */
  jwk: JWK
  jti: string
  iat: number
  /** The `nonce` claim, when present. */
  nonce?: string
}

/** Members of a private or symmetric JWK (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const

/**
 * Header parameters refused: a proof's key is its `jwk` and nothing else (RFC 9449 §4.2), and `crit`/`b64`
 * are never needed by a proof.
 */
const FORBIDDEN_HEADER_PARAMETERS = ['jku', 'x5u', 'x5c', 'x5t', 'x5t#S256', 'crit', 'b64'] as const

/** Smallest RSA modulus accepted, in bits (RFC 7518 §3.3, §3.5). */
const MIN_RSA_BITS = 2048

const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

function isCanonicalBase64url(segment: string): boolean {
  return Buffer.from(segment, 'base64url').toString('base64url') === segment
}

function decodeJsonObject(bytes: Uint8Array): Record<string, unknown> | undefined {
  let value: unknown
  try {
    value = JSON.parse(strictUtf8.decode(bytes))
  } catch {
    return undefined
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined
  return value as Record<string, unknown>
}

const isB64u = (value: unknown): value is string =>
  typeof value === 'string' && value.length > 0 && /^[A-Za-z0-9_-]+$/.test(value)

/**
 * The public key of the `jwk` header, reduced to its required members (RFC 7638 §3.2), or a refusal:
 * `jwk_private` when it holds private or symmetric material (RFC 9449 §4.3 item 6), `jwk_invalid` when it
 * is no well-formed EC, OKP or RSA public key (RSA under 2048 bits included).
 */
function publicJwkOf(value: unknown): JWK {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new DpopRejected('jwk_invalid')
  const jwk = value as Record<string, unknown>
  if (PRIVATE_MEMBERS.some((name) => Object.hasOwn(jwk, name))) throw new DpopRejected('jwk_private')
  switch (jwk.kty) {
    case 'EC':
      if (typeof jwk.crv !== 'string' || !isB64u(jwk.x) || !isB64u(jwk.y)) throw new DpopRejected('jwk_invalid')
      return { kty: 'EC', crv: jwk.crv, x: jwk.x, y: jwk.y }
    case 'OKP':
      if (typeof jwk.crv !== 'string' || !isB64u(jwk.x)) throw new DpopRejected('jwk_invalid')
      return { kty: 'OKP', crv: jwk.crv, x: jwk.x }
    case 'RSA': {
      if (!isB64u(jwk.n) || !isB64u(jwk.e)) throw new DpopRejected('jwk_invalid')
      const modulus = Buffer.from(jwk.n, 'base64url')
      let first = 0
      while (first < modulus.length && modulus[first] === 0) first++
      const leading = modulus[first] ?? 0
      const bits = (modulus.length - first - 1) * 8 + (leading === 0 ? 0 : Math.floor(Math.log2(leading)) + 1)
      if (bits < MIN_RSA_BITS) throw new DpopRejected('jwk_invalid')
      return { kty: 'RSA', n: jwk.n, e: jwk.e }
    }
    default:
      throw new DpopRejected('jwk_invalid')
  }
}

/** RFC 3986 §2.3 unreserved characters: percent-encodings of these are decoded (§6.2.2.2). */
const UNRESERVED = /^[A-Za-z0-9\-._~]$/

/**
 * The `htu` form of a URL (RFC 9449 §4.3 item 9): scheme, authority and path, no query and no fragment,
 * after RFC 3986 §6.2.2 syntax-based normalization: lowercase scheme and host, no default port, an empty
 * path as `/` (§6.2.3), percent-encodings in upper case and decoded when they name an unreserved
 * character. Only `http` and `https` URLs without userinfo are accepted; anything else throws TypeError.
 */
export function normalizeHtu(url: string | URL): string {
  const parsed = new URL(url)
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw new TypeError('htu must be http(s)')
  if (parsed.username !== '' || parsed.password !== '') throw new TypeError('htu must carry no userinfo')
  const path = parsed.pathname.replace(/%([0-9A-Fa-f]{2})/g, (_match, hex: string) => {
    const character = String.fromCharCode(Number.parseInt(hex, 16))
    return UNRESERVED.test(character) ? character : `%${hex.toUpperCase()}`
  })
  // `origin` is lowercase scheme://host[:port] with the default port dropped (WHATWG URL).
  return `${parsed.origin}${path === '' ? '/' : path}`
}

/** The `ath` of an access token: base64url(SHA-256(ASCII token)) (RFC 9449 §4.2). */
export function accessTokenHash(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('base64url')
}

function sameString(a: string, b: string): boolean {
  const left = Buffer.from(a)
  const right = Buffer.from(b)
  return left.length === right.length && timingSafeEqual(left, right)
}

function htuMatches(claimed: unknown, expected: string | URL): boolean {
  if (typeof claimed !== 'string') return false
  try {
    return normalizeHtu(claimed) === normalizeHtu(expected)
  } catch {
    return false
  }
}

/**
 * Verifies a DPoP proof JWT for the request described by `check`, records its `jti`, and returns the
 * proof key's thumbprint. The checks of RFC 9449 §4.3, in order:
 * 1. one JWS in canonical compact serialization (items 1, 2), at most 8 KiB: `format`;
 * 2. `typ` exactly `dpop+jwt` (item 4): `typ`;
 * 3. `alg` on the asymmetric allowlist, never `none` or a MAC (item 5): `alg_not_allowed`;
 * 4. a `jwk` header with a public EC/OKP/RSA key (RSA ≥ 2048 bits) and no other key source
 *    (`jku`, `x5u`, `x5c`, ...) (item 6): `jwk_private`, `jwk_invalid`;
 * 5. the signature, with that key (item 7): `bad_signature` (`jwk_invalid` when the key does not fit `alg`);
 * 6. `htm` (item 8), `htu` (item 9): `htm_mismatch`, `htu_mismatch`;
 * 7. `iat` within [now − maxAge − tolerance, now + tolerance] (item 11): `iat_missing`, `iat_out_of_window`;
 * 8. `jti` a string of 1..256 characters (item 3): `jti_invalid`;
 * 9. `ath` when an access token is presented (item 10): `ath_missing`, `ath_mismatch`;
 * 10. the server nonce when `check.nonce` is set (item 10, §8, §9): `nonce_missing`, `nonce_invalid`;
 * 11. the key thumbprint against `check.expectedJkt` (§7.1): `jkt_mismatch`;
 * 12. the `jti` used once per key until `iat + maxAge + tolerance` (§11.1): `jti_replayed`.
 *
 * Throws `DpopRejected` for every refusal. Whatever `options.replay` throws (store down or full)
 * propagates unchanged: a server-side failure, to be answered 503.
 */
export async function verifyDpopProof(
  proof: string,
  check: DpopCheck,
  options: DpopVerifyOptions,
): Promise<VerifiedDpopProof> {
  if (typeof proof !== 'string' || proof.length > MAX_TOKEN_LENGTH || !COMPACT_JWS.test(proof)) {
    throw new DpopRejected('format')
  }
  const segments = proof.split('.')
  if (!segments.every(isCanonicalBase64url)) throw new DpopRejected('format')
  const header = decodeJsonObject(Buffer.from(segments[0] as string, 'base64url'))
  if (header === undefined) throw new DpopRejected('format')

  if (header.typ !== DPOP_TYP) throw new DpopRejected('typ')
  const { alg } = header
  const allowed = options.algorithms ?? SUPPORTED_ALGORITHMS
  if (typeof alg !== 'string' || !allowed.has(alg) || !SUPPORTED_ALGORITHMS.has(alg)) {
    throw new DpopRejected('alg_not_allowed')
  }
  if (FORBIDDEN_HEADER_PARAMETERS.some((name) => Object.hasOwn(header, name))) throw new DpopRejected('jwk_invalid')
  const jwk = publicJwkOf(header.jwk)

  let key: Awaited<ReturnType<typeof importJWK>>
  try {
    key = await importJWK(jwk, alg)
  } catch (cause) {
    throw new DpopRejected('jwk_invalid', cause)
  }
  let payloadBytes: Uint8Array
  try {
    ;({ payload: payloadBytes } = await compactVerify(proof, key, { algorithms: [alg] }))
  } catch (cause) {
    if (cause instanceof joseErrors.JWSSignatureVerificationFailed) throw new DpopRejected('bad_signature', cause)
    throw new DpopRejected('jwk_invalid', cause)
  }
  const claims = decodeJsonObject(payloadBytes)
  if (claims === undefined) throw new DpopRejected('format')

  if (typeof claims.htm !== 'string' || claims.htm !== check.method) throw new DpopRejected('htm_mismatch')
  if (!htuMatches(claims.htu, check.url)) throw new DpopRejected('htu_mismatch')

  const { iat } = claims
  if (iat === undefined) throw new DpopRejected('iat_missing')
  if (typeof iat !== 'number' || !Number.isFinite(iat)) throw new DpopRejected('iat_out_of_window')
  const maxAge = options.maxAge ?? DEFAULT_DPOP_MAX_AGE
  const now = options.clock()
  if (iat > now + options.clockTolerance || iat < now - maxAge - options.clockTolerance) {
    throw new DpopRejected('iat_out_of_window')
  }

  const { jti } = claims
  if (typeof jti !== 'string' || jti.length === 0 || jti.length > MAX_DPOP_JTI_LENGTH) {
    throw new DpopRejected('jti_invalid')
  }

  if (check.accessToken !== undefined) {
    if (claims.ath === undefined) throw new DpopRejected('ath_missing')
    if (typeof claims.ath !== 'string' || !sameString(claims.ath, accessTokenHash(check.accessToken))) {
      throw new DpopRejected('ath_mismatch')
    }
  }

  const nonce = typeof claims.nonce === 'string' ? claims.nonce : undefined
  if (check.nonce !== undefined) {
    if (claims.nonce !== undefined && nonce === undefined) throw new DpopRejected('nonce_invalid')
    const verdict = check.nonce(nonce)
    if (verdict === 'missing') throw new DpopRejected('nonce_missing')
    if (verdict !== 'ok') throw new DpopRejected('nonce_invalid')
  }

  const jkt = await calculateJwkThumbprint(jwk, 'sha256')
  if (check.expectedJkt !== undefined && !sameString(jkt, check.expectedJkt)) throw new DpopRejected('jkt_mismatch')

  if (!(await options.replay.useOnce(jkt, jti, iat + maxAge + options.clockTolerance))) {
    throw new DpopRejected('jti_replayed')
  }
  return nonce === undefined ? { jkt, jwk, jti, iat } : { jkt, jwk, jti, iat, nonce }
}
