/**
 * `bearerAuth` and DPoP-bound tokens (RFC 9449 §7): the DPoP scheme with one proof per request, the
 * refusal of a bound token sent as Bearer (§7.2), and the `WWW-Authenticate` challenges, as on the wire.
 */
import { createHash, randomUUID } from 'node:crypto'

import { Hono } from 'hono'
import { calculateJwkThumbprint, type JWK, SignJWT } from 'jose'
import { describe, expect, it, vi } from 'vitest'

import {
  type BearerAuthOptions,
  type BearerAuthVariables,
  bearerAuth,
  createMemoryDpopReplay,
  DPOP_ALGORITHMS,
  type DpopReplay,
  type RejectInfo,
} from '../../../src/verifier/index.js'
import { b64u, forge, jwksOf, makeKey, signToken, type TestKey } from '../../helpers/forge.js'
import { AUDIENCE, DEFAULTS, ISSUER, NOW } from './harness.js'

const URL_ = 'http://localhost/api/whoami'
const ALGS = DPOP_ALGORITHMS.join(' ')
const DPOP_BARE = `DPoP realm="tokensmith", algs="${ALGS}"`
const BEARER_BARE = 'Bearer realm="tokensmith"'
/** Both schemes accepted (the default): Bearer first, then DPoP (RFC 9449 §7.2). */
const BOTH_BARE = `${BEARER_BARE}, ${DPOP_BARE}`
const dpopError = (code: string) => `${BEARER_BARE}, DPoP realm="tokensmith", error="${code}", algs="${ALGS}"`
const bearerError = (code: string) => `Bearer realm="tokensmith", error="${code}", ${DPOP_BARE}`

const issuerKey = makeKey('ES256', 'as-1')
const clientKey = makeKey('ES256', 'client')
const otherKey = makeKey('ES256', 'other')
const edKey = makeKey('EdDSA', 'client-ed')

/** The public members only (RFC 7638 §3.2), as a client puts its key in the proof header. */
const proofJwk = (key: TestKey): JWK => {
  const { kid: _kid, alg: _alg, use: _use, ...rest } = key.publicJwk
  return rest
}
const thumbprint = (key: TestKey) => calculateJwkThumbprint(proofJwk(key), 'sha256')
const ath = (token: string) => createHash('sha256').update(token).digest('base64url')

const clientJkt = await thumbprint(clientKey)
/** A token the AS bound to `clientKey` (RFC 9449 §6.1). */
const bound = signToken(issuerKey, DEFAULTS, { cnf: { jkt: clientJkt } })
const unbound = signToken(issuerKey, DEFAULTS)

interface ProofInput {
  key?: TestKey
  method?: string
  url?: string
  token?: string | undefined
  iat?: number
  jti?: string
  header?: Record<string, unknown>
  claims?: Record<string, unknown>
}

/** A DPoP proof (RFC 9449 §4.2) signed with jose, as a client library makes it. */
async function proof(input: ProofInput = {}): Promise<string> {
  const key = input.key ?? clientKey
  const token = 'token' in input ? input.token : bound
  const claims: Record<string, unknown> = {
    htm: input.method ?? 'GET',
    htu: input.url ?? URL_,
    jti: input.jti ?? randomUUID(),
    ...(token === undefined ? {} : { ath: ath(token) }),
    ...input.claims,
  }
  return new SignJWT(claims)
    .setProtectedHeader({ alg: key.alg, typ: 'dpop+jwt', jwk: proofJwk(key), ...input.header })
    .setIssuedAt(input.iat ?? NOW)
    .sign(key.privateKey)
}

function makeApp(options: Partial<BearerAuthOptions> = {}) {
  const rejects: RejectInfo[] = []
  const middleware = bearerAuth({
    issuer: ISSUER,
    audience: AUDIENCE,
    jwks: jwksOf(issuerKey),
    clock: () => NOW,
    onReject: (info) => rejects.push(info),
    // DPoP is opt-in; these tests are about the middleware with it on.
    dpop: {},
    ...options,
  } as BearerAuthOptions)
  const app = new Hono<{ Variables: BearerAuthVariables }>()
  app.use('/api/*', middleware)
  app.get('/api/whoami', (c) => c.json({ auth: c.get('auth'), dpop: c.get('dpop') ?? null }))
  app.post('/api/whoami', (c) => c.json({ auth: c.get('auth'), dpop: c.get('dpop') ?? null }))
  return { app, middleware, rejects }
}

type App = ReturnType<typeof makeApp>['app']

const dpopCall = (app: App, token: string, proofs: string[] | string | undefined, init: RequestInit = {}) => {
  const headers = new Headers({ authorization: `DPoP ${token}` })
  for (const value of proofs === undefined ? [] : [proofs].flat()) headers.append('dpop', value)
  return app.request('/api/whoami', { ...init, headers })
}

async function expectRefused(response: Response, status: number, code: string, challenge: string): Promise<void> {
  expect(response.status).toBe(status)
  expect(response.headers.get('www-authenticate')).toBe(challenge)
  expect(response.headers.get('cache-control')).toBe('no-store')
  expect(await response.json()).toEqual({ error: code })
}

const lastReason = (rejects: RejectInfo[]) => rejects.at(-1)?.reason

describe('bearerAuth + DPoP: a bound token with a valid proof', () => {
  it('passes, with cnf on `auth` and the verified proof on `dpop`', async () => {
    const { app } = makeApp()
    const p = await proof({ jti: 'proof-1' })
    const response = await dpopCall(app, bound, p)
    expect(response.status).toBe(200)
    expect(response.headers.get('www-authenticate')).toBeNull()
    const body = (await response.json()) as { auth: Record<string, unknown>; dpop: Record<string, unknown> }
    expect(body.auth.cnf).toEqual({ jkt: clientJkt })
    expect(body.dpop).toEqual({ jkt: clientJkt, jwk: proofJwk(clientKey), jti: 'proof-1', iat: NOW })
  })

  it('accepts the scheme in any case, an EdDSA proof key, and a request with a query string', async () => {
    const edBound = signToken(issuerKey, DEFAULTS, { cnf: { jkt: await thumbprint(edKey) } })
    const { app } = makeApp()
    const p = await proof({ key: edKey, token: edBound })
    const response = await app.request('/api/whoami?page=2#x', {
      headers: { authorization: `dpop ${edBound}`, dpop: p },
    })
    expect(response.status).toBe(200)
  })

  it('checks htm against the method: a POST proof for a POST', async () => {
    const { app } = makeApp()
    expect((await dpopCall(app, bound, await proof({ method: 'POST' }), { method: 'POST' })).status).toBe(200)
  })

  it('a Bearer token with no cnf still passes as Bearer, with `dpop` undefined', async () => {
    const { app } = makeApp()
    const response = await app.request('/api/whoami', { headers: { authorization: `Bearer ${unbound}` } })
    expect(response.status).toBe(200)
    expect(((await response.json()) as { dpop: unknown }).dpop).toBeNull()
  })
})

describe('bearerAuth + DPoP: refusals (RFC 9449 §7.1, §7.2)', () => {
  it('no credentials → 401 with both bare challenges, empty body', async () => {
    const response = await makeApp().app.request('/api/whoami')
    expect(response.status).toBe(401)
    expect(response.headers.get('www-authenticate')).toBe(BOTH_BARE)
    expect(await response.text()).toBe('')
  })

  it('a bound token sent as Bearer → 401 invalid_token in the Bearer challenge (§7.2)', async () => {
    const { app, rejects } = makeApp()
    const response = await app.request('/api/whoami', {
      headers: { authorization: `Bearer ${bound}`, dpop: await proof() },
    })
    await expectRefused(response, 401, 'invalid_token', bearerError('invalid_token'))
    expect(lastReason(rejects)).toBe('dpop_bound_as_bearer')
  })

  it('an unbound token sent as DPoP → 401 invalid_token in the DPoP challenge', async () => {
    const { app, rejects } = makeApp()
    const response = await dpopCall(app, unbound, await proof({ token: unbound }))
    await expectRefused(response, 401, 'invalid_token', dpopError('invalid_token'))
    expect(lastReason(rejects)).toBe('dpop_token_not_bound')
  })

  it('a proof from another key → 401 invalid_token (the key binding, §7.1)', async () => {
    const { app, rejects } = makeApp()
    await expectRefused(
      await dpopCall(app, bound, await proof({ key: otherKey })),
      401,
      'invalid_token',
      dpopError('invalid_token'),
    )
    expect(lastReason(rejects)).toBe('dpop_jkt_mismatch')
  })

  it('no DPoP header → 401 invalid_dpop_proof', async () => {
    const { app, rejects } = makeApp()
    await expectRefused(
      await dpopCall(app, bound, undefined),
      401,
      'invalid_dpop_proof',
      dpopError('invalid_dpop_proof'),
    )
    expect(lastReason(rejects)).toBe('dpop_proof_missing')
  })

  it('two DPoP headers → 401 invalid_dpop_proof, even when both are valid', async () => {
    const { app, rejects } = makeApp()
    const response = await dpopCall(app, bound, [await proof(), await proof()])
    await expectRefused(response, 401, 'invalid_dpop_proof', dpopError('invalid_dpop_proof'))
    expect(lastReason(rejects)).toBe('dpop_proof_multiple')
  })

  it('a replayed proof → 401 invalid_dpop_proof; the first use passed', async () => {
    const { app, rejects } = makeApp()
    const p = await proof()
    expect((await dpopCall(app, bound, p)).status).toBe(200)
    await expectRefused(await dpopCall(app, bound, p), 401, 'invalid_dpop_proof', dpopError('invalid_dpop_proof'))
    expect(lastReason(rejects)).toBe('dpop_jti_replayed')
  })

  const forged = (header: Record<string, unknown>, claims: Record<string, unknown>, key?: string | Buffer) =>
    forge({
      header: { typ: 'dpop+jwt', jwk: proofJwk(clientKey), ...header },
      payload: { htm: 'GET', htu: URL_, iat: NOW, jti: randomUUID(), ath: ath(bound), ...claims },
      ...(key === undefined ? { signature: '' } : { key }),
    })

  it.each<[string, () => Promise<string> | string, string]>([
    ['wrong htu (another path)', () => proof({ url: 'http://localhost/api/other' }), 'dpop_htu_mismatch'],
    ['wrong htu (https for http)', () => proof({ url: 'https://localhost/api/whoami' }), 'dpop_htu_mismatch'],
    ['wrong htu (another host)', () => proof({ url: 'http://evil.example/api/whoami' }), 'dpop_htu_mismatch'],
    ['wrong htm', () => proof({ method: 'POST' }), 'dpop_htm_mismatch'],
    ['htm in lower case', () => proof({ method: 'get' }), 'dpop_htm_mismatch'],
    ['stale iat (5 minutes old)', () => proof({ iat: NOW - 300 }), 'dpop_iat_out_of_window'],
    ['iat in the future', () => proof({ iat: NOW + 120 }), 'dpop_iat_out_of_window'],
    ['no ath', () => proof({ token: undefined }), 'dpop_ath_missing'],
    ['ath of another token', () => proof({ token: unbound }), 'dpop_ath_mismatch'],
    ['no jti', () => proof({ claims: { jti: undefined } }), 'dpop_jti_invalid'],
    ['typ JWT', () => proof({ header: { typ: 'JWT' } }), 'dpop_typ'],
    [
      'a private key in jwk',
      () => proof({ header: { jwk: clientKey.privateKey.export({ format: 'jwk' }) } }),
      'dpop_jwk_private',
    ],
    ['a jwk that is not the signing key', () => proof({ header: { jwk: proofJwk(otherKey) } }), 'dpop_bad_signature'],
    ['alg none, a signature', () => `${forged({ alg: 'none' }, {})}${b64u('sig')}`, 'dpop_alg_not_allowed'],
    ['alg none, no signature', () => forged({ alg: 'none' }, {}), 'dpop_format'],
    [
      'HS256 with the public key as secret',
      () => forged({ alg: 'HS256' }, {}, JSON.stringify(proofJwk(clientKey))),
      'dpop_alg_not_allowed',
    ],
    [
      'HS256 with an oct jwk',
      () => forged({ alg: 'HS256', jwk: { kty: 'oct', k: b64u('secret') } }, {}, 'secret'),
      'dpop_alg_not_allowed',
    ],
    ['not a JWS', () => 'not-a-proof', 'dpop_format'],
  ])('%s → 401 invalid_dpop_proof', async (_name, make, reason) => {
    const { app, rejects } = makeApp()
    await expectRefused(
      await dpopCall(app, bound, await make()),
      401,
      'invalid_dpop_proof',
      dpopError('invalid_dpop_proof'),
    )
    expect(lastReason(rejects)).toBe(reason)
  })

  it('a bound token with a malformed cnf is refused, as Bearer and as DPoP', async () => {
    const { app, rejects } = makeApp()
    for (const cnf of [{ jkt: 'x' }, { jkt: 42 }, [clientJkt], { 'x5t#S256': clientJkt }]) {
      const token = signToken(issuerKey, DEFAULTS, { cnf })
      const asBearer = await app.request('/api/whoami', { headers: { authorization: `Bearer ${token}` } })
      await expectRefused(asBearer, 401, 'invalid_token', bearerError('invalid_token'))
      expect(lastReason(rejects)).toBe('cnf_invalid')
      await expectRefused(
        await dpopCall(app, token, await proof({ token })),
        401,
        'invalid_token',
        dpopError('invalid_token'),
      )
      expect(lastReason(rejects)).toBe('cnf_invalid')
    }
  })

  it('a malformed DPoP credential → 400 invalid_request in the DPoP challenge', async () => {
    const { app } = makeApp()
    const response = await app.request('/api/whoami', { headers: { authorization: 'DPoP', dpop: await proof() } })
    await expectRefused(response, 400, 'invalid_request', dpopError('invalid_request'))
  })

  it('a missing scope → 403 insufficient_scope with scope="…" in the DPoP challenge', async () => {
    const { app } = makeApp({ scopes: ['admin'] })
    await expectRefused(
      await dpopCall(app, bound, await proof()),
      403,
      'insufficient_scope',
      `${BEARER_BARE}, DPoP realm="tokensmith", error="insufficient_scope", scope="admin", algs="${ALGS}"`,
    )
  })

  it('a revoked bound token → 401 invalid_token, the denylist asked only after the proof verified', async () => {
    const isRevoked = vi.fn(async () => true)
    const { app } = makeApp({ denylist: { isRevoked } })
    await expectRefused(
      await dpopCall(app, bound, await proof({ key: otherKey })),
      401,
      'invalid_token',
      dpopError('invalid_token'),
    )
    expect(isRevoked).not.toHaveBeenCalled()
    await expectRefused(await dpopCall(app, bound, await proof()), 401, 'invalid_token', dpopError('invalid_token'))
    expect(isRevoked).toHaveBeenCalledTimes(1)
  })
})

describe('bearerAuth + DPoP: the token cache never spares the proof', () => {
  it('a remembered bound token still needs a fresh proof, and is still refused as Bearer', async () => {
    const { app, middleware, rejects } = makeApp()
    const first = await proof()
    expect((await dpopCall(app, bound, first)).status).toBe(200)
    expect(middleware.stats().cachedTokens).toBe(1)
    expect((await dpopCall(app, bound, await proof())).status).toBe(200)
    await expectRefused(
      await dpopCall(app, bound, undefined),
      401,
      'invalid_dpop_proof',
      dpopError('invalid_dpop_proof'),
    )
    await expectRefused(await dpopCall(app, bound, first), 401, 'invalid_dpop_proof', dpopError('invalid_dpop_proof'))
    expect(lastReason(rejects)).toBe('dpop_jti_replayed')
    await expectRefused(
      await dpopCall(app, bound, await proof({ key: otherKey })),
      401,
      'invalid_token',
      dpopError('invalid_token'),
    )
    const asBearer = await app.request('/api/whoami', { headers: { authorization: `Bearer ${bound}` } })
    await expectRefused(asBearer, 401, 'invalid_token', bearerError('invalid_token'))
    expect(middleware.stats().cachedTokens).toBe(1)
  })
})

describe('bearerAuth + DPoP: options', () => {
  it('required: only DPoP is accepted; Bearer counts as no credentials (bare DPoP challenge)', async () => {
    const { app } = makeApp({ dpop: { required: true } })
    const bearer = await app.request('/api/whoami', { headers: { authorization: `Bearer ${unbound}` } })
    expect(bearer.status).toBe(401)
    expect(bearer.headers.get('www-authenticate')).toBe(DPOP_BARE)
    expect(await bearer.text()).toBe('')
    expect((await app.request('/api/whoami')).headers.get('www-authenticate')).toBe(DPOP_BARE)
    const noProof = await dpopCall(app, bound, undefined)
    await expectRefused(
      noProof,
      401,
      'invalid_dpop_proof',
      `DPoP realm="tokensmith", error="invalid_dpop_proof", algs="${ALGS}"`,
    )
    expect((await dpopCall(app, bound, await proof())).status).toBe(200)
  })

  it.each([
    ['dpop: false', false],
    ['no dpop option (the default: DPoP is opt-in)', undefined],
  ] as const)(
    '%s: Bearer only, the DPoP scheme is another scheme, and bound tokens are still refused',
    async (_name, dpop) => {
      const { app } = makeApp({ dpop })
      const asDpop = await dpopCall(app, bound, await proof())
      expect(asDpop.status).toBe(401)
      expect(asDpop.headers.get('www-authenticate')).toBe(BEARER_BARE)
      const asBearer = await app.request('/api/whoami', { headers: { authorization: `Bearer ${bound}` } })
      await expectRefused(asBearer, 401, 'invalid_token', 'Bearer realm="tokensmith", error="invalid_token"')
      expect((await app.request('/api/whoami', { headers: { authorization: `Bearer ${unbound}` } })).status).toBe(200)
    },
  )

  it('algorithms narrows the proof allowlist and the advertised algs', async () => {
    const edBound = signToken(issuerKey, DEFAULTS, { cnf: { jkt: await thumbprint(edKey) } })
    const { app, rejects } = makeApp({ dpop: { algorithms: ['ES256', 'PS256'] } })
    const response = await dpopCall(app, edBound, await proof({ key: edKey, token: edBound }))
    await expectRefused(
      response,
      401,
      'invalid_dpop_proof',
      `${BEARER_BARE}, DPoP realm="tokensmith", error="invalid_dpop_proof", algs="ES256 PS256"`,
    )
    expect(lastReason(rejects)).toBe('dpop_alg_not_allowed')
    expect((await dpopCall(app, bound, await proof())).status).toBe(200)
  })

  it('url: the public URL behind a proxy is what htu is compared with', async () => {
    const publicUrl = 'https://api.example.com/v1/whoami'
    const plain = makeApp().app
    await expectRefused(
      await dpopCall(plain, bound, await proof({ url: publicUrl })),
      401,
      'invalid_dpop_proof',
      dpopError('invalid_dpop_proof'),
    )
    const proxied = makeApp({ dpop: { url: (c) => `https://api.example.com/v1${c.req.path.slice(4)}` } }).app
    expect((await dpopCall(proxied, bound, await proof({ url: publicUrl }))).status).toBe(200)
    expect((await dpopCall(proxied, bound, await proof())).status).toBe(401)
    const throwing = makeApp({
      dpop: {
        url: () => {
          throw new Error('no host')
        },
      },
    })
    await expectRefused(
      await dpopCall(throwing.app, bound, await proof()),
      401,
      'invalid_dpop_proof',
      dpopError('invalid_dpop_proof'),
    )
    expect(lastReason(throwing.rejects)).toBe('dpop_htu_mismatch')
  })

  it('maxAge bounds how old a proof may be, with clockTolerance on top', async () => {
    const { app } = makeApp({ dpop: { maxAge: 10 }, clockTolerance: 5 })
    expect((await dpopCall(app, bound, await proof({ iat: NOW - 15 }))).status).toBe(200)
    expect((await dpopCall(app, bound, await proof({ iat: NOW - 16 }))).status).toBe(401)
    expect((await dpopCall(app, bound, await proof({ iat: NOW + 5 }))).status).toBe(200)
    expect((await dpopCall(app, bound, await proof({ iat: NOW + 6 }))).status).toBe(401)
  })

  it('a replay store shared by two middlewares refuses a proof at the second; the default is per middleware', async () => {
    const replay = createMemoryDpopReplay({ clock: () => NOW })
    const a = makeApp({ dpop: { replay } }).app
    const b = makeApp({ dpop: { replay } }).app
    const p = await proof()
    expect((await dpopCall(a, bound, p)).status).toBe(200)
    expect((await dpopCall(b, bound, p)).status).toBe(401)
    const q = await proof()
    expect((await dpopCall(makeApp().app, bound, q)).status).toBe(200)
    expect((await dpopCall(makeApp().app, bound, q)).status).toBe(200)
  })

  it('the replay store is asked with the key thumbprint, the jti and iat + maxAge + tolerance', async () => {
    const useOnce = vi.fn(async () => true)
    const { app } = makeApp({ dpop: { replay: { useOnce } } })
    expect((await dpopCall(app, bound, await proof({ jti: 'j-1' }))).status).toBe(200)
    expect(useOnce).toHaveBeenCalledWith(clientJkt, 'j-1', NOW + 60 + 30)
  })

  it.each<[string, DpopReplay['useOnce']]>([
    ['throws', async () => Promise.reject(new Error('redis down'))],
    ['answers a non-boolean', async () => 'yes' as unknown as boolean],
  ])('a replay store that %s → 503 temporarily_unavailable, Retry-After, no challenge', async (_name, useOnce) => {
    const { app, rejects } = makeApp({ dpop: { replay: { useOnce } } })
    const response = await dpopCall(app, bound, await proof())
    expect(response.status).toBe(503)
    expect(response.headers.get('www-authenticate')).toBeNull()
    expect(response.headers.get('retry-after')).toBe('5')
    expect(await response.json()).toEqual({ error: 'temporarily_unavailable' })
    expect(lastReason(rejects)).toBe('dpop_replay_unavailable')
  })

  it('the default replay cache is bounded: when full of live proofs it answers 503, and frees expired ones', async () => {
    let now = NOW
    const replay = createMemoryDpopReplay({ clock: () => now, maxEntries: 2 })
    const { app } = makeApp({ clock: () => now, dpop: { replay } })
    expect((await dpopCall(app, bound, await proof())).status).toBe(200)
    expect((await dpopCall(app, bound, await proof())).status).toBe(200)
    expect((await dpopCall(app, bound, await proof())).status).toBe(503)
    now = NOW + 91
    expect((await dpopCall(app, bound, await proof({ iat: now }))).status).toBe(200)
  })

  it.each<[string, BearerAuthOptions['dpop']]>([
    ['an HS256 proof algorithm', { algorithms: ['HS256'] }],
    ['alg none', { algorithms: ['none'] }],
    ['an empty allowlist', { algorithms: [] }],
    ['a replay store without useOnce', { replay: {} as DpopReplay }],
    ['maxAge 0', { maxAge: 0 }],
    ['a negative maxAge', { maxAge: -1 }],
    ['required not a boolean', { required: 'yes' as unknown as boolean }],
    ['url not a function', { url: 'https://api.example.com' as unknown as () => string }],
    ['a string', 'on' as unknown as BearerAuthOptions['dpop']],
  ])('throws at start-up on %s', (_name, dpop) => {
    expect(() => makeApp({ dpop })).toThrow(TypeError)
  })

  it('createMemoryDpopReplay refuses a nonsense bound', () => {
    expect(() => createMemoryDpopReplay({ maxEntries: 0 })).toThrow(TypeError)
    expect(() => createMemoryDpopReplay({ maxEntries: 1.5 })).toThrow(TypeError)
  })
})
