/**
 * Failed-authentication limits over a real socket (RFC 6749 §2.3.1): the limit trips at the configured
 * count with Retry-After and an OAuth error body, before any secret is compared; another client, and
 * the same client from another address, still get tokens; revocation and introspection failures count
 * toward the same limits; two instances on one Redis share the counts; with Redis gone each instance
 * limits from its own memory and keeps issuing. Distinct source addresses come from X-Forwarded-For
 * with TRUST_PROXY naming the loopback peer; without TRUST_PROXY a forged header changes nothing.
 */
import { describe, expect, it } from 'vitest'
import type { Clock } from '../../src/clock.js'
import type { TrustProxy } from '../../src/config.js'
import type { Denylist } from '../../src/denylist/denylist.js'
import { createRedisDenylist } from '../../src/denylist/redis.js'
import { authFailureKey, authLimiterOf } from '../../src/limits/auth-failures.js'
import { basic, captureLog, FORM, fixedClock, T0 } from '../helpers/make-deps.js'
import { expectError } from '../helpers/oauth-error.js'
import { startRedisServer } from '../helpers/redis-server.js'
import { silentLog, TOPOLOGIES, useSharedRedis } from '../helpers/shared-redis.js'
import { startTestServer } from '../helpers/test-server.js'
import { waitFor } from '../helpers/wait-for.js'

const shared = useSharedRedis()
const { defer } = shared
/** The shared single node, Cluster and Sentinel group (global set-up). */
const stores = {
  single: shared,
  cluster: useSharedRedis('cluster', { defer }),
  sentinel: useSharedRedis('sentinel', { defer }),
}
const TRUST_LOOPBACK: TrustProxy = { ranges: ['127.0.0.1'] }
const RIGHT = 'tks_secret-of-a'

async function server(options: { clock?: Clock; trustProxy?: TrustProxy | null; denylist?: Denylist } = {}) {
  const captured = captureLog('info')
  const started = await startTestServer({
    clock: options.clock ?? fixedClock(T0),
    log: captured.log,
    config: { ...(options.trustProxy !== null && { trustProxy: options.trustProxy ?? TRUST_LOOPBACK }) },
    ...(options.denylist && { denylist: options.denylist }),
  })
  defer(() => started.close())
  defer(() => authLimiterOf(started.deps).close())
  return { ...started, records: captured.records }
}

type Endpoint = 'token' | 'revoke' | 'introspect'

function post(
  url: string,
  options: { id?: string; secret?: string; from?: string; endpoint?: Endpoint; body?: string } = {},
) {
  const endpoint = options.endpoint ?? 'token'
  const headers: Record<string, string> = {
    'content-type': FORM,
    authorization: basic(options.id ?? 'svc-a', options.secret ?? RIGHT),
  }
  if (options.from !== undefined) headers['x-forwarded-for'] = options.from
  const body = options.body ?? (endpoint === 'token' ? 'grant_type=client_credentials' : 'token=not-a-token')
  return fetch(`${url}/oauth/${endpoint}`, { method: 'POST', headers, body })
}

/** `count` wrong secrets, each answered 401 invalid_client. */
async function fail(url: string, count: number, options: Parameters<typeof post>[1] = {}) {
  for (let index = 0; index < count; index++)
    await expectError(await post(url, { secret: 'wrong', ...options }), 401, 'invalid_client')
}

async function expectLimited(res: Response): Promise<number> {
  const retryAfter = Number(res.headers.get('retry-after'))
  await expectError(res, 429, 'temporarily_unavailable')
  expect(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60).toBe(true)
  return retryAfter
}

describe('failed-authentication limits', () => {
  it('answers 401 to ten wrong secrets, then 429 with Retry-After even to the right secret, and 200 after the window', async () => {
    const clock = fixedClock(T0)
    const s = await server({ clock })
    await fail(s.url, 10, { from: '203.0.113.1' })
    expect(await expectLimited(await post(s.url, { from: '203.0.113.1' }))).toBe(60)
    clock.advance(59)
    expect(await expectLimited(await post(s.url, { from: '203.0.113.1' }))).toBe(1)
    clock.advance(1)
    expect((await post(s.url, { from: '203.0.113.1' })).status).toBe(200)

    // Logged once when it tripped; the 429s by the request log with their reason.
    const records = s.records()
    const trips = records.filter((record) => record.msg === 'authentication failure limit reached')
    expect(trips).toEqual([
      expect.objectContaining({ client_id: 'svc-a', address: '203.0.113.1', scope: 'client', until: T0 + 60 }),
    ])
    const limited = records.filter((record) => record.msg === 'request' && record.status === 429)
    expect(limited).toHaveLength(2)
    expect(limited[0]).toMatchObject({ error: 'temporarily_unavailable', detail: expect.stringContaining('limit') })
  })

  it('does not lock out the same client from another address, nor another client from the same address', async () => {
    const s = await server()
    await fail(s.url, 10, { from: '203.0.113.1' })
    await expectLimited(await post(s.url, { from: '203.0.113.1' }))
    expect((await post(s.url, { from: '198.51.100.2' })).status).toBe(200)
    expect((await post(s.url, { id: 'svc-b', secret: 'tks_secret-of-b', from: '203.0.113.1' })).status).toBe(200)
    // A success resets nothing: the attacker's address is still blocked.
    await expectLimited(await post(s.url, { from: '203.0.113.1' }))
  })

  it('limits an address over many client ids, unknown ones included', async () => {
    const s = await server()
    for (let index = 0; index < 100; index++)
      await expectError(await post(s.url, { id: `guess-${index}`, from: '203.0.113.9' }), 401, 'invalid_client')
    await expectLimited(await post(s.url, { id: 'svc-b', secret: 'tks_secret-of-b', from: '203.0.113.9' }))
    expect((await post(s.url, { id: 'svc-b', secret: 'tks_secret-of-b', from: '203.0.113.10' })).status).toBe(200)
  })

  it('counts revocation and introspection failures with the token endpoint, and not malformed requests', async () => {
    const s = await server()
    await fail(s.url, 3, { from: '203.0.113.1', endpoint: 'revoke' })
    await fail(s.url, 3, { from: '203.0.113.1', endpoint: 'introspect' })
    // 400s: a malformed Basic header, two client authentication methods.
    for (let index = 0; index < 5; index++) {
      const res = await fetch(`${s.url}/oauth/token`, {
        method: 'POST',
        headers: { 'content-type': FORM, authorization: 'Basic !!!', 'x-forwarded-for': '203.0.113.1' },
        body: 'grant_type=client_credentials',
      })
      await expectError(res, 400, 'invalid_request')
    }
    await fail(s.url, 4, { from: '203.0.113.1' })
    await expectLimited(await post(s.url, { from: '203.0.113.1', endpoint: 'introspect' }))
    await expectLimited(await post(s.url, { from: '203.0.113.1', endpoint: 'revoke' }))
  })

  it('ignores a forged X-Forwarded-For without TRUST_PROXY: rotating it escapes nothing', async () => {
    const s = await server({ trustProxy: null })
    for (let index = 0; index < 10; index++)
      await expectError(await post(s.url, { secret: 'wrong', from: `198.51.100.${index}` }), 401, 'invalid_client')
    await expectLimited(await post(s.url, { from: '198.51.100.200' }))
    await expectLimited(await post(s.url))
  })

  it.each(TOPOLOGIES)('shares the counts between two instances on one %s Redis', async (topology) => {
    const shared = stores[topology]
    const clock = fixedClock(T0)
    const prefix = shared.prefix('auth-limits')
    const a = await server({ clock, denylist: await shared.denylist(prefix, clock) })
    const b = await server({ clock, denylist: await shared.denylist(prefix, clock) })
    // Each limiter subscribes when first used: use both before the failures.
    expect((await post(a.url, { from: '192.0.2.50' })).status).toBe(200)
    expect((await post(b.url, { from: '192.0.2.50' })).status).toBe(200)
    await new Promise((resolve) => setTimeout(resolve, 200))
    for (let index = 0; index < 10; index++) await fail(index % 2 === 0 ? a.url : b.url, 1, { from: '203.0.113.1' })
    // B sent the 10th: A learns of the block over pub/sub.
    await waitFor(async () => expectLimited(await post(a.url, { from: '203.0.113.1' })), 2_000)
    await expectLimited(await post(b.url, { from: '203.0.113.1' }))
    expect((await post(a.url, { from: '203.0.113.2' })).status).toBe(200)
    // Hashed names under the prefix, each with a TTL.
    const keys = await shared.keysUnder(prefix)
    expect(keys.length).toBe(2)
    for (const key of keys) {
      expect(key.startsWith(authFailureKey(prefix, ''))).toBe(true)
      expect(key).not.toContain('svc-a')
      expect(key).not.toContain('203.0.113.1')
      expect(await shared.admin.pttl(key)).toBeGreaterThan(0)
    }
  })

  it('keeps issuing and limiting from memory while Redis is down, and says so once', async () => {
    const redis = await startRedisServer()
    defer(() => redis.stop())
    const clock = fixedClock(T0)
    const denylist = createRedisDenylist({ url: redis.url, keyPrefix: 'auth-limits-fault:', clock, log: silentLog })
    defer(() => denylist.close())
    await waitFor(() => denylist.ping())
    const s = await server({ clock, denylist })
    await fail(s.url, 2, { from: '203.0.113.1' })
    await redis.stop()
    await fail(s.url, 8, { from: '203.0.113.1' })
    await expectLimited(await post(s.url, { from: '203.0.113.1' }))
    expect((await post(s.url, { from: '203.0.113.2' })).status).toBe(200)
    const outage = s.records().filter((record) => String(record.msg).includes('Redis unavailable'))
    expect(outage).toHaveLength(1)
    expect(outage[0]?.level).toBe(40)
  })
})
