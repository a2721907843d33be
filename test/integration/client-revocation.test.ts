import { join } from 'node:path'
import { Hono } from 'hono'
import { describe, expect, it } from 'vitest'
import { run as clientCli } from '../../src/cli/client.js'
import { createApp } from '../../src/app.js'
import { watchClients } from '../../src/clients/reload.js'
import { readClientsFile } from '../../src/clients/clients-file.js'
import { createClientRegistry } from '../../src/clients/registry.js'
import type { RevocationCheck } from '../../src/denylist/denylist.js'
import { entryKey } from '../../src/denylist/protocol.js'
import { createRevocationFeed } from '../../src/denylist/revocation-feed.js'
import { bearerAuth } from '../../src/verifier/index.js'
import { runCli, tempDir } from '../helpers/cli.js'
import { expectError } from '../helpers/oauth-error.js'
import { FORM, T0, basic, captureLog, fixedClock, makeDeps } from '../helpers/make-deps.js'
import { TOPOLOGIES, type Topology, useSharedRedis } from '../helpers/shared-redis.js'
import { waitFor } from '../helpers/wait-for.js'

// Deleting a client, or `rotate-secret --revoke-tokens`, ends the tokens it already holds: the
// denylist gets a client entry (tokens with iat <= the instant) that introspection and the
// resource-server middleware honour, written by the CLI to Redis and by each server on reload.

const API = 'https://api.example.com'
const T = 30

const shared = useSharedRedis()
/** The shared single node, Cluster and Sentinel group (global set-up). */
const stores = {
  single: shared,
  cluster: useSharedRedis('cluster', { defer: shared.defer }),
  sentinel: useSharedRedis('sentinel', { defer: shared.defer }),
}

/**
 * CLIENTS_FILE with `billing` and a resource server `rs-api` for API, made by the CLI; Redis env
 * optional (`true`: the single node; or a topology, which the CLI finds through its environment).
 */
async function setup(options: { redis?: boolean | Topology; watch?: boolean } = {}) {
  const store = stores[options.redis === true || !options.redis ? 'single' : options.redis]
  const clock = fixedClock(T0)
  const file = join(tempDir(), 'clients.json')
  const keyPrefix = store.prefix()
  const env: Record<string, string> = {
    CLIENTS_FILE: file,
    ...(options.redis && { ...store.env, REDIS_KEY_PREFIX: keyPrefix }),
  }
  const cli = async (argv: string[]) => {
    const out = await runCli((args, io) => clientCli(args, io, clock), argv, env)
    expect(out.stderr).not.toMatch(/^error/m)
    expect(out.code).toBe(0)
    return out.json()
  }
  const billing = (await cli(['create', '--id', 'billing', '--scope', 'read', '--audience', API]))
    .client_secret as string
  const rsSecret = (await cli(['create', '--id', 'rs-api', '--scope', 'read', '--audience', API, '--resource-server']))
    .client_secret as string

  const denylist = options.redis ? await store.denylist(keyPrefix, clock, captureLog().log) : undefined
  const deps = await makeDeps({
    clock,
    ...(denylist && { denylist }),
    config: { clientsFile: file, redisKeyPrefix: keyPrefix },
  })
  deps.clients = createClientRegistry(await readClientsFile(file))
  const watcher = options.watch === false ? undefined : await watchClients(deps, 60_000)
  if (watcher) shared.defer(() => watcher.stop())
  const app = createApp(deps)

  const post = (path: string, body: string, authorization: string) =>
    app.request(path, { method: 'POST', headers: { 'content-type': FORM, authorization }, body })
  const issue = async (secret = billing) => {
    const res = await post('/oauth/token', 'grant_type=client_credentials', basic('billing', secret))
    expect(res.status).toBe(200)
    return ((await res.json()) as { access_token: string }).access_token
  }
  const introspect = async (token: string) =>
    (await post('/oauth/introspect', `token=${token}`, basic('rs-api', rsSecret))).text()

  /** A resource server behind bearerAuth, asking `check` (the server's own denylist, or a Redis feed). */
  const resourceServer = (check: RevocationCheck) => {
    const rs = new Hono()
    rs.use(
      bearerAuth({
        issuer: deps.config.issuer,
        audience: API,
        jwks: JSON.parse(deps.keys.jwks().body),
        clock,
        denylist: check,
      }),
    )
    rs.get('/api', (c) => c.text('ok'))
    return async (token: string) => (await rs.request('/api', { headers: { authorization: `Bearer ${token}` } })).status
  }
  const feed = async () => {
    const check = createRevocationFeed({ ...store.connection, keyPrefix, clock, log: captureLog().log })
    shared.defer(() => check.close())
    await check.ready()
    return check
  }
  return { store, clock, file, env, keyPrefix, cli, deps, watcher, issue, introspect, resourceServer, feed, billing }
}

const ACTIVE = expect.stringContaining('"active":true')
const INACTIVE = '{"active":false}'

describe('client delete ends the tokens the client holds', () => {
  it('on each server by itself (in-memory denylist): introspection says {"active":false} and bearerAuth refuses the token', async () => {
    const { clock, cli, deps, watcher, issue, introspect, resourceServer } = await setup()
    const callApi = resourceServer(deps.denylist)
    const token = await issue()
    expect(await introspect(token)).toEqual(ACTIVE)
    expect(await callApi(token)).toBe(200)

    clock.advance(10)
    expect(await cli(['delete', '--id', 'billing'])).toMatchObject({
      deleted: 'billing',
      tokens_revoked: {
        revoked_at: T0 + 10,
        until: T0 + 10 + 3600 + T,
        denylisted: expect.stringContaining('no Redis is configured'),
      },
    })
    await watcher!.check()
    expect(await introspect(token)).toBe(INACTIVE)
    expect(await callApi(token)).toBe(401)

    // The entry lasts until the longest-lived token issued before the deletion has expired, plus T.
    const covered = { jti: 'any', client_id: 'billing', iat: T0 + 10 }
    clock.set(T0 + 10 + 3600 + T - 1)
    expect(await deps.denylist.isRevoked(covered)).toBe(true)
    clock.set(T0 + 10 + 3600 + T)
    expect(await deps.denylist.isRevoked(covered)).toBe(false)
  })

  it.each(TOPOLOGIES)(
    'everywhere at once through %s Redis, written by the CLI before any server reloads',
    async (topology) => {
      const { store, clock, cli, keyPrefix, issue, introspect, resourceServer, feed } = await setup({
        redis: topology,
        watch: false,
      })
      const check = await feed()
      const callApi = resourceServer(check)
      const token = await issue()
      expect(await callApi(token)).toBe(200)

      clock.advance(10)
      expect((await cli(['delete', '--id', 'billing'])).tokens_revoked).toEqual({
        revoked_at: T0 + 10,
        until: T0 + 10 + 3600 + T,
        denylisted: 'redis',
      })
      expect(await store.admin.get(entryKey(keyPrefix, 'client', 'billing'))).toBe(String(T0 + 10))
      expect(
        Math.abs((await store.admin.pttl(entryKey(keyPrefix, 'client', 'billing'))) - (3600 + T) * 1000),
      ).toBeLessThanOrEqual(1_000)
      await waitFor(async () => expect(await callApi(token)).toBe(401), 1_000)
      expect(await introspect(token)).toBe(INACTIVE)
      // The middleware asking Redis directly (no feed) refuses it too.
      expect(await resourceServer(await store.denylist(keyPrefix, clock, captureLog().log))(token)).toBe(401)
    },
  )

  it('a server that loads the deletion writes the Redis entry itself (the CLI had no REDIS_URL)', async () => {
    const { clock, file, keyPrefix, deps, watcher, issue, resourceServer, feed } = await setup({ redis: true })
    const callApi = resourceServer(await feed())
    const token = await issue()
    clock.advance(10)
    const out = await runCli((args, io) => clientCli(args, io, clock), ['delete', '--id', 'billing'], {
      CLIENTS_FILE: file,
    })
    expect(out.code).toBe(0)
    expect(await shared.admin.exists(entryKey(keyPrefix, 'client', 'billing'))).toBe(0)
    await watcher!.check()
    expect(deps.clients.get('billing')).toBeUndefined()
    expect(await shared.admin.get(entryKey(keyPrefix, 'client', 'billing'))).toBe(String(T0 + 10))
    await waitFor(async () => expect(await callApi(token)).toBe(401), 1_000)
  })
})

describe('client rotate-secret --revoke-tokens', () => {
  it.each([
    ['each server by itself (in-memory denylist)', false],
    ['Redis, written by the CLI', true],
  ] as const)(
    'refuses the tokens issued up to the rotation, not those issued after with the new secret: %s',
    async (_name, redis) => {
      const { clock, cli, keyPrefix, deps, watcher, issue, introspect, resourceServer, feed, billing } = await setup({
        redis,
      })
      const check = redis ? await feed() : deps.denylist
      const callApi = resourceServer(check)
      const before = await issue()

      clock.advance(10)
      const rotated = await cli(['rotate-secret', '--id', 'billing', '--revoke-tokens'])
      expect(rotated).toMatchObject({
        previous_secret_expires: T0 + 10,
        tokens_revoked: { revoked_at: T0 + 10, until: T0 + 10 + 3600 + T },
      })
      expect(
        (await readClientsFile(deps.config.clientsFile)).clients.find((c) => c.client_id === 'billing')
          ?.tokens_revoked_at,
      ).toBe(T0 + 10)
      if (redis) expect(await shared.admin.get(entryKey(keyPrefix, 'client', 'billing'))).toBe(String(T0 + 10))
      await watcher!.check()
      const secret = rotated.client_secret as string
      // The old secret ends at once: otherwise it would simply mint new tokens.
      const old = await createApp(deps).request('/oauth/token', {
        method: 'POST',
        headers: { 'content-type': FORM, authorization: basic('billing', billing) },
        body: 'grant_type=client_credentials',
      })
      await expectError(old, 401, 'invalid_client')

      await waitFor(async () => expect(await callApi(before)).toBe(401), 1_000)
      expect(await introspect(before)).toBe(INACTIVE)
      // iat has whole seconds: a token issued in the very second of the revocation is refused too.
      const sameSecond = await issue(secret)
      expect(await introspect(sameSecond)).toBe(INACTIVE)

      clock.advance(1)
      const after = await issue(secret)
      expect(await introspect(after)).toEqual(ACTIVE)
      expect(await callApi(after)).toBe(200)
      expect(await callApi(before)).toBe(401)
    },
  )
})
