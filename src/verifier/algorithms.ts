/**
 * The JWS algorithms tokensmith signs with, and the default allowlist of every verifier of its tokens:
 * `bearerAuth` at resource servers, and the server's own verification (revocation, introspection).
 * RFC 8725 §3.1: an allowlist, never the token's own say. RS256 is listed because RFC 9068 §4 requires
 * verifiers to support it.
 *
 * @example
 * ```ts
 * bearerAuth({ issuer, audience, jwks: { uri }, algorithms: ['ES256'] }) // narrower than DEFAULT_ALGORITHMS
 * ```
 */
export const DEFAULT_ALGORITHMS = ['ES256', 'EdDSA', 'RS256', 'PS256'] as const

/**
 * Every algorithm `bearerAuth` may be configured to accept: asymmetric JWS algorithms jose verifies.
 * `none` and `HS*` are absent on purpose (RFC 8725 §3.1, §3.2): a verifier configured for them throws.
 */
export const SUPPORTED_ALGORITHMS: ReadonlySet<string> = new Set([
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
])
