import { decodeJwt, decodeProtectedHeader } from 'jose'
import { describe, expect, it } from 'vitest'
import { generateKeyRecord } from '../../src/keys/key-file.js'
import { forge, makeKey, malleateEs256, withSignature } from '../helpers/forge.js'
import { ISSUER, T0, fixedClock, testKey } from '../helpers/make-deps.js'
import { expectError } from '../helpers/oauth-error.js'
import {
  AUTH,
  BACKENDS,
  BUG_DETAIL,
  T,
  TTL,
  appWith,
  appWithDenylistDown,
  expOf,
  expectActive,
  expectHiddenBug,
  expectInactive,
  expectRevoked200,
  expectUnavailable,
  failingDenylist,
  jtiOf,
  sharedRequestChecks,
  useRevocationHarness,
} from '../helpers/revocation-app.js'

// POST /oauth/revoke (RFC 7009): a client revokes its own token; the denylist keeps the entry until
// the token could no longer verify anywhere (exp + T). Introspection shows the outcome.

const { setup, backend: makeBackend, memoryBackend, redis, unreachableDenylist } = useRevocationHarness()

describe.each(BACKENDS)('POST /oauth/revoke with the %s denylist', (backendName) => {
  describe('request checks (RFC 7009 §2.1)', () => {
    sharedRequestChecks('/oauth/revoke', () => setup(backendName))

    it('accepts an upper-case media type with a quoted charset="utf-8"', async () => {
      const { post, issue, introspect, backend } = await setup(backendName)
      const token = await issue()
      await expectRevoked200(
        await post('/oauth/revoke', `token=${token}`, AUTH.a, 'Application/x-www-form-urlencoded;charset="utf-8"'),
      )
      expect(await backend.writes()).toBe(1)
      await expectInactive(await introspect(token))
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
  })

  describe('revocation (RFC 7009 §2.2)', () => {
    it('a client revokes its own token: 200, empty body, no-store; then introspection is exactly {"active":false}', async () => {
      const { issue, revoke, introspect, backend } = await setup(backendName)
      const token = await issue()
      await expectActive(await introspect(token))
      await expectRevoked200(await revoke(token))
      expect(await backend.writes()).toBe(1)
      expect(await backend.denylist.isRevoked({ jti: jtiOf(token) })).toBe(true)
      await expectInactive(await introspect(token))
    })

    it('logs the revocation with client_id and jti, and the logs hold no token, secret or Authorization value', async () => {
      const { deps, issue, revoke, introspect } = await setup(backendName)
      const token = await issue()
      await revoke(token)
      await introspect(token)
      await revoke(token, AUTH.b)
      const records = deps.logLines.map((line) => JSON.parse(line) as Record<string, unknown>)
      expect(records).toContainEqual(
        expect.objectContaining({ msg: 'token revoked', client_id: 'svc-a', jti: jtiOf(token) }),
      )
      const text = deps.logLines.join('\n')
      for (const secret of [
        token,
        token.split('.')[2]!,
        'tks_secret-of-a',
        'tks_secret-of-b',
        AUTH.a.slice(6),
        AUTH.b.slice(6),
      ]) {
        expect(text).not.toContain(secret)
      }
    })

    it('client_secret_post authentication revokes too', async () => {
      const { post, issue, introspect, backend } = await setup(backendName)
      const token = await issue()
      await expectRevoked200(
        await post('/oauth/revoke', `token=${token}&client_id=svc-a&client_secret=tks_secret-of-a`),
      )
      expect(await backend.writes()).toBe(1)
      await expectInactive(await introspect(token))
    })

    it("garbage, a bad signature, another issuer's token or one past exp + T is 200 with no denylist write (invalid tokens need no revocation)", async () => {
      const { clock, issue, revoke, backend } = await setup(backendName)
      const foreign = await appWith({
        clock,
        denylist: backend.denylist,
        config: { issuer: 'https://other-issuer.example.com' },
      })
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

    it.each([
      ['client B', AUTH.b, AUTH.a],
      ['a resource server for its audience, which may introspect it', AUTH.rs, AUTH.rs],
    ])(
      "%s revoking A's valid token is 400 invalid_request (RFC 7009 §2.1: only the client it was issued to); nothing is written and the token stays active",
      async (_who, auth, viewer) => {
        const { issue, revoke, introspect, backend } = await setup(backendName)
        const token = await issue(AUTH.a)
        await expectError(await revoke(token, auth), 400, 'invalid_request')
        expect(await backend.writes()).toBe(0)
        await expectActive(await introspect(token, viewer))
      },
    )

    it("B revoking A's token within T after exp is still refused; past exp + T it is 200 with no write", async () => {
      const { clock, issue, revoke, backend } = await setup(backendName)
      const token = await issue(AUTH.a)
      clock.advance(TTL + T - 1)
      await expectError(await revoke(token, AUTH.b), 400, 'invalid_request')
      clock.advance(1)
      await expectRevoked200(await revoke(token, AUTH.b))
      expect(await backend.writes()).toBe(0)
    })

    it("B's forgeries carrying A's jti (own key, AS kid reused, alg none, mismatched signature) are 200 and never denylist A's jti", async () => {
      const { issue, revoke, introspect, backend } = await setup(backendName)
      const asKid = (await testKey()).kid
      const tokenA = await issue(AUTH.a)
      const tokenB = await issue(AUTH.b)
      const jtiA = jtiOf(tokenA)
      const forgedClaims = { ...decodeJwt(tokenB), jti: jtiA }
      const attacker = makeKey('ES256', 'attacker-kid')
      const forgeries = [
        forge({
          header: { alg: 'ES256', kid: 'attacker-kid', typ: 'at+jwt' },
          payload: forgedClaims,
          key: attacker.privateKey,
        }),
        forge({ header: { alg: 'ES256', kid: asKid, typ: 'at+jwt' }, payload: forgedClaims, key: attacker.privateKey }),
        forge({ header: { alg: 'none', kid: asKid, typ: 'at+jwt' }, payload: forgedClaims, signature: '' }),
        forge({
          header: { alg: 'none', kid: asKid, typ: 'at+jwt' },
          payload: forgedClaims,
          signature: tokenB.split('.')[2]!,
        }),
        withSignature(
          forge({ header: decodeProtectedHeader(tokenB), payload: forgedClaims, signature: '' }),
          tokenB.split('.')[2]!,
        ),
        withSignature(
          forge({ header: decodeProtectedHeader(tokenA), payload: forgedClaims, signature: '' }),
          tokenA.split('.')[2]!,
        ),
      ]
      for (const forged of forgeries) await expectRevoked200(await revoke(forged, AUTH.b))
      expect(await backend.writes()).toBe(0)
      expect(await backend.denylist.isRevoked({ jti: jtiA })).toBe(false)
      await expectActive(await introspect(tokenA, AUTH.a))
    })

    it("A's token with a malleated ES256 signature (s → n − s) sent by B is 400 invalid_request; A revoking it revokes the original (keyed on jti)", async () => {
      const { issue, revoke, introspect, backend } = await setup(backendName)
      const tokenA = await issue(AUTH.a)
      const malleated = malleateEs256(tokenA)
      expect(malleated).not.toBe(tokenA)
      // ES256 (RFC 7518 §3.4) does not ask for low-S signatures and OpenSSL accepts either: the variant verifies.
      await expectActive(await introspect(malleated, AUTH.a))

      await expectError(await revoke(malleated, AUTH.b), 400, 'invalid_request')
      expect(await backend.writes()).toBe(0)
      await expectActive(await introspect(tokenA, AUTH.a))

      await expectRevoked200(await revoke(malleated, AUTH.a))
      expect(await backend.writes()).toBe(1)
      await expectInactive(await introspect(tokenA, AUTH.a))
      await expectInactive(await introspect(malleated, AUTH.a))
    })

    it('the entry lives exactly until exp + T (PTTL = (exp - now + T) * 1000 ± 1 s), never missing, zero or negative', async () => {
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

    it('revoking twice is 200 both times and the second revocation does not shrink the entry', async () => {
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

    it('a token past exp but within T is 200 with an entry for the remainder of T', async () => {
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

    it('a token signed by a retired but still published key can be revoked', async () => {
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

    it('a token issued by an instance whose only key was the old one is revocable at an instance with [old, new]', async () => {
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
    it("past the limit revocation is 429 temporarily_unavailable with Retry-After until the client's oldest revocation expires", async () => {
      const { clock, issue, revoke, introspect, backend } = await setup(backendName, {
        config: { revocationsPerClient: 2 },
      })
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

describe('memory denylist lifetime', () => {
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
    const prefix = redis.prefix()
    const one = await appWith({ clock, denylist: await redis.denylist(prefix, clock) })
    const two = await appWith({ clock, denylist: await redis.denylist(prefix, clock) })
    const token = await one.issue()
    await expectActive(await two.introspect(token))
    await expectRevoked200(await one.revoke(token))
    await expectInactive(await two.introspect(token))
  })
})

// A denylist that cannot answer makes revocation 503, never a false 200: the caller must not
// believe a token is revoked when it is not.
describe('denylist unavailable', () => {
  it('revoking a valid own token is 503 temporarily_unavailable with Retry-After, never a false 200', async () => {
    const { issue, revoke, denylist } = await appWithDenylistDown()
    await expectUnavailable(await revoke(await issue()))
    expect(denylist.calls).toBe(1)
  })

  it('revoking an invalid token needs no denylist: 200', async () => {
    const { revoke, denylist } = await appWithDenylistDown()
    await expectRevoked200(await revoke('garbage'))
    expect(denylist.calls).toBe(0)
  })

  it('/readyz is 503 naming the denylist', async () => {
    const { app } = await appWithDenylistDown()
    const res = await app.request('/readyz')
    expect(res.status).toBe(503)
    expect(res.headers.get('retry-after')).toBe('1')
    expect(res.headers.get('cache-control')).toBe('no-store')
    expect(await res.json()).toEqual({ status: 'not ready', missing: ['denylist (redis)'] })
  })

  it('a Redis denylist that cannot connect makes revoke 503 within 2 s and /readyz 503', async () => {
    const clock = fixedClock()
    const { app, issue, revoke } = await appWith({ clock, denylist: await unreachableDenylist(clock) })
    const token = await issue()
    const started = Date.now()
    await expectUnavailable(await revoke(token))
    expect(Date.now() - started).toBeLessThan(2000)
    const ready = await app.request('/readyz')
    expect(ready.status).toBe(503)
    expect(await ready.json()).toEqual({ status: 'not ready', missing: ['denylist (redis)'] })
  })
})

describe('denylist faults that are bugs', () => {
  it('a denylist throwing a plain Error makes revoke 500 server_error with a fixed message and no stack or detail', async () => {
    const clock = fixedClock()
    const { deps, issue, revoke } = await appWith({ clock, denylist: failingDenylist(() => new Error(BUG_DETAIL)) })
    await expectHiddenBug(await revoke(await issue()), deps.logLines)
  })
})
