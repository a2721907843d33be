/**
 * Test-only token signer and forger for the verifier suites. It signs with
 * node:crypto over raw base64url text, so it can produce what no honest library would: any header,
 * any payload bytes, any signature bytes.
 */
import { constants, createHmac, generateKeyPairSync, sign as cryptoSign, type KeyObject } from 'node:crypto'

import type { JWK } from 'jose'

export type TestAlg = 'ES256' | 'EdDSA' | 'RS256' | 'PS256'

export interface TestKey {
  alg: TestAlg
  kid: string
  privateKey: KeyObject
  publicKey: KeyObject
  /** What the AS publishes: public members plus kid, alg, use. */
  publicJwk: JWK
}

/** P-256 group order n (SEC 2 §2.4.2), for malleated and re-encoded ECDSA signatures. */
export const P256_N = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551')

export function makeKey(alg: TestAlg, kid: string = `${alg.toLowerCase()}-key`): TestKey {
  const pair =
    alg === 'ES256'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : alg === 'EdDSA'
        ? generateKeyPairSync('ed25519')
        : generateKeyPairSync('rsa', { modulusLength: 2048 })
  const jwk = pair.publicKey.export({ format: 'jwk' }) as JWK
  return { alg, kid, ...pair, publicJwk: { ...jwk, kid, alg, use: 'sig' } }
}

export const jwksOf = (...keys: TestKey[]): { keys: JWK[] } => ({ keys: keys.map((key) => key.publicJwk) })

export const b64u = (input: string | Uint8Array): string =>
  (typeof input === 'string' ? Buffer.from(input, 'utf8') : Buffer.from(input)).toString('base64url')

export const fromB64u = (input: string): Buffer => Buffer.from(input, 'base64url')

/** Signs `input` the way JWS `alg` says (RFC 7518 §3), with ECDSA in JOSE's raw r‖s form. */
export function signInput(alg: string, key: KeyObject | string | Buffer, input: string): Buffer {
  const data = Buffer.from(input, 'ascii')
  if (alg.startsWith('HS'))
    return createHmac(`sha${alg.slice(2)}`, key as string | Buffer)
      .update(data)
      .digest()
  const k = key as KeyObject
  switch (alg) {
    case 'ES256':
    case 'ES384':
    case 'ES512':
    case 'ES256K':
      return cryptoSign(`sha${alg === 'ES256K' ? '256' : alg.slice(2)}`, data, { key: k, dsaEncoding: 'ieee-p1363' })
    case 'EdDSA':
    case 'Ed25519':
      return cryptoSign(null, data, k)
    case 'RS256':
    case 'RS384':
    case 'RS512':
      return cryptoSign(`sha${alg.slice(2)}`, data, k)
    case 'PS256':
    case 'PS384':
    case 'PS512':
      return cryptoSign(`sha${alg.slice(2)}`, data, {
        key: k,
        padding: constants.RSA_PKCS1_PSS_PADDING,
        saltLength: Number(alg.slice(2)) / 8,
      })
    default:
      throw new Error(`forge: cannot sign ${alg}`)
  }
}

export interface ForgeInput {
  /** An object (JSON-encoded) or raw header text. */
  header: Record<string, unknown> | string
  /** An object (JSON-encoded), raw text, or raw bytes. */
  payload: unknown
  /** The algorithm to sign with; default the header's `alg`. */
  signAlg?: string
  /** A key to sign with; omit with `signature`. */
  key?: KeyObject | string | Buffer
  /** Signature bytes or base64url text used verbatim instead of signing. */
  signature?: Uint8Array | string
}

/** Builds `b64u(header).b64u(payload).b64u(signature)` from parts. */
export function forge(input: ForgeInput): string {
  const header = typeof input.header === 'string' ? input.header : JSON.stringify(input.header)
  const payload =
    input.payload instanceof Uint8Array
      ? input.payload
      : typeof input.payload === 'string'
        ? input.payload
        : JSON.stringify(input.payload)
  const signingInput = `${b64u(header)}.${b64u(payload)}`
  if (input.signature !== undefined) {
    return `${signingInput}.${typeof input.signature === 'string' ? input.signature : b64u(input.signature)}`
  }
  const alg = input.signAlg ?? (typeof input.header === 'string' ? undefined : (input.header.alg as string))
  if (alg === undefined || input.key === undefined) throw new Error('forge: need signAlg/alg and key, or signature')
  return `${signingInput}.${b64u(signInput(alg, input.key, signingInput))}`
}

export interface ClaimsDefaults {
  issuer: string
  audience: string
  now: number
}

/** The claims tokensmith issues (RFC 9068 §2.2), with overrides; `undefined` removes a claim. */
export function accessTokenClaims(
  defaults: ClaimsDefaults,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  const claims: Record<string, unknown> = {
    iss: defaults.issuer,
    sub: 'client-a',
    client_id: 'client-a',
    aud: defaults.audience,
    iat: defaults.now,
    exp: defaults.now + 300,
    jti: b64u(Buffer.from('0123456789abcdef')),
    scope: 'read write',
  }
  for (const [name, value] of Object.entries(overrides)) {
    if (value === undefined) delete claims[name]
    else claims[name] = value
  }
  return claims
}

/** A correctly signed tokensmith access token from `key`, with header and claim overrides. */
export function signToken(
  key: TestKey,
  defaults: ClaimsDefaults,
  claims: Record<string, unknown> = {},
  header: Record<string, unknown> = {},
): string {
  const fullHeader: Record<string, unknown> = { alg: key.alg, kid: key.kid, typ: 'at+jwt' }
  for (const [name, value] of Object.entries(header)) {
    if (value === undefined) delete fullHeader[name]
    else fullHeader[name] = value
  }
  return forge({
    header: fullHeader,
    payload: accessTokenClaims(defaults, claims),
    signAlg: key.alg,
    key: key.privateKey,
  })
}

/** Replaces the signature segment. */
export const withSignature = (token: string, signature: Uint8Array | string): string =>
  `${token.split('.').slice(0, 2).join('.')}.${typeof signature === 'string' ? signature : b64u(signature)}`

/** ES256 signature r‖s → r‖(n − s), still valid under plain ECDSA verification (no low-S rule). */
export function malleateEs256(token: string): string {
  const signature = fromB64u(token.split('.')[2] ?? '')
  const s = BigInt(`0x${signature.subarray(32).toString('hex')}`)
  const malleated = Buffer.concat([
    signature.subarray(0, 32),
    Buffer.from((P256_N - s).toString(16).padStart(64, '0'), 'hex'),
  ])
  return withSignature(token, malleated)
}

/** Re-encodes ECDSA r‖s as ASN.1 DER: the wrong encoding for JOSE (RFC 7518 §3.4 asks for r‖s). */
export function p1363ToDer(signature: Uint8Array): Buffer {
  const int = (bytes: Uint8Array) => {
    let b = Buffer.from(bytes)
    while (b.length > 1 && b[0] === 0 && (b[1] ?? 0) < 0x80) b = b.subarray(1)
    if ((b[0] ?? 0) >= 0x80) b = Buffer.concat([Buffer.from([0]), b])
    return Buffer.concat([Buffer.from([0x02, b.length]), b])
  }
  const body = Buffer.concat([int(signature.subarray(0, 32)), int(signature.subarray(32))])
  return Buffer.concat([Buffer.from([0x30, body.length]), body])
}
