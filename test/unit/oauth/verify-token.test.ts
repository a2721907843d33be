import fc from 'fast-check'
import { FlattenedSign, SignJWT, type JWTPayload } from 'jose'
import { beforeAll, describe, expect, it } from 'vitest'
import { generateKeyRecord, type KeyRecord } from '../../../src/keys/key-file.js'
import { createKeyStore, keyRetention } from '../../../src/keys/key-store.js'
import { verifyOwnToken } from '../../../src/oauth/verify-token.js'
import { P256_N, b64u, forge, makeKey, malleateEs256, p1363ToDer, withSignature } from '../../helpers/forge.js'
import { ISSUER, T0, fixedClock, testKey } from '../../helpers/make-deps.js'

const T = 30
const AUD = 'https://api.example.com'
const JTI = 'MDEyMzQ1Njc4OWFiY2RlZg'

let key: KeyRecord
beforeAll(async () => {
  key = await testKey()
})

/** The server's view: the test key published and current, a clock at T0, our issuer. */
function verifier(options: { keys?: KeyRecord[]; now?: number } = {}) {
  const clock = fixedClock(options.now ?? T0)
  const keys = createKeyStore(options.keys ?? [key], clock, { retention: keyRetention(T) })
  return { clock, verify: (token: string) => verifyOwnToken({ keys, clock, issuer: ISSUER }, token, T) }
}
const verify = (token: string) => verifier().verify(token)

/** The claims the server issues, with overrides; `undefined` removes a claim. */
function claims(overrides: Record<string, unknown> = {}): JWTPayload {
  const base: Record<string, unknown> = {
    iss: ISSUER,
    sub: 'svc-a',
    client_id: 'svc-a',
    aud: AUD,
    iat: T0,
    exp: T0 + 300,
    jti: JTI,
    scope: 'read write',
  }
  for (const [name, value] of Object.entries(overrides)) {
    if (value === undefined) delete base[name]
    else base[name] = value
  }
  return base as JWTPayload
}

/** Signed with jose and the test key, the way issueAccessToken does, with header and claim overrides. */
function sign(
  claimOverrides: Record<string, unknown> = {},
  header: Record<string, unknown> = {},
  signer: KeyRecord = key,
) {
  const protectedHeader: Record<string, unknown> = { alg: signer.alg, kid: signer.kid, typ: 'at+jwt' }
  for (const [name, value] of Object.entries(header)) {
    if (value === undefined) delete protectedHeader[name]
    else protectedHeader[name] = value
  }
  return new SignJWT(claims(claimOverrides))
    .setProtectedHeader(protectedHeader as { alg: string })
    .sign(signer.privateKey)
}

/** Signed with node:crypto over raw text, for headers and payloads jose would refuse to produce. */
function forgeWithTestKey(header: Record<string, unknown>, payload: unknown, signAlg = 'ES256'): string {
  return forge({
    header: { alg: 'ES256', kid: key.kid, typ: 'at+jwt', ...header },
    payload,
    signAlg,
    key: key.privateKey,
  })
}

describe('verifyOwnToken accepts', () => {
  it('a token it issued, returning exactly the claims plus the kid', async () => {
    expect(await verify(await sign())).toEqual({
      iss: ISSUER,
      sub: 'svc-a',
      client_id: 'svc-a',
      aud: AUD,
      iat: T0,
      exp: T0 + 300,
      jti: JTI,
      scope: 'read write',
      kid: key.kid,
    })
  })

  it('a token without scope, returning no scope property', async () => {
    const result = await verify(await sign({ scope: undefined }))
    expect(result).toBeDefined()
    expect(result).not.toHaveProperty('scope')
  })

  it('an aud array of strings', async () => {
    expect((await verify(await sign({ aud: [AUD, 'urn:api:b'] })))?.aud).toEqual([AUD, 'urn:api:b'])
  })

  it('typ application/at+jwt and AT+JWT (RFC 8725 §3.11 media type comparison)', async () => {
    expect(await verify(await sign({}, { typ: 'application/at+jwt' }))).toBeDefined()
    expect(await verify(await sign({}, { typ: 'AT+JWT' }))).toBeDefined()
  })

  it('a token signed by a retired key that is still published', async () => {
    const successor = await generateKeyRecord('ES256', T0 + 60, T0 + 60)
    const { verify: laterVerify, clock } = verifier({ keys: [key, successor], now: T0 + 120 })
    expect(clock()).toBe(T0 + 120)
    expect(await laterVerify(await sign())).toMatchObject({ jti: JTI, kid: key.kid })
  })

  it('a malleated ES256 signature (r, n − s): OpenSSL does not enforce low-S; the jti is the same', async () => {
    const token = await sign()
    const malleated = malleateEs256(token)
    expect(malleated).not.toBe(token)
    expect((await verify(malleated))?.jti).toBe(JTI)
  })
})

describe('verifyOwnToken tolerance boundaries', () => {
  it('accepts exp within T of now and refuses exp at or beyond now - T', async () => {
    expect(await verify(await sign({ iat: T0 - 300, exp: T0 }))).toBeDefined()
    expect(await verify(await sign({ iat: T0 - 300, exp: T0 - T + 1 }))).toBeDefined()
    expect(await verify(await sign({ iat: T0 - 300, exp: T0 - T }))).toBeUndefined()
    expect(await verify(await sign({ iat: T0 - 300, exp: T0 - T - 1 }))).toBeUndefined()
  })

  it('accepts iat up to now + T and refuses iat further in the future', async () => {
    expect(await verify(await sign({ iat: T0 + T }))).toBeDefined()
    expect(await verify(await sign({ iat: T0 + T + 1 }))).toBeUndefined()
  })

  it('refuses nbf beyond now + T', async () => {
    expect(await verify(await sign({ nbf: T0 + T }))).toBeDefined()
    expect(await verify(await sign({ nbf: T0 + T + 1 }))).toBeUndefined()
  })

  it('accepts a token of up to 8192 characters and refuses a longer one', async () => {
    // Find the largest padding that keeps the token within 8192 characters, then one more byte.
    let padding = 5800
    let token = await sign({ pad: 'x'.repeat(padding) })
    while (token.length <= 8192) token = await sign({ pad: 'x'.repeat(++padding) })
    const longest = await sign({ pad: 'x'.repeat(padding - 1) })
    expect(longest.length).toBeLessThanOrEqual(8192)
    expect(longest.length).toBeGreaterThan(8186)
    expect(token.length).toBeGreaterThan(8192)
    expect(await verify(longest)).toBeDefined()
    expect(await verify(token)).toBeUndefined()
  })
})

describe('verifyOwnToken returns undefined, never throws, for', () => {
  const rejects = async (token: string | Promise<string>) => {
    await expect(verify(await token)).resolves.toBeUndefined()
  }

  it('garbage strings', async () => {
    for (const token of [
      '',
      'garbage',
      '.',
      '..',
      'a.b.c',
      '%%%.%%%.%%%',
      'ey.ey.ey',
      ' ',
      '\u0000',
      'a'.repeat(9000),
    ]) {
      await rejects(token)
    }
  })

  it('2, 4 and 5 segments', async () => {
    const [h, p, s] = (await sign()).split('.') as [string, string, string]
    await rejects(`${h}.${p}`)
    await rejects(`${h}.${p}.`)
    await rejects(`${h}.${p}.${s}.${s}`)
    await rejects(`${h}.${p}.${s}.${s}.${s}`)
    await rejects(`${h}.${p}.${s}.`)
  })

  it('padding, +, / or whitespace inside an otherwise valid token', async () => {
    const token = await sign()
    await rejects(`${token}=`)
    await rejects(` ${token}`)
    await rejects(`${token}\n`)
    await rejects(token.replace(/-/g, '+').replace(/_/g, '/') + (/[-_]/.test(token) ? '' : '+'))
  })

  it('the JWS JSON serialization of a valid token', async () => {
    const jws = await new FlattenedSign(new TextEncoder().encode(JSON.stringify(claims())))
      .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'at+jwt' })
      .sign(key.privateKey)
    await rejects(JSON.stringify(jws))
  })

  it('alg none in any casing, with an empty, a junk or the original signature', async () => {
    const original = (await sign()).split('.')[2]!
    for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
      const header = { alg, kid: key.kid, typ: 'at+jwt' }
      await rejects(forge({ header, payload: claims(), signature: '' }))
      await rejects(forge({ header, payload: claims(), signature: 'x' }))
      await rejects(forge({ header, payload: claims(), signature: original }))
    }
  })

  it("an alg other than the key's, even with a valid ES256 signature (ES384 header)", async () => {
    await rejects(forgeWithTestKey({ alg: 'ES384' }, claims(), 'ES256'))
    await rejects(forgeWithTestKey({ alg: 'ES512' }, claims(), 'ES256'))
    await rejects(forgeWithTestKey({ alg: 'ES256K' }, claims(), 'ES256'))
  })

  it('the other RSA algorithm with the right RSA key (PS256 header on an RS256 key, and back)', async () => {
    const rs = await testKey('RS256')
    const { verify: rsVerify } = verifier({ keys: [rs] })
    const header = { kid: rs.kid, typ: 'at+jwt' }
    expect(
      await rsVerify(forge({ header: { ...header, alg: 'RS256' }, payload: claims(), key: rs.privateKey })),
    ).toBeDefined()
    await expect(
      rsVerify(forge({ header: { ...header, alg: 'PS256' }, payload: claims(), key: rs.privateKey })),
    ).resolves.toBeUndefined()
    await expect(
      rsVerify(forge({ header: { ...header, alg: 'RS512' }, payload: claims(), key: rs.privateKey })),
    ).resolves.toBeUndefined()
  })

  it('alg missing, empty, null or an array', async () => {
    for (const alg of [undefined, '', null, ['ES256']]) {
      const header: Record<string, unknown> = { kid: key.kid, typ: 'at+jwt' }
      if (alg !== undefined) header.alg = alg
      await rejects(forge({ header, payload: claims(), signAlg: 'ES256', key: key.privateKey }))
    }
  })

  it('HS256 keyed with the public key (CVE-2015-9235)', async () => {
    const pem = key.publicKey.export({ type: 'spki', format: 'pem' }) as string
    for (const secret of [pem, pem.replace(/\n/g, ''), JSON.stringify(key.publicJwk)]) {
      await rejects(forge({ header: { alg: 'HS256', kid: key.kid, typ: 'at+jwt' }, payload: claims(), key: secret }))
    }
  })

  it('a signature from another key, under an unknown kid or under our kid', async () => {
    const attacker = makeKey('ES256', 'attacker-kid')
    await rejects(
      forge({
        header: { alg: 'ES256', kid: 'attacker-kid', typ: 'at+jwt' },
        payload: claims(),
        key: attacker.privateKey,
      }),
    )
    await rejects(
      forge({ header: { alg: 'ES256', kid: key.kid, typ: 'at+jwt' }, payload: claims(), key: attacker.privateKey }),
    )
  })

  it('a signature that does not match the signed content', async () => {
    const token = await sign()
    const other = await sign({ scope: 'read' })
    await rejects(withSignature(token, other.split('.')[2]!))
    const signature = Buffer.from(token.split('.')[2]!, 'base64url')
    signature[10] = signature[10]! ^ 0x01
    await rejects(withSignature(token, signature))
    await rejects(withSignature(token, new Uint8Array(64)))
  })

  it('an unknown, absent or non-string kid', async () => {
    await rejects(sign({}, { kid: 'no-such-kid' }))
    await rejects(sign({}, { kid: undefined }))
    for (const kid of [42, null, { kid: key.kid }, [key.kid], true]) await rejects(forgeWithTestKey({ kid }, claims()))
  })

  it('a key that is no longer published (retired beyond its retention)', async () => {
    const successor = await generateKeyRecord('ES256', T0 + 60, T0 + 60)
    const { verify: muchLater } = verifier({ keys: [key, successor], now: T0 + 60 + keyRetention(T) })
    await expect(
      muchLater(await sign({ iat: T0 + 60 + keyRetention(T) - 10, exp: T0 + 60 + keyRetention(T) + 100 })),
    ).resolves.toBeUndefined()
  })

  it('typ JWT, jwt, absent, or another type', async () => {
    for (const typ of ['JWT', 'jwt', undefined, 'application/jwt', 'at+jwt ', 'dpop+jwt', 'id_token+jwt']) {
      await rejects(sign({}, { typ }))
    }
  })

  it('a wrong issuer, including one with a trailing slash', async () => {
    await rejects(sign({ iss: 'https://evil.example.com' }))
    await rejects(sign({ iss: `${ISSUER}/` }))
  })

  it.each(['iss', 'sub', 'client_id', 'aud', 'iat', 'exp', 'jti'])('a token without %s', async (claim) => {
    await rejects(sign({ [claim]: undefined }))
  })

  it('sub different from client_id', async () => {
    await rejects(sign({ sub: 'svc-b' }))
    await rejects(sign({ sub: 'svc-b', client_id: 'svc-a' }))
  })

  it('client_id, jti or scope of the wrong type, or an empty jti', async () => {
    await rejects(sign({ client_id: 42, sub: 42 }))
    await rejects(sign({ jti: '' }))
    await rejects(sign({ jti: 42 }))
    await rejects(sign({ scope: ['read'] }))
  })

  it('an aud that is neither a string nor a non-empty array of strings', async () => {
    for (const aud of [42, [], [42], [AUD, 42], { aud: AUD }, null]) await rejects(sign({ aud }))
  })

  it('non-integer, string, negative-beyond-now or overflowing times', async () => {
    await rejects(sign({ iat: T0 + 0.5 }))
    await rejects(sign({ exp: T0 + 300.5 }))
    await rejects(sign({ exp: String(T0 + 300) }))
    await rejects(sign({ iat: String(T0) }))
    await rejects(sign({ exp: -1 }))
    await rejects(sign({ exp: null }))
    const raw = JSON.stringify(claims()).replace(`"exp":${T0 + 300}`, '"exp":1e309')
    expect(raw).toContain('1e309')
    await rejects(forgeWithTestKey({}, raw))
  })

  it('a payload that is null, an array, a string or not UTF-8', async () => {
    await rejects(forgeWithTestKey({}, 'null'))
    await rejects(forgeWithTestKey({}, '[]'))
    await rejects(forgeWithTestKey({}, '"svc-a"'))
    await rejects(forgeWithTestKey({}, new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])))
  })

  it('a payload or header that is not base64url JSON', async () => {
    const [h, , s] = (await sign()).split('.') as [string, string, string]
    await rejects(`${h}.${b64u('not json')}.${s}`)
    await rejects(`${b64u('{"alg":')}.${b64u(JSON.stringify(claims()))}.${s}`)
  })

  it('a DER-encoded, all-zero or r = s = n ES256 signature (psychic signatures)', async () => {
    const token = await sign()
    const signature = Buffer.from(token.split('.')[2]!, 'base64url')
    await rejects(withSignature(token, p1363ToDer(signature)))
    await rejects(withSignature(token, new Uint8Array(64)))
    const n = Buffer.from(P256_N.toString(16).padStart(64, '0'), 'hex')
    await rejects(withSignature(token, Buffer.concat([n, n])))
  })

  it('any string at all (fast-check): resolves, never throws', async () => {
    const { verify: check } = verifier()
    const header = b64u(JSON.stringify({ alg: 'ES256', kid: key.kid, typ: 'at+jwt' }))
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string(),
          fc.string({ unit: 'binary' }),
          fc.base64String().map((s) => s.replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_')),
          fc.tuple(fc.string(), fc.string()).map(([p, s]) => `${header}.${b64u(p)}.${b64u(s)}`),
        ),
        async (token) => {
          await expect(check(token)).resolves.toBeUndefined()
        },
      ),
      { numRuns: 500 },
    )
  })
})
