import type { BearerError } from './errors.js'

/** RFC 6750 §3: `WWW-Authenticate` for a request with no Bearer credentials at all — no `error`. */
export const bareChallenge = (realm: string) => `Bearer realm="${realm}"`

/**
 * RFC 6750 §3 challenge for a refused token. Every attribute value comes from configuration validated at
 * start-up or from fixed codes: no token bytes, `"` or `\` can reach the header.
 */
export function errorChallenge(realm: string, error: BearerError, requiredScopes: readonly string[]): string {
  const scope = error.code === 'insufficient_scope' ? `, scope="${requiredScopes.join(' ')}"` : ''
  return `Bearer realm="${realm}", error="${error.code}"${scope}`
}

/**
 * Headers and JSON body for a refusal. A 503 carries `Retry-After` (RFC 9110 §10.2.3) and no challenge:
 * the token was not judged, so there is nothing to say about it.
 */
export function errorResponseParts(
  realm: string,
  error: BearerError,
  requiredScopes: readonly string[],
): { status: 400 | 401 | 403 | 503; headers: Record<string, string>; body: string } {
  const headers: Record<string, string> = {
    'Content-Type': 'application/json; charset=UTF-8',
    'Cache-Control': 'no-store',
  }
  if (error.status === 503) headers['Retry-After'] = String(error.retryAfter ?? 1)
  else headers['WWW-Authenticate'] = errorChallenge(realm, error, requiredScopes)
  return { status: error.status, headers, body: JSON.stringify({ error: error.code }) }
}
