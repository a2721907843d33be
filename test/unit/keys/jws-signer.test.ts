import fc from 'fast-check'
import { SignJWT, jwtVerify } from 'jose'
import { describe, expect, it } from 'vitest'
import { SIGNING_ALGS, type SigningAlg } from '../../../src/keys/algorithms.js'
import { createJwsSigner, jwsSigner } from '../../../src/keys/jws-signer.js'
import { issueAccessToken } from '../../../src/oauth/access-token.js'
import { makeKey, type TestKey } from '../../helpers/forge.js'

/**
 * The token endpoint signs with node:crypto itself (jws-signer.ts). Whatever the claims, each
 * token must be a canonical compact JWS that jose accepts under an exact algorithm allowlist and
 * that gives back exactly the claims issued, with the bytes jose itself would have produced.
 */

const RUNS = 1_000

/** makeKey's RSA keys are 2048 bits, the smallest tokensmith accepts: thousands of signatures stay quick. */
const KEYS = Object.fromEntries(SIGNING_ALGS.map((alg) => [alg, makeKey(alg, `test-${alg}`)])) as Record<
  SigningAlg,
  TestKey
>

type ClaimSet = { issuer: string; clientId: string; scopes: string[]; audience: string; ttl: number; iat: number }

/** Issues a token through the signer, with the claims it must carry. */
async function issue(key: TestKey, { issuer, clientId, scopes, audience, ttl, iat }: ClaimSet) {
  const token = await issueAccessToken(
    { clock: () => iat, keys: { signingKey: () => key }, issuer },
    { clientId, scopes, audience, ttl },
  )
  const claims = {
    client_id: clientId,
    scope: scopes.join(' '),
    iss: issuer,
    sub: clientId,
    aud: audience,
    iat,
    exp: iat + ttl,
    jti: token.jti,
  }
  return { token, claims }
}

const SIGNATURE_BYTES: Record<SigningAlg, number> = { ES256: 64, EdDSA: 64, RS256: 256, PS256: 256 }
const SEGMENT = /^[A-Za-z0-9_-]+$/

/** Characters JSON must escape, or that take several UTF-8 bytes, lone surrogates included. */
const awkwardChar = fc.oneof(
  fc.constantFrom(
    '"',
    '\\',
    '/',
    '\b',
    '\f',
    '\n',
    '\r',
    '\t',
    '\u0000',
    '\u001f',
    '\u007f',
    '\u2028',
    '\u2029',
    '\ufeff',
    '\ud800',
    '\udfff',
    'é',
    '€',
    '😀',
  ),
  fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code)),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
)
const text = (minLength = 0) =>
  fc.oneof(
    fc.string({ unit: 'grapheme-ascii', minLength, maxLength: 30 }),
    fc.string({ unit: awkwardChar, minLength, maxLength: 30 }),
  )

const claimSet = fc.record({
  issuer: text(1),
  clientId: text(),
  scopes: fc.array(text(1), { maxLength: 5 }),
  audience: text(1),
  ttl: fc.integer({ min: 1, max: 86_400 }),
  iat: fc.integer({ min: 0, max: 2 ** 32 }),
})

describe('jws-signer: access tokens jose accepts', () => {
  it.each(SIGNING_ALGS)(
    `%s: ${RUNS} random claim sets verify with jose and come back exactly, as canonical compact JWS`,
    async (alg) => {
      const key = KEYS[alg]
      await fc.assert(
        fc.asyncProperty(claimSet, async (set) => {
          const { issuer, audience, iat } = set
          const { token, claims } = await issue(key, set)

          // RFC 7515 §7.1: three base64url segments without padding, each in its one canonical spelling.
          const segments = token.accessToken.split('.')
          expect(segments).toHaveLength(3)
          for (const segment of segments) {
            expect(segment).toMatch(SEGMENT)
            expect(Buffer.from(segment, 'base64url').toString('base64url')).toBe(segment)
          }
          expect(Buffer.from(segments[2]!, 'base64url')).toHaveLength(SIGNATURE_BYTES[alg])
          // The header is exactly {alg, kid, typ}, in that order.
          expect(Buffer.from(segments[0]!, 'base64url').toString()).toBe(
            `{"alg":"${alg}","kid":"${key.kid}","typ":"at+jwt"}`,
          )

          const { payload, protectedHeader } = await jwtVerify(token.accessToken, key.publicKey, {
            algorithms: [alg],
            typ: 'at+jwt',
            issuer,
            audience,
            currentDate: new Date(iat * 1000),
          })
          expect(protectedHeader).toEqual({ alg, kid: key.kid, typ: 'at+jwt' })
          expect(payload).toEqual(claims)
          expect(Object.keys(payload)).toEqual(Object.keys(claims))
        }),
        { numRuns: RUNS },
      )
    },
  )

  // Ed25519 (RFC 8032 §5.1.6) and RSA PKCS#1 v1.5 signatures are deterministic, so the whole token
  // must equal jose's for the same header and claims: same signing input, same signature scheme.
  it.each(['EdDSA', 'RS256'] as const)('%s: writes byte for byte the token jose writes', async (alg) => {
    const key = KEYS[alg]
    await fc.assert(
      fc.asyncProperty(claimSet, async (set) => {
        const { token, claims } = await issue(key, set)
        const byJose = await new SignJWT(claims)
          .setProtectedHeader({ alg, kid: key.kid, typ: 'at+jwt' })
          .sign(key.privateKey)
        expect(token.accessToken).toBe(byJose)
      }),
      { numRuns: alg === 'EdDSA' ? RUNS : 200 },
    )
  })

  it('is refused by jose under any other algorithm', async () => {
    for (const alg of SIGNING_ALGS) {
      const token = await createJwsSigner(KEYS[alg], 'at+jwt').sign('{"sub":"svc-a"}')
      const others = SIGNING_ALGS.filter((other) => other !== alg)
      await expect(jwtVerify(token, KEYS[alg].publicKey, { algorithms: others })).rejects.toMatchObject({
        code: 'ERR_JOSE_ALG_NOT_ALLOWED',
      })
    }
  })

  it('signs what one turn asks for together, each token for its own claims', async () => {
    const requests = SIGNING_ALGS.flatMap((alg) =>
      Array.from({ length: 25 }, (_, i) => ({ alg, sub: `svc-${alg}-${i}` })),
    )
    const tokens = await Promise.all(
      requests.map(({ alg, sub }) => createJwsSigner(KEYS[alg], 'at+jwt').sign(JSON.stringify({ sub }))),
    )
    for (const [i, { alg, sub }] of requests.entries()) {
      const { payload } = await jwtVerify(tokens[i]!, KEYS[alg].publicKey, { algorithms: [alg], typ: 'at+jwt' })
      expect(payload).toEqual({ sub })
    }
  })

  it('fails only the signature that fails, not the others of its turn', async () => {
    // An Ed25519 key cannot make an ES256 (ECDSA P-256 with SHA-256) signature.
    const broken = createJwsSigner({ kid: 'broken', alg: 'ES256', privateKey: KEYS.EdDSA.privateKey }, 'at+jwt')
    const good = createJwsSigner(KEYS.ES256, 'at+jwt')
    const results = await Promise.allSettled([good.sign('{"n":1}'), broken.sign('{"n":2}'), good.sign('{"n":3}')])
    expect(results.map((result) => result.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
    for (const result of [results[0], results[2]]) {
      await jwtVerify((result as PromiseFulfilledResult<string>).value, KEYS.ES256.publicKey, { algorithms: ['ES256'] })
    }
  })

  it('prepares one signer per key and reuses it', () => {
    const key = KEYS.ES256
    const signer = jwsSigner(key, 'at+jwt')
    expect(jwsSigner({ ...key }, 'at+jwt')).toBe(signer)
    expect(jwsSigner(makeKey('ES256', 'test-ES256'), 'at+jwt')).not.toBe(signer)
    expect(jwsSigner(key, 'JWT').typ).toBe('JWT')
  })
})
