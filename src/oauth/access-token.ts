import { randomBytes } from 'node:crypto'
import { SignJWT } from 'jose'
import type { Clock } from '../clock.js'
import type { KeyStore } from '../keys/key-store.js'

export interface AccessTokenGrant {
  clientId: string
  scopes: readonly string[]
  audience: string
  ttl: number
}

export interface IssuedToken {
  accessToken: string
  jti: string
  kid: string
  expiresIn: number
  scope: string
}

/** Checklist decision 9: 16 bytes from the CSPRNG, base64url (a UUID has only 122 random bits). */
export const newJti = (): string => randomBytes(16).toString('base64url')

/**
 * RFC 9068 §2: a JWT access token. Header `typ: at+jwt` (§2.1) so it cannot be confused with an ID
 * token; claims iss, exp, aud, sub, client_id, iat, jti (§2.2) and scope (§2.2.3). For the client
 * credentials grant there is no resource owner, so `sub` is the client id (§2.2).
 */
export async function issueAccessToken(
  deps: { clock: Clock; keys: KeyStore; issuer: string },
  grant: AccessTokenGrant,
): Promise<IssuedToken> {
  const key = deps.keys.signingKey()
  const iat = deps.clock()
  const jti = newJti()
  const scope = grant.scopes.join(' ')
  const accessToken = await new SignJWT({ client_id: grant.clientId, scope })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'at+jwt' })
    .setIssuer(deps.issuer)
    .setSubject(grant.clientId)
    .setAudience(grant.audience)
    .setIssuedAt(iat)
    .setExpirationTime(iat + grant.ttl)
    .setJti(jti)
    .sign(key.privateKey)
  return { accessToken, jti, kid: key.kid, expiresIn: grant.ttl, scope }
}
