import { type AuthScheme, invalidRequest } from './errors.js'

/** RFC 9110 §5.6.2 `token`: the syntax of an auth-scheme. */
const AUTH_SCHEME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

/** RFC 6750 §2.1 `b64token`. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/

/** The inputs the middleware looks at, so this module needs no Hono types. */
export interface CredentialSources {
  authorization: string | undefined
  /** Whether the query string has an `access_token` parameter (RFC 6750 §2.3). */
  queryHasToken: boolean
}

/** A token from the `Authorization` header, and the scheme it came with. */
export interface Credentials {
  scheme: AuthScheme
  token: string
}

/**
 * Finds the access token (RFC 6750 §2.1, RFC 9449 §7.1) sent with one of the `accepted` schemes.
 * Returns `undefined` when the request carries no credentials of an accepted scheme at all, which the
 * caller answers with a bare challenge (RFC 6750 §3.1).
 *
 * Only the `Authorization` header is a supported method. A token only in `?access_token=` or in a
 * form body counts as no credentials. A token in the header *and* the query string is two methods,
 * which RFC 6750 §2 asks clients not to send → 400 `invalid_request`. The body is never read here:
 * it has not been authenticated and may be of any size, so a form-body `access_token` beside a header
 * token is left to the application like any other body parameter. RFC 9449 §7.1 gives the DPoP scheme
 * the same `token68` syntax as Bearer's `b64token`.
 */
export function extractCredentials(
  sources: CredentialSources,
  accepted: readonly AuthScheme[],
): Credentials | undefined {
  const header = sources.authorization
  if (header === undefined) return undefined
  // RFC 9110 §11.4: credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
  const space = header.indexOf(' ')
  if (!AUTH_SCHEME.test(space === -1 ? header : header.slice(0, space))) throw invalidRequest('malformed_authorization')
  const scheme = schemeOf(header, accepted)
  if (scheme === undefined) return undefined
  const token = space === -1 ? '' : header.slice(space).replace(/^ +/, '')
  if (token === '') throw invalidRequest('empty_token')
  if (!B64TOKEN.test(token)) throw invalidRequest('token_syntax')
  if (sources.queryHasToken) throw invalidRequest('multiple_token_methods')
  return { scheme, token }
}

/**
 * Which accepted scheme an `Authorization` value names, if any (RFC 9110 §11.1: case-insensitive),
 * whether or not its token is well formed: a refusal goes in that scheme's challenge.
 */
export function schemeOf(authorization: string | undefined, accepted: readonly AuthScheme[]): AuthScheme | undefined {
  if (authorization === undefined) return undefined
  const space = authorization.indexOf(' ')
  const name = (space === -1 ? authorization : authorization.slice(0, space)).toLowerCase()
  return accepted.find((candidate) => candidate.toLowerCase() === name)
}

/** {@link extractCredentials} for the Bearer scheme alone (RFC 6750 §2.1). */
export function extractBearerToken(sources: CredentialSources): string | undefined {
  return extractCredentials(sources, ['Bearer'])?.token
}
