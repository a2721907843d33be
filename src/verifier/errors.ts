/**
 * The verifier's one error type. `code` is the RFC 6750 §3.1 error code (or `temporarily_unavailable`
 * when a dependency cannot answer), `status` the HTTP status, and `reason` a fixed, token-free label for
 * logs (`onReject`).
 * Nothing in here ever holds token bytes.
 */

import type { DpopRejectReason } from './dpop.js'

/**
 * RFC 6750 §3.1 codes, RFC 9449 §7.1 `invalid_dpop_proof`, plus the 503 code of RFC 6749 §5.2 style used
 * across tokensmith.
 */
export type BearerErrorCode =
  | 'invalid_request'
  | 'invalid_token'
  | 'invalid_dpop_proof'
  | 'insufficient_scope'
  | 'temporarily_unavailable'

/** Which `Authorization` scheme a request used: the challenge of that scheme carries the error. */
export type AuthScheme = 'Bearer' | 'DPoP'

/** Why a request was refused. A closed set, so logs never carry attacker-chosen text. */
export type RejectReason =
  | 'no_credentials'
  | 'malformed_authorization'
  | 'empty_token'
  | 'token_syntax'
  | 'multiple_token_methods'
  | 'token_too_long'
  | 'jws_format'
  | 'non_canonical_base64url'
  | 'header_invalid'
  | 'alg_not_allowed'
  | 'kid_invalid'
  | 'forbidden_header'
  | 'unknown_kid'
  | 'no_matching_key'
  | 'bad_signature'
  | 'expired'
  | 'nbf_in_future'
  | 'typ_mismatch'
  | 'iss_mismatch'
  | 'aud_mismatch'
  | 'claim_missing'
  | 'signature_or_claims'
  | 'claims_invalid'
  | 'sub_client_id_mismatch'
  | 'iat_in_future'
  | 'revoked'
  | 'insufficient_scope'
  | 'denylist_unavailable'
  | 'jwks_unavailable'
  // RFC 9449 §7: DPoP at the resource server.
  | 'dpop_bound_as_bearer'
  | 'dpop_token_not_bound'
  | 'cnf_invalid'
  | 'dpop_proof_missing'
  | 'dpop_proof_multiple'
  | 'dpop_replay_unavailable'
  | `dpop_${DpopRejectReason}`

export class BearerError extends Error {
  readonly code: BearerErrorCode
  readonly status: 400 | 401 | 403 | 503
  readonly reason: RejectReason
  /** Seconds, only for 503: the `Retry-After` value (RFC 9110 §10.2.3). */
  readonly retryAfter?: number
  constructor(
    code: BearerErrorCode,
    status: 400 | 401 | 403 | 503,
    reason: RejectReason,
    extra: { retryAfter?: number; cause?: unknown } = {},
  ) {
    super(reason, { cause: extra.cause })
    this.name = 'BearerError'
    this.code = code
    this.status = status
    this.reason = reason
    this.retryAfter = extra.retryAfter
  }
}

export const invalidRequest = (reason: RejectReason) => new BearerError('invalid_request', 400, reason)

export const invalidToken = (reason: RejectReason, cause?: unknown) =>
  new BearerError('invalid_token', 401, reason, { cause })

export const insufficientScope = () => new BearerError('insufficient_scope', 403, 'insufficient_scope')

export const temporarilyUnavailable = (reason: RejectReason, retryAfter: number, cause?: unknown) =>
  new BearerError('temporarily_unavailable', 503, reason, { retryAfter, cause })

/** RFC 9449 §7.1: a missing, repeated or invalid DPoP proof → 401 `invalid_dpop_proof`. */
export const invalidDpopProof = (reason: RejectReason, cause?: unknown) =>
  new BearerError('invalid_dpop_proof', 401, reason, { cause })
