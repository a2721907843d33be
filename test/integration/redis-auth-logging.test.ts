import { join } from 'node:path'
import { inspect } from 'node:util'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { run as clientCli } from '../../src/cli/client.js'
import { run as keysCli } from '../../src/cli/keys.js'
import { run as tokenCli } from '../../src/cli/token.js'
import { createApp } from '../../src/app.js'
import { systemClock } from '../../src/clock.js'
import { createRedisDenylist } from '../../src/denylist/redis.js'
import type { DenylistLog } from '../../src/denylist/redis-client.js'
import { createRevocationFeed } from '../../src/denylist/revocation-feed.js'
import { ensureKeys } from '../../src/keys/keys-dir.js'
import { runCli, tempDir } from '../helpers/cli.js'
import { FORM, basic, captureLog, makeDeps } from '../helpers/make-deps.js'
import { expectError } from '../helpers/oauth-error.js'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'
import { waitFor } from '../helpers/wait-for.js'

// When Redis refuses the login, ioredis attaches the failed AUTH command, password included, to
// its error. Whatever logs or reports that error (the server's log, the revocation feed's logger,
// the CLIs' stderr) must never show the password. The server here is ours, started with a
// password; we log in with wrong ones we know, and look for them in every output.

const RIGHT_PASSWORD = 'right-pw-8c41d2e07b'
const WRONG_PASSWORD = 'wrong-pw-3f9a7c15e2'
const ACL_PASSWORD = 'acl-pw-51be0d66a9'
const SECRETS = [RIGHT_PASSWORD, WRONG_PASSWORD, ACL_PASSWORD]

let redis: RedisServer
const LOGINS = [
  ['a wrong password', `:${WRONG_PASSWORD}`],
  ['an unknown ACL user', `baduser:${ACL_PASSWORD}`],
] as const

beforeAll(async () => {
  // The password is set once the server answers: the start-up check PINGs without one.
  redis = await startRedisServer()
  const admin = new Redis(redis.url, { maxRetriesPerRequest: 1 })
  await admin.config('SET', 'requirepass', RIGHT_PASSWORD)
  await admin.quit()
})
afterAll(async () => {
  await redis.stop()
})

/** A logger the way a resource server might pass `console`: every argument through util.inspect. */
function inspectingLog() {
  const lines: string[] = []
  const at = (...args: unknown[]) =>
    void lines.push(
      args.map((a) => (typeof a === 'string' ? a : inspect(a, { depth: 10, showHidden: true }))).join(' '),
    )
  const log: DenylistLog = { info: at, warn: at, error: at } as unknown as DenylistLog
  return { log, lines }
}

function expectNoSecret(output: string) {
  for (const secret of SECRETS) expect(output).not.toContain(secret)
}

const errorOf = (operation: () => Promise<unknown>) =>
  operation().then(
    () => undefined,
    (error: unknown) => error,
  )

describe.each(LOGINS)('Redis refusing the login (%s)', (_name, login) => {
  let url: string
  beforeAll(() => {
    url = `redis://${login}@127.0.0.1:${redis.port}`
  })

  it('the denylist and the revocation feed log WRONGPASS but never the password, and errors they throw carry none', async () => {
    const pino = captureLog('debug')
    const consoleLike = inspectingLog()
    const denylists = [pino.log, consoleLike.log].map((log) =>
      createRedisDenylist({ url, keyPrefix: 'test:auth:', clock: systemClock, log }),
    )
    const feeds = [pino.log, consoleLike.log].map((log) =>
      createRevocationFeed({ url, keyPrefix: 'test:auth:', clock: systemClock, log }),
    )
    try {
      await waitFor(() => {
        expect(pino.lines.filter((line) => line.includes('WRONGPASS')).length).toBeGreaterThanOrEqual(3)
        expect(consoleLike.lines.filter((line) => line.includes('WRONGPASS')).length).toBeGreaterThanOrEqual(3)
      })
      const thrown = [
        ...(await Promise.all(denylists.map((d) => errorOf(() => d.ping())))),
        ...(await Promise.all(denylists.map((d) => errorOf(() => d.revokeToken('j', systemClock() + 60))))),
        ...(await Promise.all(feeds.map((f) => errorOf(() => f.isRevoked({ jti: 'j' }))))),
      ]
      expect(thrown.every((error) => error instanceof Error)).toBe(true)
      expectNoSecret(pino.lines.join('\n'))
      expectNoSecret(consoleLike.lines.join('\n'))
      expectNoSecret(thrown.map((error) => inspect(error, { depth: 10, showHidden: true })).join('\n'))
      // What is logged: the error's type, code and message.
      expect(pino.records()).toContainEqual(
        expect.objectContaining({
          msg: 'redis unreachable; retrying in the background',
          redisError: expect.objectContaining({ code: 'WRONGPASS', message: expect.stringContaining('WRONGPASS') }),
        }),
      )
    } finally {
      await Promise.all([...denylists, ...feeds].map((x) => x.close()))
    }
  })

  it('the server log holds no password, neither at connect nor when a request fails with 503', async () => {
    const { log, lines } = captureLog('debug')
    const denylist = createRedisDenylist({ url, keyPrefix: 'test:auth:', clock: systemClock, log })
    try {
      const deps = await makeDeps({ clock: systemClock, denylist, log })
      const app = createApp(deps)
      const post = (path: string, body: string) =>
        app.request(path, {
          method: 'POST',
          headers: { 'content-type': FORM, authorization: basic('svc-a', 'tks_secret-of-a') },
          body,
        })
      const token = (
        (await (await post('/oauth/token', 'grant_type=client_credentials')).json()) as { access_token: string }
      ).access_token
      await waitFor(() => expect(lines.some((line) => line.includes('WRONGPASS'))).toBe(true))
      await expectError(await post('/oauth/introspect', `token=${token}`), 503, 'temporarily_unavailable')
      await expectError(await post('/oauth/revoke', `token=${token}`), 503, 'temporarily_unavailable')
      expect(lines.some((line) => line.includes('"msg":"request failed"'))).toBe(true)
      expectNoSecret(lines.join('\n'))
    } finally {
      await denylist.close()
    }
  })

  it('token revoke, keys revoke and client delete print no password on stderr', async () => {
    const dir = tempDir()
    const keysDir = join(dir, 'keys')
    const { records } = await ensureKeys(keysDir, 'ES256', { clock: systemClock, log: captureLog().log })
    const env = {
      REDIS_URL: url,
      REDIS_KEY_PREFIX: 'test:auth:',
      KEYS_DIR: keysDir,
      CLIENTS_FILE: join(dir, 'clients.json'),
    }
    const created = await runCli(
      clientCli,
      ['create', '--id', 'billing', '--scope', 'read', '--audience', 'https://api.example.com'],
      env,
    )
    expect(created.code).toBe(0)

    const outputs = await Promise.all([
      runCli(tokenCli, ['revoke', '--jti', 'some-jti', '--exp', String(systemClock() + 300)], env),
      runCli(keysCli, ['revoke', '--kid', records[1]!.kid], env),
      runCli(clientCli, ['delete', '--id', 'billing'], env),
    ])
    for (const out of outputs) {
      expect(out.code).toBe(1)
      expect(out.stderr).toContain('WRONGPASS')
      expectNoSecret(out.stdout + out.stderr)
    }
  }, 30_000)
})
