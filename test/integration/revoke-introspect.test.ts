import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import { decodeJwt, decodeProtectedHeader, SignJWT } from 'jose'
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest'
import { createApp } from '../../src/app.js'
import type { Clock } from '../../src/clock.js'
import { DenylistUnavailableError, type Denylist } from '../../src/denylist/denylist.js'
import { createMemoryDenylist } from '../../src/denylist/memory.js'
import { createRedisDenylist, entryKey, type DenylistLog } from '../../src/denylist/redis.js'
import { generateKeyRecord, type KeyRecord } from '../../src/keys/key-file.js'
import { forge, makeKey, malleateEs256, withSignature } from '../helpers/forge.js'
import { freePort } from '../helpers/free-port.js'
import {
  DEFAULT_CLIENTS,
  FORM,
  ISSUER,
  T0,
  basic,
  fixedClock,
  makeDeps,
  testKey,
  type MakeDepsOptions,
  type TestClient,
} from '../helpers/make-deps.js'
import { waitFor } from '../helpers/wait-for.js'
import { keysUnder as keysUnderIn } from '../helpers/redis-keys.js'

const redisUrl = inject('redisUrl')
const silentLog: DenylistLog = { info: () => undefined, warn: () => undefined, error: () => undefined }

const T = 30 // config.clockTolerance default
const TTL = 300 // config.accessTokenTtl default
const API = 'https://api.example.com'
const BASIC_CHALLENGE = 'Basic realm="tokensmith", charset="UTF-8"'
const INACTIVE = '{"active":false}'

/** svc-a, svc-b, no-grant, plus a resource server for API and an unflagged client with the same audience. */
const CLIENTS: TestClient[] = [
  ...DEFAULT_CLIENTS,
  { id: 'rs-api', secret: 'tks_secret-of-rs', audiences: [API], resourceServer: true },
  { id: 'svc-c', secret: 'tks_secret-of-c', audiences: [API] },
]
const AUTH = {
  a: basic('svc-a', 'tks_secret-of-a'),
  b: basic('svc-b', 'tks_secret-of-b'),
  rs: basic('rs-api', 'tks_secret-of-rs'),
  c: basic('svc-c', 'tks_secret-of-c'),
}

// ---------------------------------------------------------------------------------------------
// Denylist backends. Each test gets its own denylist; "writes" must be observable from outside.

interface Backend {
  denylist: Denylist
  /** Entries written so far: Redis entry keys under the test prefix, or revoke* calls in memory. */
  writes(): Promise<number>
  /** Remaining lifetime of a jti entry in ms, -2 when there is none (Redis PTTL semantics). */
  remainingMs(jti: string): Promise<number>
}

let admin: Redis
const cleanups: (() => Promise<void>)[] = []
beforeAll(() => {
  admin = new Redis(redisUrl, { maxRetriesPerRequest: 1 })
})
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})
afterAll(async () => {
  await admin.quit()
})

const keysUnder = (prefix: string) => keysUnderIn(admin, prefix)

/** The memory denylist behind a spy: every write attempt is counted, whatever the denylist does with it. */
function memoryBackend(clock: Clock, denylist: Denylist = createMemoryDenylist({ clock })): Backend {
  const untils = new Map<string, number>()
  let calls = 0
  const spy: Denylist = {
    kind: denylist.kind,
    isRevoked: (token) => denylist.isRevoked(token),
    async revokeToken(jti, until, owner) {
      calls++
      untils.set(jti, Math.max(until, untils.get(jti) ?? -Infinity))
      return denylist.revokeToken(jti, until, owner)
    },
    async revokeKey(kid, until) {
      calls++
      return denylist.revokeKey(kid, until)
    },
    async revokeClient(clientId, revokedAt, until) {
      calls++
      return denylist.revokeClient(clientId, revokedAt, until)
    },
    ping: () => denylist.ping(),
    close: () => denylist.close(),
  }
  cleanups.push(() => denylist.close())
  return {
    denylist: spy,
    writes: async () => calls,
    async remainingMs(jti) {
      const until = untils.get(jti)
      if (until === undefined || !(await denylist.isRevoked({ jti }))) return -2
      return (until - clock()) * 1000
    },
  }
}

/** A Redis denylist on the shared server under a random prefix, on the test's clock (TTLs are relative). */
async function redisBackend(clock: Clock): Promise<Backend> {
  const prefix = `test:${randomBytes(6).toString('hex')}:`
  const denylist = createRedisDenylist({ url: redisUrl, keyPrefix: prefix, clock, log: silentLog })
  cleanups.push(async () => {
    await denylist.close()
    const keys = await keysUnder(prefix)
    if (keys.length > 0) await admin.del(...keys)
  })
  await waitFor(() => denylist.ping())
  return {
    denylist,
    // Entries only: the per-client counts (`revoked-by:`) are bookkeeping, not revocations.
    writes: async () => (await keysUnder(prefix)).filter((key) => /^(jti|kid|client):/.test(key.slice(prefix.length))).length,
    remainingMs: (jti) => admin.pttl(entryKey(prefix, 'jti', jti)),
  }
}

type BackendName = 'memory' | 'redis'
const makeBackend = (name: BackendName, clock: Clock) => (name === 'memory' ? memoryBackend(clock) : redisBackend(clock))

// ---------------------------------------------------------------------------------------------
// The app under test.

type Clockwork = ReturnType<typeof fixedClock>

async function appWith(options: MakeDepsOptions & { clock: Clockwork; denylist: Denylist }) {
  const deps = await makeDeps({ clients: CLIENTS, ...options })
  const app = createApp(deps)
  const post = (path: string, body: string, auth?: string, contentType: string | undefined = FORM) =>
    app.request(path, {
      method: 'POST',
      headers: { ...(contentType !== undefined && { 'content-type': contentType }), ...(auth !== undefined && { authorization: auth }) },
      body,
    })
  const issue = async (auth = AUTH.a, extra = '') => {
    const res = await post('/oauth/token', `grant_type=client_credentials${extra}`, auth)
    expect(res.status).toBe(200)
    return ((await res.json()) as { access_token: string }).access_token
  }
  const revoke = (token: string, auth: string | undefined = AUTH.a, extra = '') =>
    post('/oauth/revoke', `token=${encodeURIComponent(token)}${extra}`, auth)
  const introspect = (token: string, auth: string | undefined = AUTH.a) =>
    post('/oauth/introspect', `token=${encodeURIComponent(token)}`, auth)
  return { deps, app, post, issue, revoke, introspect }
}

async function setup(backendName: BackendName, options: MakeDepsOptions = {}) {
  const clock = fixedClock()
  const backend = await makeBackend(backendName, clock)
  const server = await appWith({ ...options, clock, denylist: backend.denylist })
  return { clock, backend, ...server }
}

const jtiOf = (token: string) => decodeJwt(token).jti as string
const expOf = (token: string) => decodeJwt(token).exp as number

// ---------------------------------------------------------------------------------------------
// Wire assertions.

async function expectRevoked200(res: Response) {
  expect(res.status).toBe(200)
  expect(await res.text()).toBe('')
  expect(res.headers.get('cache-control')).toBe('no-store')
  expect(res.headers.get('pragma')).toBe('no-cache')
}

async function expectInactive(res: Response) {
  expect(res.status).toBe(200)
  expect(await res.text()).toBe(INACTIVE)
  expect(res.headers.get('cache-control')).toBe('no-store')
  expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8')
}

async function expectActive(res: Response, clientId = 'svc-a') {
  expect(res.status).toBe(200)
  const body = (await res.json()) as Record<string, unknown>
  expect(body).toMatchObject({ active: true, client_id: clientId })
  return body
}

/** AS error: exact status, exactly {error, error_description}, JSON with charset, never cached, no stack. */
async function expectError(res: Response, status: number, code: string) {
  expect(res.status).toBe(status)
  expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8')
  expect(res.headers.get('cache-control')).toBe('no-store')
  expect(res.headers.get('pragma')).toBe('no-cache')
  const text = await res.text()
  const body = JSON.parse(text) as Record<string, unknown>
  expect(Object.keys(body).sort()).toEqual(['error', 'error_description'])
  expect(body.error).toBe(code)
  expect(body.error_description).toMatch(/^[\x20-\x21\x23-\x5B\x5D-\x7E]+$/)
  expect(text).not.toMatch(/\n\s+at |\.ts:\d+/)
  if (status === 401) expect(res.headers.get('www-authenticate')).toBe(BASIC_CHALLENGE)
  else expect(res.headers.get('www-authenticate')).toBeNull()
  return body
}

// ---------------------------------------------------------------------------------------------

describe.each(['memory', 'redis'] as const)('revocation and introspection with the %s denylist', (backendName) => {
  describe('request checks (BI-1..4, BI-22, BI-24, BI-25, IN-4)', () => {
    it.each(['/oauth/revoke', '/oauth/introspect'])('%s answers GET, PUT and DELETE with 405 and Allow: POST', async (path) => {
      const { app, backend } = await setup(backendName)
      for (const method of ['GET', 'PUT', 'DELETE']) {
        const res = await app.request(path, { method, headers: { authorization: AUTH.a } })
        await expectError(res, 405, 'invalid_request')
        expect(res.headers.get('allow')).toBe('POST')
      }
      expect(await backend.writes()).toBe(0)
    })

    it.each(['/oauth/revoke', '/oauth/introspect'])('%s refuses JSON, multipart and a body without Content-Type with 400 invalid_request', async (path) => {
      const { app, post, issue, introspect, backend } = await setup(backendName)
      const token = await issue()
      await expectError(await post(path, JSON.stringify({ token }), AUTH.a, 'application/json'), 400, 'invalid_request')
      const multipart = new FormData()
      multipart.set('token', token)
      await expectError(await app.request(path, { method: 'POST', headers: { authorization: AUTH.a }, body: multipart }), 400, 'invalid_request')
      const bare = new Request(`http://localhost${path}`, { method: 'POST', headers: { authorization: AUTH.a }, body: new TextEncoder().encode(`token=${token}`) })
      expect(bare.headers.get('content-type')).toBeNull()
      await expectError(await app.request(bare), 400, 'invalid_request')
      expect(await backend.writes()).toBe(0)
      await expectActive(await introspect(token))
    })

    it('accepts an upper-case media type with ; charset=UTF-8 (BI-4)', async () => {
      const { post, issue, introspect, backend } = await setup(backendName)
      const token = await issue()
      await expectActive(await post('/oauth/introspect', `token=${token}`, AUTH.a, 'APPLICATION/X-WWW-FORM-URLENCODED; charset=UTF-8'))
      await expectRevoked200(await post('/oauth/revoke', `token=${token}`, AUTH.a, 'Application/x-www-form-urlencoded;charset="utf-8"'))
      expect(await backend.writes()).toBe(1)
      await expectInactive(await introspect(token))
    })

    it.each(['/oauth/revoke', '/oauth/introspect'])('%s without client authentication is 401 invalid_client with the Basic challenge', async (path) => {
      const { post, issue, introspect, backend } = await setup(backendName)
      const token = await issue()
      await expectError(await post(path, `token=${token}`), 401, 'invalid_client')
      await expectError(await post(path, `token=${token}`, 'Bearer x'), 401, 'invalid_client')
      await expectError(await post(path, `token=${token}`, basic('svc-a', 'wrong-secret')), 401, 'invalid_client')
      await expectError(await post(path, `token=${token}`, basic('nobody', 'tks_secret-of-a')), 401, 'invalid_client')
      expect(await backend.writes()).toBe(0)
      await expectActive(await introspect(token))
    })

    it('revoke without a token (absent or empty) is 400 invalid_request', async () => {
      const { post, backend } = await setup(backendName)
      await expectError(await post('/oauth/revoke', '', AUTH.a), 400, 'invalid_request')
      await expectError(await post('/oauth/revoke', 'token=', AUTH.a), 400, 'invalid_request')
      await expectError(await post('/oauth/revoke', 'token_type_hint=access_token', AUTH.a), 400, 'invalid_request')
      expect(await backend.writes()).toBe(0)
    })

    it('revoke with a repeated token is 400 invalid_request and writes nothing', async () => {
      const { post, issue, introspect, backend } = await setup(backendName)
      const token = await issue()
      await expectError(await post('/oauth/revoke', `token=${token}&token=${token}`, AUTH.a), 400, 'invalid_request')
      expect(await backend.writes()).toBe(0)
      await expectActive(await introspect(token))
    })

    it.each(['refresh_token', 'foo', 'access_token'])('ignores token_type_hint=%s and still revokes', async (hint) => {
      const { issue, revoke, introspect, backend } = await setup(backendName)
      const token = await issue()
      await expectRevoked200(await revoke(token, AUTH.a, `&token_type_hint=${hint}`))
      expect(await backend.writes()).toBe(1)
      await expectInactive(await introspect(token))
    })

    it('introspect without a token (absent or empty) is 400 invalid_request', async () => {
      const { post } = await setup(backendName)
      await expectError(await post('/oauth/introspect', '', AUTH.a), 400, 'invalid_request')
      await expectError(await post('/oauth/introspect', 'token=', AUTH.a), 400, 'invalid_request')
    })
  })

  describe('revocation (RV-1..RV-7)', () => {
    it('RV-1: a client revokes its own token: 200, empty body, no-store; then introspection is exactly {"active":false}', async () => {
      const { issue, revoke, introspect, backend } = await setup(backendName)
      const token = await issue()
      await expectActive(await introspect(token))
      await expectRevoked200(await revoke(token))
      expect(await backend.writes()).toBe(1)
      expect(await backend.denylist.isRevoked({ jti: jtiOf(token) })).toBe(true)
      await expectInactive(await introspect(token))
    })

    it('RV-1/SK-14: the revocation is logged with client_id and jti, and the logs hold no token, secret or Authorization value', async () => {
      const { deps, issue, revoke, introspect } = await setup(backendName)
      const token = await issue()
      await revoke(token)
      await introspect(token)
      await revoke(token, AUTH.b)
      const records = deps.logLines.map((line) => JSON.parse(line) as Record<string, unknown>)
      expect(records).toContainEqual(expect.objectContaining({ msg: 'token revoked', client_id: 'svc-a', jti: jtiOf(token) }))
      const text = deps.logLines.join('\n')
      for (const secret of [token, token.split('.')[2]!, 'tks_secret-of-a', 'tks_secret-of-b', AUTH.a.slice(6), AUTH.b.slice(6)]) {
        expect(text).not.toContain(secret)
      }
    })

    it('RV-1: client_secret_post authentication revokes too', async () => {
      const { post, issue, introspect, backend } = await setup(backendName)
      const token = await issue()
      await expectRevoked200(await post('/oauth/revoke', `token=${token}&client_id=svc-a&client_secret=tks_secret-of-a`))
      expect(await backend.writes()).toBe(1)
      await expectInactive(await introspect(token))
    })

    it('RV-2: garbage, a bad signature, another issuer\'s token or one past exp + T is 200 with no denylist write', async () => {
      const { clock, issue, revoke, backend } = await setup(backendName)
      const foreign = await appWith({ clock, denylist: backend.denylist, config: { issuer: 'https://other-issuer.example.com' } })
      const foreignToken = await foreign.issue()
      expect(decodeJwt(foreignToken).iss).toBe('https://other-issuer.example.com')
      expect(decodeProtectedHeader(foreignToken).kid).toBe((await testKey()).kid)

      const token = await issue()
      const signature = Buffer.from(token.split('.')[2]!, 'base64url')
      signature[20] = signature[20]! ^ 0x40
      for (const bad of ['garbage', 'a.b.c', withSignature(token, signature), foreignToken]) {
        await expectRevoked200(await revoke(bad))
      }
      expect(await backend.writes()).toBe(0)

      clock.advance(TTL + T) // now = exp + T: no verifier accepts it any more
      await expectRevoked200(await revoke(token))
      clock.advance(1000)
      await expectRevoked200(await revoke(token))
      expect(await backend.writes()).toBe(0)
      expect(await backend.denylist.isRevoked({ jti: jtiOf(token) })).toBe(false)
    })

    it('RV-3: client B revoking A\'s valid token is 400 invalid_request; nothing is written and A\'s token stays active', async () => {
      const { issue, revoke, introspect, backend } = await setup(backendName)
      const token = await issue(AUTH.a)
      await expectError(await revoke(token, AUTH.b), 400, 'invalid_request')
      expect(await backend.writes()).toBe(0)
      await expectActive(await introspect(token, AUTH.a))
    })

    it('RV-3: B revoking A\'s token within T after exp is still refused; past exp + T it is 200 with no write', async () => {
      const { clock, issue, revoke, backend } = await setup(backendName)
      const token = await issue(AUTH.a)
      clock.advance(TTL + T - 1)
      await expectError(await revoke(token, AUTH.b), 400, 'invalid_request')
      clock.advance(1)
      await expectRevoked200(await revoke(token, AUTH.b))
      expect(await backend.writes()).toBe(0)
    })

    it('RV-4: B\'s forgeries carrying A\'s jti (own key, AS kid reused, alg none, mismatched signature) are 200 and never denylist A\'s jti', async () => {
      const { issue, revoke, introspect, backend } = await setup(backendName)
      const asKid = (await testKey()).kid
      const tokenA = await issue(AUTH.a)
      const tokenB = await issue(AUTH.b)
      const jtiA = jtiOf(tokenA)
      const forgedClaims = { ...decodeJwt(tokenB), jti: jtiA }
      const attacker = makeKey('ES256', 'attacker-kid')
      const forgeries = [
        forge({ header: { alg: 'ES256', kid: 'attacker-kid', typ: 'at+jwt' }, payload: forgedClaims, key: attacker.privateKey }),
        forge({ header: { alg: 'ES256', kid: asKid, typ: 'at+jwt' }, payload: forgedClaims, key: attacker.privateKey }),
        forge({ header: { alg: 'none', kid: asKid, typ: 'at+jwt' }, payload: forgedClaims, signature: '' }),
        forge({ header: { alg: 'none', kid: asKid, typ: 'at+jwt' }, payload: forgedClaims, signature: tokenB.split('.')[2]! }),
        withSignature(forge({ header: decodeProtectedHeader(tokenB), payload: forgedClaims, signature: '' }), tokenB.split('.')[2]!),
        withSignature(forge({ header: decodeProtectedHeader(tokenA), payload: forgedClaims, signature: '' }), tokenA.split('.')[2]!),
      ]
      for (const forged of forgeries) await expectRevoked200(await revoke(forged, AUTH.b))
      expect(await backend.writes()).toBe(0)
      expect(await backend.denylist.isRevoked({ jti: jtiA })).toBe(false)
      await expectActive(await introspect(tokenA, AUTH.a))
    })

    it('RV-4/TF-9: A\'s token with a malleated ES256 signature sent by B is 400 invalid_request; A revoking it revokes the original (keyed on jti)', async () => {
      const { issue, revoke, introspect, backend } = await setup(backendName)
      const tokenA = await issue(AUTH.a)
      const malleated = malleateEs256(tokenA)
      expect(malleated).not.toBe(tokenA)
      // OpenSSL does not enforce low-S, so the malleated variant verifies (checklist TF-9 expects this).
      await expectActive(await introspect(malleated, AUTH.a))

      await expectError(await revoke(malleated, AUTH.b), 400, 'invalid_request')
      expect(await backend.writes()).toBe(0)
      await expectActive(await introspect(tokenA, AUTH.a))

      await expectRevoked200(await revoke(malleated, AUTH.a))
      expect(await backend.writes()).toBe(1)
      await expectInactive(await introspect(tokenA, AUTH.a))
      await expectInactive(await introspect(malleated, AUTH.a))
    })

    it('RV-5: the entry lives exactly until exp + T (PTTL = (exp - now + T) * 1000 ± 1 s), never missing, zero or negative', async () => {
      const { clock, issue, revoke, backend } = await setup(backendName)
      const token = await issue()
      clock.advance(100)
      await expectRevoked200(await revoke(token))
      const expected = (expOf(token) - clock() + T) * 1000
      expect(expected).toBe((TTL - 100 + T) * 1000)
      const remaining = await backend.remainingMs(jtiOf(token))
      expect(remaining).toBeGreaterThan(0)
      expect(Math.abs(remaining - expected)).toBeLessThanOrEqual(1000)
    })

    it('RV-6: revoking twice is 200 both times and the second revocation does not shrink the entry', async () => {
      const { clock, issue, revoke, introspect, backend } = await setup(backendName)
      const token = await issue()
      await expectRevoked200(await revoke(token))
      const first = await backend.remainingMs(jtiOf(token))
      expect(Math.abs(first - (TTL + T) * 1000)).toBeLessThanOrEqual(1000)
      await expectRevoked200(await revoke(token))
      const second = await backend.remainingMs(jtiOf(token))
      expect(Math.abs(second - first)).toBeLessThanOrEqual(1000)
      // 60 s later on the app's clock, a re-revocation computes a TTL 60 s shorter. Redis (whose own
      // clock has not moved) must keep the longer TTL; in memory the absolute until stays the same.
      clock.advance(60)
      await expectRevoked200(await revoke(token))
      const third = await backend.remainingMs(jtiOf(token))
      expect(Math.abs(third - (backendName === 'redis' ? first : first - 60_000))).toBeLessThanOrEqual(1000)
      await expectInactive(await introspect(token))
      expect(await backend.writes()).toBe(1 + (backendName === 'memory' ? 2 : 0))
    })

    it('RV-6: a token past exp but within T is 200 with an entry for the remainder of T', async () => {
      const { clock, issue, revoke, backend } = await setup(backendName)
      const token = await issue()
      clock.advance(TTL + 10)
      await expectRevoked200(await revoke(token))
      const remaining = await backend.remainingMs(jtiOf(token))
      expect(remaining).toBeGreaterThan(0)
      expect(Math.abs(remaining - (T - 10) * 1000)).toBeLessThanOrEqual(1000)

      const lastSecond = await issue()
      clock.advance(TTL + T - 1)
      await expectRevoked200(await revoke(lastSecond))
      const last = await backend.remainingMs(jtiOf(lastSecond))
      expect(last).toBeGreaterThan(0)
      expect(last).toBeLessThanOrEqual(1000)
    })

    it('RV-7: a token signed by a retired but still published key can be revoked', async () => {
      const clock = fixedClock()
      const backend = await makeBackend(backendName, clock)
      const oldKey = await testKey()
      const newKey = await generateKeyRecord('ES256', T0, T0 + 60)
      const { issue, revoke, introspect } = await appWith({ clock, denylist: backend.denylist, keys: [oldKey, newKey] })
      const token = await issue()
      expect(decodeProtectedHeader(token).kid).toBe(oldKey.kid)

      clock.advance(60) // the new key signs now; the old one stays published for its tokens
      expect(decodeProtectedHeader(await issue()).kid).toBe(newKey.kid)
      await expectActive(await introspect(token))
      await expectRevoked200(await revoke(token))
      expect(await backend.writes()).toBe(1)
      expect(Math.abs((await backend.remainingMs(jtiOf(token))) - (TTL - 60 + T) * 1000)).toBeLessThanOrEqual(1000)
      await expectInactive(await introspect(token))
    })

    it('RV-7: a token issued by an instance whose only key was the old one is revocable at an instance with [old, new]', async () => {
      const clock = fixedClock()
      const backend = await makeBackend(backendName, clock)
      const oldKey = await testKey()
      const before = await appWith({ clock, denylist: backend.denylist, keys: [oldKey] })
      const token = await before.issue()
      clock.advance(30)
      const newKey = await generateKeyRecord('ES256', T0 + 10, T0 + 20)
      const after = await appWith({ clock, denylist: backend.denylist, keys: [oldKey, newKey] })
      expect(decodeProtectedHeader(await after.issue()).kid).toBe(newKey.kid)
      await expectRevoked200(await after.revoke(token))
      expect(await backend.writes()).toBe(1)
      await expectInactive(await after.introspect(token))
      await expectInactive(await before.introspect(token))
    })
  })

  describe('live revocations per client', () => {
    it('past the limit revocation is 429 temporarily_unavailable with Retry-After until the client\'s oldest revocation expires', async () => {
      const { clock, issue, revoke, introspect, backend } = await setup(backendName, { config: { revocationsPerClient: 2 } })
      const first = await issue()
      clock.advance(100)
      const second = await issue()
      const third = await issue()
      await expectRevoked200(await revoke(first)) // lives until T0 + 300 + T
      await expectRevoked200(await revoke(second))

      const refused = await revoke(third)
      expect(refused.headers.get('retry-after')).toBe(String(TTL + T - 100))
      await expectError(refused, 429, 'temporarily_unavailable')
      expect(await backend.denylist.isRevoked({ jti: jtiOf(third) })).toBe(false)
      await expectActive(await introspect(third))

      // Revoking a token that is already revoked is no new entry: still 200, even at the limit.
      await expectRevoked200(await revoke(first))
      await expectRevoked200(await revoke(second))
      // Other clients have their own count.
      await expectRevoked200(await revoke(await issue(AUTH.b), AUTH.b))

      clock.advance(TTL + T - 100) // the first revocation expires and makes room
      await expectRevoked200(await revoke(third))
      await expectInactive(await introspect(third))
      await expectError(await revoke(await issue()), 429, 'temporarily_unavailable')
    })
  })

  describe('introspection (IN-1..IN-3)', () => {
    it('IN-1: an active token is 200 no-store with exactly the RFC 7662 members and no kid', async () => {
      const { issue, introspect } = await setup(backendName)
      const token = await issue()
      const res = await introspect(token)
      expect(res.status).toBe(200)
      expect(res.headers.get('cache-control')).toBe('no-store')
      expect(res.headers.get('pragma')).toBe('no-cache')
      expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8')
      expect(await res.json()).toStrictEqual({
        active: true,
        token_type: 'Bearer',
        scope: 'read write',
        client_id: 'svc-a',
        sub: 'svc-a',
        aud: API,
        iss: ISSUER,
        exp: T0 + TTL,
        iat: T0,
        jti: jtiOf(token),
      })
    })

    it('IN-2: invalid, expired, revoked and foreign-issuer tokens are exactly {"active":false}', async () => {
      const { clock, backend, issue, revoke, introspect } = await setup(backendName)
      const foreign = await appWith({ clock, denylist: backend.denylist, config: { issuer: 'https://other-issuer.example.com' } })
      await expectInactive(await introspect(await foreign.issue()))
      await expectInactive(await introspect('garbage'))

      const revoked = await issue()
      await expectRevoked200(await revoke(revoked))
      await expectInactive(await introspect(revoked))

      const token = await issue()
      clock.advance(TTL - 1)
      await expectActive(await introspect(token))
      clock.advance(1) // exp == now: expired for introspection, which allows no tolerance
      await expectInactive(await introspect(token))
    })

    it('IN-2: alg none, HS256 keyed with the public key, an unknown kid and typ JWT are exactly {"active":false}', async () => {
      const { issue, introspect } = await setup(backendName)
      const key = await testKey()
      const claims = decodeJwt(await issue())
      const pem = key.publicKey.export({ type: 'spki', format: 'pem' }) as string
      const stranger = makeKey('ES256', 'unknown-kid')
      const tokens = [
        forge({ header: { alg: 'none', kid: key.kid, typ: 'at+jwt' }, payload: claims, signature: '' }),
        forge({ header: { alg: 'none', kid: key.kid, typ: 'at+jwt' }, payload: claims, signature: 'AAAA' }),
        forge({ header: { alg: 'HS256', kid: key.kid, typ: 'at+jwt' }, payload: claims, key: pem }),
        forge({ header: { alg: 'ES256', kid: 'unknown-kid', typ: 'at+jwt' }, payload: claims, key: stranger.privateKey }),
        await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'JWT' }).sign(key.privateKey),
        await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: key.kid }).sign(key.privateKey),
      ]
      // Control: the same claims, honestly signed, are active, so each rejection above is the forgery's doing.
      await expectActive(await introspect(await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'at+jwt' }).sign(key.privateKey)))
      for (const token of tokens) await expectInactive(await introspect(token))
    })

    it('IN-3: the owner and a resource server for the token\'s aud see it active; others see {"active":false}', async () => {
      const { issue, introspect } = await setup(backendName)
      const forApi = await issue(AUTH.a)
      expect(decodeJwt(forApi).aud).toBe(API)
      const forB = await issue(AUTH.a, `&resource=${encodeURIComponent('urn:api:b')}`)
      expect(decodeJwt(forB).aud).toBe('urn:api:b')

      await expectActive(await introspect(forApi, AUTH.a))
      await expectActive(await introspect(forApi, AUTH.rs))
      await expectActive(await introspect(forB, AUTH.a))
      await expectInactive(await introspect(forB, AUTH.rs))
      await expectInactive(await introspect(forApi, AUTH.c))
      await expectInactive(await introspect(forApi, AUTH.b))
    })

    it('IN-3: the resource server sees the owner\'s claims, not its own', async () => {
      const { issue, introspect } = await setup(backendName)
      const token = await issue(AUTH.a)
      const body = await expectActive(await introspect(token, AUTH.rs))
      expect(body).toMatchObject({ client_id: 'svc-a', sub: 'svc-a', aud: API })
    })

    it('IN-3: a resource server may introspect but not revoke someone else\'s token', async () => {
      const { issue, revoke, introspect, backend } = await setup(backendName)
      const token = await issue(AUTH.a)
      await expectError(await revoke(token, AUTH.rs), 400, 'invalid_request')
      expect(await backend.writes()).toBe(0)
      await expectActive(await introspect(token, AUTH.rs))
    })
  })

  it('metadata lists the revocation and introspection endpoints, and both answer', async () => {
    const { app, post, issue, backend } = await setup(backendName)
    const res = await app.request('/.well-known/oauth-authorization-server')
    expect(res.status).toBe(200)
    const metadata = (await res.json()) as Record<string, unknown>
    expect(metadata.revocation_endpoint).toBe(`${ISSUER}/oauth/revoke`)
    expect(metadata.introspection_endpoint).toBe(`${ISSUER}/oauth/introspect`)
    const introspection = new URL(metadata.introspection_endpoint as string).pathname
    const revocation = new URL(metadata.revocation_endpoint as string).pathname

    const token = await issue()
    await expectActive(await post(introspection, `token=${token}`, AUTH.a))
    await expectRevoked200(await post(revocation, `token=${token}`, AUTH.a))
    expect(await backend.writes()).toBe(1)
    await expectInactive(await post(introspection, `token=${token}`, AUTH.a))
  })
})

describe('memory denylist lifetime (RV-8)', () => {
  it('applies a revocation at once within the instance, and forgets it after a restart: the token is active again', async () => {
    const clock = fixedClock()
    const first = await appWith({ clock, denylist: memoryBackend(clock).denylist })
    const token = await first.issue()
    await expectRevoked200(await first.revoke(token))
    await expectInactive(await first.introspect(token))

    // A restart is a new process: a new memory denylist with nothing in it.
    const restarted = await appWith({ clock, denylist: memoryBackend(clock).denylist })
    await expectActive(await restarted.introspect(token))
  })

  it('forgets an entry once exp + T has passed', async () => {
    const clock = fixedClock()
    const backend = memoryBackend(clock)
    const { issue, revoke } = await appWith({ clock, denylist: backend.denylist })
    const token = await issue()
    await expectRevoked200(await revoke(token))
    clock.advance(TTL + T - 1)
    expect(await backend.denylist.isRevoked({ jti: jtiOf(token) })).toBe(true)
    clock.advance(1)
    expect(await backend.denylist.isRevoked({ jti: jtiOf(token) })).toBe(false)
  })
})

describe('redis denylist shared by two instances', () => {
  it('a revocation at one instance is seen at once by the other, through its own connection', async () => {
    const clock = fixedClock()
    const prefix = `test:${randomBytes(6).toString('hex')}:`
    const connect = async () => {
      const denylist = createRedisDenylist({ url: redisUrl, keyPrefix: prefix, clock, log: silentLog })
      cleanups.push(() => denylist.close())
      await waitFor(() => denylist.ping())
      return denylist
    }
    cleanups.push(async () => {
      const keys = await keysUnder(prefix)
      if (keys.length > 0) await admin.del(...keys)
    })
    const one = await appWith({ clock, denylist: await connect() })
    const two = await appWith({ clock, denylist: await connect() })
    const token = await one.issue()
    await expectActive(await two.introspect(token))
    await expectRevoked200(await one.revoke(token))
    await expectInactive(await two.introspect(token))
  })
})

// ---------------------------------------------------------------------------------------------
// Faults (decision 4/6, SK-17).

/** A denylist whose every method throws `error`, counting the calls. */
function failingDenylist(error: () => Error): Denylist & { calls: number } {
  const fake = {
    kind: 'redis' as const,
    calls: 0,
    async isRevoked(): Promise<boolean> {
      fake.calls++
      throw error()
    },
    async revokeToken(): Promise<void> {
      fake.calls++
      throw error()
    },
    async revokeKey(): Promise<void> {
      fake.calls++
      throw error()
    },
    async revokeClient(): Promise<void> {
      fake.calls++
      throw error()
    },
    async ping(): Promise<void> {
      fake.calls++
      throw error()
    },
    async close() {},
  }
  return fake
}

describe('denylist unavailable (decision 4, decision 6)', () => {
  async function setupDown() {
    const clock = fixedClock()
    const denylist = failingDenylist(() => new DenylistUnavailableError('down'))
    return { denylist, ...(await appWith({ clock, denylist })) }
  }

  async function expectUnavailable(res: Response) {
    await expectError(res, 503, 'temporarily_unavailable')
    const retryAfter = res.headers.get('retry-after')
    expect(retryAfter).toMatch(/^[1-9]\d*$/)
  }

  it('revoking a valid own token is 503 temporarily_unavailable with Retry-After, never a false 200', async () => {
    const { issue, revoke, denylist } = await setupDown()
    await expectUnavailable(await revoke(await issue()))
    expect(denylist.calls).toBe(1)
  })

  it('introspecting a valid token is 503, never active:true', async () => {
    const { issue, introspect } = await setupDown()
    await expectUnavailable(await introspect(await issue()))
  })

  it('invalid tokens need no denylist: revoke is 200 and introspection {"active":false}', async () => {
    const { revoke, introspect, issue, denylist } = await setupDown()
    await expectRevoked200(await revoke('garbage'))
    await expectInactive(await introspect('garbage'))
    // Not the caller's to see: decided before the denylist is asked.
    await expectInactive(await introspect(await issue(AUTH.a), AUTH.b))
    expect(denylist.calls).toBe(0)
  })

  it('/readyz is 503 naming the denylist', async () => {
    const { app } = await setupDown()
    const res = await app.request('/readyz')
    expect(res.status).toBe(503)
    expect(res.headers.get('retry-after')).toBe('1')
    expect(res.headers.get('cache-control')).toBe('no-store')
    expect(await res.json()).toEqual({ status: 'not ready', missing: ['denylist (redis)'] })
  })

  it('a Redis denylist that cannot connect makes revoke and introspect 503 and /readyz 503', async () => {
    const clock = fixedClock()
    const denylist = createRedisDenylist({ url: `redis://127.0.0.1:${await freePort()}`, keyPrefix: 'test:unreachable:', clock, log: silentLog })
    cleanups.push(() => denylist.close())
    const { app, issue, revoke, introspect } = await appWith({ clock, denylist })
    const token = await issue()
    const started = Date.now()
    await expectUnavailable(await revoke(token))
    await expectUnavailable(await introspect(token))
    expect(Date.now() - started).toBeLessThan(2000)
    const ready = await app.request('/readyz')
    expect(ready.status).toBe(503)
    expect(await ready.json()).toEqual({ status: 'not ready', missing: ['denylist (redis)'] })
  })
})

describe('denylist faults that are bugs (SK-17)', () => {
  it('a denylist throwing a plain Error is 500 server_error with a fixed message and no stack or detail', async () => {
    const clock = fixedClock()
    const denylist = failingDenylist(() => new Error('boom: secret detail at /srv/tokensmith/src/denylist/redis.ts:42'))
    const { deps, issue, revoke, introspect } = await appWith({ clock, denylist })
    const token = await issue()
    for (const res of [await revoke(token), await introspect(token)]) {
      const text = await res.clone().text()
      expect(text).not.toContain('boom')
      expect(text).not.toContain('redis.ts')
      const body = await expectError(res, 500, 'server_error')
      expect(body.error_description).toBe('internal server error')
    }
    // The detail goes to the log, for the operator.
    expect(deps.logLines.some((line) => line.includes('boom: secret detail'))).toBe(true)
  })
})
