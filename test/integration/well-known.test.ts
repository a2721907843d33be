import { decodeJwt } from 'jose'
import { describe, expect, it } from 'vitest'
import { createApp } from '../../src/app.js'
import type { SigningAlg } from '../../src/keys/algorithms.js'
import { generateKeyRecord } from '../../src/keys/key-file.js'
import { FORM, ISSUER, T0, basic, makeDeps } from '../helpers/make-deps.js'
import { expectError } from '../helpers/oauth-error.js'

const JWKS = '/.well-known/jwks.json'
const METADATA = '/.well-known/oauth-authorization-server'
/** RFC 7517 §9.3 / RFC 7518 §6: members that hold private or symmetric key material. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']

const KEY_TYPES: Record<SigningAlg, Record<string, unknown>> = {
  ES256: {
    kty: 'EC',
    crv: 'P-256',
    x: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
    y: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
  },
  EdDSA: { kty: 'OKP', crv: 'Ed25519', x: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) },
  RS256: { kty: 'RSA', n: expect.stringMatching(/^[A-Za-z0-9_-]{512}$/), e: 'AQAB' }, // 3072-bit modulus
  PS256: { kty: 'RSA', n: expect.stringMatching(/^[A-Za-z0-9_-]{512}$/), e: 'AQAB' },
}

async function getJwks(alg: SigningAlg) {
  const deps = await makeDeps({ alg })
  const app = createApp(deps)
  const res = await app.request(JWKS)
  return { deps, app, res }
}

describe('GET /.well-known/jwks.json (RFC 7517 §5: public members only)', () => {
  for (const alg of ['ES256', 'EdDSA', 'RS256', 'PS256'] as const) {
    it(`publishes only the public members of the ${alg} key, with kid, alg and use`, async () => {
      const { res, deps } = await getJwks(alg)
      expect(res.status).toBe(200)
      const { keys } = (await res.json()) as { keys: Record<string, unknown>[] }
      expect(keys).toHaveLength(1)
      const [key] = keys
      expect(key).toEqual({ ...KEY_TYPES[alg], kid: deps.keys.signingKey().kid, alg, use: 'sig' })
      for (const member of PRIVATE_MEMBERS) expect(key).not.toHaveProperty(member)
    }, 30_000)
  }

  it('publishes every key with no private member when several are published', async () => {
    const next = await generateKeyRecord('EdDSA', T0 - 10, T0 + 3600) // published ahead of signing
    const deps = await makeDeps({ keys: [(await makeDeps()).keys.records[0]!, next] })
    const res = await createApp(deps).request(JWKS)
    const { keys } = (await res.json()) as { keys: Record<string, unknown>[] }
    expect(keys.map((key) => key.kid).sort()).toEqual([deps.keys.signingKey().kid, next.kid].sort())
    for (const key of keys) for (const member of PRIVATE_MEMBERS) expect(key).not.toHaveProperty(member)
  })

  it('answers with application/jwk-set+json, a max-age and an ETag', async () => {
    const { res, deps } = await getJwks('ES256')
    expect(res.headers.get('content-type')).toBe('application/jwk-set+json; charset=utf-8')
    expect(res.headers.get('cache-control')).toBe('public, max-age=300')
    expect(res.headers.get('etag')).toMatch(/^"[A-Za-z0-9_-]+"$/)
    expect(res.headers.get('etag')).toBe(deps.keys.jwks().etag)
    expect(await res.text()).toBe(deps.keys.jwks().body)
  })

  it('answers a matching If-None-Match with 304 and no body', async () => {
    const { res, app } = await getJwks('ES256')
    const etag = res.headers.get('etag')!
    for (const ifNoneMatch of [etag, `"other", ${etag}`, `W/${etag}`, '*']) {
      const again = await app.request(JWKS, { headers: { 'if-none-match': ifNoneMatch } })
      expect(again.status).toBe(304)
      expect(again.headers.get('etag')).toBe(etag)
      expect(await again.text()).toBe('')
    }
  })

  it('answers a stale If-None-Match with 200 and the set', async () => {
    const { app } = await getJwks('ES256')
    const res = await app.request(JWKS, { headers: { 'if-none-match': '"stale"' } })
    expect(res.status).toBe(200)
    expect(((await res.json()) as { keys: unknown[] }).keys).toHaveLength(1)
  })
})

describe('GET /.well-known/oauth-authorization-server (RFC 8414 §3)', () => {
  async function metadata() {
    const deps = await makeDeps()
    const app = createApp(deps)
    const res = await app.request(METADATA)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8')
    return { deps, app, text: await res.text() }
  }

  it('names the issuer byte-equal to config.issuer and to the iss of issued tokens', async () => {
    const { deps, app, text } = await metadata()
    const doc = JSON.parse(text) as { issuer: string }
    expect(doc.issuer).toBe(ISSUER)
    expect(doc.issuer).toBe(deps.config.issuer)
    const res = await app.request('/oauth/token', {
      method: 'POST',
      headers: { 'content-type': FORM, authorization: basic('svc-a', 'tks_secret-of-a') },
      body: 'grant_type=client_credentials',
    })
    const { access_token } = (await res.json()) as { access_token: string }
    expect(decodeJwt(access_token).iss).toBe(doc.issuer)
  })

  it('advertises client_credentials only, secrets and private_key_jwt (RFC 7523) on every endpoint, and no none or HS* algorithm', async () => {
    const { text } = await metadata()
    const doc = JSON.parse(text) as Record<string, unknown>
    expect(doc.grant_types_supported).toEqual(['client_credentials'])
    const methods = ['client_secret_basic', 'client_secret_post', 'private_key_jwt']
    const algs = ['ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512']
    for (const endpoint of ['token', 'revocation', 'introspection']) {
      expect(doc[`${endpoint}_endpoint_auth_methods_supported`], endpoint).toEqual(methods)
      expect(doc[`${endpoint}_endpoint_auth_signing_alg_values_supported`], endpoint).toEqual(algs)
    }
    expect(doc.access_token_signing_alg_values_supported).toEqual(['ES256'])
    for (const [name, value] of Object.entries(doc)) {
      if (!Array.isArray(value)) continue
      for (const entry of value) {
        expect(entry, name).not.toMatch(/^none$/i)
        expect(entry, name).not.toMatch(/^HS\d+$/i)
      }
    }
    expect(text).not.toMatch(/"none"|"HS\d+"/i)
  })

  it('omits scopes_supported by default, so the scopes of every client are not published to anyone', async () => {
    const { text } = await metadata()
    expect(JSON.parse(text)).not.toHaveProperty('scopes_supported')
    expect(text).not.toContain('scopes_supported')
  })

  it("publishes the union of every client's scopes when publishScopes is on", async () => {
    const res = await createApp(await makeDeps({ config: { publishScopes: true } })).request(METADATA)
    expect(((await res.json()) as Record<string, unknown>).scopes_supported).toEqual(['read', 'write'])
  })

  it('lists the algorithm of every published key, once each, during an algorithm migration', async () => {
    // ES256 signs until T0 - 10, then RS256 takes over; the ES256 key stays published for its
    // tokens, and an EdDSA key waits published ahead of its activation.
    const retiring = await generateKeyRecord('ES256', T0 - 5000, T0 - 5000)
    const alsoEs = await generateKeyRecord('ES256', T0 - 5000, T0 - 4000)
    const current = await generateKeyRecord('RS256', T0 - 100, T0 - 10)
    const next = await generateKeyRecord('EdDSA', T0 - 10, T0 + 3600)
    const deps = await makeDeps({ keys: [current, retiring, next, alsoEs] })
    expect(deps.keys.signingKey().alg).toBe('RS256')
    const res = await createApp(deps).request(METADATA)
    const doc = (await res.json()) as Record<string, unknown>
    expect(doc.access_token_signing_alg_values_supported).toEqual(['ES256', 'EdDSA', 'RS256'])
  }, 30_000)

  it('drops an algorithm once no published key uses it', async () => {
    const expired = await generateKeyRecord('RS256', T0 - 100_000, T0 - 100_000)
    const current = await generateKeyRecord('ES256', T0 - 50_000, T0 - 50_000)
    const deps = await makeDeps({ keys: [expired, current] })
    const res = await createApp(deps).request(METADATA)
    expect(((await res.json()) as Record<string, unknown>).access_token_signing_alg_values_supported).toEqual(['ES256'])
  }, 30_000)

  it('lists endpoints under the issuer that each answer on their path', async () => {
    const { app, text } = await metadata()
    const doc = JSON.parse(text) as Record<string, unknown>
    const endpoints = Object.entries(doc).filter(([name]) => name.endsWith('_endpoint') || name.endsWith('_uri'))
    expect(endpoints.map(([name]) => name).sort()).toEqual([
      'introspection_endpoint',
      'jwks_uri',
      'revocation_endpoint',
      'token_endpoint',
    ])
    const expected: Record<string, { method: string; status: number }> = {
      token_endpoint: { method: 'POST', status: 401 },
      revocation_endpoint: { method: 'POST', status: 401 },
      introspection_endpoint: { method: 'POST', status: 401 },
      jwks_uri: { method: 'GET', status: 200 },
    }
    for (const [name, url] of endpoints) {
      expect(url, name).toMatch(new RegExp(`^${ISSUER}/`))
      const { method, status } = expected[name]!
      const init: RequestInit =
        method === 'POST' ? { method, headers: { 'content-type': FORM }, body: 'grant_type=client_credentials' } : {}
      const res = await app.request(new URL(url as string).pathname, init)
      expect({ name, status: res.status }).toEqual({ name, status }) // 401: the endpoint exists and asks for credentials
    }
  })
})

describe('health and readiness', () => {
  it('answers /healthz with 200', async () => {
    const deps = await makeDeps()
    const res = await createApp(deps).request('/healthz')
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ status: 'ok' })
    expect(res.headers.get('cache-control')).toBe('no-store')
  })

  it('answers /readyz with 200 when keys and the denylist are there', async () => {
    const deps = await makeDeps()
    const res = await createApp(deps).request('/readyz')
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ status: 'ready' })
  })

  it('answers /readyz with 503 and Retry-After once shutdown begins, while /healthz stays 200', async () => {
    const deps = await makeDeps()
    const app = createApp(deps)
    deps.lifecycle.shuttingDown = true
    const res = await app.request('/readyz')
    expect(res.status).toBe(503)
    expect(res.headers.get('retry-after')).toBe('1')
    expect(res.headers.get('cache-control')).toBe('no-store')
    expect(await res.json()).toEqual({ status: 'not ready', missing: ['shutting down'] })
    expect(res.headers.get('connection')).toBe('close')
    expect((await app.request('/healthz')).status).toBe(200)
  })
})

describe('methods on the GET endpoints (RFC 9110 §15.5.6)', () => {
  const GET_PATHS = [JWKS, METADATA, '/healthz', '/readyz']

  for (const path of GET_PATHS) {
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
      it(`answers ${method} ${path} with 405, Allow: GET, HEAD and the JSON error`, async () => {
        const deps = await makeDeps()
        const init: RequestInit = { method }
        if (method !== 'OPTIONS') Object.assign(init, { headers: { 'content-type': FORM }, body: 'a=1' })
        await expectError(await createApp(deps).request(path, init), 405, 'invalid_request', { allow: 'GET, HEAD' })
      })
    }

    it(`answers HEAD ${path} like GET, without a body`, async () => {
      const app = createApp(await makeDeps())
      const get = await app.request(path)
      const head = await app.request(path, { method: 'HEAD' })
      expect(head.status).toBe(200)
      expect(head.status).toBe(get.status)
      expect(head.headers.get('content-type')).toBe(get.headers.get('content-type'))
      expect(head.headers.get('etag')).toBe(get.headers.get('etag'))
      expect(await head.text()).toBe('')
    })
  }
})
