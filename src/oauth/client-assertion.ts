/**
 * private_key_jwt client authentication: the JWT a client signs with its own key to authenticate at the
 * token endpoint (RFC 7523 §2.2 and §3, as updated by RFC 10070). src/oauth/assertion-auth.ts applies it.
 */
import { errors as joseErrors, type JWTPayload } from 'jose'

import type { Clock } from '../clock.js'
import { SUPPORTED_ALGORITHMS } from '../verifier/algorithms.js'
import { assertCompactJws, readProtectedHeader } from '../verifier/compact-jws.js'
import { BearerError } from '../verifier/errors.js'
import { verifySignature } from '../verifier/verify-access-token.js'
import type { JwkSet } from '../verifier/jwk-set.js'
import type { KeySource } from '../verifier/key-source.js'
import type { ReplayCache } from './replay-cache.js'

/** RFC 7523 §2.2: the `client_assertion_type` that names a JWT client assertion. */
export const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'

/** RFC 10070: the explicit type of a client assertion (RFC 8725 §3.11). */
export const CLIENT_ASSERTION_TYP = 'client-authentication+jwt'

/** Default for `maxLifetime`: how far ahead of now an assertion's `exp` may lie, in seconds. */
export const DEFAULT_MAX_ASSERTION_LIFETIME = 300

/** Longest `jti` recorded; a client needs far less to be unique, and the replay cache stores it. */
export const MAX_JTI_LENGTH = 256

/** Why an assertion was refused. A closed set of stable codes for logs and metrics; never assertion text. */
export type AssertionRejectReason =
  | 'format'
  | 'alg_not_allowed'
  | 'forbidden_header'
  | 'typ_required'
  | 'typ_mismatch'
  | 'unknown_key'
  | 'bad_signature'
  | 'claims_invalid'
  | 'iss_sub_mismatch'
  | 'client_mismatch'
  | 'aud_invalid'
  | 'exp_missing'
  | 'expired'
  | 'exp_too_far'
  | 'nbf_in_future'
  | 'iat_in_future'
  | 'jti_missing'
  | 'jti_invalid'
  | 'jti_replayed'

/** A refused client assertion. The endpoint answers `invalid_client` (RFC 6749 §5.2) and logs `reason`. */
export class AssertionRejected extends Error {
  readonly reason: AssertionRejectReason
  constructor(reason: AssertionRejectReason, cause?: unknown) {
    super(`client assertion rejected: ${reason}`, { cause })
    this.name = 'AssertionRejected'
    this.reason = reason
  }
}

export interface ClientAssertionDeps {
  /** Epoch seconds. */
  clock: Clock
  /** Seconds of leeway for `exp`, `nbf` and `iat` (RFC 7519 §4.1.4, §4.1.5). */
  clockTolerance: number
  /** Seconds `exp` may lie ahead of now (RFC 7523 §3 item 4 lets the server bound it); default 300. */
  maxLifetime?: number
  /** tokensmith's issuer identifier: the only audience accepted (RFC 10070). */
  issuer: string
  replay: ReplayCache
}

export interface ExpectedClient {
  /** The `client_id` being authenticated. */
  clientId: string
  /**
   * The client's registered public keys: inline (`jwks`), or a cached remote set (`jwks_uri`). A remote
   * set that cannot be had throws its 503 error (temporarily_unavailable) through unchanged.
   */
  keys: JwkSet | KeySource
  /** Refuse an assertion without `typ` (per-client `--require-typ`). */
  requireTyp?: boolean
}

/** The claims of an assertion that passed every check. */
export interface ClientAssertionClaims extends JWTPayload {
  iss: string
  sub: string
  aud: string
  exp: number
  jti: string
}

/** Codes of the shared header checks (src/verifier/compact-jws.ts) that keep their own name here. */
const HEADER_REASONS: Partial<Record<BearerError['reason'], AssertionRejectReason>> = {
  alg_not_allowed: 'alg_not_allowed',
  forbidden_header: 'forbidden_header',
}

/** The algorithms a client may sign with: the verifier's asymmetric allowlist (never `none` or HS*, RFC 8725 §3.1). */
const ALGORITHMS = [...SUPPORTED_ALGORITHMS]

/** RFC 10070 `typ`: case-insensitive, `application/` optional (RFC 7515 §4.1.9). */
function isAssertionTyp(typ: string): boolean {
  const lower = typ.toLowerCase()
  return (lower.startsWith('application/') ? lower.slice('application/'.length) : lower) === CLIENT_ASSERTION_TYP
}

/** A jose failure of the signature step, as a stable code. */
function joseReason(error: unknown): AssertionRejectReason {
  if (error instanceof joseErrors.JWTExpired) return 'expired'
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return 'bad_signature'
  if (error instanceof joseErrors.JWKSNoMatchingKey) return 'unknown_key'
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return 'alg_not_allowed'
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    if (error.claim === 'nbf' && error.reason === 'check_failed') return 'nbf_in_future'
    return 'claims_invalid'
  }
  return 'format'
}

/** The set holding `kid`; an unknown `kid` is the client's fault, keys that cannot be fetched are ours (503). */
async function keySetFor(keys: JwkSet | KeySource, kid: string): Promise<JwkSet> {
  if (!('setFor' in keys)) {
    if (!keys.kids.has(kid)) throw new AssertionRejected('unknown_key')
    return keys
  }
  try {
    return await keys.setFor(kid)
  } catch (error) {
    if (error instanceof BearerError && error.reason === 'unknown_kid')
      throw new AssertionRejected('unknown_key', error)
    throw error
  }
}

const isTime = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value)

/**
 * Verifies a client assertion for `expected.clientId` and records its `jti`; returns its claims.
 *
 * In order: the canonical compact JWS and 8 KiB cap (RFC 7515 §7.1), the protected header (`alg` on the
 * asymmetric allowlist, a well-formed `kid`, no `jku`/`x5u`/`jwk`/`x5c`/`crit`/`b64`: the key comes from
 * the client's registration, never the assertion, RFC 8725 §3.10), a `kid` among the client's keys, the
 * signature (nothing else in the assertion is trusted before it verified), `typ` (RFC 10070), then the
 * claims of RFC 7523 §3: `iss` = `sub` = client id (items 1, 2), `aud` the issuer identifier alone
 * (item 3 as narrowed by RFC 10070), `exp` present and within `maxLifetime` (item 4), `nbf` and `iat` not
 * in the future (items 5, 6), and a `jti` used once (item 7), kept until `exp` + tolerance.
 *
 * Throws `AssertionRejected` for every refusal. Whatever `deps.replay` throws (store down, full) propagates
 * unchanged: a server-side failure, to be answered 503, not `invalid_client`.
 */
export async function verifyClientAssertion(
  deps: ClientAssertionDeps,
  assertion: string,
  expected: ExpectedClient,
): Promise<ClientAssertionClaims> {
  if (typeof assertion !== 'string') throw new AssertionRejected('format')
  let kid: string
  try {
    assertCompactJws(assertion)
    kid = readProtectedHeader(assertion, SUPPORTED_ALGORITHMS).kid
  } catch (error) {
    if (!(error instanceof BearerError)) throw error
    throw new AssertionRejected(HEADER_REASONS[error.reason] ?? 'format', error)
  }
  const keys = await keySetFor(expected.keys, kid)

  const tolerance = deps.clockTolerance
  const now = Math.floor(deps.clock())
  let verified: Awaited<ReturnType<typeof verifySignature>>
  try {
    verified = await verifySignature(assertion, keys.key, {
      algorithms: ALGORITHMS,
      clockTolerance: tolerance,
      currentDate: new Date(now * 1000),
    })
  } catch (cause) {
    throw new AssertionRejected(joseReason(cause), cause)
  }
  const { payload, protectedHeader } = verified

  // RFC 10070 explicit typing; RFC 8725 §3.11.
  const { typ } = protectedHeader
  if (typ === undefined) {
    if (expected.requireTyp) throw new AssertionRejected('typ_required')
  } else if (typeof typ !== 'string' || !isAssertionTyp(typ)) {
    throw new AssertionRejected('typ_mismatch')
  }

  // RFC 7523 §3 items 1 and 2, §2.2: the client is both issuer and subject.
  const { iss, sub, aud, exp, nbf, iat, jti } = payload
  if (typeof iss !== 'string' || typeof sub !== 'string' || iss !== sub) throw new AssertionRejected('iss_sub_mismatch')
  if (iss !== expected.clientId) throw new AssertionRejected('client_mismatch')

  // RFC 7523 §3 item 3 as updated by RFC 10070: the issuer identifier as a single string; never the
  // token endpoint URL, and never an array, not even one holding only the issuer.
  if (typeof aud !== 'string' || aud !== deps.issuer) throw new AssertionRejected('aud_invalid')

  // RFC 7523 §3 item 4: `exp` is required, and bounded so a leaked assertion is short-lived.
  if (exp === undefined) throw new AssertionRejected('exp_missing')
  if (!isTime(exp)) throw new AssertionRejected('claims_invalid')
  if (exp <= now - tolerance) throw new AssertionRejected('expired')
  const maxLifetime = deps.maxLifetime ?? DEFAULT_MAX_ASSERTION_LIFETIME
  if (exp > now + maxLifetime + tolerance) throw new AssertionRejected('exp_too_far')

  // RFC 7523 §3 items 5 and 6.
  if (nbf !== undefined && (!isTime(nbf) || nbf > now + tolerance)) throw new AssertionRejected('nbf_in_future')
  if (iat !== undefined && (!isTime(iat) || iat > now + tolerance)) throw new AssertionRejected('iat_in_future')

  // RFC 7523 §3 item 7: one use per `jti`, remembered until the assertion could no longer pass `exp`.
  if (jti === undefined) throw new AssertionRejected('jti_missing')
  if (typeof jti !== 'string' || jti.length === 0 || jti.length > MAX_JTI_LENGTH) {
    throw new AssertionRejected('jti_invalid')
  }
  if (!(await deps.replay.useOnce(expected.clientId, jti, exp + tolerance))) {
    throw new AssertionRejected('jti_replayed')
  }
  return payload as ClientAssertionClaims
}
