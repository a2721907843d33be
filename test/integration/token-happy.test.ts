import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose'
import { describe, expect, it } from 'vitest'
import { createApp } from '../../src/app.js'
import { FORM, ISSUER, T0, basic, makeDeps } from '../helpers/make-deps.js'

describe('POST /oauth/token (client credentials)', () => {
  it('issues an RFC 9068 access token to client_secret_basic', async () => {
    const deps = await makeDeps()
    const app = createApp(deps)
    const res = await app.request('/oauth/token', {
      method: 'POST',
      headers: { 'content-type': FORM, authorization: basic('svc-a', 'tks_secret-of-a') },
      body: 'grant_type=client_credentials&scope=read',
    })
    expect(res.status).toBe(200)
    expect(res.headers.get('cache-control')).toBe('no-store')
    expect(res.headers.get('pragma')).toBe('no-cache')
    const body = (await res.json()) as { access_token: string }
    expect(body).toEqual({ access_token: expect.any(String), token_type: 'Bearer', expires_in: 300, scope: 'read' })
    expect(decodeProtectedHeader(body.access_token)).toEqual({ alg: 'ES256', kid: expect.any(String), typ: 'at+jwt' })
    const jwks = createLocalJWKSet(JSON.parse(deps.keys.jwks().body))
    const { payload } = await jwtVerify(body.access_token, jwks, {
      issuer: ISSUER,
      audience: 'https://api.example.com',
      typ: 'at+jwt',
      algorithms: ['ES256'],
      currentDate: new Date(T0 * 1000),
    })
    expect(payload).toEqual({
      iss: ISSUER,
      sub: 'svc-a',
      client_id: 'svc-a',
      aud: 'https://api.example.com',
      iat: T0,
      exp: T0 + 300,
      jti: expect.stringMatching(/^[A-Za-z0-9_-]{22}$/),
      scope: 'read',
    })
  })
})
