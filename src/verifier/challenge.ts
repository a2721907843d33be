import type { AuthScheme, BearerError } from './errors.js'

/** What the `WWW-Authenticate` challenges say, all from configuration validated at start-up. */
export interface ChallengeSettings {
  realm: string
  /** The schemes accepted, in order: one challenge each (RFC 9110 §11.6.1). */
  schemes: readonly AuthScheme[]
  /** The proof algorithms accepted, for `DPoP algs="…"` (RFC 9449 §7.1). */
  dpopAlgorithms: ReadonlySet<string> | undefined
}

/** One challenge; `error` and `scope` only on the scheme the request used (RFC 9449 §7.2). */
function challenge(
  settings: ChallengeSettings,
  scheme: AuthScheme,
  error: BearerError | undefined,
  requiredScopes: readonly string[],
): string {
  const params = [`realm="${settings.realm}"`]
  if (error !== undefined) {
    params.push(`error="${error.code}"`)
    if (error.code === 'insufficient_scope') params.push(`scope="${requiredScopes.join(' ')}"`)
  }
  // RFC 9449 §7.1: `algs`, a space-delimited list of the JWS algorithms accepted for proofs.
  if (scheme === 'DPoP') params.push(`algs="${[...(settings.dpopAlgorithms ?? [])].join(' ')}"`)
  return `${scheme} ${params.join(', ')}`
}

/**
 * RFC 6750 §3 (RFC 9449 §7.1): `WWW-Authenticate` for a request with no credentials of an accepted
 * scheme — no `error`. One challenge per accepted scheme, in one field value (RFC 9110 §11.6.1), e.g.
 * `Bearer realm="api", DPoP realm="api", algs="ES256 EdDSA"` (RFC 9449 §7.2).
 */
export const bareChallenge = (settings: ChallengeSettings): string =>
  settings.schemes.map((scheme) => challenge(settings, scheme, undefined, [])).join(', ')

/**
 * RFC 6750 §3 / RFC 9449 §7.1 challenges for a refused token: `error` (and `scope`) in the challenge of
 * the scheme the request used (`scheme`), or of the first accepted one when no scheme was recognised;
 * the other scheme's challenge stays bare. Every attribute value comes from configuration validated at
 * start-up or from fixed codes: no token bytes, `"` or `\` can reach the header.
 */
export function errorChallenge(
  settings: ChallengeSettings,
  error: BearerError,
  scheme: AuthScheme | undefined,
  requiredScopes: readonly string[],
): string {
  const target = scheme !== undefined && settings.schemes.includes(scheme) ? scheme : settings.schemes[0]
  return settings.schemes
    .map((each) => challenge(settings, each, each === target ? error : undefined, requiredScopes))
    .join(', ')
}

/**
 * Headers and JSON body for a refusal. A 503 carries `Retry-After` (RFC 9110 §10.2.3) and no challenge:
 * the token was not judged, so there is nothing to say about it.
 */
export function errorResponseParts(
  settings: ChallengeSettings,
  error: BearerError,
  scheme: AuthScheme | undefined,
  requiredScopes: readonly string[],
): { status: 400 | 401 | 403 | 503; headers: Record<string, string>; body: string } {
  const headers: Record<string, string> = {
    'Content-Type': 'application/json; charset=UTF-8',
    'Cache-Control': 'no-store',
  }
  if (error.status === 503) headers['Retry-After'] = String(error.retryAfter ?? 1)
  else headers['WWW-Authenticate'] = errorChallenge(settings, error, scheme, requiredScopes)
  return { status: error.status, headers, body: JSON.stringify({ error: error.code }) }
}
