import { randomBytes } from 'node:crypto'
import { Hono } from 'hono'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { systemClock } from '../../src/clock.js'
import type { Denylist } from '../../src/denylist/denylist.js'
import { entryKey } from '../../src/denylist/protocol.js'
import type { RedisTarget } from '../../src/denylist/redis-target.js'
import { createRedisDenylist } from '../../src/denylist/redis.js'
import { createRevocationFeed, type RevocationFeed } from '../../src/denylist/revocation-feed.js'
import { bearerAuth, type BearerAuthVariables } from '../../src/verifier/index.js'
import { FORM, basic, captureLog, testKey, type TestClient } from '../helpers/make-deps.js'
import { adminCommand } from '../helpers/redis-admin.js'
import { startRedisSentinelGroup, type RedisSentinelGroup } from '../helpers/redis-sentinel.js'
import { startTestServer } from '../helpers/test-server.js'
import { waitFor } from '../helpers/wait-for.js'

// Three authorization-server instances and resource servers on one Sentinel group
// (https://redis.io/docs/latest/operate/oss_and_stack/management/sentinel/): the shape of a real
// deployment. Revocations are answered 200 only once a replica holds them (REDIS_WAIT_REPLICAS=1),
// so killing the primary mid-load must lose none of them; the instances recover by themselves.

const ISSUER = 'https://auth.failover.test'
const API = 'https://api.example.com'
const CLIENTS: TestClient[] = [{ id: 'svc-a', secret: 'tks_secret-of-a', scopes: ['read'], audiences: [API] }]
const AUTH = basic('svc-a', 'tks_secret-of-a')
/** How long the load runs before the primary is killed, and at least how long after the failover. */
const BEFORE_KILL_MS = 4_000
const AFTER_FAILOVER_MS = 5_000

type Instance = Awaited<ReturnType<typeof startTestServer>>
type ResourceServer = Hono<{ Variables: BearerAuthVariables }>

const jtiOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).jti as string

describe('Redis Sentinel failover under load', () => {
  const keyPrefix = `{tokensmith}:failover-${randomBytes(4).toString('hex')}:`
  const log = captureLog('warn').log
  let group: RedisSentinelGroup
  let target: RedisTarget
  const instances: Instance[] = []
  const denylists: Denylist[] = []
  const feeds: RevocationFeed[] = []

  beforeAll(async () => {
    // Two replicas: after the primary is lost, the promoted one still has a replica to acknowledge.
    group = await startRedisSentinelGroup({ replicas: 2 })
    target = { kind: 'sentinel', sentinels: group.sentinels, name: group.name }
    const key = await testKey()
    for (let i = 0; i < 3; i++) {
      const denylist = createRedisDenylist({
        redis: target,
        keyPrefix,
        clock: systemClock,
        log,
        waitReplicas: 1,
        // Generous for a loaded 2-core test machine: a slow acknowledgement would be a 503 before the kill.
        waitMs: 2_000,
      })
      denylists.push(denylist)
      // One key for all, as instances sharing KEYS_DIR; one issuer, as behind one name.
      instances.push(await startTestServer({ clients: CLIENTS, keys: [key], denylist, config: { issuer: ISSUER } }))
    }
    await Promise.all(denylists.map((denylist) => waitFor(() => denylist.ping(), 10_000)))
  })

  afterAll(async () => {
    await Promise.all(feeds.map((feed) => feed.close()))
    await Promise.all(instances.map((instance) => instance.close()))
    await Promise.all(denylists.map((denylist) => denylist.close()))
    await group?.stop()
  })

  /** A resource server with its own revocation feed, trusting the JWKS of `jwksFrom`. */
  async function resourceServer(jwksFrom: Instance): Promise<ResourceServer> {
    const feed = createRevocationFeed({ redis: target, keyPrefix, clock: systemClock, log })
    feeds.push(feed)
    await feed.ready()
    const rs: ResourceServer = new Hono()
    rs.use(
      bearerAuth({
        issuer: ISSUER,
        audience: API,
        jwks: { uri: `${jwksFrom.url}/.well-known/jwks.json` },
        denylist: feed,
      }),
    )
    rs.get('/api', (c) => c.text(c.get('auth').client_id))
    return rs
  }

  const post = (instance: Instance, path: string, body: string) =>
    fetch(`${instance.url}${path}`, { method: 'POST', headers: { 'content-type': FORM, authorization: AUTH }, body })
  const issue = async (instance: Instance) => {
    const response = await post(instance, '/oauth/token', 'grant_type=client_credentials')
    return response.status === 200 ? ((await response.json()) as { access_token: string }).access_token : undefined
  }
  const callApi = async (rs: ResourceServer, token: string) =>
    (await rs.request('/api', { headers: { authorization: `Bearer ${token}` } })).status

  it('round robin over three instances: a token from any is accepted everywhere; revoked at one, refused by every middleware within 1 s', async () => {
    const servers = await Promise.all(instances.map(resourceServer))
    let next = 0
    const roundRobin = () => instances[next++ % instances.length]!
    for (let round = 0; round < 3; round++) {
      const token = await issue(roundRobin())
      expect(token).toBeDefined()
      for (const rs of servers) expect(await callApi(rs, token!)).toBe(200)
      const revokedAt = performance.now()
      expect((await post(roundRobin(), '/oauth/revoke', `token=${token}`)).status).toBe(200)
      for (const rs of servers) {
        await expect.poll(() => callApi(rs, token!), { timeout: 1_000, interval: 5 }).toBe(401)
      }
      expect(performance.now() - revokedAt).toBeLessThan(1_000)
    }
  })

  it('SIGKILL of the primary mid-load loses no revocation answered 200, and every instance recovers by itself', async () => {
    const rs = await resourceServer(instances[0]!)
    const t0 = performance.now()
    const at = () => performance.now() - t0
    const revocations: { jti: string; token: string; status: number; sentAt: number; answeredAt: number }[] = []
    const verifications: { jti: string; status: number; startedAt: number }[] = []
    const issuance: number[] = []
    let stop = false
    let next = 0

    const verify = async (token: string) => {
      const startedAt = at()
      verifications.push({ jti: jtiOf(token), status: await callApi(rs, token), startedAt })
    }
    async function worker(): Promise<void> {
      while (!stop) {
        const n = next++
        const token = await issue(instances[n % 3]!)
        issuance.push(token === undefined ? 0 : 200)
        if (token === undefined) continue
        await verify(token)
        const sentAt = at()
        const response = await post(instances[(n + 1) % 3]!, '/oauth/revoke', `token=${token}`)
        revocations.push({ jti: jtiOf(token), token, status: response.status, sentAt, answeredAt: at() })
        await verify(token)
        // And one revoked earlier, at random: still refused.
        const done = revocations.filter((r) => r.status === 200)
        const earlier = done[Math.floor(Math.random() * done.length)]
        if (earlier) await verify(earlier.token)
      }
    }

    const workers = Promise.all([worker(), worker(), worker()])
    await new Promise((resolve) => setTimeout(resolve, BEFORE_KILL_MS))
    const oldPrimary = await group.primary()
    const killedAt = at()
    await oldPrimary.kill('SIGKILL')
    const newPrimary = await group.waitForFailover(oldPrimary.port, 30_000)
    const failedOverAt = at()
    // Until revocations are answered 200 again, and then a while longer.
    await waitFor(
      () => expect(revocations.some((r) => r.sentAt > failedOverAt && r.status === 200)).toBe(true),
      30_000,
      50,
    )
    await new Promise((resolve) => setTimeout(resolve, AFTER_FAILOVER_MS))
    stop = true
    await workers

    // Every answer is 200 or 503 (never a 500, never a 401 for the client's own valid token).
    expect([...new Set(revocations.map((r) => r.status))].filter((s) => s !== 200 && s !== 503)).toEqual([])
    expect([...new Set(verifications.map((v) => v.status))].filter((s) => ![200, 401, 503].includes(s))).toEqual([])
    expect(issuance.filter((s) => s !== 200)).toEqual([])

    const answered = revocations.filter((r) => r.status === 200)
    expect(answered.filter((r) => r.sentAt < killedAt).length).toBeGreaterThan(0)
    expect(answered.filter((r) => r.sentAt > failedOverAt).length).toBeGreaterThan(0)

    // No verification started after a revocation was answered 200 accepted the token.
    const answeredAt = new Map(answered.map((r) => [r.jti, r.answeredAt]))
    const late = verifications.filter((v) => v.status === 200 && v.startedAt >= (answeredAt.get(v.jti) ?? Infinity))
    expect(late).toEqual([])

    // Every revocation answered 200 is on the new primary, and the resource server refuses its token.
    const keys = answered.map((r) => entryKey(keyPrefix, 'jti', r.jti))
    for (let i = 0; i < keys.length; i += 500) {
      const values = (await adminCommand(newPrimary.port, 'MGET', keys.slice(i, i + 500))) as (string | null)[]
      const missing = values.flatMap((value, j) => (value === null ? [answered[i + j]!.jti] : []))
      expect(missing, 'revocations answered 200 but lost in the failover').toEqual([])
    }
    for (const r of answered) expect(await callApi(rs, r.token), r.jti).toBe(401)

    // Every instance answers again, without a restart: ready, new tokens, new revocations.
    for (const instance of instances) {
      await waitFor(async () => {
        const ready = await fetch(`${instance.url}/readyz`)
        expect({ status: ready.status, body: await ready.json() }).toEqual({ status: 200, body: { status: 'ready' } })
      }, 10_000)
      const token = await issue(instance)
      expect(token).toBeDefined()
      expect((await post(instance, '/oauth/revoke', `token=${token}`)).status).toBe(200)
      await expect.poll(() => callApi(rs, token!), { timeout: 1_000, interval: 5 }).toBe(401)
    }

    const refusedAfterKill = revocations.filter((r) => r.status === 503 && r.sentAt >= killedAt)
    const firstOkAfter = answered.find((r) => r.sentAt > killedAt && r.answeredAt > failedOverAt)
    const window503 =
      refusedAfterKill.length === 0
        ? 'none'
        : `${Math.round(refusedAfterKill[0]!.sentAt - killedAt)}..${Math.round(refusedAfterKill.at(-1)!.answeredAt - killedAt)} ms after the kill`
    console.log(
      `failover under load: ${answered.length} revocations answered 200 (${answered.filter((r) => r.sentAt < killedAt).length} before the kill), ${revocations.length - answered.length} answered 503, ${verifications.length} verifications; sentinels agreed on a new primary ${Math.round(failedOverAt - killedAt)} ms after SIGKILL; 503 window ${window503}; first revocation answered 200 again ${firstOkAfter ? Math.round(firstOkAfter.answeredAt - killedAt) : '?'} ms after the kill`,
    )
  }, 60_000)
})
