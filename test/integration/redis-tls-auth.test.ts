import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp } from '../../src/app.js'
import { buildDeps } from '../../src/bootstrap.js'
import { systemClock } from '../../src/clock.js'
import { ConfigError, loadConfig } from '../../src/config.js'
import { DenylistUnavailableError } from '../../src/denylist/denylist.js'
import { entryKey } from '../../src/denylist/protocol.js'
import { tempDir } from '../helpers/cli.js'
import { useCleanups } from '../helpers/cleanups.js'
import { DEFAULT_CLIENTS, FORM, basic, captureLog, clientEntry } from '../helpers/make-deps.js'
import { expectError } from '../helpers/oauth-error.js'
import { adminCommand } from '../helpers/redis-admin.js'
import { type RedisSentinelGroup, startRedisSentinelGroup } from '../helpers/redis-sentinel.js'
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js'
import { waitFor } from '../helpers/wait-for.js'

// The Redis settings of the README (Redis topologies), end to end: environment → loadConfig →
// buildDeps (the server's own assembly) → the app. TLS to one node checked against REDIS_TLS_CA_FILE
// (https://redis.io/docs/latest/operate/oss_and_stack/management/security/encryption/), and the
// data and sentinel passwords read from files the way Kubernetes mounts a Secret (trailing newline),
// never logged (https://redis.io/docs/latest/operate/oss_and_stack/management/sentinel/#configuring-sentinel-instances-with-authentication).

const defer = useCleanups()
const dir = tempDir('tokensmith-redis-tls-auth-')
const KEYS_DIR = join(dir, 'keys')
const CLIENTS_FILE = join(dir, 'clients.json')
const CLIENT = DEFAULT_CLIENTS[0]!

afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

beforeAll(() => {
  writeFileSync(CLIENTS_FILE, JSON.stringify({ clients: [clientEntry(CLIENT)] }), { mode: 0o600 })
})

/** The server's dependencies as `serve` builds them, from this environment, with its log captured. */
async function assemble(env: Record<string, string>) {
  const captured = captureLog('debug')
  const keyPrefix = `tls-auth-${randomBytes(4).toString('hex')}:`
  const config = loadConfig({ KEYS_DIR, CLIENTS_FILE, LOG_LEVEL: 'debug', REDIS_KEY_PREFIX: keyPrefix, ...env })
  const deps = await buildDeps(config, captured.log, systemClock)
  defer(() => deps.denylist.close())
  const app = createApp(deps)
  const post = (path: string, body: string) =>
    app.request(path, {
      method: 'POST',
      headers: { 'content-type': FORM, authorization: basic(CLIENT.id, CLIENT.secret) },
      body,
    })
  return { deps, app, post, keyPrefix, captured }
}

type Assembled = Awaited<ReturnType<typeof assemble>>

/** A token from the app, and its claims. */
async function issue({ post }: Assembled) {
  const res = await post('/oauth/token', 'grant_type=client_credentials')
  expect(res.status).toBe(200)
  const token = ((await res.json()) as { access_token: string }).access_token
  const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as {
    jti: string
    client_id: string
    iat: number
  }
  return { token, claims }
}

/** Waits for the denylist's one log line about a store it cannot reach, its message matching `why`. */
async function loggedUnreachable(server: Assembled, why: RegExp) {
  await waitFor(() =>
    expect(server.captured.records()).toContainEqual(
      expect.objectContaining({
        msg: 'redis unreachable; retrying in the background',
        redisError: expect.objectContaining({ message: expect.stringMatching(why) }),
      }),
    ),
  )
}

/** The denylist cannot be used: ping rejects, /readyz and a revocation answer 503. */
async function expectUnavailable(server: Assembled) {
  await expect(server.deps.denylist.ping()).rejects.toBeInstanceOf(DenylistUnavailableError)
  const ready = await server.app.request('/readyz')
  expect(ready.status).toBe(503)
  expect(await ready.json()).toEqual({ status: 'not ready', missing: ['denylist (redis)'] })
  const { token } = await issue(server)
  await expectError(await server.post('/oauth/revoke', `token=${token}`), 503, 'temporarily_unavailable')
}

describe('REDIS_URL=rediss:// with REDIS_TLS_CA_FILE (one TLS-only node)', () => {
  const tlsDir = join(dir, 'tls')
  const file = (name: string) => join(tlsDir, name)
  let redis: RedisServer
  /** Every certificate and key made here: none of it may reach a log line. */
  let material: string[]

  beforeAll(async () => {
    mkdirSync(tlsDir)
    const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' })
    const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
    for (const ca of ['ca', 'other-ca'])
      openssl([
        ...['req', '-x509', ...ecKey, '-days', '1', '-subj', `/CN=tokensmith test ${ca}`],
        ...['-keyout', file(`${ca}.key`), '-out', file(`${ca}.pem`)],
      ])
    openssl([
      'req',
      '-new',
      ...ecKey,
      '-subj',
      '/CN=localhost',
      '-keyout',
      file('redis.key'),
      '-out',
      file('redis.csr'),
    ])
    writeFileSync(file('san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n')
    openssl([
      ...['x509', '-req', '-in', file('redis.csr'), '-CA', file('ca.pem'), '-CAkey', file('ca.key')],
      ...['-CAcreateserial', '-days', '1', '-extfile', file('san.ext'), '-out', file('redis.crt')],
    ])
    material = ['ca.pem', 'ca.key', 'other-ca.pem', 'other-ca.key', 'redis.crt', 'redis.key'].map((name) =>
      readFileSync(file(name), 'utf8'),
    )
    redis = await startRedisServer({
      tls: { certFile: file('redis.crt'), keyFile: file('redis.key'), caFile: file('ca.pem') },
    })
  })
  afterAll(async () => {
    await redis?.stop()
  })

  /** No PEM armour and no line of any certificate's or key's base64 body in the log. */
  function expectNoKeyMaterial(lines: string[]) {
    const log = lines.join('\n')
    expect(log).not.toContain('-----BEGIN')
    for (const pem of material)
      for (const line of pem.split('\n').filter((l) => l.length > 0 && !l.startsWith('-----')))
        expect(log).not.toContain(line)
  }

  it('pings, stores a revocation that isRevoked sees and that is in Redis when read back over TLS', async () => {
    const server = await assemble({ REDIS_URL: redis.url, REDIS_TLS_CA_FILE: file('ca.pem') })
    expect(server.deps.config.redis).toMatchObject({ kind: 'single', tls: { ca: material[0]!.trimEnd() } })
    await waitFor(() => server.deps.denylist.ping(), 5_000)
    expect((await server.app.request('/readyz')).status).toBe(200)

    const { token, claims } = await issue(server)
    expect((await server.post('/oauth/revoke', `token=${token}`)).status).toBe(200)
    expect(await server.deps.denylist.isRevoked(claims)).toBe(true)
    const introspected = await server.post('/oauth/introspect', `token=${token}`)
    expect(await introspected.json()).toEqual({ active: false })

    const reader = new Redis(redis.url, { tls: { ca: material[0] }, maxRetriesPerRequest: 1 })
    defer(() => reader.disconnect())
    expect(await reader.exists(entryKey(server.keyPrefix, 'jti', claims.jti))).toBe(1)
    expect(server.captured.records()).toContainEqual(
      expect.objectContaining({ msg: 'denylist: Redis', topology: 'single', tls: true }),
    )
    expectNoKeyMaterial(server.captured.lines)
  })

  it.each([
    ['a CA that did not sign the server certificate', () => ({ REDIS_TLS_CA_FILE: file('other-ca.pem') })],
    ['no REDIS_TLS_CA_FILE (the system CAs, which do not know ours)', () => ({})],
  ])('with %s: cannot connect, answers 503, keeps running, logs no key material', async (_name, env) => {
    const server = await assemble({ REDIS_URL: redis.url, ...env() })
    // The handshake is refused and logged once; reconnecting goes on in the background.
    await loggedUnreachable(server, /certificate/i)
    await new Promise((resolve) => setTimeout(resolve, 300)) // a few more refused handshakes
    await expectUnavailable(server)
    expectNoKeyMaterial(server.captured.lines)
  })

  it('redis:// to the TLS port never works in clear (and with REDIS_TLS_CA_FILE start-up stops)', async () => {
    const plain = `redis://127.0.0.1:${redis.port}`
    expect(() => loadConfig({ REDIS_URL: plain, REDIS_TLS_CA_FILE: file('ca.pem') })).toThrow(ConfigError)
    expect(() => loadConfig({ REDIS_URL: plain, REDIS_TLS_CA_FILE: file('ca.pem') })).toThrow(/write rediss:\/\//)

    const server = await assemble({ REDIS_URL: plain })
    // The TLS port resets a connection that speaks RESP in clear.
    await loggedUnreachable(server, /ECONNRESET|socket|closed/i)
    await new Promise((resolve) => setTimeout(resolve, 300)) // a few more connect attempts
    await expectUnavailable(server)
    const reader = new Redis(redis.url, { tls: { ca: material[0] }, maxRetriesPerRequest: 1 })
    defer(() => reader.disconnect())
    expect(await reader.keys(`${server.keyPrefix}*`)).toEqual([])
  })
})

describe('REDIS_SENTINELS with REDIS_PASSWORD_FILE and REDIS_SENTINEL_PASSWORD_FILE', () => {
  const DATA_PASSWORD = `data-pw-${randomBytes(6).toString('hex')}`
  const SENTINEL_PASSWORD = `sentinel-pw-${randomBytes(6).toString('hex')}`
  const WRONG_PASSWORD = `wrong-pw-${randomBytes(6).toString('hex')}`
  const SECRETS = [DATA_PASSWORD, SENTINEL_PASSWORD, WRONG_PASSWORD]
  /** As `echo` or a Kubernetes Secret writes it: with a trailing newline. */
  const secretFile = (name: string, value: string) => {
    const path = join(dir, name)
    writeFileSync(path, `${value}\n`, { mode: 0o600 })
    return path
  }
  let group: RedisSentinelGroup
  let env: () => Record<string, string>

  beforeAll(async () => {
    // One sentinel (quorum 1) and one replica: enough for every AUTH path, and quick to settle.
    group = await startRedisSentinelGroup({
      name: 'tls-auth',
      sentinels: 1,
      replicas: 1,
      password: DATA_PASSWORD,
      sentinelPassword: SENTINEL_PASSWORD,
    })
    env = () => ({
      REDIS_SENTINELS: group.sentinels.map(({ host, port }) => `${host}:${port}`).join(','),
      REDIS_SENTINEL_NAME: group.name,
      REDIS_PASSWORD_FILE: secretFile('redis-password', DATA_PASSWORD),
      REDIS_SENTINEL_PASSWORD_FILE: secretFile('sentinel-password', SENTINEL_PASSWORD),
      // The replica's acknowledgement is what a 200 waits for; give a loaded test machine time for it.
      REDIS_WAIT_MS: '3000',
    })
  }, 30_000)
  afterAll(async () => {
    await group?.stop()
  })

  function expectNoSecret(lines: string[]) {
    const log = lines.join('\n')
    for (const secret of SECRETS) expect(log).not.toContain(secret)
  }

  it('a revocation through POST /oauth/revoke is stored on the primary (and its replica), with no password logged', async () => {
    const server = await assemble(env())
    await waitFor(() => server.deps.denylist.ping(), 5_000)
    expect((await server.app.request('/readyz')).status).toBe(200)

    const { token, claims } = await issue(server)
    // REDIS_WAIT_REPLICAS defaults to 1 with Sentinel: the 200 means the replica has it too.
    expect((await server.post('/oauth/revoke', `token=${token}`)).status).toBe(200)
    expect(await server.deps.denylist.isRevoked(claims)).toBe(true)
    const key = entryKey(server.keyPrefix, 'jti', claims.jti)
    const primary = await group.primary()
    expect(await adminCommand(primary.port, 'EXISTS', [key], { password: DATA_PASSWORD })).toBe(1)
    for (const replica of await group.replicas())
      expect(await adminCommand(replica.port, 'EXISTS', [key], { password: DATA_PASSWORD })).toBe(1)

    expect(server.captured.records()).toContainEqual(
      expect.objectContaining({ msg: 'denylist: Redis', topology: 'sentinel', master: group.name }),
    )
    expectNoSecret(server.captured.lines)
    // Read without the newline the files end with.
    expect(server.deps.config.redis).toMatchObject({ password: DATA_PASSWORD, sentinelPassword: SENTINEL_PASSWORD })
  })

  it.each([
    ['data', 'REDIS_PASSWORD_FILE'],
    ['sentinel', 'REDIS_SENTINEL_PASSWORD_FILE'],
  ])('a wrong %s password: 503, and the log says why (WRONGPASS) but holds no password', async (_name, variable) => {
    const server = await assemble({ ...env(), [variable]: secretFile(`wrong-${variable}`, WRONG_PASSWORD) })
    await loggedUnreachable(server, /WRONGPASS/)
    await expectUnavailable(server)
    expectNoSecret(server.captured.lines)
  })
})
