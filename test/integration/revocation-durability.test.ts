import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { createApp } from '../../src/app.js'
import { run as clientCli } from '../../src/cli/client.js'
import { createDenylist } from '../../src/bootstrap.js'
import { systemClock } from '../../src/clock.js'
import { loadConfig } from '../../src/config.js'
import { DenylistUnavailableError, type Denylist } from '../../src/denylist/denylist.js'
import { entryKey, ownedKey } from '../../src/denylist/protocol.js'
import { createRedisDenylist } from '../../src/denylist/redis.js'
import { runCli, tempDir } from '../helpers/cli.js'
import { FORM, basic, captureLog, makeDeps } from '../helpers/make-deps.js'
import { expectError } from '../helpers/oauth-error.js'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'
import { waitFor } from '../helpers/wait-for.js'

// A revocation is answered 200 only once REDIS_WAIT_REPLICAS replicas acknowledged it (Redis WAIT,
// https://redis.io/docs/latest/commands/wait/), so that a failover to one of them keeps it; fewer
// within REDIS_WAIT_MS is a 503 the client retries (RFC 7009 §2.2.1). A primary and a replica of our own.

const WAIT_MS = 300
const now = () => Math.floor(Date.now() / 1000)
const connections: Redis[] = []
const denylists: Denylist[] = []
const servers: RedisServer[] = []

function connect(server: RedisServer): Redis {
  const redis = new Redis(server.url, { lazyConnect: false, maxRetriesPerRequest: 1 })
  connections.push(redis)
  return redis
}

function denylist(server: RedisServer, options: { waitReplicas: number; keyPrefix?: string; waitMs?: number }) {
  const captured = captureLog()
  const created = createRedisDenylist({
    url: server.url,
    keyPrefix: options.keyPrefix ?? `durable:${randomBytes(4).toString('hex')}:`,
    clock: systemClock,
    log: captured.log,
    waitReplicas: options.waitReplicas,
    waitMs: options.waitMs ?? WAIT_MS,
  })
  denylists.push(created)
  return { denylist: created, captured }
}

/** The WAIT warning's fields, from the denylist's log. */
const waitWarnings = (captured: ReturnType<typeof captureLog>) =>
  captured.records().filter((record) => record.replicasRequired !== undefined)

/** Every write path of the Redis denylist, each on fresh ids; returns the keys it wrote. */
const WRITES: [string, (d: Denylist, id: string) => Promise<void>, (prefix: string, id: string) => string][] = [
  ['revokeToken', (d, id) => d.revokeToken(id, now() + 60), (p, id) => entryKey(p, 'jti', id)],
  [
    'revokeToken with an owner',
    (d, id) => d.revokeToken(id, now() + 60, { clientId: `c-${id}`, limit: 10 }),
    (p, id) => entryKey(p, 'jti', id),
  ],
  ['revokeKey', (d, id) => d.revokeKey(id, now() + 60), (p, id) => entryKey(p, 'kid', id)],
  ['revokeClient', (d, id) => d.revokeClient(id, now(), now() + 60), (p, id) => entryKey(p, 'client', id)],
]

afterAll(async () => {
  await Promise.all(denylists.map((d) => d.close()))
  for (const redis of connections) redis.disconnect()
  await Promise.all(servers.map((s) => s.stop()))
})

describe('with a primary and one replica', () => {
  let primary: RedisServer
  let replica: RedisServer
  let onReplica: Redis
  let onPrimary: Redis

  beforeAll(async () => {
    primary = await startRedisServer()
    replica = await startRedisServer({ args: ['--replicaof', '127.0.0.1', String(primary.port)] })
    servers.push(replica, primary)
    onPrimary = connect(primary)
    onReplica = connect(replica)
    await waitFor(async () => expect(await onPrimary.info('replication')).toMatch(/slave0:.*state=online/), 10_000)
  })

  async function serverApp(waitReplicas: number) {
    const keyPrefix = `durable:${randomBytes(4).toString('hex')}:`
    const { denylist: shared, captured } = denylist(primary, { waitReplicas, keyPrefix })
    const deps = await makeDeps({ clock: systemClock, denylist: shared })
    const app = createApp(deps)
    const post = (path: string, body: string) =>
      app.request(path, {
        method: 'POST',
        headers: { 'content-type': FORM, authorization: basic('svc-a', 'tks_secret-of-a') },
        body,
      })
    const issue = async () => {
      const response = await post('/oauth/token', 'grant_type=client_credentials')
      expect(response.status).toBe(200)
      return (await response.json()) as { access_token: string }
    }
    const jtiOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).jti as string
    await waitFor(() => shared.ping())
    return { keyPrefix, captured, post, issue, jtiOf, deps }
  }

  it('answers a revocation 200 with REDIS_WAIT_REPLICAS=1, and the entry is on the replica at that moment', async () => {
    const { keyPrefix, post, issue, jtiOf, captured } = await serverApp(1)
    const { access_token: token } = await issue()
    const response = await post('/oauth/revoke', `token=${token}`)
    expect(response.status).toBe(200)
    expect(await onReplica.exists(entryKey(keyPrefix, 'jti', jtiOf(token)))).toBe(1)
    expect(await onReplica.zscore(ownedKey(keyPrefix, 'svc-a'), jtiOf(token))).not.toBeNull()
    expect(waitWarnings(captured)).toEqual([])
  })

  it('puts every write path behind the wait: each resolves with the entry already on the replica', async () => {
    const { denylist: d } = denylist(primary, { waitReplicas: 1, keyPrefix: 'durable-paths:' })
    await waitFor(() => d.ping())
    for (const [name, write, keyOf] of WRITES) {
      const id = `${name.replace(/\W/g, '-')}-${randomBytes(4).toString('hex')}`
      await write(d, id)
      expect(await onReplica.exists(keyOf('durable-paths:', id)), name).toBe(1)
    }
  })

  it('runs the scripts again with EVAL after Redis lost them (SCRIPT FLUSH), still behind the wait', async () => {
    const { denylist: d } = denylist(primary, { waitReplicas: 1, keyPrefix: 'durable-noscript:' })
    await waitFor(() => d.ping())
    for (const [name, write, keyOf] of WRITES) {
      await onPrimary.script('FLUSH')
      const id = `${name.replace(/\W/g, '-')}-${randomBytes(4).toString('hex')}`
      await write(d, id)
      expect(await onReplica.exists(keyOf('durable-noscript:', id)), name).toBe(1)
    }
  })

  it('answers 503 temporarily_unavailable when the replica does not acknowledge (paused), and logs how many did', async () => {
    const { keyPrefix, post, issue, jtiOf, captured, deps } = await serverApp(1)
    const { access_token: token } = await issue()
    replica.pause()
    try {
      const response = await post('/oauth/revoke', `token=${token}`)
      const body = await expectError(response, 503, 'temporarily_unavailable')
      expect(body.error_description).toBe('service temporarily unavailable, retry later')
      expect(response.headers.get('retry-after')).toBe('1')
    } finally {
      replica.resume()
    }
    expect(waitWarnings(captured)).toEqual([
      expect.objectContaining({ level: 40, replicasAcknowledged: 0, replicasRequired: 1, waitMs: WAIT_MS }),
    ])
    // The warning names no token; the request line says why the answer was a 503.
    expect(JSON.stringify(waitWarnings(captured))).not.toContain(jtiOf(token))
    expect(deps.logLines.join('\n')).toMatch(/0 of 1 replicas acknowledged within 300 ms/)
    // The write itself went through and takes effect: safe, a revocation is idempotent.
    expect(await onPrimary.exists(entryKey(keyPrefix, 'jti', jtiOf(token)))).toBe(1)
    // Retried once the replica is back: 200, and the replica holds the entry.
    await waitFor(async () => expect((await post('/oauth/revoke', `token=${token}`)).status).toBe(200), 5_000)
    expect(await onReplica.exists(entryKey(keyPrefix, 'jti', jtiOf(token)))).toBe(1)
  })

  it('counts the replicas: one acknowledging is not enough for REDIS_WAIT_REPLICAS=2', async () => {
    const { denylist: d, captured } = denylist(primary, { waitReplicas: 2 })
    await waitFor(() => d.ping())
    await expect(d.revokeKey('two-replicas', now() + 60)).rejects.toThrow(DenylistUnavailableError)
    expect(waitWarnings(captured)).toEqual([expect.objectContaining({ replicasAcknowledged: 1, replicasRequired: 2 })])
  })

  it('client rotate-secret --revoke-tokens (the CLI) waits for the replica too', async () => {
    const keyPrefix = `durable-cli:${randomBytes(4).toString('hex')}:`
    const env = {
      CLIENTS_FILE: join(tempDir(), 'clients.json'),
      REDIS_URL: primary.url,
      REDIS_KEY_PREFIX: keyPrefix,
      REDIS_WAIT_REPLICAS: '1',
      REDIS_WAIT_MS: String(WAIT_MS),
    }
    const cli = (argv: string[]) => runCli((args, io) => clientCli(args, io), argv, env)
    const created = await cli(['create', '--id', 'billing', '--scope', 'read', '--audience', 'https://api.example.com'])
    expect(created.code).toBe(0)
    const rotated = await cli(['rotate-secret', '--id', 'billing', '--revoke-tokens'])
    expect(rotated.code, rotated.stderr).toBe(0)
    expect(await onReplica.exists(entryKey(keyPrefix, 'client', 'billing'))).toBe(1)

    replica.pause()
    let refused: Awaited<ReturnType<typeof cli>>
    try {
      refused = await cli(['rotate-secret', '--id', 'billing', '--revoke-tokens'])
    } finally {
      replica.resume()
    }
    expect(refused.code).not.toBe(0)
    expect(refused.stderr).toMatch(/0 of 1 replicas acknowledged/)
  })
})

describe('with a primary that has no replica', () => {
  let lone: RedisServer

  beforeAll(async () => {
    lone = await startRedisServer()
    servers.push(lone)
  })

  /** The commands `action` sends to `lone`, as MONITOR sees them (lower-case names). */
  async function commandsSent(action: () => Promise<unknown>, expected: number): Promise<string[]> {
    const monitor = await connect(lone).monitor()
    const seen: string[] = []
    monitor.on('monitor', (_time: string, args: string[]) => seen.push(String(args[0]).toLowerCase()))
    try {
      await action().catch(() => undefined)
      await waitFor(() =>
        expect(seen.filter((name) => name.startsWith('eval')).length).toBeGreaterThanOrEqual(expected),
      )
      return seen
    } finally {
      monitor.disconnect()
    }
  }

  it.each(WRITES)(
    'REDIS_WAIT_REPLICAS=1: %s answers DenylistUnavailableError, and the log says 0 acknowledged',
    async (_name, write) => {
      const { denylist: d, captured } = denylist(lone, { waitReplicas: 1 })
      await waitFor(() => d.ping())
      await expect(write(d, randomBytes(4).toString('hex'))).rejects.toThrow(
        /not confirmed: 0 of 1 replicas acknowledged within 300 ms/,
      )
      expect(waitWarnings(captured)).toEqual([
        expect.objectContaining({ replicasAcknowledged: 0, replicasRequired: 1 }),
      ])
    },
  )

  it('gives WAIT longer than the command timeout (500 ms): a 600 ms wait is answered by Redis, not cut short', async () => {
    const { denylist: d, captured } = denylist(lone, { waitReplicas: 1, waitMs: 600 })
    await waitFor(() => d.ping())
    await expect(d.revokeKey('long-wait', now() + 60)).rejects.toThrow(/0 of 1 replicas acknowledged within 600 ms/)
    expect(waitWarnings(captured)).toEqual([expect.objectContaining({ replicasAcknowledged: 0 })])
  })

  it('the server built from REDIS_URL + REDIS_WAIT_REPLICAS=1 (bootstrap) waits, and refuses to confirm', async () => {
    const captured = captureLog()
    const config = loadConfig({
      REDIS_URL: lone.url,
      REDIS_KEY_PREFIX: `durable-boot-${randomBytes(4).toString('hex')}:`,
      REDIS_WAIT_REPLICAS: '1',
      REDIS_WAIT_MS: '50',
    })
    const d = await createDenylist(config, captured.log, systemClock)
    denylists.push(d)
    await waitFor(() => d.ping())
    await expect(d.revokeKey('booted', now() + 60)).rejects.toThrow(/0 of 1 replicas acknowledged within 50 ms/)
  })

  it('REDIS_WAIT_REPLICAS=0: no WAIT is sent, and every write path answers at once', async () => {
    const { denylist: d, captured } = denylist(lone, { waitReplicas: 0 })
    await waitFor(() => d.ping())
    const seen = await commandsSent(async () => {
      for (const [, write] of WRITES) await write(d, randomBytes(4).toString('hex'))
    }, WRITES.length)
    expect(seen).not.toContain('wait')
    expect(waitWarnings(captured)).toEqual([])
  })

  it('REDIS_WAIT_REPLICAS=1: MONITOR sees the WAIT right after each write (the control of the check above)', async () => {
    const { denylist: d } = denylist(lone, { waitReplicas: 1 })
    await waitFor(() => d.ping())
    const seen = await commandsSent(() => d.revokeKey('monitored', now() + 60), 1)
    await waitFor(() => expect(seen).toContain('wait'))
    // MONITOR also lists the script's own commands (SET, PUBLISH, ...) after its EVAL.
    expect(seen.indexOf('wait')).toBeGreaterThan(seen.findIndex((name) => name.startsWith('eval')))
  })
})

describe('on the shared Redis Cluster and Sentinel group (one replica per primary)', () => {
  it.each([
    ['Cluster', () => ({ kind: 'cluster' as const, nodes: inject('redisCluster').nodes })],
    ['Sentinel', () => ({ kind: 'sentinel' as const, ...inject('redisSentinel') })],
  ])('%s: every write path is acknowledged by a replica of the primary that took it', async (_name, target) => {
    const keyPrefix = `{tokensmith}:durable-${randomBytes(4).toString('hex')}:`
    const captured = captureLog()
    const d = createRedisDenylist({
      redis: target(),
      keyPrefix,
      clock: systemClock,
      log: captured.log,
      waitReplicas: 1,
      waitMs: 2_000,
    })
    denylists.push(d)
    await waitFor(() => d.ping(), 10_000)
    for (const [name, write] of WRITES)
      await expect(write(d, randomBytes(4).toString('hex')), name).resolves.toBeUndefined()
    expect(waitWarnings(captured)).toEqual([])
  })
})

describe('REDIS_WAIT_REPLICAS and REDIS_WAIT_MS', () => {
  it('default to 0 replicas with REDIS_URL (or no Redis), 1 with Sentinel or Cluster, and 500 ms', () => {
    expect(loadConfig({})).toMatchObject({ redisWaitReplicas: 0, redisWaitMs: 500 })
    expect(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379' })).toMatchObject({ redisWaitReplicas: 0 })
    expect(loadConfig({ REDIS_SENTINELS: '127.0.0.1:26379', REDIS_SENTINEL_NAME: 'm' })).toMatchObject({
      redisWaitReplicas: 1,
    })
    expect(loadConfig({ REDIS_CLUSTER_NODES: '127.0.0.1:7000' })).toMatchObject({ redisWaitReplicas: 1 })
    expect(
      loadConfig({ REDIS_CLUSTER_NODES: '127.0.0.1:7000', REDIS_WAIT_REPLICAS: '0', REDIS_WAIT_MS: '10' }),
    ).toMatchObject({ redisWaitReplicas: 0, redisWaitMs: 10 })
  })

  it.each([
    ['REDIS_WAIT_REPLICAS', '6'],
    ['REDIS_WAIT_REPLICAS', '-1'],
    ['REDIS_WAIT_REPLICAS', '1.5'],
    ['REDIS_WAIT_MS', '9'],
    ['REDIS_WAIT_MS', '10001'],
  ])('stop start-up on %s=%s, naming the variable and what is allowed', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(
      new RegExp(`^${name}="${value.replace('.', '\\.')}" is not valid: allowed is`),
    )
  })
})
