import { decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose'
import type { Clock } from '../clock.js'
import { SIGNING_ALGS } from '../keys/algorithms.js'
import type { KeyStore } from '../keys/key-store.js'

/** The claims of an access token this server issued, after its signature and claims checked out. */
export interface OwnTokenClaims {
  iss: string
  sub: string
  client_id: string
  aud: string | string[]
  iat: number
  exp: number
  jti: string
  scope?: string
  kid: string
}

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/

/**
 * Verifies a token as one of our own access tokens (RFC 9068 §4, RFC 8725): compact JWS only, a
 * `kid` we publish, the algorithm of that key (never the header's say), `typ: at+jwt`, our issuer,
 * every required claim. Returns undefined for anything else: revocation and introspection treat
 * all invalid tokens alike. The signature is checked before any claim is read.
 *
 * `tolerance` is the verifiers' clock tolerance T: a token past `exp` but within T still verifies
 * here, because resource servers may still accept it (revocation must reach it, RV-6).
 */
export async function verifyOwnToken(
  deps: { keys: KeyStore; clock: Clock; issuer: string },
  token: string,
  tolerance: number,
): Promise<OwnTokenClaims | undefined> {
  if (token.length > 8192 || !COMPACT_JWS.test(token)) return undefined
  let kid: unknown
  try {
    kid = decodeProtectedHeader(token).kid
  } catch {
    return undefined
  }
  const key = typeof kid === 'string' ? deps.keys.verificationKey(kid) : undefined
  if (!key) return undefined
  let payload: JWTPayload
  try {
    ;({ payload } = await jwtVerify(token, key.publicKey, {
      algorithms: [key.alg].filter((alg) => (SIGNING_ALGS as readonly string[]).includes(alg)),
      typ: 'at+jwt',
      issuer: deps.issuer,
      requiredClaims: ['iss', 'sub', 'client_id', 'aud', 'iat', 'exp', 'jti'],
      clockTolerance: tolerance,
      currentDate: new Date(deps.clock() * 1000),
    }))
  } catch {
    return undefined
  }
  const { sub, client_id: clientId, jti, iat, exp, scope, aud } = payload
  if (typeof clientId !== 'string' || sub !== clientId || typeof jti !== 'string' || jti === '') return undefined
  if (!Number.isSafeInteger(iat) || !Number.isSafeInteger(exp)) return undefined
  if (iat! > deps.clock() + tolerance) return undefined // issued in the future: not ours to trust
  if (scope !== undefined && typeof scope !== 'string') return undefined
  // jose checks aud's type only when given `audience`; introspection echoes it, so hold it to RFC 7519 §4.1.3.
  if (typeof aud !== 'string' && !(Array.isArray(aud) && aud.length > 0 && aud.every((a) => typeof a === 'string'))) return undefined
  return { iss: deps.issuer, sub, client_id: clientId, aud: aud!, iat: iat!, exp: exp!, jti, kid: kid as string, ...(scope !== undefined && { scope }) }
}
