/** Shared set-up for the verifier suites: a small Hono app behind `bearerAuth`, and wire assertions. */
import { Hono } from 'hono'
import { expect } from 'vitest'

import { bearerAuth, type BearerAuthOptions, type BearerAuthVariables } from '../../../src/verifier/index.js'
import type { ClaimsDefaults } from '../../helpers/forge.js'

export const NOW = 1_700_000_000
export const ISSUER = 'http://localhost:3000'
export const AUDIENCE = 'https://api.example.test'
export const T = 30
export const DEFAULTS: ClaimsDefaults = { issuer: ISSUER, audience: AUDIENCE, now: NOW }

export const CHALLENGE = 'Bearer realm="tokensmith"'
export const INVALID_TOKEN = 'Bearer realm="tokensmith", error="invalid_token"'
export const INVALID_REQUEST = 'Bearer realm="tokensmith", error="invalid_request"'

export function makeApp(options: Partial<BearerAuthOptions>) {
  const middleware = bearerAuth({
    issuer: ISSUER,
    audience: AUDIENCE,
    clock: () => NOW,
    ...options,
  } as BearerAuthOptions)
  const app = new Hono<{ Variables: BearerAuthVariables }>()
  app.use('/api/*', middleware)
  app.get('/api/whoami', (c) => c.json(c.get('auth')))
  app.post('/api/form', async (c) => c.json(await c.req.parseBody()))
  return { app, middleware }
}

export const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } })

export const callWith = (app: Hono<{ Variables: BearerAuthVariables }>, token: string) =>
  app.request('/api/whoami', bearer(token))

/** 401 invalid_token, exactly as on the wire (RFC 6750 §3.1). */
export async function expectInvalidToken(response: Response, realm = 'tokensmith'): Promise<void> {
  expect(response.status).toBe(401)
  expect(response.headers.get('www-authenticate')).toBe(`Bearer realm="${realm}", error="invalid_token"`)
  expect(response.headers.get('cache-control')).toBe('no-store')
  expect(await response.json()).toEqual({ error: 'invalid_token' })
}

export async function expectInvalidRequest(response: Response): Promise<void> {
  expect(response.status).toBe(400)
  expect(response.headers.get('www-authenticate')).toBe(INVALID_REQUEST)
  expect(response.headers.get('cache-control')).toBe('no-store')
  expect(await response.json()).toEqual({ error: 'invalid_request' })
}

/** RFC 6750 §3.1: no credentials → a bare challenge, no error, no body. */
export async function expectBareChallenge(response: Response): Promise<void> {
  expect(response.status).toBe(401)
  expect(response.headers.get('www-authenticate')).toBe(CHALLENGE)
  expect(response.headers.get('cache-control')).toBe('no-store')
  expect(await response.text()).toBe('')
}

export async function expectUnavailable(response: Response): Promise<void> {
  expect(response.status).toBe(503)
  expect(response.headers.get('www-authenticate')).toBeNull()
  expect(Number(response.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
  expect(response.headers.get('cache-control')).toBe('no-store')
  expect(await response.json()).toEqual({ error: 'temporarily_unavailable' })
}

export async function expectAccepted(response: Response): Promise<Record<string, unknown>> {
  expect(response.status).toBe(200)
  return (await response.json()) as Record<string, unknown>
}
