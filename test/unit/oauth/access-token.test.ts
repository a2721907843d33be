import { randomBytes, randomUUID } from 'node:crypto'
import { decodeJwt, decodeProtectedHeader } from 'jose'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { issueAccessToken, newJti } from '../../../src/oauth/access-token.js'
import { ISSUER, T0, makeDeps } from '../../helpers/make-deps.js'

// Watch which CSPRNG calls newJti makes: every jti comes from crypto.randomBytes, never randomUUID.
vi.mock('node:crypto', async (importOriginal) => {
  const original = await importOriginal<typeof import('node:crypto')>()
  return { ...original, randomBytes: vi.fn(original.randomBytes), randomUUID: vi.fn(original.randomUUID) }
})

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

beforeEach(() => {
  vi.mocked(randomBytes).mockClear()
  vi.mocked(randomUUID).mockClear()
})

describe('newJti (RFC 7519 §4.1.7: a unique, unguessable jti)', () => {
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

  it('takes each jti from 16 bytes of crypto.randomBytes, never the same bytes twice, and never calls randomUUID', () => {
    // newJti draws the bytes in batches: from the first draw on, the jtis are the drawn bytes in order.
    const jtis: string[] = []
    let firstDrawn = -1
    for (let i = 0; i < 1_000; i++) {
      const draws = vi.mocked(randomBytes).mock.calls.length
      jtis.push(newJti())
      if (firstDrawn === -1 && vi.mocked(randomBytes).mock.calls.length > draws) firstDrawn = i
    }
    const { calls, results } = vi.mocked(randomBytes).mock
    expect(calls.length).toBeGreaterThan(1)
    for (const [size] of calls) expect(size).toBeGreaterThanOrEqual(16)
    const drawn = Buffer.concat(results.map((result) => result.value as Buffer))
    const used = Buffer.concat(jtis.slice(firstDrawn).map((jti) => Buffer.from(jti, 'base64url')))
    for (const jti of jtis) expect(Buffer.from(jti, 'base64url')).toHaveLength(16)
    expect(drawn.subarray(0, used.length)).toEqual(used)
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
    expect(token).toEqual({
      accessToken: expect.any(String),
      jti: expect.any(String),
      kid: deps.keys.signingKey().kid,
      expiresIn: 600,
      scope: 'read write',
    })
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
