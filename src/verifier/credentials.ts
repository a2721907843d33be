import { invalidRequest } from './errors.js'

/** RFC 9110 §5.6.2 `token`: the syntax of an auth-scheme. */
const AUTH_SCHEME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

/** RFC 6750 §2.1 `b64token`. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/

/** The inputs the middleware looks at, so this module needs no Hono types. */
export interface CredentialSources {
  authorization: string | undefined
  /** Whether the query string has an `access_token` parameter (RFC 6750 §2.3). */
  queryHasToken: boolean
  /** Reads the form body's `access_token` presence; called only when a Bearer header is present. */
  bodyHasToken: () => Promise<boolean>
}

/**
 * Finds the bearer token (RFC 6750 §2.1). Returns `undefined` when the request carries no Bearer
 * credentials at all, which the caller answers with a bare challenge (RFC 6750 §3.1, decision 8).
 *
 * Only the `Authorization` header is a supported method. A token only in `?access_token=` or the body
 * counts as no credentials (BI-28); a token there *and* in the header is two methods, which RFC 6750 §2
 * forbids → 400 `invalid_request`.
 */
export async function extractBearerToken(sources: CredentialSources): Promise<string | undefined> {
  const header = sources.authorization
  if (header === undefined) return undefined
  // RFC 9110 §11.4: credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
  const space = header.indexOf(' ')
  const scheme = space === -1 ? header : header.slice(0, space)
  if (!AUTH_SCHEME.test(scheme)) throw invalidRequest('malformed_authorization')
  // RFC 9110 §11.1: the scheme is case-insensitive.
  if (scheme.toLowerCase() !== 'bearer') return undefined
  const token = space === -1 ? '' : header.slice(space).replace(/^ +/, '')
  if (token === '') throw invalidRequest('empty_token')
  if (!B64TOKEN.test(token)) throw invalidRequest('token_syntax')
  if (sources.queryHasToken || (await sources.bodyHasToken())) throw invalidRequest('multiple_token_methods')
  return token
}
