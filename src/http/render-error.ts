import type { Context } from 'hono'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import { DenylistUnavailableError } from '../denylist/denylist.js'
import { OAuthError, serverError, temporarilyUnavailable } from '../errors.js'

export const REALM = 'tokensmith'

/**
 * Headers on every authorization-server JSON answer (RFC 6749 §5.1, §5.2): never cached, and
 * explicitly UTF-8.
 */
export const NO_STORE = {
  'Content-Type': 'application/json; charset=utf-8',
  'Cache-Control': 'no-store',
  Pragma: 'no-cache',
} as const

/** RFC 6749 §5.2: error_description is limited to %x20-21 / %x23-5B / %x5D-7E. */
const safeDescription = (text: string) => text.replace(/[^\x20-\x21\x23-\x5B\x5D-\x7E]/g, '?')

/**
 * Any thrown value to an OAuthError. A denylist that cannot answer is 503 with Retry-After, never
 * a 401 or a false success (README, Security: a denylist that cannot answer fails closed); anything
 * else unknown is a fault of ours.
 */
export function toOAuthError(error: unknown): OAuthError {
  if (error instanceof OAuthError) return error
  if (error instanceof DenylistUnavailableError) return temporarilyUnavailable(error.message, error)
  return serverError(error)
}

/**
 * The one place errors become responses: `{error, error_description}` with no-store, plus
 * `WWW-Authenticate: Basic` on every 401 invalid_client (RFC 6749 §5.2). Never a stack trace.
 */
export function renderError(c: Context, error: OAuthError): Response {
  const headers: Record<string, string> = { ...NO_STORE, ...error.headers }
  if (error.code === 'invalid_client') headers['WWW-Authenticate'] = `Basic realm="${REALM}", charset="UTF-8"`
  return c.body(
    JSON.stringify({ error: error.code, error_description: safeDescription(error.message) }),
    error.status as ContentfulStatusCode,
    headers,
  )
}
