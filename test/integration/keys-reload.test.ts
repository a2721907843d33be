import { chmodSync, chownSync, readFileSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { decodeProtectedHeader } from 'jose'
import { afterEach, describe, expect, it } from 'vitest'
import { run as clientCli } from '../../src/cli/client.js'
import { run as keysCli } from '../../src/cli/keys.js'
import { createApp } from '../../src/app.js'
import { watchKeys } from '../../src/keys/reload.js'
import { systemClock } from '../../src/clock.js'
import type { Deps } from '../../src/deps.js'
import { generateKeyRecord, type KeyRecord } from '../../src/keys/key-file.js'
import { keyRetention } from '../../src/keys/key-store.js'
import { ensureKeys, writeKeyRecord } from '../../src/keys/keys-dir.js'
import type { Watcher } from '../../src/storage/watch.js'
import { writeFileAtomic } from '../../src/storage/atomic-file.js'
import { runCli, tempDir } from '../helpers/cli.js'
import { FORM, T0, basic, captureLog, fixedClock, makeDeps } from '../helpers/make-deps.js'
import { spawnServer, type SpawnedServer } from '../helpers/spawn-server.js'

// A KEYS_DIR reload is all or nothing (README, operator's runbook). A broken, truncated,
// undecryptable or vanished key file is refused and logged; the last good keys keep signing and
// stay published, /readyz stays 200.
const PASSPHRASE = 'correct horse battery staple'
const WRONG = 'wrong passphrase, not the one'
const RETENTION = keyRetention(30)
const REFUSED = 'reload failed; keeping the last good state'

let watchers: Watcher[] = []
let servers: SpawnedServer[] = []
afterEach(async () => {
  for (const watcher of watchers) watcher.stop()
  // SIGTERM, which tsx relays to the server process (a SIGKILL would only reach tsx).
  for (const server of servers) server.kill('SIGTERM')
  await Promise.all(
    servers.map((server) => Promise.race([server.exited, new Promise((resolve) => setTimeout(resolve, 5000))])),
  )
  watchers = []
  servers = []
})

async function setup() {
  const keysDir = join(tempDir(), 'keys')
  const clock = fixedClock(T0)
  const contents = await ensureKeys(keysDir, 'ES256', { clock, log: captureLog().log, passphrase: PASSPHRASE })
  const [current, standby] = contents.records as [KeyRecord, KeyRecord]
  // KEY_PUBLISH_MIN=0: these tests are about reloads, and promote a standby key published seconds before.
  const config = { keysDir, keysPassphrase: PASSPHRASE, keyPublishMin: 0 }
  const deps = await makeDeps({ clock, keys: contents.records, config })
  const watcher = await watchKeys(deps, 60_000)
  watchers.push(watcher)
  const env = { KEYS_DIR: keysDir, KEYS_PASSPHRASE: PASSPHRASE, KEY_ACTIVATION_DELAY: '900', CLOCK_TOLERANCE: '30' }
  const cli = (argv: string[]) => runCli((args, io) => keysCli(args, io, clock), argv, env)
  const file = (kid: string) => join(keysDir, `${kid}.json`)
  return { keysDir, clock, deps, watcher, current, standby, cli, file }
}

/** The app built on these deps still issues tokens and is ready; returns the token's kid. */
async function serves(deps: Deps) {
  const app = createApp(deps)
  const res = await app.request('/oauth/token', {
    method: 'POST',
    headers: { 'content-type': FORM, authorization: basic('svc-a', 'tks_secret-of-a') },
    body: 'grant_type=client_credentials',
  })
  expect(res.status).toBe(200)
  expect((await app.request('/readyz')).status).toBe(200)
  const jwks = await app.request('/.well-known/jwks.json')
  expect(jwks.status).toBe(200)
  const { access_token: token } = (await res.json()) as { access_token: string }
  return { kid: decodeProtectedHeader(token).kid, jwks: await jwks.text() }
}

const logged = (deps: { logLines: string[] }, msg: string) =>
  deps.logLines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((record) => record.msg === msg)

describe('KEYS_DIR hot reload', () => {
  it('applies a valid rotation: a new store with the new current key', async () => {
    const { deps, watcher, clock, current, standby, cli } = await setup()
    const before = deps.keys
    expect((await serves(deps)).kid).toBe(current.kid)
    clock.set(T0 + 10)
    expect((await cli(['rotate', '--now'])).code).toBe(0)
    await watcher.check()
    expect(deps.keys).not.toBe(before)
    expect(deps.keys.signingKey().kid).toBe(standby.kid)
    expect(deps.keys.size).toBe(3) // the retired key, the new current one, a new standby
    expect((await serves(deps)).kid).toBe(standby.kid)
    expect(logged(deps, 'signing keys reloaded')).toEqual([
      expect.objectContaining({ kid: current.kid, published: 2 }), // the first check, at start
      expect.objectContaining({ kid: standby.kid, published: 3 }),
    ])
    expect(logged(deps, REFUSED)).toEqual([])
  })

  const breakages: [string, (text: string, record: KeyRecord) => string | undefined, (kid: string) => string][] = [
    [
      'broken JSON',
      (text) => `${text.slice(0, 20)}}}`,
      (kid) => `${kid}.json: not valid JSON (truncated or half-written?)`,
    ],
    [
      'a schema error',
      (text) => JSON.stringify({ ...JSON.parse(text), activates: 'soon' }),
      (kid) => `${kid}.json: field activates: Invalid input: expected number, received string`,
    ],
    ['an empty (truncated) file', () => '', (kid) => `${kid}.json: not valid JSON (truncated or half-written?)`],
    [
      'a passphrase other than KEYS_PASSPHRASE',
      (text, record) =>
        JSON.stringify({
          ...JSON.parse(text),
          privateKey: record.privateKey.export({
            type: 'pkcs8',
            format: 'pem',
            cipher: 'aes-256-cbc',
            passphrase: WRONG,
          }),
        }),
      (kid) => `${kid}.json: KEYS_PASSPHRASE does not decrypt the private key`,
    ],
    ['deletion', () => undefined, (kid) => `published key ${kid} (current) disappeared without being revoked`],
  ]

  it.each(breakages)(
    'refuses a reload after %s of the current key file, keeps signing, and applies the fixed file',
    async (_, breakText, problem) => {
      const { keysDir, deps, watcher, current, file } = await setup()
      const original = readFileSync(file(current.kid), 'utf8')
      const before = deps.keys
      const jwksBefore = before.jwks().body

      const broken = breakText(original, current)
      if (broken === undefined) unlinkSync(file(current.kid))
      else await writeFileAtomic(file(current.kid), broken)
      await watcher.check()

      expect(deps.keys).toBe(before)
      expect(logged(deps, REFUSED)).toEqual([
        expect.objectContaining({ level: 50, source: keysDir, problem: problem(current.kid) }),
      ])
      const served = await serves(deps)
      expect(served.kid).toBe(current.kid)
      expect(served.jwks).toBe(jwksBefore)
      await watcher.check() // nothing changed since: no second attempt, no second error
      expect(logged(deps, REFUSED)).toHaveLength(1)

      await writeFileAtomic(file(current.kid), original)
      await watcher.check()
      expect(deps.keys).not.toBe(before)
      expect(deps.keys.signingKey().kid).toBe(current.kid)
      expect(deps.keys.jwks().body).toBe(jwksBefore)
      expect(logged(deps, REFUSED)).toHaveLength(1)
      expect(
        logged(
          deps,
          'key file is readable by others; run chmod 600 on it (for a Kubernetes Secret volume, set defaultMode: 0440 on the volume and fsGroup in the pod securityContext)',
        ),
      ).toEqual([])
    },
  )

  it('refuses a key file truncated in place, and keeps signing', async () => {
    const { deps, watcher, current, file } = await setup()
    const before = deps.keys
    truncateSync(file(current.kid), 200)
    await watcher.check()
    expect(deps.keys).toBe(before)
    expect(logged(deps, REFUSED)[0]!.problem).toBe(`${current.kid}.json: not valid JSON (truncated or half-written?)`)
    expect((await serves(deps)).kid).toBe(current.kid)
  })

  it('a corrupt standby file refuses the reload but does not disturb signing', async () => {
    const { deps, watcher, current, standby, file } = await setup()
    const before = deps.keys
    writeFileSync(file(standby.kid), '{"kid": "', { mode: 0o600 })
    await watcher.check()
    expect(deps.keys).toBe(before)
    expect(logged(deps, REFUSED)[0]!.problem).toBe(`${standby.kid}.json: not valid JSON (truncated or half-written?)`)
    expect((await serves(deps)).kid).toBe(current.kid)
  })

  it('a corrupt next key file does not disturb signing, and the last good keys still switch on schedule', async () => {
    const { deps, watcher, clock, current, standby, cli, file } = await setup()
    clock.set(T0 + 10)
    expect((await cli(['rotate'])).code).toBe(0)
    await watcher.check()
    const scheduled = deps.keys
    expect(scheduled.timelines().find((t) => t.kid === standby.kid)!.state).toBe('next')

    writeFileSync(file(standby.kid), 'garbage', { mode: 0o600 })
    await watcher.check()
    expect(deps.keys).toBe(scheduled)
    expect((await serves(deps)).kid).toBe(current.kid)
    clock.set(T0 + 910)
    expect((await serves(deps)).kid).toBe(standby.kid)
  })

  it('accepts the deletion of an expired key', async () => {
    const { deps, watcher, clock, current, standby, cli, file } = await setup()
    clock.set(T0 + 10)
    await cli(['rotate', '--now'])
    await watcher.check()
    clock.set(T0 + 10 + RETENTION)
    expect(deps.keys.timelines().find((t) => t.kid === current.kid)!.state).toBe('expired')
    const before = deps.keys
    unlinkSync(file(current.kid))
    await watcher.check()
    expect(deps.keys).not.toBe(before)
    expect(deps.keys.records.map((r) => r.kid)).not.toContain(current.kid)
    expect(deps.keys.size).toBe(2)
    expect(logged(deps, REFUSED)).toEqual([])
    expect((await serves(deps)).kid).toBe(standby.kid)
  })

  it('refuses the deletion of a retired key that is still published, and keeps verifying with it', async () => {
    const { keysDir, deps, watcher, clock, current, cli, file } = await setup()
    clock.set(T0 + 10)
    await cli(['rotate', '--now'])
    await watcher.check()
    const before = deps.keys
    unlinkSync(file(current.kid))
    await watcher.check()
    expect(deps.keys).toBe(before)
    expect(logged(deps, REFUSED)).toEqual([
      expect.objectContaining({
        source: keysDir,
        problem: `published key ${current.kid} (retired) disappeared without being revoked`,
      }),
    ])
    expect(deps.keys.verificationKey(current.kid)).toEqual({ alg: 'ES256', publicKey: current.publicKey })
  })

  it('accepts the deletion of a standby key, which leaves the JWKS', async () => {
    const { deps, watcher, current, standby, file } = await setup()
    const before = deps.keys
    unlinkSync(file(standby.kid))
    await watcher.check()
    expect(deps.keys).not.toBe(before)
    expect(logged(deps, REFUSED)).toEqual([])
    const served = await serves(deps)
    expect(served.kid).toBe(current.kid)
    expect((JSON.parse(served.jwks) as { keys: { kid: string }[] }).keys.map((k) => k.kid)).toEqual([current.kid])
  })

  it('applies keys revoke: the revoked key leaves the JWKS and its tokens are denylisted', async () => {
    const { deps, watcher, clock, current, standby, cli } = await setup()
    clock.set(T0 + 10)
    expect((await cli(['revoke', '--kid', current.kid])).code).toBe(0)
    await watcher.check()
    expect(logged(deps, REFUSED)).toEqual([])
    expect(deps.keys.verificationKey(current.kid)).toBeUndefined()
    expect((await serves(deps)).kid).toBe(standby.kid)
    expect(await deps.denylist.isRevoked({ jti: 'any', kid: current.kid })).toBe(true)
    clock.set(T0 + 10 + RETENTION)
    expect(await deps.denylist.isRevoked({ jti: 'any', kid: current.kid })).toBe(false)
  })
})

describe('KEYS_DIR permissions on reload', () => {
  const WRITABLE = 'KEYS_DIR is writable by group or others'
  const ready = async (deps: Deps) => {
    const res = await createApp(deps).request('/readyz')
    return { status: res.status, body: (await res.json()) as unknown }
  }

  it('a key planted in a KEYS_DIR others can write is never published; /readyz answers 503 until chmod 700', async () => {
    const { keysDir, deps, watcher, current } = await setup()
    const before = deps.keys
    chmodSync(keysDir, 0o777)
    // Activates with the current key and was created later: it would sign if it were loaded.
    const planted = await generateKeyRecord('ES256', T0 + 1, T0)
    await writeKeyRecord(keysDir, planted)
    await watcher.check()

    expect(deps.keys).toBe(before)
    expect(deps.keys.verificationKey(planted.kid)).toBeUndefined()
    expect(deps.keys.signingKey().kid).toBe(current.kid)
    expect(await ready(deps)).toEqual({ status: 503, body: { status: 'not ready', missing: [WRITABLE] } })
    expect(logged(deps, REFUSED)).toEqual([
      expect.objectContaining({
        level: 50,
        source: keysDir,
        problem: `${WRITABLE}: ${keysDir} has mode 0777, and whoever can write it can add a signing key; run chmod 700 ${keysDir}`,
      }),
    ])
    await watcher.check() // the same failing state: no second error
    expect(logged(deps, REFUSED)).toHaveLength(1)

    // The operator removes the stranger's key and closes the directory.
    unlinkSync(join(keysDir, `${planted.kid}.json`))
    chmodSync(keysDir, 0o700)
    await watcher.check()
    expect(await ready(deps)).toEqual({ status: 200, body: { status: 'ready' } })
    expect((await serves(deps)).kid).toBe(current.kid)
    expect(logged(deps, REFUSED)).toHaveLength(1)
  })

  it('a chmod g+w alone is noticed at the next check, and undoing it makes /readyz ready again', async () => {
    const { keysDir, deps, watcher } = await setup()
    chmodSync(keysDir, 0o770)
    await watcher.check()
    expect(await ready(deps)).toEqual({ status: 503, body: { status: 'not ready', missing: [WRITABLE] } })
    chmodSync(keysDir, 0o700)
    await watcher.check()
    expect(await ready(deps)).toEqual({ status: 200, body: { status: 'ready' } })
  })

  it('refuses to reload a KEYS_DIR owned by another user, with /readyz 503, until it is ours again', async () => {
    const { keysDir, deps, watcher, current } = await setup()
    const before = deps.keys
    chownSync(keysDir, 65534, 65534) // tests run as root: give it to nobody
    await watcher.check()
    expect(deps.keys).toBe(before)
    expect(await ready(deps)).toEqual({
      status: 503,
      body: { status: 'not ready', missing: ['KEYS_DIR is not owned by the user running tokensmith'] },
    })
    expect(logged(deps, REFUSED)[0]!.problem).toMatch(
      new RegExp(`^KEYS_DIR is not owned by the user running tokensmith: ${keysDir} belongs to uid 65534, `),
    )
    chownSync(keysDir, process.getuid!(), process.getgid!())
    await watcher.check()
    expect(await ready(deps)).toEqual({ status: 200, body: { status: 'ready' } })
    expect((await serves(deps)).kid).toBe(current.kid)
  })

  it('group-readable key files (0440, 0640) load without an error; a file readable by others is logged as one', async () => {
    const { deps, watcher, current, standby, file } = await setup()
    chmodSync(file(current.kid), 0o440)
    chmodSync(file(standby.kid), 0o640)
    await watcher.check()
    expect(logged(deps, REFUSED)).toEqual([])
    expect(deps.logLines.map((line) => JSON.parse(line) as { level: number }).filter((r) => r.level >= 50)).toEqual([])
    expect((await serves(deps)).kid).toBe(current.kid)

    chmodSync(file(standby.kid), 0o644)
    await watcher.check()
    expect(
      logged(
        deps,
        'key file is readable by others; run chmod 600 on it (for a Kubernetes Secret volume, set defaultMode: 0440 on the volume and fsGroup in the pod securityContext)',
      ),
    ).toEqual([expect.objectContaining({ level: 50, file: `${standby.kid}.json` })])
  })
})

describe('SIGHUP', () => {
  it('applies keys rotate --now at once: the token kid and the JWKS change within 1 s', async () => {
    const root = tempDir()
    // A slow poll, so only SIGHUP can explain a switch within 1 s.
    const env = {
      KEYS_DIR: join(root, 'keys'),
      CLIENTS_FILE: join(root, 'clients.json'),
      REDIS_URL: '',
      LOG_LEVEL: 'info',
      RELOAD_INTERVAL: '60',
      // The standby key promoted was published moments before, at start-up: no publish rule here.
      KEY_PUBLISH_MIN: '0',
    }
    const created = await runCli(
      clientCli,
      ['create', '--id', 'svc-a', '--scope', 'read', '--audience', 'https://api.example.com'],
      env,
    )
    const auth = basic('svc-a', created.json().client_secret as string)
    const server = await spawnServer(env)
    servers.push(server)
    const kidNow = async () => {
      const res = await fetch(`${server.url}/oauth/token`, {
        method: 'POST',
        headers: { 'content-type': FORM, authorization: auth },
        body: 'grant_type=client_credentials',
      })
      expect(res.status).toBe(200)
      return decodeProtectedHeader(((await res.json()) as { access_token: string }).access_token).kid
    }
    const jwksKids = async () =>
      ((await (await fetch(`${server.url}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] }).keys
        .map((k) => k.kid)
        .sort()

    const before = await kidNow()
    const listing = (await runCli(keysCli, ['list'], env)).json() as {
      keys: { kid: string; activates: number | null }[]
    }
    const activated = listing.keys.find((k) => k.kid === before)!.activates!
    // Rotate in a later second than the current key's activation, so the switch is immediate.
    while (systemClock() <= activated) await new Promise((resolve) => setTimeout(resolve, 50))

    const rotated = await runCli(keysCli, ['rotate', '--now'], env)
    expect(rotated.code).toBe(0)
    const { kid: newKid, activates } = rotated.json().rotated as { kid: string; activates: number }
    expect(activates).toBeLessThanOrEqual(systemClock())
    const newStandby = (rotated.json().keys as { kid: string; state: string }[]).find((k) => k.state === 'standby')!.kid
    expect(newKid).not.toBe(before)

    const sent = performance.now()
    process.kill(server.proc.pid!, 'SIGHUP') // spawnServer runs node itself, as npm start does
    while ((await kidNow()) !== newKid) {
      expect(performance.now() - sent).toBeLessThan(1000)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    const elapsed = performance.now() - sent
    console.info(`SIGHUP to new signing key: ${elapsed.toFixed(0)} ms`)
    expect(elapsed).toBeLessThan(1000)
    expect(await jwksKids()).toEqual([before, newKid, newStandby].sort())
    expect(server.output.some((line) => line.includes('"msg":"SIGHUP: reloading"'))).toBe(true)
    expect(server.output.some((line) => line.includes('"msg":"signing keys reloaded"'))).toBe(true)
  }, 30_000)
})
