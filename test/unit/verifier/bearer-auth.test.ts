import { SignJWT } from 'jose'
import { describe, expect, it, vi } from 'vitest'

import {
  DenylistUnavailableError,
  type RevocationCheck as DenylistRevocationCheck,
} from '../../../src/denylist/denylist.js'
import {
  BEARER_AUTH_DEFAULTS,
  bearerAuth,
  type FailOpenInfo,
  type RevocationCheck,
} from '../../../src/verifier/index.js'
import { jwksOf, makeKey, signToken, type TestAlg } from '../../helpers/forge.js'
import {
  AUDIENCE,
  CHALLENGE,
  DEFAULTS,
  ISSUER,
  NOW,
  bearer,
  callWith,
  expectAccepted,
  expectBareChallenge,
  expectInvalidRequest,
  expectInvalidToken,
  expectUnavailable,
  makeApp,
} from './harness.js'

const es = makeKey('ES256', 'es-1')
const token = signToken(es, DEFAULTS)

// The verifier's own structural type and the denylist's interface stay interchangeable.
const asVerifierType: RevocationCheck = {} as DenylistRevocationCheck
void asVerifierType

const denylistOf = (isRevoked: RevocationCheck['isRevoked']): RevocationCheck => ({ isRevoked: vi.fn(isRevoked) })

describe('bearerAuth: a valid token', () => {
  it('passes and puts the verified claims on the context', async () => {
    const { app } = makeApp({ jwks: jwksOf(es) })
    const response = await callWith(app, token)
    expect(response.headers.get('www-authenticate')).toBeNull()
    expect(await expectAccepted(response)).toEqual({
      iss: ISSUER,
      sub: 'client-a',
      client_id: 'client-a',
      aud: AUDIENCE,
      iat: NOW,
      exp: NOW + 300,
      jti: expect.any(String),
      scope: 'read write',
    })
  })

  it('accepts an audience list that contains the token audience', async () => {
    const { app } = makeApp({ jwks: jwksOf(es), audience: ['https://other.test', AUDIENCE] })
    await expectAccepted(await callWith(app, token))
  })

  it('accepts a token signed by jose SignJWT, as the AS does', async () => {
    const jwt = await new SignJWT({ client_id: 'client-a', scope: 'read', jti: 'abcdefghijklmnopqrstuv' })
      .setProtectedHeader({ alg: 'ES256', kid: es.kid, typ: 'at+jwt' })
      .setIssuer(ISSUER)
      .setSubject('client-a')
      .setAudience(AUDIENCE)
      .setIssuedAt(NOW)
      .setExpirationTime(NOW + 300)
      .sign(es.privateKey)
    await expectAccepted(await callWith(makeApp({ jwks: jwksOf(es) }).app, jwt))
  })
})

describe('bearerAuth: RFC 6750 credentials', () => {
  const { app } = makeApp({ jwks: jwksOf(es) })

  it('no Authorization header → 401 bare challenge without error (RFC 6750 §3.1)', async () => {
    await expectBareChallenge(await app.request('/api/whoami'))
  })

  it.each(['Basic Y2xpZW50OnNlY3JldA==', 'Digest username="a"', 'DPoP abc', 'Bearerx abc', 'Token'])(
    'another scheme (%s) → 401 bare challenge (RFC 6750 §3.1)',
    async (authorization) => {
      await expectBareChallenge(await app.request('/api/whoami', { headers: { authorization } }))
    },
  )

  it('a token only in ?access_token= counts as no credentials (only the header is supported)', async () => {
    await expectBareChallenge(await app.request(`/api/whoami?access_token=${token}`))
  })

  it('a token only in the form body counts as no credentials (the body is never read)', async () => {
    const response = await app.request('/api/form', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `access_token=${token}`,
    })
    await expectBareChallenge(response)
  })

  it.each(['bearer', 'BEARER', 'BeArEr'])(
    'scheme %s is accepted (case-insensitive, RFC 9110 §11.1)',
    async (scheme) => {
      await expectAccepted(await app.request('/api/whoami', { headers: { authorization: `${scheme} ${token}` } }))
    },
  )

  it('accepts several spaces after the scheme (RFC 6750 §2.1: 1*SP)', async () => {
    await expectAccepted(await app.request('/api/whoami', { headers: { authorization: `Bearer   ${token}` } }))
  })

  it.each([
    ['an empty Bearer value', 'Bearer'],
    ['only spaces after Bearer', 'Bearer    '],
    ['a space inside the token', `Bearer ${token.slice(0, 20)} ${token.slice(20)}`],
    ['a quoted token', `Bearer "${token}"`],
    ['a quote inside the token', `Bearer ${token.slice(0, 20)}"${token.slice(20)}`],
    ['a comma-joined second header', `Bearer ${token}, Bearer ${token}`],
    ['a tab instead of a space', `Bearer\t${token}`],
    ['a backslash', `Bearer ${token}\\`],
    ['a non-ASCII character', `Bearer ${token.slice(0, 10)}é${token.slice(10)}`],
  ])('%s → 400 invalid_request (RFC 6750 §2.1 b64token)', async (_name, authorization) => {
    const response = await app.request('/api/whoami', { headers: { authorization } })
    const challenge = response.headers.get('www-authenticate') ?? ''
    await expectInvalidRequest(response)
    expect(challenge).not.toContain(token.slice(0, 10))
  })

  it('an empty Authorization header → 400 invalid_request', async () => {
    await expectInvalidRequest(await app.request('/api/whoami', { headers: { authorization: '' } }))
  })

  it('a token in the header and in ?access_token= → 400 invalid_request (RFC 6750 §2: one method)', async () => {
    await expectInvalidRequest(await app.request(`/api/whoami?access_token=${token}`, bearer(token)))
  })

  it("never reads the body: access_token in a form body beside a header token is the handler's business", async () => {
    const response = await app.request('/api/form', {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: `a=1&access_token=${token}`,
    })
    expect(await expectAccepted(response)).toEqual({ a: '1', access_token: token })
  })

  it('answers a bad header token without pulling a single byte of the body', async () => {
    let pulls = 0
    const body = new ReadableStream<Uint8Array>(
      {
        pull: (controller) => {
          pulls += 1
          if (pulls > 100) controller.close()
          else controller.enqueue(new TextEncoder().encode('access_token=x&'))
        },
      },
      { highWaterMark: 0 },
    )
    const response = await app.request('/api/form', {
      method: 'POST',
      headers: { authorization: 'Bearer x', 'content-type': 'application/x-www-form-urlencoded' },
      body,
      duplex: 'half',
    } as RequestInit)
    await expectInvalidToken(response)
    expect(pulls).toBe(0)
  })

  it('leaves a form body without access_token readable by the handler', async () => {
    const response = await app.request('/api/form', {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded; charset=UTF-8' },
      body: 'a=1&b=two',
    })
    expect(await expectAccepted(response)).toEqual({ a: '1', b: 'two' })
  })

  it('uses the configured realm in every challenge', async () => {
    const custom = makeApp({ jwks: jwksOf(es), realm: 'reports api' }).app
    expect((await custom.request('/api/whoami')).headers.get('www-authenticate')).toBe('Bearer realm="reports api"')
    await expectInvalidToken(await callWith(custom, 'a.b.c'), 'reports api')
  })
})

describe('bearerAuth: scopes (RFC 6750 §3.1 insufficient_scope)', () => {
  const { app } = makeApp({ jwks: jwksOf(es), scopes: ['read', 'reports:export'] })

  it.each([
    ['a token lacking one scope', 'read write'],
    ['a token with no scope at all', undefined],
    ['a prefix of the scope', 'read reports'],
  ])('%s → 403 with the needed scopes', async (_name, scope) => {
    const response = await callWith(app, signToken(es, DEFAULTS, { scope }))
    expect(response.status).toBe(403)
    expect(response.headers.get('www-authenticate')).toBe(
      'Bearer realm="tokensmith", error="insufficient_scope", scope="read reports:export"',
    )
    expect(response.headers.get('cache-control')).toBe('no-store')
    expect(await response.json()).toEqual({ error: 'insufficient_scope' })
  })

  it('passes a token holding every required scope, in any order, among others', async () => {
    await expectAccepted(await callWith(app, signToken(es, DEFAULTS, { scope: 'write reports:export  read' })))
  })
})

describe('bearerAuth: denylist (a denylist that cannot answer is 503, never a pass)', () => {
  it('refuses a revoked token with 401 invalid_token, asking with jti, kid, client_id and iat', async () => {
    const denylist = denylistOf(async () => true)
    await expectInvalidToken(await callWith(makeApp({ jwks: jwksOf(es), denylist }).app, token))
    expect(denylist.isRevoked).toHaveBeenCalledWith({
      jti: 'MDEyMzQ1Njc4OWFiY2RlZg',
      kid: 'es-1',
      client_id: 'client-a',
      iat: NOW,
    })
  })

  it('passes a token the denylist does not know', async () => {
    const denylist = denylistOf(async () => false)
    await expectAccepted(await callWith(makeApp({ jwks: jwksOf(es), denylist }).app, token))
    expect(denylist.isRevoked).toHaveBeenCalledTimes(1)
  })

  it('never consults the denylist for a token that fails verification', async () => {
    const denylist = denylistOf(async () => false)
    const { app } = makeApp({ jwks: jwksOf(es), denylist })
    await expectInvalidToken(await callWith(app, signToken(es, DEFAULTS, { iss: 'https://evil.test' })))
    await expectInvalidToken(await callWith(app, `${token.slice(0, -4)}AAAA`))
    expect(denylist.isRevoked).not.toHaveBeenCalled()
  })

  it.each([
    ['DenylistUnavailableError', () => Promise.reject(new DenylistUnavailableError('redis down'))],
    ['any other exception', () => Promise.reject(new Error('boom'))],
    [
      'a synchronous throw',
      () => {
        throw new Error('sync')
      },
    ],
    ['a non-boolean answer', () => Promise.resolve(undefined as unknown as boolean)],
  ])('answers 503 with Retry-After when the denylist throws %s', async (_name, isRevoked) => {
    const response = await callWith(makeApp({ jwks: jwksOf(es), denylist: { isRevoked } }).app, token)
    expect(response.headers.get('retry-after')).toBe('5')
    await expectUnavailable(response)
  })

  it('failOpen: passes, calls onFailOpen and counts each use', async () => {
    const seen: FailOpenInfo[] = []
    const error = new DenylistUnavailableError('redis down')
    const { app, middleware } = makeApp({
      jwks: jwksOf(es),
      denylist: { isRevoked: () => Promise.reject(error) },
      failOpen: true,
      onFailOpen: (info) => seen.push(info),
    })
    await expectAccepted(await callWith(app, token))
    await expectAccepted(await callWith(app, token))
    expect(seen).toEqual([
      { jti: 'MDEyMzQ1Njc4OWFiY2RlZg', kid: 'es-1', clientId: 'client-a', count: 1, error },
      { jti: 'MDEyMzQ1Njc4OWFiY2RlZg', kid: 'es-1', clientId: 'client-a', count: 2, error },
    ])
    expect(middleware.stats().failOpenPasses).toBe(2)
  })

  it('failOpen still refuses a token the denylist says is revoked', async () => {
    const { app } = makeApp({
      jwks: jwksOf(es),
      denylist: denylistOf(async () => true),
      failOpen: true,
      onFailOpen: () => undefined,
    })
    await expectInvalidToken(await callWith(app, token))
  })

  it('failOpen with a throwing onFailOpen still passes', async () => {
    const { app } = makeApp({
      jwks: jwksOf(es),
      denylist: { isRevoked: () => Promise.reject(new Error('down')) },
      failOpen: true,
      onFailOpen: () => {
        throw new Error('logger broke')
      },
    })
    await expectAccepted(await callWith(app, token))
  })

  it('a revoked token lacking scope is 401 (token first), not 403', async () => {
    const { app } = makeApp({ jwks: jwksOf(es), denylist: denylistOf(async () => true), scopes: ['admin'] })
    await expectInvalidToken(await callWith(app, token))
  })
})

describe('bearerAuth: algorithms (RFC 8725 §3.1 allowlist, RFC 9068 §4)', () => {
  const algs: TestAlg[] = ['ES256', 'EdDSA', 'RS256', 'PS256']
  const keys = Object.fromEntries(algs.map((alg) => [alg, makeKey(alg, `${alg}-kid`)])) as Record<
    TestAlg,
    ReturnType<typeof makeKey>
  >
  const everyKey = jwksOf(...Object.values(keys))

  it.each(algs)('a %s token verifies at an RS set to exactly that algorithm', async (alg) => {
    const { app } = makeApp({ jwks: everyKey, algorithms: [alg] })
    await expectAccepted(await callWith(app, signToken(keys[alg], DEFAULTS)))
  })

  it.each(algs.flatMap((alg) => algs.filter((other) => other !== alg).map((other) => [alg, other] as const)))(
    'a %s token fails at an RS set to %s',
    async (alg, other) => {
      const { app } = makeApp({ jwks: everyKey, algorithms: [other] })
      await expectInvalidToken(await callWith(app, signToken(keys[alg], DEFAULTS)))
    },
  )

  it('RS256 works with the default allowlist (RFC 9068 §4 makes it mandatory)', async () => {
    const { app } = makeApp({ jwks: everyKey })
    await expectAccepted(await callWith(app, signToken(keys.RS256, DEFAULTS)))
  })
})

describe('bearerAuth: no lockout (refusals keep no per-client state)', () => {
  it('never locks anyone out: 1,000 invalid tokens, then a valid one passes', async () => {
    const reasons = new Map<string, number>()
    const { app } = makeApp({
      jwks: jwksOf(es),
      onReject: ({ reason }) => reasons.set(reason, (reasons.get(reason) ?? 0) + 1),
    })
    for (let i = 0; i < 1000; i += 1) {
      const bad =
        i % 2 === 0
          ? signToken(es, DEFAULTS, { aud: `https://rs-${i}.test` })
          : `${token.slice(0, -6)}${String(i).padStart(6, 'A')}`
      expect((await callWith(app, bad)).status).toBe(401)
    }
    await expectAccepted(await callWith(app, token))
    expect([...reasons.values()].reduce((a, b) => a + b)).toBe(1000)
  })
})

describe('bearerAuth: configuration is checked at start-up', () => {
  const base = { issuer: ISSUER, audience: AUDIENCE, jwks: jwksOf(es) }

  it.each([
    ['alg none', { algorithms: ['none'] }],
    ['HS256', { algorithms: ['ES256', 'HS256'] }],
    ['an empty allowlist', { algorithms: [] }],
    ['an unknown algorithm', { algorithms: ['ES257'] }],
    ['both jwks.keys and jwks.uri', { jwks: { ...jwksOf(es), uri: 'https://as.test/jwks' } }],
    ['jwks with neither keys nor uri', { jwks: {} }],
    ['jwks not an object', { jwks: 'https://as.test/jwks' }],
    ['a relative jwks.uri', { jwks: { uri: '/jwks.json' } }],
    ['a jwks.uri that is not http(s)', { jwks: { uri: 'file:///etc/jwks.json' } }],
    ['a remote-only option with local keys', { jwks: { ...jwksOf(es), cacheMaxAge: 60 } }],
    ['a realm with a quote', { realm: 'a"b' }],
    ['a realm with a backslash', { realm: 'a\\b' }],
    ['a scope with a space', { scopes: ['a b'] }],
    ['failOpen without onFailOpen', { failOpen: true }],
    ['a jwks.timeout in milliseconds', { jwks: { uri: 'https://as.test/jwks', timeout: 5000 } }],
    ['a zero jwks.timeout', { jwks: { uri: 'https://as.test/jwks', timeout: 0 } }],
    ['jwks.maxStale below jwks.cacheMaxAge', { jwks: { uri: 'https://as.test/jwks', maxStale: 10, cacheMaxAge: 60 } }],
    ['a negative jwks.cooldown', { jwks: { uri: 'https://as.test/jwks', cooldown: -1 } }],
    ['a fractional jwks.maxBytes', { jwks: { uri: 'https://as.test/jwks', maxBytes: 1.5 } }],
    ['a negative clockTolerance', { clockTolerance: -1 }],
    ['an empty audience list', { audience: [] }],
    ['an empty issuer', { issuer: '' }],
    ['a private key in jwks.keys', { jwks: { keys: [{ ...es.publicJwk, d: 'x' }] } }],
    ['a symmetric key in jwks.keys', { jwks: { keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 'h' }] } }],
    ['an encryption key in jwks.keys', { jwks: { keys: [{ ...es.publicJwk, use: 'enc' }] } }],
  ])('throws on %s', (_name, override) => {
    expect(() => bearerAuth({ ...base, ...override } as never)).toThrow(TypeError)
  })

  it('names the RFC section in words in its messages, so they print as plain ASCII anywhere', () => {
    expect(() => bearerAuth({ ...base, scopes: ['a b'] })).toThrow('scopes must be RFC 6749 section 3.3 scope tokens')
    expect(() => bearerAuth({ ...base, failOpen: true } as never)).toThrow(
      /^bearerAuth: failOpen requires onFailOpen, so that every pass is logged$/,
    )
  })

  it('throws without jwks, naming both shapes', () => {
    expect(() => bearerAuth({ issuer: ISSUER, audience: AUDIENCE } as never)).toThrow(
      /^bearerAuth: jwks is required: \{ uri \} to fetch a JWK Set, or \{ keys \} for a local one$/,
    )
  })

  it('names the jwks member at fault', () => {
    const uri = 'https://as.test/jwks'
    const withJwks = (jwks: unknown) => () => bearerAuth({ ...base, jwks } as never)
    expect(withJwks({ uri, maxStale: 10, cacheMaxAge: 60 })).toThrow('jwks.maxStale must be at least jwks.cacheMaxAge')
    expect(withJwks({ uri, timeout: 120 })).toThrow('jwks.timeout must be a number of seconds between 0 and 60')
    expect(withJwks({ ...jwksOf(es), uri })).toThrow('jwks needs exactly one of uri and keys')
    expect(withJwks({ ...jwksOf(es), cooldown: 5 })).toThrow('jwks.cooldown applies only to a remote set (jwks.uri)')
  })

  it('accepts every remote jwks option at its documented default', () => {
    const defaults = BEARER_AUTH_DEFAULTS.jwks
    expect(() => bearerAuth({ ...base, jwks: { uri: 'https://as.test/jwks', ...defaults } })).not.toThrow()
    expect(defaults).toEqual({ cacheMaxAge: 600, cooldown: 30, timeout: 5, maxBytes: 65_536, maxStale: 3600 })
  })

  it('does no I/O when created', () => {
    const fetch = vi.fn<typeof globalThis.fetch>()
    bearerAuth({ issuer: ISSUER, audience: AUDIENCE, jwks: { uri: 'https://as.test/jwks' }, fetch })
    expect(fetch).not.toHaveBeenCalled()
  })
})

it('the bare challenge constant matches RFC 6750 §3 form', () => {
  expect(CHALLENGE).toBe('Bearer realm="tokensmith"')
})

describe('bearerAuth: onReject reasons', () => {
  const cases: Array<[string, string, number]> = [
    ['expired', signToken(es, DEFAULTS, { exp: NOW - 100, iat: NOW - 400 }), 401],
    ['bad_signature', signToken(makeKey('ES256', 'es-1'), DEFAULTS), 401],
    ['typ_mismatch', signToken(es, DEFAULTS, {}, { typ: 'JWT' }), 401],
    ['iss_mismatch', signToken(es, DEFAULTS, { iss: 'https://evil.test' }), 401],
    ['aud_mismatch', signToken(es, DEFAULTS, { aud: 'https://evil.test' }), 401],
    ['claim_missing', signToken(es, DEFAULTS, { jti: undefined }), 401],
    ['nbf_in_future', signToken(es, DEFAULTS, { nbf: NOW + 600 }), 401],
    ['iat_in_future', signToken(es, DEFAULTS, { iat: NOW + 600 }), 401],
    ['unknown_kid', signToken(es, DEFAULTS, {}, { kid: 'other' }), 401],
    ['alg_not_allowed', signToken(es, DEFAULTS, {}, { alg: 'HS256' }), 401],
    ['sub_client_id_mismatch', signToken(es, DEFAULTS, { sub: 'client-b' }), 401],
    ['jws_format', 'abc', 401],
  ]

  it.each(cases)('labels a refusal %s, with no token bytes', async (reason, bad, status) => {
    const seen: unknown[] = []
    const { app } = makeApp({ jwks: jwksOf(es), onReject: (info) => seen.push(info) })
    expect((await callWith(app, bad)).status).toBe(status)
    expect(seen).toEqual([{ status, error: 'invalid_token', reason }])
  })

  it('labels a request without credentials no_credentials', async () => {
    const seen: unknown[] = []
    const { app } = makeApp({ jwks: jwksOf(es), onReject: (info) => seen.push(info) })
    await app.request('/api/whoami')
    expect(seen).toEqual([{ status: 401, error: undefined, reason: 'no_credentials' }])
  })
})
