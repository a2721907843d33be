/**
 * Per-client issuance quotas at the token endpoint (src/limits/quota.ts): two authorization-server
 * instances on one Redis and one key prefix share each client's count, so a client past its quota is
 * refused at both with 429 and Retry-After (RFC 6585 §4, RFC 9110 §10.2.3), while other clients keep
 * getting tokens. With Redis down, issuance goes on and each instance counts on its own.
 */
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp } from '../../src/app.js'
import type { ClientEntry } from '../../src/clients/registry.js'
import type { Denylist } from '../../src/denylist/denylist.js'
import { createRedisDenylist } from '../../src/denylist/redis.js'
import { QUOTA_WINDOW } from '../../src/limits/quota.js'
import { FORM, T0, basic, captureLog, clientEntry, fixedClock, makeDeps, testKey } from '../helpers/make-deps.js'
import { expectError } from '../helpers/oauth-error.js'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'
import { silentLog, TOPOLOGIES, useSharedRedis } from '../helpers/shared-redis.js'
import { waitFor } from '../helpers/wait-for.js'

const SECRET = 'tks_quota-test-secret'
const withQuota = (id: string, quota?: number): ClientEntry => ({
  ...clientEntry({ id, secret: SECRET }),
  ...(quota !== undefined && { quota }),
})
const ENTRIES = [withQuota('q-five', 5), withQuota('q-other', 5), withQuota('unlimited')]

/** 20 s into a window (T0 is a multiple of 60): Retry-After is then exactly 40. */
const NOW = T0 + 20

type Instance = Awaited<ReturnType<typeof instance>>

/** One instance over `denylist`, on a clock the test moves. */
async function instance(denylist: Denylist, clock = fixedClock(NOW)) {
  const captured = captureLog()
  const deps = await makeDeps({
    clock,
    clients: [],
    entries: ENTRIES,
    keys: [await testKey()],
    denylist,
    log: captured.log,
  })
  const app = createApp(deps)
  const token = (clientId: string) =>
    app.request('/oauth/token', {
      method: 'POST',
      headers: { 'content-type': FORM, authorization: basic(clientId, SECRET) },
      body: 'grant_type=client_credentials',
    })
  const records = (msg: string) => captured.records().filter((record) => record.msg === msg)
  return { deps, clock, token, records }
}

/** Status of `count` requests of `clientId` at `at`, one after the other. */
async function statuses(at: Instance, clientId: string, count: number): Promise<number[]> {
  const result: number[] = []
  for (let i = 0; i < count; i++) result.push((await at.token(clientId)).status)
  return result
}

async function expectQuotaRefusal(res: Response, retryAfter: number) {
  expect(res.headers.get('retry-after')).toBe(String(retryAfter))
  const body = await expectError(res, 429, 'temporarily_unavailable')
  expect(body.error_description).toBe('this client has reached its token quota, retry later')
}

// On each shared deployment: a single node, a Cluster and a Sentinel group.
describe.each(TOPOLOGIES)('issuance quotas across two instances sharing %s Redis', (topology) => {
  const redis = useSharedRedis(topology)

  async function sharedPair(): Promise<{ a: Instance; b: Instance; keyPrefix: string }> {
    const keyPrefix = redis.prefix('quota')
    const clock = fixedClock(NOW) // one clock: both instances are in the same window
    return {
      a: await instance(await redis.denylist(keyPrefix, clock), clock),
      b: await instance(await redis.denylist(keyPrefix, clock), clock),
      keyPrefix,
    }
  }

  it('3 tokens at A and 2 at B use a quota of 5: the 6th is 429 at either, with Retry-After', async () => {
    const { a, b, keyPrefix } = await sharedPair()
    expect(await statuses(a, 'q-five', 3)).toEqual([200, 200, 200])
    expect(await statuses(b, 'q-five', 2)).toEqual([200, 200])
    await expectQuotaRefusal(await a.token('q-five'), 40)
    await expectQuotaRefusal(await b.token('q-five'), 40)

    // Other clients are unaffected: their own quota, or none.
    expect(await statuses(b, 'q-other', 5)).toEqual([200, 200, 200, 200, 200])
    expect(await statuses(a, 'unlimited', 20)).toEqual(Array(20).fill(200))
    expect(await statuses(b, 'unlimited', 20)).toEqual(Array(20).fill(200))

    // Refusals took no slot; the counts live under the shared prefix, with a TTL.
    const window = Math.floor(NOW / QUOTA_WINDOW)
    expect(await redis.admin.get(`${keyPrefix}quota:q-five:${window}`)).toBe('5')
    expect(await redis.admin.get(`${keyPrefix}quota:q-other:${window}`)).toBe('5')
    expect((await redis.keysUnder(keyPrefix)).sort()).toEqual([
      `${keyPrefix}quota:q-five:${window}`,
      `${keyPrefix}quota:q-other:${window}`,
    ])
    for (const key of await redis.keysUnder(keyPrefix)) {
      const ttl = await redis.admin.pttl(key)
      expect(ttl).toBeGreaterThan(0)
      expect(ttl).toBeLessThanOrEqual(2 * QUOTA_WINDOW * 1000)
    }
  })

  it('Retry-After counts down to the window end, and the next window frees the quota at both', async () => {
    const { a, b } = await sharedPair()
    expect(await statuses(a, 'q-five', 5)).toEqual(Array(5).fill(200))
    a.clock.advance(39) // 59 s into the window
    await expectQuotaRefusal(await b.token('q-five'), 1)
    a.clock.advance(1)
    expect(await statuses(b, 'q-five', 3)).toEqual([200, 200, 200])
    expect(await statuses(a, 'q-five', 3)).toEqual([200, 200, 429])
  })
})

describe('issuance quotas with Redis down', () => {
  let server: RedisServer
  beforeAll(async () => {
    server = await startRedisServer()
  })
  afterAll(async () => {
    await server?.stop()
  })

  it('issuance goes on, counted per instance; one warning; shared counting resumes when Redis is back', async () => {
    const clock = fixedClock(NOW)
    const denylist = createRedisDenylist({ url: server.url, keyPrefix: 'quota-outage:', clock, log: silentLog })
    try {
      await waitFor(() => denylist.ping())
      const a = await instance(denylist, clock)
      expect(await statuses(a, 'q-five', 2)).toEqual([200, 200]) // shared count: 2

      await server.kill('SIGKILL')
      // This instance's own count goes on from its 2: 3 more, then 429, all without Redis.
      expect(await statuses(a, 'q-five', 3)).toEqual([200, 200, 200])
      await expectQuotaRefusal(await a.token('q-five'), 40)
      expect(await statuses(a, 'unlimited', 5)).toEqual(Array(5).fill(200))
      expect(await statuses(a, 'q-other', 6)).toEqual([200, 200, 200, 200, 200, 429])
      const warnings = a.records('issuance quotas counted per instance until redis answers again')
      expect(warnings).toHaveLength(1)
      expect(warnings[0]).toMatchObject({
        level: 40,
        redisError: expect.objectContaining({ type: expect.any(String) }),
      })

      await server.restart()
      await waitFor(() => denylist.ping())
      clock.advance(1) // past the retry interval: Redis is asked again
      // Redis restarted empty: its count starts from zero while this instance's counting was local.
      expect(await statuses(a, 'q-other', 1)).toEqual([200])
      expect(a.records('issuance quotas shared through redis again')).toHaveLength(1)
      const admin = new Redis(server.url, { maxRetriesPerRequest: 1 })
      try {
        expect(await admin.get(`quota-outage:quota:q-other:${Math.floor(NOW / QUOTA_WINDOW)}`)).toBe('1')
      } finally {
        await admin.quit()
      }
    } finally {
      await denylist.close()
    }
  }, 30_000)
})
