import { join } from 'node:path'
import { Hono } from 'hono'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp } from '../../src/app.js'
import { systemClock } from '../../src/clock.js'
import { createRedisDenylist } from '../../src/denylist/redis.js'
import { createRevocationFeed, type RevocationFeed } from '../../src/denylist/revocation-feed.js'
import type { Deps } from '../../src/deps.js'
import { bearerAuth } from '../../src/verifier/index.js'
import { tempDir } from '../helpers/cli.js'
import { freePort } from '../helpers/free-port.js'
import { FORM, basic, captureLog, makeDeps, testKey, type TestClient } from '../helpers/make-deps.js'
import { expectError } from '../helpers/oauth-error.js'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'
import { spawnServer } from '../helpers/spawn-server.js'
import { waitFor } from '../helpers/wait-for.js'

// Redis killed or frozen while requests run. Token issuance keeps
// working; revocation and introspection answer 503 within about a second; nothing reports a
// revoked token as valid; everything recovers without a restart once Redis is back.
const CLIENTS: TestClient[] = [
  { id: 'svc-a', secret: 'tks_secret-of-a', scopes: ['read'], audiences: ['https://api.example.com'] },
  {
    id: 'rs-api',
    secret: 'tks_secret-of-rs',
    scopes: ['introspect'],
    audiences: ['https://api.example.com'],
    resourceServer: true,
  },
]
const A = basic('svc-a', 'tks_secret-of-a')

describe.each([
  [
    'killed (SIGKILL) and restarted',
    async (redis: RedisServer) => redis.kill('SIGKILL'),
    (redis: RedisServer) => redis.restart(),
  ],
  [
    'frozen (SIGSTOP) and resumed',
    async (redis: RedisServer) => redis.pause(),
    async (redis: RedisServer) => redis.resume(),
  ],
])('Redis %s', (_name, breakRedis, repairRedis) => {
  let redis: RedisServer
  let deps: Deps
  let app: ReturnType<typeof createApp>
  let feed: RevocationFeed
  const rs = new Hono()

  beforeAll(async () => {
    // AOF with fsync on every write, as the README asks: a revocation answered 200 survives kill -9.
    redis = await startRedisServer({ args: ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', tempDir()] })
    const log = captureLog().log
    const keyPrefix = 'outage:'
    deps = await makeDeps({
      clock: systemClock,
      clients: CLIENTS,
      keys: [await testKey()],
      denylist: createRedisDenylist({ url: redis.url, keyPrefix, clock: systemClock, log }),
    })
    app = createApp(deps)
    await waitFor(() => deps.denylist.ping())
    feed = createRevocationFeed({ url: redis.url, keyPrefix, clock: systemClock, log })
    await feed.ready()
    rs.use(
      bearerAuth({
        issuer: deps.config.issuer,
        audience: 'https://api.example.com',
        jwks: JSON.parse(deps.keys.jwks().body),
        denylist: feed,
      }),
    )
    rs.get('/api', (c) => c.text('ok'))
  })
  afterAll(async () => {
    await Promise.allSettled([feed.close(), deps.denylist.close()])
    await redis.stop()
  })

  const post = (path: string, body: string, auth = A) =>
    app.request(path, { method: 'POST', headers: { 'content-type': FORM, authorization: auth }, body })
  const issue = async () =>
    ((await (await post('/oauth/token', 'grant_type=client_credentials')).json()) as { access_token: string })
      .access_token
  const timed = async (fn: () => Response | Promise<Response>) => {
    const started = performance.now()
    const res = await fn()
    return { res, ms: performance.now() - started }
  }
  const callApi = (token: string) => rs.request('/api', { headers: { authorization: `Bearer ${token}` } })

  it('keeps issuing tokens, answers 503 fast for revocation and introspection, never passes a revoked token, and recovers', async () => {
    const live = await issue()
    const revoked = await issue()
    expect((await post('/oauth/revoke', `token=${revoked}`)).status).toBe(200)
    await expect.poll(async () => (await callApi(revoked)).status).toBe(401)

    await breakRedis(redis)

    // Token issuance needs no Redis.
    const duringOutage = await issue()
    expect(duringOutage).toMatch(/^ey/)

    const revoke = await timed(() => post('/oauth/revoke', `token=${live}`))
    await expectError(revoke.res, 503, 'temporarily_unavailable')
    expect(revoke.res.headers.get('retry-after')).toMatch(/^\d+$/)
    expect(revoke.ms).toBeLessThan(1500)

    const introspection = await timed(() =>
      post('/oauth/introspect', `token=${revoked}`, basic('rs-api', 'tks_secret-of-rs')),
    )
    await expectError(introspection.res, 503, 'temporarily_unavailable')
    expect(introspection.ms).toBeLessThan(1500)

    // The middleware first answers from its local set (the revoked token stays refused), then,
    // once it notices the feed is down and Redis cannot answer, with 503: never 401 for a good token.
    await expect.poll(async () => (await callApi(live)).status, { timeout: 4000, interval: 50 }).toBe(503)
    for (let i = 0; i < 5; i++) expect([401, 503]).toContain((await callApi(revoked)).status)

    await expect.poll(async () => (await app.request('/readyz')).status, { timeout: 2000 }).toBe(503)
    expect((await app.request('/healthz')).status).toBe(200)

    await repairRedis(redis)

    await expect.poll(async () => (await app.request('/readyz')).status, { timeout: 5000, interval: 100 }).toBe(200)
    await expect.poll(async () => (await callApi(duringOutage)).status, { timeout: 5000, interval: 50 }).toBe(200)
    expect((await callApi(revoked)).status).toBe(401)
    expect(await (await post('/oauth/introspect', `token=${revoked}`)).json()).toEqual({ active: false })
    // A revocation that timed out against a frozen Redis may still land when it resumes (the
    // client was told 503 and retries anyway): that errs on the safe side, so `live` is not checked.
    expect((await post('/oauth/revoke', `token=${duringOutage}`)).status).toBe(200)
    await expect.poll(async () => (await callApi(duringOutage)).status, { timeout: 1000, interval: 5 }).toBe(401)
  }, 30_000)
})

describe('REDIS_URL set but Redis down at start-up', () => {
  it('starts unready and is ready within 5 s of Redis appearing; never falls back to memory', async () => {
    const redisPort = await freePort()
    const dir = tempDir()
    const server = await spawnServer({
      KEYS_DIR: join(dir, 'keys'),
      CLIENTS_FILE: join(dir, 'clients.json'),
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    })
    let redis: RedisServer | undefined
    try {
      const ready = await fetch(`${server.url}/readyz`)
      expect(ready.status).toBe(503)
      expect(await ready.json()).toEqual({ status: 'not ready', missing: ['denylist (redis)'] })
      expect(server.output.join('\n')).not.toContain('denylist: in memory')

      redis = await startRedisServer({ port: redisPort })
      const started = Date.now()
      await expect
        .poll(async () => (await fetch(`${server.url}/readyz`)).status, { timeout: 5000, interval: 100 })
        .toBe(200)
      expect(Date.now() - started).toBeLessThan(5000)
    } finally {
      server.kill('SIGKILL')
      await redis?.stop()
    }
  }, 30_000)
})

describe('Redis durability (appendonly yes, appendfsync always, as the README asks)', () => {
  it('with appendfsync always, 1,000 revocations answered before kill -9 are all there after a restart', async () => {
    const redis = await startRedisServer({
      args: ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', tempDir()],
    })
    const log = captureLog().log
    const denylist = createRedisDenylist({ url: redis.url, keyPrefix: 'durable:', clock: systemClock, log })
    try {
      await waitFor(() => denylist.ping())
      const until = systemClock() + 600
      for (let i = 0; i < 1000; i++) await denylist.revokeToken(`jti-${i}`, until)
      await redis.kill('SIGKILL')
      await redis.restart()
      await waitFor(() => denylist.ping())
      const revoked = await Promise.all(Array.from({ length: 1000 }, (_, i) => denylist.isRevoked({ jti: `jti-${i}` })))
      expect(revoked.filter(Boolean)).toHaveLength(1000)
    } finally {
      await denylist.close()
      await redis.stop()
    }
  }, 30_000)
})
