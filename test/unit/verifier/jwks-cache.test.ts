/**
 * The RS's remote JWKS cache (`jwks: { uri, … }`), against a fake AS served by msw: caching, key
 * rotation, a stepped clock, random kids, and every way a JWKS fetch can fail. Time is an injected
 * clock, so cache ages and cooldowns are exact; fetch timeouts use real time.
 */
import { delay, http, HttpResponse } from 'msw'
import { describe, expect, it } from 'vitest'

import type { RemoteJwks } from '../../../src/verifier/index.js'
import { jwksOf, makeKey, signToken, type TestKey } from '../../helpers/forge.js'
import { ATTACKER_ORIGIN, JWKS_URL, useMsw } from '../../helpers/msw.js'
import { DEFAULTS, NOW, callWith, expectAccepted, expectInvalidToken, expectUnavailable, makeApp } from './harness.js'

const k1 = makeKey('ES256', 'k1')
const k2 = makeKey('ES256', 'k2')
const tokenBy = (key: TestKey, now: number) => signToken(key, { ...DEFAULTS, now })

const msw = useMsw()
const fetches = () => msw.count(JWKS_URL)

/** Serves whatever `current` holds; swap it to rotate keys. */
function serve(initial: unknown) {
  const state = { current: initial }
  msw.server.use(http.get(JWKS_URL, () => HttpResponse.json(state.current as never)))
  return state
}

/** A resource server on the fake AS's JWKS, with `jwks` options beside `uri`. */
function rs(jwks: Omit<RemoteJwks, 'uri'> = {}) {
  const clock = { now: NOW }
  const { app, middleware } = makeApp({ jwks: { uri: JWKS_URL, ...jwks }, clock: () => clock.now })
  return { app, middleware, clock, call: (key: TestKey) => callWith(app, tokenBy(key, clock.now)) }
}

describe('remote JWKS: caching and rotation', () => {
  it('fetches once and answers many requests from the cache', async () => {
    serve(jwksOf(k1))
    const { call } = rs()
    for (let i = 0; i < 20; i += 1) await expectAccepted(await call(k1))
    expect(fetches()).toBe(1)
  })

  it('sends a plain GET with redirect: manual and a JWK Set Accept header', async () => {
    const seen: Request[] = []
    msw.server.use(
      http.get(JWKS_URL, ({ request }) => {
        seen.push(request)
        return HttpResponse.json(jwksOf(k1))
      }),
    )
    await expectAccepted(await rs().call(k1))
    expect(seen).toHaveLength(1)
    expect(seen[0]?.redirect).toBe('manual')
    expect(seen[0]?.headers.get('accept')).toContain('application/jwk-set+json')
  })

  it('a rotated key: the unknown kid triggers one refetch once the cooldown allows, then verifies', async () => {
    const state = serve(jwksOf(k1))
    const { call, clock } = rs()
    await expectAccepted(await call(k1))
    state.current = jwksOf(k1, k2)
    // Within the cooldown of the first fetch: no refetch, the kid is unknown → 401.
    await expectInvalidToken(await call(k2))
    expect(fetches()).toBe(1)
    clock.now += 30
    await expectAccepted(await call(k2))
    await expectAccepted(await call(k1))
    expect(fetches()).toBe(2)
  })

  it('an unknown kid still absent after the refetch → 401 invalid_token', async () => {
    serve(jwksOf(k1))
    const { call, clock } = rs()
    await expectAccepted(await call(k1))
    clock.now += 31
    await expectInvalidToken(await call(makeKey('ES256', 'nobody')))
    expect(fetches()).toBe(2)
  })

  it('concurrent misses share one in-flight fetch', async () => {
    msw.server.use(
      http.get(JWKS_URL, async () => {
        await delay(50)
        return HttpResponse.json(jwksOf(k1, k2))
      }),
    )
    const { call } = rs()
    const responses = await Promise.all(Array.from({ length: 50 }, (_, i) => call(i % 2 === 0 ? k1 : k2)))
    expect(responses.map((r) => r.status)).toEqual(Array(50).fill(200))
    expect(fetches()).toBe(1)
  })

  it('refreshes a set older than jwks.cacheMaxAge on the next request', async () => {
    serve(jwksOf(k1))
    const { call, clock } = rs({ cacheMaxAge: 60 })
    await expectAccepted(await call(k1))
    clock.now += 60
    await expectAccepted(await call(k1))
    expect(fetches()).toBe(1)
    clock.now += 1
    await expectAccepted(await call(k1))
    expect(fetches()).toBe(2)
  })

  it('a retired key still published is accepted; once unpublished it is refused', async () => {
    const state = serve(jwksOf(k1, k2))
    const { app, clock } = rs({ cacheMaxAge: 300 })
    const oldToken = tokenBy(k1, clock.now)
    await expectAccepted(await callWith(app, oldToken))
    await expectAccepted(await callWith(app, tokenBy(k2, clock.now)))
    state.current = jwksOf(k2) // k1 retired: its last token's exp + T has passed at the AS
    clock.now += 200
    await expectAccepted(await callWith(app, oldToken))
    clock.now += 101 // cache max age reached: the refresh drops k1
    await expectInvalidToken(await callWith(app, tokenBy(k1, clock.now)))
    expect(fetches()).toBe(2)
  })
})

describe('a stepped clock', () => {
  it('stepped back 5 min: a rotated key is still fetched at once, not after the step plus the cooldown', async () => {
    const state = serve(jwksOf(k1))
    const { call, clock } = rs()
    await expectAccepted(await call(k1))
    state.current = jwksOf(k1, k2)
    clock.now = NOW - 300
    await expectAccepted(await call(k2))
    expect(fetches()).toBe(2)
    // Back to normal bookkeeping: the next unknown kid waits for the cooldown again.
    await expectInvalidToken(await call(makeKey('ES256', 'k3')))
    expect(fetches()).toBe(2)
  })

  it('stepped forward 5 min: tokens are judged by the new time, the cache keeps serving', async () => {
    serve(jwksOf(k1))
    const { app, call, clock } = rs()
    const issuedNow = tokenBy(k1, clock.now)
    await expectAccepted(await callWith(app, issuedNow))
    clock.now = NOW + 300 + 31
    await expectInvalidToken(await callWith(app, issuedNow))
    await expectAccepted(await call(k1))
    expect(fetches()).toBe(1)
  })
})

describe('random kids cannot drive fetches (one fetch per cooldown at most)', () => {
  it('10,000 random-kid tokens over 60 s → at most 3 fetches, all 401', async () => {
    serve(jwksOf(k1))
    const { app, clock } = rs()
    for (let i = 0; i < 10_000; i += 1) {
      clock.now = NOW + (i * 60) / 10_000
      const token = signToken(
        { ...k1, kid: `random-${i}-${Math.random().toString(36).slice(2)}` },
        { ...DEFAULTS, now: Math.floor(clock.now) },
      )
      const response = await callWith(app, token)
      expect(response.status).toBe(401)
      expect(response.headers.get('www-authenticate')).toBe('Bearer realm="tokensmith", error="invalid_token"')
    }
    // Speed is the bench's to measure; what matters here is that no request triggered a fetch of its own.
    expect(fetches()).toBeLessThanOrEqual(3)
  }, 60_000)
})

describe('JWKS faults: the last good set is kept, a missing one is 503, never 401', () => {
  it('(a) an outage shorter than the cache age causes no failure and no fetch', async () => {
    serve(jwksOf(k1))
    const { call, clock } = rs()
    await expectAccepted(await call(k1))
    msw.server.use(http.get(JWKS_URL, () => HttpResponse.error()))
    for (let t = 0; t < 600; t += 60) {
      clock.now = NOW + t
      await expectAccepted(await call(k1))
    }
    expect(fetches()).toBe(1)
  })

  it('(b) a longer outage: the last good set is used up to jwks.maxStale, then 503, never 401; then recovery', async () => {
    serve(jwksOf(k1))
    const { call, clock } = rs({ cacheMaxAge: 600, maxStale: 3600 })
    await expectAccepted(await call(k1))
    msw.server.use(http.get(JWKS_URL, () => HttpResponse.error()))
    clock.now = NOW + 601 // due: the refresh fails, the last good set still serves
    await expectAccepted(await call(k1))
    expect(fetches()).toBe(2)
    clock.now = NOW + 3600
    await expectAccepted(await call(k1))
    // While the latest fetch failed, an unknown kid may be a key the RS could not load: 503, not 401.
    await expectUnavailable(await call(k2))
    clock.now = NOW + 3601
    const stale = await call(k1)
    expect(stale.headers.get('retry-after')).toMatch(/^[1-9]\d*$/)
    await expectUnavailable(stale)
    serve(jwksOf(k1, k2))
    clock.now = NOW + 3601 + 30
    await expectAccepted(await call(k1))
    await expectAccepted(await call(k2))
  })

  it('(c) a 302 is not followed: 503 with no set, and the target gets no request', async () => {
    msw.server.use(
      http.get(
        JWKS_URL,
        () => new HttpResponse(null, { status: 302, headers: { location: `${ATTACKER_ORIGIN}/jwks.json` } }),
      ),
      http.all(`${ATTACKER_ORIGIN}/*`, () => HttpResponse.json(jwksOf(k1))),
    )
    await expectUnavailable(await rs().call(k1))
    expect(fetches()).toBe(1)
    expect(msw.count(ATTACKER_ORIGIN)).toBe(0)
  })

  it('(d) a 10 MiB body is cut at the size cap in under 1 s', async () => {
    let produced = 0
    const chunk = new Uint8Array(16 * 1024).fill(0x20)
    msw.server.use(
      http.get(
        JWKS_URL,
        () =>
          new HttpResponse(
            new ReadableStream<Uint8Array>({
              pull(controller) {
                if (produced >= 10 * 1024 * 1024) return controller.close()
                produced += chunk.byteLength
                controller.enqueue(chunk)
              },
            }),
            { headers: { 'content-type': 'application/json' } },
          ),
      ),
    )
    const started = performance.now()
    await expectUnavailable(await rs({ maxBytes: 64 * 1024 }).call(k1))
    expect(performance.now() - started).toBeLessThan(1000)
    // The cap plus whatever the stream layers buffered ahead: nowhere near 10 MiB.
    expect(produced).toBeLessThanOrEqual(256 * 1024)
  })

  it('(d) a declared Content-Length over the cap is refused without reading', async () => {
    msw.server.use(
      http.get(
        JWKS_URL,
        () =>
          new HttpResponse(JSON.stringify(jwksOf(k1)), {
            headers: { 'content-type': 'application/json', 'content-length': String(1024 * 1024) },
          }),
      ),
    )
    await expectUnavailable(await rs({ maxBytes: 1024 }).call(k1))
  })

  it('a body of exactly jwks.maxBytes is accepted, one byte more is not', async () => {
    const body = JSON.stringify(jwksOf(k1))
    serve(jwksOf(k1))
    await expectAccepted(await rs({ maxBytes: Buffer.byteLength(body) }).call(k1))
    await expectUnavailable(await rs({ maxBytes: Buffer.byteLength(body) - 1 }).call(k1))
  })

  it('(e) a stalled response is aborted at jwks.timeout', async () => {
    msw.server.use(
      http.get(JWKS_URL, async () => {
        await delay('infinite')
        return HttpResponse.json(jwksOf(k1))
      }),
    )
    const started = performance.now()
    await expectUnavailable(await rs({ timeout: 0.2 }).call(k1))
    const elapsed = performance.now() - started
    expect(elapsed).toBeGreaterThanOrEqual(150)
    expect(elapsed).toBeLessThan(1000)
  })

  it('(e) a body that stalls half-way is aborted at jwks.timeout', async () => {
    msw.server.use(
      http.get(
        JWKS_URL,
        () =>
          new HttpResponse(
            new ReadableStream<Uint8Array>({
              start(controller) {
                controller.enqueue(new TextEncoder().encode('{"keys":['))
              },
            }),
            { headers: { 'content-type': 'application/json' } },
          ),
      ),
    )
    const started = performance.now()
    await expectUnavailable(await rs({ timeout: 0.2 }).call(k1))
    expect(performance.now() - started).toBeLessThan(1000)
  })

  const broken: Array<[string, () => Response]> = [
    ['non-JSON', () => new HttpResponse('<html>oops</html>', { headers: { 'content-type': 'text/html' } })],
    ['{"keys":"x"}', () => HttpResponse.json({ keys: 'x' })],
    ['a JSON array', () => HttpResponse.json([k1.publicJwk])],
    ['a use:"enc" key', () => HttpResponse.json({ keys: [k1.publicJwk, { ...k2.publicJwk, use: 'enc' }] })],
    ['a private key', () => HttpResponse.json({ keys: [{ ...k1.publicJwk, d: 'AAAA' }] })],
    ['a symmetric key', () => HttpResponse.json({ keys: [k1.publicJwk, { kty: 'oct', kid: 'h', k: 'c2VjcmV0' }] })],
    ['a 404', () => new HttpResponse('not found', { status: 404 })],
    ['a 500', () => new HttpResponse(null, { status: 500 })],
    ['a network error', () => HttpResponse.error()],
    ['invalid UTF-8', () => new HttpResponse(new Uint8Array([0x7b, 0xff, 0x7d]))],
  ]

  it.each(broken)('(f) %s with no set yet → 503', async (_name, respond) => {
    msw.server.use(http.get(JWKS_URL, respond))
    await expectUnavailable(await rs().call(k1))
  })

  it.each(broken)('(f) %s on refresh → fetch error, the last good set is kept', async (_name, respond) => {
    serve(jwksOf(k1))
    const { call, clock } = rs()
    await expectAccepted(await call(k1))
    msw.server.use(http.get(JWKS_URL, respond))
    clock.now += 601
    await expectAccepted(await call(k1))
    expect(fetches()).toBe(2)
  })

  it('a failed first fetch is retried only after the cooldown', async () => {
    msw.server.use(http.get(JWKS_URL, () => new HttpResponse(null, { status: 503 })))
    const { call, clock } = rs({ cooldown: 30 })
    const first = await call(k1)
    expect(first.headers.get('retry-after')).toBe('30')
    await expectUnavailable(first)
    clock.now += 10
    const second = await call(k1)
    expect(second.headers.get('retry-after')).toBe('20')
    await expectUnavailable(second)
    expect(fetches()).toBe(1)
    serve(jwksOf(k1))
    clock.now += 20
    await expectAccepted(await call(k1))
    expect(fetches()).toBe(2)
  })

  it('ignores keys without a kid and still verifies the others', async () => {
    const { kid: _ignored, ...noKid } = k2.publicJwk
    serve({ keys: [noKid, k1.publicJwk] })
    await expectAccepted(await rs().call(k1))
  })
})
