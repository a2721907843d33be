/**
 * The one error type of the authorization server. Its `code` is the RFC code; `description` goes to
 * the client, `detail` and `cause` only to the log. Rendering lives in http/render-error.ts.
 */

/**
 * RFC 6749 §5.2, RFC 7009 §2.2.1, RFC 8707 §2, plus the codes this server also answers in the same
 * shape: 413 `invalid_request` (body too large), and `temporarily_unavailable` (RFC 6749 §4.1.2.1)
 * for 503 and for 429 (RFC 6585 §4).
 */
export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unauthorized_client'
  | 'unsupported_grant_type'
  | 'invalid_scope'
  | 'invalid_target'
  | 'unsupported_token_type'
  | 'server_error'
  | 'temporarily_unavailable'
  | 'invalid_dpop_proof'
  | 'use_dpop_nonce'

export class OAuthError extends Error {
  readonly code: OAuthErrorCode
  readonly status: number
  readonly detail: string | undefined
  readonly headers: Record<string, string>

  constructor(
    code: OAuthErrorCode,
    status: number,
    description: string,
    extra: { detail?: string; cause?: unknown; headers?: Record<string, string> } = {},
  ) {
    super(description, { cause: extra.cause })
    this.name = 'OAuthError'
    this.code = code
    this.status = status
    this.detail = extra.detail
    this.headers = extra.headers ?? {}
  }
}

export const invalidRequest = (description: string, detail?: string) =>
  new OAuthError('invalid_request', 400, description, { detail })

/** RFC 6749 §5.2: one public message whatever failed; the reason goes to the log only. */
export const invalidClient = (detail: string) =>
  new OAuthError('invalid_client', 401, 'client authentication failed', { detail })

export const unauthorizedClient = (description: string) => new OAuthError('unauthorized_client', 400, description)

export const unsupportedGrantType = () =>
  new OAuthError('unsupported_grant_type', 400, 'only grant_type client_credentials is supported')

export const invalidScope = (description: string) => new OAuthError('invalid_scope', 400, description)

/** RFC 8707 §2 */
export const invalidTarget = (description: string) => new OAuthError('invalid_target', 400, description)

export const payloadTooLarge = (limit: number) =>
  new OAuthError('invalid_request', 413, `request body larger than ${limit} bytes`)

/**
 * The client's side of the connection failed while we read its body: it closed mid-body, sent broken
 * chunked framing, or was cut by the request timeout. A client fault, so a 400 (which usually reaches
 * no one, the socket being gone), logged with the request and no stack.
 */
export const unreadableBody = (detail: string, cause?: unknown) =>
  new OAuthError('invalid_request', 400, 'request body could not be read', { detail, cause })

export const methodNotAllowed = (allow: string) =>
  new OAuthError('invalid_request', 405, `method not allowed; use ${allow}`, { headers: { Allow: allow } })

export const temporarilyUnavailable = (detail: string, cause?: unknown) =>
  new OAuthError('temporarily_unavailable', 503, 'service temporarily unavailable, retry later', {
    detail,
    cause,
    headers: { 'Retry-After': '1' },
  })

/**
 * A client holds as many live revocations as it may (REVOCATIONS_PER_CLIENT): 429 (RFC 6585 §4)
 * with Retry-After, the seconds until its oldest revocation expires and makes room.
 */
export const tooManyRevocations = (retryAfter: number, detail: string) =>
  new OAuthError('temporarily_unavailable', 429, 'this client holds too many live revocations, retry later', {
    detail,
    headers: { 'Retry-After': String(Math.max(1, Math.ceil(retryAfter))) },
  })

/**
 * Too many failed client authentications from this source address, for this client id or for any
 * (RFC 6749 §2.3.1: protection against brute force): 429 (RFC 6585 §4) with Retry-After, the
 * seconds until the oldest counted failure leaves the one-minute window. Answered before any
 * secret is compared, so even the right secret gets it until then.
 */
export const tooManyFailures = (retryAfter: number, detail: string) =>
  new OAuthError('temporarily_unavailable', 429, 'too many failed authentication attempts, retry later', {
    detail,
    headers: { 'Retry-After': String(Math.min(60, Math.max(1, Math.ceil(retryAfter)))) },
  })

export const serverError = (cause: unknown) => new OAuthError('server_error', 500, 'internal server error', { cause })

/**
 * RFC 9449 §5: the token request's DPoP proof is invalid, repeated (§4.3 item 1), or absent for a client
 * registered with `require_dpop` (§5.2 `dpop_bound_access_tokens`).
 */
export const invalidDpopProof = (description: string, detail?: string) =>
  new OAuthError('invalid_dpop_proof', 400, description, { detail })

/** RFC 9449 §8: the proof lacks a valid server nonce; `DPoP-Nonce` carries the one to use. */
export const useDpopNonce = (nonce: string, detail?: string) =>
  new OAuthError('use_dpop_nonce', 400, 'authorization server requires nonce in DPoP proof', {
    detail,
    headers: { 'DPoP-Nonce': nonce },
  })
