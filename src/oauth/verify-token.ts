import type { Clock } from '../clock.js'
import { SIGNING_ALGS } from '../keys/algorithms.js'
import type { KeyStore } from '../keys/key-store.js'
import { BearerError, invalidToken } from '../verifier/errors.js'
import type { AccessTokenClaims } from '../verifier/types.js'
import { verifyAccessToken, type KeyResolver, type VerifiedAccessToken } from '../verifier/verify-access-token.js'

const ALGORITHMS: ReadonlySet<string> = new Set(SIGNING_ALGS)

/** The `cnf.jkt` of a DPoP-bound token (RFC 9449 §6.1), when the claim is present and well formed. */
function boundJkt(cnf: unknown): string | undefined {
  if (typeof cnf !== 'object' || cnf === null) return undefined
  const { jkt } = cnf as { jkt?: unknown }
  return typeof jkt === 'string' ? jkt : undefined
}

/**
 * Verifies a token as one of our own access tokens, with the resource servers' checks
 * (`verifyAccessToken`, RFC 9068 §4, RFC 8725): canonical compact JWS of at most 8 KiB, a `kid` we
 * publish, the algorithm of that key (never the header's say), `typ: at+jwt`, our issuer, every
 * required claim and its shape. Any audience is accepted: the caller decides who may act on which.
 *
 * Returns the RFC 9068 claims and the `kid`, or undefined for anything invalid: revocation and
 * introspection treat all invalid tokens alike (RFC 7009 §2.2, RFC 7662 §2.2).
 *
 * `tolerance` is the verifiers' clock tolerance T: a token past `exp` but within T still verifies
 * here, because resource servers may still accept it, so revocation must still reach it.
 */
export async function verifyOwnToken(
  deps: { keys: KeyStore; clock: Clock; issuer: string },
  token: string,
  tolerance: number,
): Promise<(AccessTokenClaims & { kid: string }) | undefined> {
  const resolveKey: KeyResolver = ({ kid }) => {
    const key = deps.keys.verificationKey(kid)
    if (!key) throw invalidToken('unknown_kid')
    return { key: key.publicKey, algorithms: [key.alg] }
  }
  let verified: VerifiedAccessToken
  try {
    const { issuer, clock } = deps
    verified = await verifyAccessToken(
      { issuer, audience: undefined, algorithms: ALGORITHMS, clockTolerance: tolerance, clock, resolveKey },
      token,
    )
  } catch (error) {
    if (error instanceof BearerError) return undefined
    throw error
  }
  // Only the claims tokensmith issues: introspection echoes them (RFC 7662 §2.2), `cnf` of a DPoP-bound
  // token included (RFC 9449 §6.2), and only in the shape tokensmith writes.
  const { iss, sub, client_id, aud, iat, exp, jti, scope, cnf } = verified.claims
  const jkt = boundJkt(cnf)
  return {
    iss,
    sub,
    client_id,
    aud,
    iat,
    exp,
    jti,
    kid: verified.kid,
    ...(scope !== undefined && { scope }),
    ...(jkt !== undefined && { cnf: { jkt } }),
  }
}
