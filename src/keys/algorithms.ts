/**
 * The signing algorithms tokensmith issues with, and accepts back. RFC 8725 §3.1: an allowlist,
 * never the token's own say. RS256 is listed because RFC 9068 §4 requires verifiers to support it.
 */
export const SIGNING_ALGS = ['ES256', 'EdDSA', 'RS256', 'PS256'] as const
export type SigningAlg = (typeof SIGNING_ALGS)[number]

export const isSigningAlg = (value: unknown): value is SigningAlg =>
  typeof value === 'string' && (SIGNING_ALGS as readonly string[]).includes(value)
