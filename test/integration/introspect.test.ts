import { decodeJwt, SignJWT } from 'jose'
import { describe, expect, it } from 'vitest'
import { forge, makeKey } from '../helpers/forge.js'
import { ISSUER, T0, fixedClock, testKey } from '../helpers/make-deps.js'
import { expectError } from '../helpers/oauth-error.js'
import {
  API,
  AUTH,
  BACKENDS,
  BUG_DETAIL,
  TTL,
  appWith,
  appWithDenylistDown,
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

// POST /oauth/introspect (RFC 7662): the token's owner, or a resource server for its audience, sees
// an active token's claims; everyone else, and every invalid, expired or revoked token, gets exactly
// {"active":false}.

const { setup, unreachableDenylist } = useRevocationHarness()

describe.each(BACKENDS)('POST /oauth/introspect with the %s denylist', (backendName) => {
  describe('request checks (RFC 7662 §2.1)', () => {
    sharedRequestChecks('/oauth/introspect', () => setup(backendName))

    it('accepts an upper-case media type with ; charset=UTF-8', async () => {
      const { post, issue } = await setup(backendName)
      const token = await issue()
      await expectActive(
        await post('/oauth/introspect', `token=${token}`, AUTH.a, 'APPLICATION/X-WWW-FORM-URLENCODED; charset=UTF-8'),
      )
    })

    it('introspect without a token (absent or empty) is 400 invalid_request', async () => {
      const { post } = await setup(backendName)
      await expectError(await post('/oauth/introspect', '', AUTH.a), 400, 'invalid_request')
      await expectError(await post('/oauth/introspect', 'token=', AUTH.a), 400, 'invalid_request')
    })
  })

  describe('introspection (RFC 7662 §2.2)', () => {
    it('an active token is 200 no-store with exactly the RFC 7662 members and no kid', async () => {
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

    it('invalid, expired, revoked and foreign-issuer tokens are exactly {"active":false}', async () => {
      const { clock, backend, issue, revoke, introspect } = await setup(backendName)
      const foreign = await appWith({
        clock,
        denylist: backend.denylist,
        config: { issuer: 'https://other-issuer.example.com' },
      })
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

    it('alg none, HS256 keyed with the public key, an unknown kid and typ JWT are exactly {"active":false}', async () => {
      const { issue, introspect } = await setup(backendName)
      const key = await testKey()
      const claims = decodeJwt(await issue())
      const pem = key.publicKey.export({ type: 'spki', format: 'pem' }) as string
      const stranger = makeKey('ES256', 'unknown-kid')
      const tokens = [
        forge({ header: { alg: 'none', kid: key.kid, typ: 'at+jwt' }, payload: claims, signature: '' }),
        forge({ header: { alg: 'none', kid: key.kid, typ: 'at+jwt' }, payload: claims, signature: 'AAAA' }),
        forge({ header: { alg: 'HS256', kid: key.kid, typ: 'at+jwt' }, payload: claims, key: pem }),
        forge({
          header: { alg: 'ES256', kid: 'unknown-kid', typ: 'at+jwt' },
          payload: claims,
          key: stranger.privateKey,
        }),
        await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'JWT' }).sign(key.privateKey),
        await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: key.kid }).sign(key.privateKey),
      ]
      // Control: the same claims, honestly signed, are active, so each rejection above is the forgery's doing.
      await expectActive(
        await introspect(
          await new SignJWT(claims)
            .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'at+jwt' })
            .sign(key.privateKey),
        ),
      )
      for (const token of tokens) await expectInactive(await introspect(token))
    })

    it('the owner and a resource server for the token\'s aud see it active; others see {"active":false}', async () => {
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

    it("the resource server sees the owner's claims, not its own", async () => {
      const { issue, introspect } = await setup(backendName)
      const token = await issue(AUTH.a)
      const body = await expectActive(await introspect(token, AUTH.rs))
      expect(body).toMatchObject({ client_id: 'svc-a', sub: 'svc-a', aud: API })
    })
  })
})

// A denylist that cannot answer makes introspection 503, never active:true for a token that may
// have been revoked.
describe('denylist unavailable', () => {
  it('introspecting a valid token is 503, never active:true', async () => {
    const { issue, introspect } = await appWithDenylistDown()
    await expectUnavailable(await introspect(await issue()))
  })

  it('invalid tokens, and tokens not the caller\'s to see, need no denylist: {"active":false}', async () => {
    const { introspect, issue, denylist } = await appWithDenylistDown()
    await expectInactive(await introspect('garbage'))
    // Not the caller's to see: decided before the denylist is asked.
    await expectInactive(await introspect(await issue(AUTH.a), AUTH.b))
    expect(denylist.calls).toBe(0)
  })

  it('a Redis denylist that cannot connect makes introspect 503 within 2 s', async () => {
    const clock = fixedClock()
    const { issue, introspect } = await appWith({ clock, denylist: await unreachableDenylist(clock) })
    const token = await issue()
    const started = Date.now()
    await expectUnavailable(await introspect(token))
    expect(Date.now() - started).toBeLessThan(2000)
  })
})

describe('denylist faults that are bugs', () => {
  it('a denylist throwing a plain Error makes introspect 500 server_error with a fixed message and no stack or detail', async () => {
    const clock = fixedClock()
    const { deps, issue, introspect } = await appWith({ clock, denylist: failingDenylist(() => new Error(BUG_DETAIL)) })
    await expectHiddenBug(await introspect(await issue()), deps.logLines)
  })
})
