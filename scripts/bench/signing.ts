import { constants, createPrivateKey, createPublicKey, randomBytes, sign, type KeyObject } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { decodeJwt, decodeProtectedHeader, jwtVerify, SignJWT } from 'jose'

/**
 * The raw yardsticks: what one thread of this process does per second with the server's own key
 * and the server's own token shape, with nothing around it. Each operation produces a whole token
 * (fresh iat, exp and jti, as the server does per request), so the two signers do the same work.
 */

export interface ServerKey {
  kid: string
  alg: string
  privateKey: KeyObject
  publicKey: KeyObject
}

/**
 * The key a server signed `token` with, read from its KEYS_DIR: `<kid>.json` holds the private key
 * as PKCS#8 PEM (the bench sets no KEYS_PASSPHRASE, so it is not encrypted).
 */
export async function readServerKey(keysDir: string, token: string): Promise<ServerKey> {
  const { kid, alg } = decodeProtectedHeader(token)
  if (!kid || !alg) throw new Error('the sample token has no kid or alg')
  const file = JSON.parse(await readFile(join(keysDir, `${kid}.json`), 'utf8')) as { privateKey?: string }
  if (!file.privateKey) throw new Error(`${kid}.json in ${keysDir} holds no private key`)
  const privateKey = createPrivateKey(file.privateKey)
  return { kid, alg, privateKey, publicKey: createPublicKey(privateKey) }
}

/** The claims of a server's token, to be signed again per operation with a fresh iat, exp and jti. */
function template(sample: string) {
  const claims = decodeJwt(sample)
  const text = (name: string) => {
    const value = claims[name]
    if (typeof value !== 'string') throw new Error(`the sample token's ${name} is not a string`)
    return value
  }
  return {
    clientId: text('client_id'),
    scope: text('scope'),
    iss: text('iss'),
    sub: text('sub'),
    aud: text('aud'),
    ttl: claims.exp! - claims.iat!,
  }
}

const newJti = () => randomBytes(16).toString('base64url')
const now = () => Math.floor(Date.now() / 1000)

/** jose SignJWT, built exactly as src/oauth/access-token.ts builds it. */
export function joseSigner(key: ServerKey, sample: string): () => Promise<string> {
  const t = template(sample)
  return () => {
    const iat = now()
    return new SignJWT({ client_id: t.clientId, scope: t.scope })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'at+jwt' })
      .setIssuer(t.iss)
      .setSubject(t.sub)
      .setAudience(t.aud)
      .setIssuedAt(iat)
      .setExpirationTime(iat + t.ttl)
      .setJti(newJti())
      .sign(key.privateKey)
  }
}

/** node:crypto options that give a JWS signature for each algorithm (RFC 7518 §3, RFC 8037 §3.1). */
function signatureOf(alg: string, key: KeyObject): (input: Buffer) => Buffer {
  switch (alg) {
    case 'ES256':
      return (input) => sign('sha256', input, { key, dsaEncoding: 'ieee-p1363' })
    case 'EdDSA':
      return (input) => sign(null, input, key)
    case 'RS256':
      return (input) => sign('sha256', input, key)
    case 'PS256':
      return (input) => sign('sha256', input, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 })
    default:
      throw new Error(`no node:crypto signer for ${alg}`)
  }
}

/**
 * `crypto.sign` of the same JWS signing input: the header segment prepared once, the claims in
 * jose's order encoded per operation, synchronous on this thread (no libuv pool hop).
 */
export function nodeSigner(key: ServerKey, sample: string): () => string {
  const t = template(sample)
  const header = Buffer.from(JSON.stringify({ alg: key.alg, kid: key.kid, typ: 'at+jwt' })).toString('base64url')
  const signature = signatureOf(key.alg, key.privateKey)
  return () => {
    const iat = now()
    const claims = {
      client_id: t.clientId,
      scope: t.scope,
      iss: t.iss,
      sub: t.sub,
      aud: t.aud,
      iat,
      exp: iat + t.ttl,
      jti: newJti(),
    }
    const input = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`
    return `${input}.${signature(Buffer.from(input)).toString('base64url')}`
  }
}

const canonical = (object: object) => JSON.stringify(Object.entries(object).sort(([a], [b]) => (a < b ? -1 : 1)))
const names = (object: object) => Object.keys(object).sort().join(',')

/**
 * A raw figure is a yardstick only if it signs what the server signs: same header, same claim
 * names, and a token jose accepts with the server's key.
 */
export async function checkSameToken(
  serverToken: string,
  benchToken: string,
  key: ServerKey,
  label: string,
): Promise<void> {
  const server = { header: decodeProtectedHeader(serverToken), claims: decodeJwt(serverToken) }
  const bench = { header: decodeProtectedHeader(benchToken), claims: decodeJwt(benchToken) }
  const problems = [
    canonical(server.header) !== canonical(bench.header) &&
      `header ${JSON.stringify(server.header)} vs ${JSON.stringify(bench.header)}`,
    names(server.claims) !== names(bench.claims) && `claims ${names(server.claims)} vs ${names(bench.claims)}`,
  ].filter(Boolean)
  if (problems.length > 0)
    throw new Error(`${label} does not sign what the server signs (server vs bench): ${problems.join('; ')}`)
  await jwtVerify(benchToken, key.publicKey, { algorithms: [key.alg], typ: 'at+jwt' }).catch((error: unknown) => {
    throw new Error(`${label}: jose does not accept the token it signed: ${(error as Error).message}`)
  })
}

/** jose jwtVerify with what bearerAuth checks through jose: algorithm, typ, issuer, audience, required claims. */
export function joseVerifier(key: ServerKey, token: string): () => Promise<unknown> {
  const claims = decodeJwt(token)
  const options = {
    algorithms: [key.alg],
    typ: 'at+jwt',
    issuer: claims.iss!,
    audience: claims.aud as string,
    requiredClaims: ['iss', 'aud', 'exp', 'iat', 'jti', 'sub', 'client_id'],
  }
  return () => jwtVerify(token, key.publicKey, options)
}
