import { join } from 'node:path'
import { Hono } from 'hono'
import { decodeProtectedHeader } from 'jose'
import { describe, expect, it } from 'vitest'
import { run as keysCli } from '../../src/cli/keys.js'
import { createApp } from '../../src/app.js'
import { watchKeys } from '../../src/keys/reload.js'
import { systemClock } from '../../src/clock.js'
import { createRevocationFeed } from '../../src/denylist/revocation-feed.js'
import { createRedisDenylist } from '../../src/denylist/redis.js'
import { ensureKeys } from '../../src/keys/keys-dir.js'
import { bearerAuth } from '../../src/verifier/index.js'
import { useCleanups } from '../helpers/cleanups.js'
import { runCli, tempDir } from '../helpers/cli.js'
import { freePort } from '../helpers/free-port.js'
import { FORM, basic, captureLog, makeDeps } from '../helpers/make-deps.js'
import { startRedisServer } from '../helpers/redis-server.js'
import { TOPOLOGIES, useSharedRedis } from '../helpers/shared-redis.js'
import { waitFor } from '../helpers/wait-for.js'

// README, emergency: a signing key is compromised. `keys revoke --kid K` unpublishes K at once, and
// tokens K signed are refused by introspection and by the middleware through the denylist feed,
// although the middleware's cached JWKS still holds K.
// On each shared deployment (a single node, a Cluster, a Sentinel group), which the CLI finds through
// its environment (REDIS_URL, REDIS_CLUSTER_NODES, REDIS_SENTINELS).
describe.each(TOPOLOGIES)('a compromised signing key, with %s Redis', (topology) => {
  const shared = useSharedRedis(topology)
  it('is refused everywhere within 1 s of keys revoke, while signing moves to the standby key', async () => {
    const keyPrefix = shared.prefix()
    const keysDir = join(tempDir(), 'keys')
    const log = captureLog().log
    const { records } = await ensureKeys(keysDir, 'ES256', { clock: systemClock, log })
    const denylist = createRedisDenylist({ ...shared.connection, keyPrefix, clock: systemClock, log })
    shared.defer(() => denylist.close())
    const deps = await makeDeps({
      clock: systemClock,
      keys: records,
      denylist,
      config: {
        keysDir,
        redis: shared.target,
        ...(shared.target.kind === 'single' && { redisUrl: shared.target.url }),
        redisKeyPrefix: keyPrefix,
      },
    })
    const watcher = await watchKeys(deps, 60_000)
    shared.defer(() => watcher.stop())
    const app = createApp(deps)
    await waitFor(() => denylist.ping())

    const feed = createRevocationFeed({ ...shared.connection, keyPrefix, clock: systemClock, log })
    shared.defer(() => feed.close())
    await feed.ready()
    const rs = new Hono()
    rs.use(
      bearerAuth({
        issuer: deps.config.issuer,
        audience: 'https://api.example.com',
        jwks: JSON.parse(deps.keys.jwks().body),
        denylist: feed,
      }),
    )
    rs.get('/api', (c) => c.text('ok'))
    const callApi = (token: string) => rs.request('/api', { headers: { authorization: `Bearer ${token}` } })
    const issue = async () => {
      const res = await app.request('/oauth/token', {
        method: 'POST',
        headers: { 'content-type': FORM, authorization: basic('svc-a', 'tks_secret-of-a') },
        body: 'grant_type=client_credentials',
      })
      return ((await res.json()) as { access_token: string }).access_token
    }
    const introspect = async (token: string) =>
      (
        await app.request('/oauth/introspect', {
          method: 'POST',
          headers: { 'content-type': FORM, authorization: basic('svc-a', 'tks_secret-of-a') },
          body: `token=${token}`,
        })
      ).json()

    const stolen = await issue()
    const compromised = decodeProtectedHeader(stolen).kid!
    expect((await callApi(stolen)).status).toBe(200)

    const env = {
      KEYS_DIR: keysDir,
      CLIENTS_FILE: join(keysDir, '..', 'clients.json'),
      ...shared.env,
      REDIS_KEY_PREFIX: keyPrefix,
    }
    const revokedAt = performance.now()
    const out = await runCli(keysCli, ['revoke', '--kid', compromised], env)
    expect(out.code).toBe(0)
    expect(out.json().revoked).toMatchObject({ kid: compromised, unpublished: true, denylisted: 'redis' })

    await expect.poll(async () => (await callApi(stolen)).status, { timeout: 1000, interval: 5 }).toBe(401)
    console.info(`key revocation reached the middleware after ${(performance.now() - revokedAt).toFixed(0)} ms`)

    await watcher.check() // the server's reload (within 1 s by itself, at once on SIGHUP)
    expect(await introspect(stolen)).toEqual({ active: false })
    expect(JSON.parse(deps.keys.jwks().body).keys.map((k: { kid: string }) => k.kid)).not.toContain(compromised)
    const fresh = await issue()
    expect(decodeProtectedHeader(fresh).kid).not.toBe(compromised)
    // The new signing key is the old standby, which the middleware cached before the incident.
    expect((await callApi(fresh)).status).toBe(200)
    expect(await introspect(fresh)).toMatchObject({ active: true })
  })
})

describe('a key revoked while Redis is down', () => {
  const defer = useCleanups()
  it('is denylisted by the server as soon as Redis is back, retried at every check', async () => {
    const keysDir = join(tempDir(), 'keys')
    const { log } = captureLog()
    const { records } = await ensureKeys(keysDir, 'ES256', { clock: systemClock, log })
    const [current] = records
    // Revoked with no Redis reachable: the CLI can only leave the tombstone.
    const env = { KEYS_DIR: keysDir, CLIENTS_FILE: join(keysDir, '..', 'clients.json') }
    expect((await runCli(keysCli, ['revoke', '--kid', current!.kid], env)).code).toBe(0)

    const port = await freePort()
    const denylist = createRedisDenylist({
      url: `redis://127.0.0.1:${port}`,
      keyPrefix: 'late:',
      clock: systemClock,
      log,
    })
    defer(() => denylist.close())
    const deps = await makeDeps({ clock: systemClock, keys: records, denylist, config: { keysDir } })
    const watcher = await watchKeys(deps, 50)
    defer(() => watcher.stop())
    // The keys apply at once (the revoked key is no longer published) even though Redis is down.
    expect(JSON.parse(deps.keys.jwks().body).keys.map((k: { kid: string }) => k.kid)).not.toContain(current!.kid)

    const redis = await startRedisServer({ port })
    defer(() => redis.stop())
    await waitFor(async () => expect(await denylist.isRevoked({ jti: 'any', kid: current!.kid })).toBe(true), 5000)
    const failures = deps.logLines
      .map((l) => JSON.parse(l))
      .filter((r) => r.msg === 'reload failed; keeping the last good state')
    expect(failures).toHaveLength(1)
    expect(failures[0].problem).toContain(`revoked key ${current!.kid} is not in the denylist yet`)
  })
})
