import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createResourceServer } from '../../examples/resource-server.js'
import { basic } from '../helpers/make-deps.js'
import { startTestServer } from '../helpers/test-server.js'

// The README's resource server, against a real tokensmith on a socket: the middleware fetches the
// JWKS over HTTP, checks scopes, and sees revocations.
describe('examples/resource-server.ts', () => {
  let as: Awaited<ReturnType<typeof startTestServer>>
  let rs: ReturnType<typeof createResourceServer>
  const auth = basic('billing', 'tks_billing-secret')

  beforeAll(async () => {
    as = await startTestServer({
      clients: [
        {
          id: 'billing',
          secret: 'tks_billing-secret',
          scopes: ['invoices:read', 'invoices:write'],
          audiences: ['https://api.example.com'],
        },
      ],
    })
    rs = createResourceServer({ issuer: as.issuer, audience: 'https://api.example.com', denylist: as.deps.denylist })
  })
  afterAll(() => as.close())

  const token = async (scope: string) => {
    const res = await fetch(`${as.issuer}/oauth/token`, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded' },
      body: `grant_type=client_credentials&scope=${encodeURIComponent(scope)}`,
    })
    return ((await res.json()) as { access_token: string }).access_token
  }

  it('lets a token with the scope in, refuses one without it, and refuses it once revoked', async () => {
    const read = await token('invoices:read')
    const ok = await rs.request('/invoices', { headers: { authorization: `Bearer ${read}` } })
    expect(ok.status).toBe(200)
    expect(await ok.json()).toEqual({ invoices: [], client: 'billing', scopes: ['invoices:read'] })

    const denied = await rs.request('/invoices', { method: 'POST', headers: { authorization: `Bearer ${read}` } })
    expect(denied.status).toBe(403)
    expect(denied.headers.get('www-authenticate')).toBe(
      'Bearer realm="tokensmith", error="insufficient_scope", scope="invoices:write"',
    )

    const anonymous = await rs.request('/invoices')
    expect(anonymous.status).toBe(401)
    expect(anonymous.headers.get('www-authenticate')).toBe('Bearer realm="tokensmith"')

    const revoke = await fetch(`${as.issuer}/oauth/revoke`, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded' },
      body: `token=${read}`,
    })
    expect(revoke.status).toBe(200)
    const revoked = await rs.request('/invoices', { headers: { authorization: `Bearer ${read}` } })
    expect(revoked.status).toBe(401)
    expect(revoked.headers.get('www-authenticate')).toBe('Bearer realm="tokensmith", error="invalid_token"')
  })
})
