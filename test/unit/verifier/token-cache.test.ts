/**
 * bearerAuth's verified-token cache: a token presented again skips the signature check, and nothing
 * that depends on the moment (times, key set, denylist, scopes) is ever taken from the cache.
 */
import { Hono } from 'hono'
import { http, HttpResponse } from 'msw'
import { describe, expect, it } from 'vitest'

import {
  bearerAuth,
  type AccessTokenClaims,
  type BearerAuthOptions,
  type BearerAuthVariables,
  type RejectInfo,
} from '../../../src/verifier/index.js'
import { jwksOf, makeKey, signToken, withSignature } from '../../helpers/forge.js'
import { JWKS_URL, useMsw } from '../../helpers/msw.js'
import { AUDIENCE, DEFAULTS, ISSUER, NOW, T, callWith, expectAccepted, expectInvalidToken, makeApp } from './harness.js'

const es = makeKey('ES256', 'es-1')
const token = signToken(es, DEFAULTS)

describe('bearerAuth token cache', () => {
  it('remembers a verified token, and only a verified one', async () => {
    const { app, middleware } = makeApp({ jwks: jwksOf(es) })
    await expectInvalidToken(await callWith(app, withSignature(token, Buffer.alloc(64, 7))))
    expect(middleware.stats().cachedTokens).toBe(0)
    await expectAccepted(await callWith(app, token))
    await expectAccepted(await callWith(app, token))
    expect(middleware.stats().cachedTokens).toBe(1)
  })

  it('tokenCache: false verifies every time and remembers nothing', async () => {
    const { app, middleware } = makeApp({ jwks: jwksOf(es), tokenCache: false })
    await expectAccepted(await callWith(app, token))
    expect(middleware.stats().cachedTokens).toBe(0)
  })

  it('keeps at most maxEntries tokens, dropping the oldest', async () => {
    const { app, middleware } = makeApp({ jwks: jwksOf(es), tokenCache: { maxEntries: 2 } })
    for (const jti of ['a-token-id-1', 'a-token-id-2', 'a-token-id-3']) {
      await expectAccepted(await callWith(app, signToken(es, DEFAULTS, { jti })))
    }
    expect(middleware.stats().cachedTokens).toBe(2)
  })

  it('gives the same answer as a fresh verification at every instant around nbf, iat and exp', async () => {
    const clock = { now: NOW }
    const tokens = [
      signToken(es, DEFAULTS),
      signToken(es, DEFAULTS, { nbf: NOW }),
      signToken(es, DEFAULTS, { iat: NOW + T, nbf: NOW + T, exp: NOW + T + 60 }),
    ]
    const answers = (options: Partial<BearerAuthOptions>) => {
      const seen: RejectInfo[] = []
      const { app } = makeApp({
        jwks: jwksOf(es),
        clock: () => clock.now,
        onReject: (info) => seen.push(info),
        ...options,
      })
      return async (presented: string) => {
        const before = seen.length
        const response = await callWith(app, presented)
        return { status: response.status, body: await response.text(), reason: seen[before]?.reason }
      }
    }
    const cached = answers({})
    const fresh = answers({ tokenCache: false })
    // Each token is remembered at an instant it is valid, then asked about at every other second.
    clock.now = NOW + T
    for (const presented of tokens) expect((await cached(presented)).status).toBe(200)
    const instants = [
      NOW - 2 * T,
      NOW - T - 1,
      NOW - 1,
      NOW,
      NOW + 1,
      NOW + 2 * T,
      NOW + 299,
      NOW + 300,
      NOW + 329,
      NOW + 330,
      NOW + 331,
      NOW + 600,
    ]
    for (const instant of instants) {
      for (const presented of tokens) {
        clock.now = instant
        const expected = await fresh(presented)
        // Ask the cached middleware after re-remembering the token where it is valid, so every instant
        // is answered from a cache entry, not from a verification the previous instant forced.
        clock.now = NOW + T
        await cached(presented)
        clock.now = instant
        expect({ instant, ...(await cached(presented)) }).toEqual({ instant, ...expected })
      }
    }
  })

  it('still asks the denylist for a remembered token', async () => {
    let revoked = false
    const { app } = makeApp({ jwks: jwksOf(es), denylist: { isRevoked: async () => revoked } })
    await expectAccepted(await callWith(app, token))
    revoked = true
    await expectInvalidToken(await callWith(app, token))
  })

  it("checks each middleware instance's own scopes for a remembered token (RFC 6750 §3.1)", async () => {
    const reader = signToken(es, DEFAULTS, { scope: 'read' })
    const app = new Hono<{ Variables: BearerAuthVariables }>()
    const options = { issuer: ISSUER, audience: AUDIENCE, jwks: jwksOf(es), clock: () => NOW }
    app.get('/read', bearerAuth({ ...options, scopes: ['read'] }), (c) => c.text('ok'))
    app.get('/write', bearerAuth({ ...options, scopes: ['write'] }), (c) => c.text('ok'))
    for (let i = 0; i < 2; i++) {
      expect((await app.request('/read', { headers: { authorization: `Bearer ${reader}` } })).status).toBe(200)
      expect((await app.request('/write', { headers: { authorization: `Bearer ${reader}` } })).status).toBe(403)
    }
  })

  it('hands every request frozen claims, so no handler can change them for the next one', async () => {
    const withList = signToken(es, DEFAULTS, { aud: [AUDIENCE, 'https://other.example'], ext: { tenant: 'x' } })
    const seen: AccessTokenClaims[] = []
    const app = new Hono<{ Variables: BearerAuthVariables }>()
    app.use('/api/*', bearerAuth({ issuer: ISSUER, audience: AUDIENCE, jwks: jwksOf(es), clock: () => NOW }))
    app.get('/api/whoami', (c) => {
      const claims = c.get('auth')
      seen.push(claims)
      expect(() => {
        ;(claims as { scope?: string }).scope = 'admin'
      }).toThrow(TypeError)
      return c.json(claims)
    })
    for (let i = 0; i < 2; i++) expect((await callWith(app, withList)).status).toBe(200)
    expect(seen[1]?.scope).toBe('read write')
    expect(Object.isFrozen(seen[1]?.aud)).toBe(true)
    expect(Object.isFrozen((seen[1] as { ext?: object } | undefined)?.ext)).toBe(true)
  })

  it('rejects options it cannot honour at start-up', () => {
    for (const tokenCache of [{ maxEntries: 0 }, { maxEntries: 1.5 }, 'yes', null, true]) {
      expect(() => makeApp({ jwks: jwksOf(es), tokenCache } as never)).toThrow(TypeError)
    }
  })
})

describe('bearerAuth token cache and a remote JWK Set', () => {
  const msw = useMsw()

  it('verifies again once the set is refreshed: a key replaced under the same kid refuses the old token', async () => {
    const state = { current: jwksOf(es) }
    msw.server.use(http.get(JWKS_URL, () => HttpResponse.json(state.current)))
    const clock = { now: NOW }
    const { app } = makeApp({ jwks: { uri: JWKS_URL }, clock: () => clock.now })
    const longLived = signToken(es, DEFAULTS, { exp: NOW + 3000 })
    await expectAccepted(await callWith(app, longLived))
    await expectAccepted(await callWith(app, longLived))
    // The publisher replaces the key but keeps its kid; the refresh after the cache age brings the new key.
    state.current = jwksOf(makeKey('ES256', 'es-1'))
    clock.now = NOW + 601
    await expectInvalidToken(await callWith(app, longLived))
  })
})
