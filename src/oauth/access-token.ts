import { randomBytes } from 'node:crypto'
import type { Clock } from '../clock.js'
import { jwsSigner } from '../keys/jws-signer.js'
import type { KeyStore } from '../keys/key-store.js'

export interface AccessTokenGrant {
  clientId: string
  scopes: readonly string[]
  audience: string
  ttl: number
  /** RFC 9449 §6.1: the JWK SHA-256 thumbprint of the DPoP key the token is bound to, as `cnf.jkt`. */
  jkt?: string
}

export interface IssuedToken {
  accessToken: string
  jti: string
  kid: string
  expiresIn: number
  scope: string
}

const JTI_BYTES = 16
const JTI_POOL_BYTES = 256 * JTI_BYTES
let jtiPool = Buffer.alloc(0)
let jtiOffset = 0

/**
 * RFC 7519 §4.1.7: a unique jti; 16 bytes from the CSPRNG, base64url (a UUID has only 122 random bits).
 * The bytes come from crypto.randomBytes 4 KiB at a time, each used once: a call costs several
 * microseconds whatever its size (OpenSSL checks for a fork with a system call on every call), as
 * much as parsing the whole token request. crypto.randomUUID batches the same way.
 */
export function newJti(): string {
  if (jtiOffset + JTI_BYTES > jtiPool.length) {
    jtiPool = randomBytes(JTI_POOL_BYTES)
    jtiOffset = 0
  }
  const jti = jtiPool.toString('base64url', jtiOffset, jtiOffset + JTI_BYTES)
  jtiOffset += JTI_BYTES
  return jti
}

/**
 * RFC 9068 §2: a JWT access token. Header `typ: at+jwt` (§2.1) so it cannot be confused with an ID
 * token; claims iss, exp, aud, sub, client_id, iat, jti (§2.2) and scope (§2.2.3). For the client
 * credentials grant there is no resource owner, so `sub` is the client id (§2.2). A DPoP-bound token
 * carries `cnf: { jkt }` (RFC 9449 §6.1, RFC 7800 §3.1).
 */
export async function issueAccessToken(
  deps: { clock: Clock; keys: Pick<KeyStore, 'signingKey'>; issuer: string },
  grant: AccessTokenGrant,
): Promise<IssuedToken> {
  const key = deps.keys.signingKey()
  const iat = deps.clock()
  const jti = newJti()
  const scope = grant.scopes.join(' ')
  // Members in the order jose wrote them, so tokens read as they always did.
  const claims = {
    client_id: grant.clientId,
    scope,
    iss: deps.issuer,
    sub: grant.clientId,
    aud: grant.audience,
    iat,
    exp: iat + grant.ttl,
    jti,
    ...(grant.jkt !== undefined && { cnf: { jkt: grant.jkt } }),
  }
  const accessToken = await jwsSigner(key, 'at+jwt').sign(JSON.stringify(claims))
  return { accessToken, jti, kid: key.kid, expiresIn: grant.ttl, scope }
}
