import { randomBytes, randomUUID } from 'node:crypto'
import { decodeJwt, decodeProtectedHeader } from 'jose'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { issueAccessToken, newJti } from '../../../src/oauth/access-token.js'
import { ISSUER, T0, makeDeps } from '../../helpers/make-deps.js'

// Watch which CSPRNG calls newJti makes (checklist decision 9).
vi.mock('node:crypto', async (importOriginal) => {
  const original = await importOriginal<typeof import('node:crypto')>()
  return { ...original, randomBytes: vi.fn(original.randomBytes), randomUUID: vi.fn(original.randomUUID) }
})

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

beforeEach(() => {
  vi.mocked(randomBytes).mockClear()
  vi.mocked(randomUUID).mockClear()
})

describe('newJti (SK-6)', () => {
  it('gives 10,000 unique base64url values of at least 16 bytes, none UUID-shaped', () => {
    const jtis = Array.from({ length: 10_000 }, newJti)
    expect(new Set(jtis).size).toBe(10_000)
    for (const jti of jtis) {
      expect(jti).toMatch(/^[A-Za-z0-9_-]+$/)
      expect(Buffer.from(jti, 'base64url').length).toBeGreaterThanOrEqual(16)
      expect(Buffer.from(jti, 'base64url').toString('base64url')).toBe(jti) // canonical encoding
      expect(jti).not.toMatch(UUID)
    }
  })

  it('draws at least 16 bytes from crypto.randomBytes and never calls randomUUID', () => {
    newJti()
    expect(vi.mocked(randomBytes)).toHaveBeenCalledTimes(1)
    expect(vi.mocked(randomBytes).mock.calls[0]![0]).toBeGreaterThanOrEqual(16)
    expect(vi.mocked(randomUUID)).not.toHaveBeenCalled()
  })
})

describe('issueAccessToken', () => {
  it('signs an at+jwt whose jti, kid, exp and scope match what it returns', async () => {
    const deps = await makeDeps()
    const token = await issueAccessToken(
      { clock: deps.clock, keys: deps.keys, issuer: ISSUER },
      { clientId: 'svc-a', scopes: ['read', 'write'], audience: 'urn:api:b', ttl: 600 },
    )
    expect(token).toEqual({ accessToken: expect.any(String), jti: expect.any(String), kid: deps.keys.signingKey().kid, expiresIn: 600, scope: 'read write' })
    expect(decodeProtectedHeader(token.accessToken)).toEqual({ alg: 'ES256', kid: token.kid, typ: 'at+jwt' })
    expect(decodeJwt(token.accessToken)).toEqual({
      iss: ISSUER,
      sub: 'svc-a',
      client_id: 'svc-a',
      aud: 'urn:api:b',
      iat: T0,
      exp: T0 + 600,
      jti: token.jti,
      scope: 'read write',
    })
  })
})
