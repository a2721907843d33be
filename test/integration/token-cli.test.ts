import { randomBytes } from 'node:crypto'
import { rmSync } from 'node:fs'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { run } from '../../src/cli/token.js'
import { systemClock } from '../../src/clock.js'
import { entryKey } from '../../src/denylist/protocol.js'
import { generateKeyRecord, type KeyRecord } from '../../src/keys/key-file.js'
import { createKeyStore, keyRetention } from '../../src/keys/key-store.js'
import { writeKeyRecord } from '../../src/keys/keys-dir.js'
import { issueAccessToken } from '../../src/oauth/access-token.js'
import { runCli, tempDir } from '../helpers/cli.js'
import { freePort } from '../helpers/free-port.js'
import { ISSUER } from '../helpers/make-deps.js'
import { keysUnder as keysUnderIn } from '../helpers/redis-keys.js'

const redisUrl = inject('redisUrl')
const T = 30 // CLOCK_TOLERANCE default

let admin: Redis
let keysDir: string
let key: KeyRecord
const prefixes: string[] = []

beforeAll(async () => {
  admin = new Redis(redisUrl, { maxRetriesPerRequest: 1 })
  keysDir = tempDir('tokensmith-token-cli-')
  const now = systemClock()
  key = await generateKeyRecord('ES256', now - 60, now - 60)
  await writeKeyRecord(keysDir, key)
})

afterAll(async () => {
  for (const prefix of prefixes) {
    const keys = await keysUnder(prefix)
    if (keys.length > 0) await admin.del(...keys)
  }
  await admin.quit()
  rmSync(keysDir, { recursive: true, force: true })
})

const keysUnder = (prefix: string) => keysUnderIn(admin, prefix)

function env(overrides: Record<string, string> = {}) {
  const prefix = `test:${randomBytes(6).toString('hex')}:`
  prefixes.push(prefix)
  return { prefix, env: { REDIS_URL: redisUrl, REDIS_KEY_PREFIX: prefix, KEYS_DIR: keysDir, ISSUER, ...overrides } }
}

async function issue(signer: KeyRecord = key, issuer = ISSUER) {
  const keys = createKeyStore([signer], systemClock, { retention: keyRetention(T) })
  return issueAccessToken(
    { clock: systemClock, keys, issuer },
    { clientId: 'svc-a', scopes: ['read'], audience: 'https://api.example.com', ttl: 300 },
  )
}

function expectUsageError(out: { code: number; stdout: string; stderr: string }) {
  expect(out.code).toBe(2)
  expect(out.stdout).toBe('')
  expect(out.stderr).toMatch(/^error: /)
  expect(out.stderr).toContain('usage:')
}

describe('token CLI revoke', () => {
  it('revokes a token signed by a key in KEYS_DIR until exp + T, with the Redis entry carrying that TTL', async () => {
    const { prefix, env: vars } = env()
    const token = await issue()
    const exp = systemClock() + 300
    const out = await runCli(run, ['revoke', '--token', token.accessToken], vars)
    expect(out.stderr).toBe('')
    expect(out.code).toBe(0)
    expect(out.json()).toEqual({ revoked: { jti: token.jti, until: expect.any(Number) } })
    const { until } = out.json().revoked as { until: number }
    expect(Math.abs(until - (exp + T))).toBeLessThanOrEqual(1)

    expect(await keysUnder(prefix)).toEqual([entryKey(prefix, 'jti', token.jti)])
    const pttl = await admin.pttl(entryKey(prefix, 'jti', token.jti))
    expect(Math.abs(pttl - (until - Date.now() / 1000) * 1000)).toBeLessThanOrEqual(1_000)
    expect(pttl).toBeGreaterThan((300 + T - 2) * 1000)
  })

  it('revokes by --jti and --exp, keeping the entry until exp + T', async () => {
    const { prefix, env: vars } = env()
    const exp = systemClock() + 100
    const out = await runCli(run, ['revoke', '--jti', 'some-jti', '--exp', String(exp)], vars)
    expect(out.code).toBe(0)
    expect(out.json()).toEqual({ revoked: { jti: 'some-jti', until: exp + T } })
    expect(await keysUnder(prefix)).toEqual([entryKey(prefix, 'jti', 'some-jti')])
    const pttl = await admin.pttl(entryKey(prefix, 'jti', 'some-jti'))
    expect(Math.abs(pttl - (exp + T - Date.now() / 1000) * 1000)).toBeLessThanOrEqual(1_000)
  })

  it.each([
    ['no flags', ['revoke']],
    ['both --token and --jti', ['revoke', '--token', 'a.b.c', '--jti', 'x', '--exp', '2000000000']],
    ['--jti without --exp', ['revoke', '--jti', 'x']],
    ['a non-numeric --exp', ['revoke', '--jti', 'x', '--exp', 'tomorrow']],
    ['a negative --exp', ['revoke', '--jti', 'x', '--exp', '-5']],
    ['a fractional --exp', ['revoke', '--jti', 'x', '--exp', '2000000000.5']],
    ['an empty --jti', ['revoke', '--jti', '', '--exp', '2000000000']],
    ['--exp with --token', ['revoke', '--token', 'a.b.c', '--exp', '2000000000']],
    ['an unknown flag', ['revoke', '--token', 'a.b.c', '--force']],
    ['an unknown command', ['unrevoke', '--jti', 'x']],
    ['constructor, a name every object inherits', ['constructor']],
    ['toString, a name every object inherits', ['toString']],
    ['valueOf, a name every object inherits', ['valueOf']],
    ['hasOwnProperty, a name every object inherits', ['hasOwnProperty']],
    ['__proto__, a name every object inherits', ['__proto__']],
    ['no command', []],
  ])('exits 2 with usage on stderr and nothing on stdout for %s', async (_name, argv) => {
    const { prefix, env: vars } = env()
    expectUsageError(await runCli(run, argv, vars))
    expect(await keysUnder(prefix)).toEqual([])
  })

  it('exits 1 without REDIS_URL: a script cannot reach an in-memory denylist', async () => {
    const { env: vars } = env()
    const { REDIS_URL: _unset, ...withoutRedis } = vars
    const out = await runCli(run, ['revoke', '--jti', 'x', '--exp', String(systemClock() + 100)], withoutRedis)
    expect(out.code).toBe(1)
    expect(out.stdout).toBe('')
    expect(out.stderr).toMatch(/^error: .*REDIS_URL/)
  })

  it('exits 1 and writes nothing for a token not signed by a key in KEYS_DIR', async () => {
    const { prefix, env: vars } = env()
    const stranger = await generateKeyRecord('ES256', systemClock() - 60, systemClock() - 60)
    const out = await runCli(run, ['revoke', '--token', (await issue(stranger)).accessToken], vars)
    expect(out.code).toBe(1)
    expect(out.stdout).toBe('')
    expect(out.stderr).toMatch(/^error: /)
    expect(await keysUnder(prefix)).toEqual([])
  })

  it('exits 1 and writes nothing for a token of another issuer or garbage', async () => {
    const { prefix, env: vars } = env()
    const foreign = await runCli(
      run,
      ['revoke', '--token', (await issue(key, 'https://other.example.com')).accessToken],
      vars,
    )
    expect(foreign.code).toBe(1)
    expect(foreign.stdout).toBe('')
    const garbage = await runCli(run, ['revoke', '--token', 'not-a-token'], vars)
    expect(garbage.code).toBe(1)
    expect(garbage.stdout).toBe('')
    expect(await keysUnder(prefix)).toEqual([])
  })

  it('exits 1 for --exp already past exp + T: nothing to revoke, nothing written', async () => {
    const { prefix, env: vars } = env()
    const out = await runCli(run, ['revoke', '--jti', 'old', '--exp', String(systemClock() - T - 1)], vars)
    expect(out.code).toBe(1)
    expect(out.stdout).toBe('')
    expect(await keysUnder(prefix)).toEqual([])
  })

  it('exits 1 within about 7 s when Redis is unreachable', async () => {
    const port = await freePort()
    const { env: vars } = env({ REDIS_URL: `redis://127.0.0.1:${port}` })
    const started = Date.now()
    const out = await runCli(run, ['revoke', '--jti', 'x', '--exp', String(systemClock() + 100)], vars)
    const elapsed = Date.now() - started
    expect(out.code).toBe(1)
    expect(out.stdout).toBe('')
    expect(out.stderr).toMatch(/error: Redis is unreachable/)
    expect(elapsed).toBeLessThan(7_000)
  }, 15_000)
})
