import { randomBytes } from 'node:crypto'
import { Hono } from 'hono'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp } from '../../src/app.js'
import { systemClock } from '../../src/clock.js'
import { createRedisDenylist } from '../../src/denylist/redis.js'
import { createRevocationFeed, type RevocationFeed } from '../../src/denylist/revocation-feed.js'
import type { Deps } from '../../src/deps.js'
import { bearerAuth, type BearerAuthVariables } from '../../src/verifier/index.js'
import { connectionOf, sharedTarget, TOPOLOGIES } from '../helpers/shared-redis.js'
import { waitFor } from '../helpers/wait-for.js'
import { FORM, basic, captureLog, makeDeps, testKey, type TestClient } from '../helpers/make-deps.js'

// Two authorization-server instances and two resource servers on one real Redis: the shape of a
// real deployment. Revoked at A, a token must be refused by B and by every middleware within 1 s,
// whether Redis is a single node, a Cluster or a Sentinel group.
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

describe.each(TOPOLOGIES)('two instances sharing %s Redis', (topology) => {
  const redis = connectionOf(sharedTarget(topology))
  // A hash tag: every key and the revocation channel in one Cluster slot.
  const keyPrefix = `{test:${randomBytes(6).toString('hex')}}:`
  const log = captureLog().log
  const instances: { deps: Deps; app: ReturnType<typeof createApp> }[] = []
  const feeds: RevocationFeed[] = []
  const resourceServers: Hono<{ Variables: BearerAuthVariables }>[] = []

  beforeAll(async () => {
    const key = await testKey()
    for (let i = 0; i < 2; i++) {
      const denylist = createRedisDenylist({ ...redis, keyPrefix, clock: systemClock, log })
      const deps = await makeDeps({ clock: systemClock, clients: CLIENTS, keys: [key], denylist })
      instances.push({ deps, app: createApp(deps) })
    }
    await Promise.all(instances.map(({ deps }) => waitFor(() => deps.denylist.ping())))
    const jwks = JSON.parse(instances[0]!.deps.keys.jwks().body)
    for (let i = 0; i < 2; i++) {
      const feed = createRevocationFeed({ ...redis, keyPrefix, clock: systemClock, log })
      await feed.ready()
      feeds.push(feed)
      const rs = new Hono<{ Variables: BearerAuthVariables }>()
      rs.use(
        bearerAuth({
          issuer: instances[0]!.deps.config.issuer,
          audience: 'https://api.example.com',
          jwks,
          denylist: feed,
        }),
      )
      rs.get('/api', (c) => c.json({ client: c.get('auth').client_id }))
      resourceServers.push(rs)
    }
  })
  afterAll(async () => {
    await Promise.all([...feeds.map((f) => f.close()), ...instances.map(({ deps }) => deps.denylist.close())])
  })

  const post = (i: number, path: string, body: string, auth: string) =>
    instances[i]!.app.request(path, { method: 'POST', headers: { 'content-type': FORM, authorization: auth }, body })
  const introspect = async (i: number, token: string, auth = basic('rs-api', 'tks_secret-of-rs')) =>
    (await post(i, '/oauth/introspect', `token=${token}`, auth)).json()
  const callApi = (i: number, token: string) =>
    resourceServers[i]!.request('/api', { headers: { authorization: `Bearer ${token}` } })

  it('a token from A is active at B and accepted by both resource servers; revoked at A, refused everywhere within 1 s', async () => {
    const issued = await post(0, '/oauth/token', 'grant_type=client_credentials', basic('svc-a', 'tks_secret-of-a'))
    const { access_token: token } = (await issued.json()) as { access_token: string }

    expect(await introspect(1, token)).toMatchObject({ active: true, client_id: 'svc-a' })
    expect(await introspect(1, token, basic('svc-a', 'tks_secret-of-a'))).toMatchObject({ active: true })
    for (const i of [0, 1]) expect((await callApi(i, token)).status).toBe(200)

    const revokedAt = performance.now()
    expect((await post(0, '/oauth/revoke', `token=${token}`, basic('svc-a', 'tks_secret-of-a'))).status).toBe(200)

    // B's introspection reads Redis directly: refused at once.
    expect(await introspect(1, token)).toEqual({ active: false })
    // Each middleware answers from its local set, fed over pub/sub.
    const propagation: number[] = []
    for (const i of [0, 1]) {
      await expect.poll(async () => (await callApi(i, token)).status, { timeout: 1000, interval: 2 }).toBe(401)
      propagation.push(performance.now() - revokedAt)
    }
    const refused = await callApi(1, token)
    expect(refused.headers.get('www-authenticate')).toBe('Bearer realm="tokensmith", error="invalid_token"')
    console.info(
      `revocation propagation to both middlewares: ${propagation.map((ms) => ms.toFixed(1)).join(' ms, ')} ms`,
    )
    expect(Math.max(...propagation)).toBeLessThan(1000)
  })

  it('a token revoked before a resource server starts is refused by it (load on connect)', async () => {
    const issued = await post(1, '/oauth/token', 'grant_type=client_credentials', basic('svc-a', 'tks_secret-of-a'))
    const { access_token: token } = (await issued.json()) as { access_token: string }
    expect((await post(1, '/oauth/revoke', `token=${token}`, basic('svc-a', 'tks_secret-of-a'))).status).toBe(200)

    const late = createRevocationFeed({ ...redis, keyPrefix, clock: systemClock, log })
    try {
      await late.ready()
      const rs = new Hono()
      rs.use(
        bearerAuth({
          issuer: instances[0]!.deps.config.issuer,
          audience: 'https://api.example.com',
          jwks: JSON.parse(instances[0]!.deps.keys.jwks().body),
          denylist: late,
        }),
      )
      rs.get('/api', (c) => c.text('ok'))
      expect((await rs.request('/api', { headers: { authorization: `Bearer ${token}` } })).status).toBe(401)
    } finally {
      await late.close()
    }
  })
})
