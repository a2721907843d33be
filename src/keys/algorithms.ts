import { DEFAULT_ALGORITHMS } from '../verifier/algorithms.js'

/**
 * The signing algorithms tokensmith issues with, and accepts back: the verifier's default allowlist,
 * defined once there (RFC 8725 §3.1; RS256 because RFC 9068 §4 requires verifiers to support it).
 */
export const SIGNING_ALGS = DEFAULT_ALGORITHMS
export type SigningAlg = (typeof SIGNING_ALGS)[number]

export const isSigningAlg = (value: unknown): value is SigningAlg =>
  typeof value === 'string' && (SIGNING_ALGS as readonly string[]).includes(value)
