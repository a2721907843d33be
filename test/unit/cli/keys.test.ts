import { randomBytes } from 'node:crypto'
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { describe, expect, inject, it } from 'vitest'
import { run } from '../../../src/cli/keys.js'
import { systemClock, type Clock } from '../../../src/clock.js'
import { generateKeyRecord, type KeyRecord } from '../../../src/keys/key-file.js'
import { createKeyStore, keyRetention } from '../../../src/keys/key-store.js'
import { ensureKeys, readKeysDir, writeKeyRecord } from '../../../src/keys/keys-dir.js'
import { runCli, tempDir } from '../../helpers/cli.js'
import { T0, captureLog, fixedClock } from '../../helpers/make-deps.js'

const DELAY = 900
const RETENTION = keyRetention(30)

async function setup(clock: Clock = fixedClock(T0)) {
  const dir = tempDir()
  const keysDir = join(dir, 'keys')
  const env = {
    KEYS_DIR: keysDir,
    CLIENTS_FILE: join(dir, 'clients.json'),
    KEY_ACTIVATION_DELAY: String(DELAY),
    CLOCK_TOLERANCE: '30',
  }
  const { records } = await ensureKeys(keysDir, 'ES256', { clock, log: captureLog().log })
  const [current, standby] = records as [KeyRecord, KeyRecord]
  return { keysDir, env, current, standby }
}

/** `keys <argv>` in-process at the given time. */
const keys = (argv: string[], env: Record<string, string>, at: number | Clock) =>
  runCli((args, io) => run(args, io, typeof at === 'number' ? () => at : at), argv, env)

type Listed = {
  kid: string
  alg: string
  state: string
  created: number
  activates: number | null
  signsFrom: number | null
  retired: number | null
  unpublishes: number | null
}
const listed = (json: { keys: Listed[] }) => Object.fromEntries(json.keys.map((k) => [k.kid, k]))
const states = (json: { keys: Listed[] }) => Object.fromEntries(json.keys.map((k) => [k.kid, k.state]))

/** What a server loading KEYS_DIR at `now` would sign with. */
async function signingAt(keysDir: string, now: number) {
  const { records } = await readKeysDir(keysDir)
  return createKeyStore(records, () => now, { retention: RETENTION }).signingKey()
}

const keyFiles = (dir: string) =>
  readdirSync(dir)
    .filter((name) => name.endsWith('.json'))
    .sort()
const readKey = (dir: string, kid: string) =>
  JSON.parse(readFileSync(join(dir, `${kid}.json`), 'utf8')) as Record<string, unknown>
const snapshot = (dir: string) =>
  Object.fromEntries(readdirSync(dir).map((name) => [name, readFileSync(join(dir, name), 'utf8')]))

/** Key files 0600 in a 0700 directory, and no lock or temp file left behind. */
function expectPrivate(dir: string) {
  expect(statSync(dir).mode & 0o777).toBe(0o700)
  expect(readdirSync(dir).filter((name) => name.startsWith('.'))).toEqual([])
  for (const name of readdirSync(dir))
    expect({ name, mode: statSync(join(dir, name)).mode & 0o777 }).toEqual({ name, mode: 0o600 })
}

describe('keys CLI', () => {
  it('list shows each key with its state and times, as one JSON document', async () => {
    const { keysDir, env, current, standby } = await setup()
    const out = await keys(['list'], env, T0 + 10)
    expect(out.code).toBe(0)
    expect(out.stderr).toBe('')
    expect(out.stdout.endsWith('}\n')).toBe(true)
    const expected = [
      {
        kid: current.kid,
        alg: 'ES256',
        state: 'current',
        created: T0,
        activates: T0,
        // KEY_PUBLISH_MIN (default 900) after it was written: when servers already running then sign.
        signsFrom: T0 + 900,
        retired: null,
        unpublishes: null,
      },
      {
        kid: standby.kid,
        alg: 'ES256',
        state: 'standby',
        created: T0,
        activates: null,
        signsFrom: null,
        retired: null,
        unpublishes: null,
      },
    ].sort((a, b) => (a.kid < b.kid ? -1 : 1))
    expect(out.json()).toEqual({ publishMin: 900, keys: expected, revoked: [] })
    expectPrivate(keysDir)
  })

  it('list shows activates and the earliest instant servers sign, KEY_PUBLISH_MIN after the key was written', async () => {
    const { keysDir, env, standby } = await setup()
    const publish = { ...env, KEY_PUBLISH_MIN: '1200' }
    // A key written by hand (a GitOps commit) to activate 60 s after it was made.
    const hasty = await generateKeyRecord('ES256', T0 + 100, T0 + 160)
    await writeKeyRecord(keysDir, hasty)
    const out = await keys(['list'], publish, T0 + 200)
    expect(out.code).toBe(0)
    const json = out.json()
    expect(json.publishMin).toBe(1200)
    expect(listed(json)[hasty.kid]).toMatchObject({ activates: T0 + 160, signsFrom: T0 + 100 + 1200 })
    expect(listed(json)[standby.kid]).toMatchObject({ activates: null, signsFrom: null })

    // A key scheduled further ahead than KEY_PUBLISH_MIN signs at its activates.
    const rotated = (await keys(['rotate'], { ...publish, KEY_ACTIVATION_DELAY: '3600' }, T0 + 300)).json()
    expect(listed(rotated)[standby.kid]).toMatchObject({ activates: T0 + 300 + 3600, signsFrom: T0 + 300 + 3600 })
  })

  it('rotate schedules the key no sooner than KEY_PUBLISH_MIN, when KEY_ACTIVATION_DELAY is shorter, and says so', async () => {
    const { env, standby } = await setup()
    const out = await keys(['rotate'], { ...env, KEY_ACTIVATION_DELAY: '60', KEY_PUBLISH_MIN: '1200' }, T0 + 100)
    expect(out.code).toBe(0)
    expect(out.json().rotated).toEqual({ kid: standby.kid, alg: 'ES256', activates: T0 + 100 + 1200 })
    expect(out.stderr).toContain('KEY_ACTIVATION_DELAY (60) is shorter than KEY_PUBLISH_MIN (1200)')
    // The defaults already publish for KEY_PUBLISH_MIN first: nothing to say.
    const defaults = await keys(['rotate'], { ...env, KEY_ACTIVATION_DELAY: '', KEY_PUBLISH_MIN: '' }, T0 + 200)
    expect(defaults.stderr).toBe('')
  })

  it('rotate promotes the standby key to next, activating after KEY_ACTIVATION_DELAY, and creates a new standby', async () => {
    const { keysDir, env, current, standby } = await setup()
    const before = readKey(keysDir, standby.kid)
    const out = await keys(['rotate'], env, T0 + 100)
    expect(out.code).toBe(0)
    expect(out.stderr).toBe('')
    const json = out.json()
    expect(json.rotated).toEqual({ kid: standby.kid, alg: 'ES256', activates: T0 + 100 + DELAY })
    expect(json.keys).toHaveLength(3)
    const fresh = json.keys.find((k: Listed) => k.kid !== current.kid && k.kid !== standby.kid) as Listed
    expect(states(json)).toEqual({ [current.kid]: 'current', [standby.kid]: 'next', [fresh.kid]: 'standby' })
    expect(fresh).toMatchObject({ alg: 'ES256', created: T0 + 100, activates: null })
    // Only the schedule changed: same private key, same file otherwise.
    expect(readKey(keysDir, standby.kid)).toEqual({ ...before, activates: T0 + 100 + DELAY })

    expect((await signingAt(keysDir, T0 + 100 + DELAY - 1)).kid).toBe(current.kid)
    expect((await signingAt(keysDir, T0 + 100 + DELAY)).kid).toBe(standby.kid)
    expect(keyFiles(keysDir)).toEqual([current.kid, standby.kid, fresh.kid].map((kid) => `${kid}.json`).sort())
    expectPrivate(keysDir)
  })

  it('rotate --now makes the standby key current at once and retires the old one', async () => {
    const { keysDir, env, current, standby } = await setup()
    const out = await keys(['rotate', '--now'], env, T0 + 100)
    expect(out.code).toBe(0)
    expect(out.stderr).toBe('')
    const json = out.json()
    expect(json.rotated).toEqual({ kid: standby.kid, alg: 'ES256', activates: T0 + 100 })
    const byKid = listed(json)
    expect(byKid[current.kid]).toMatchObject({ state: 'retired', retired: T0 + 100, unpublishes: T0 + 100 + RETENTION })
    expect(byKid[standby.kid]).toMatchObject({ state: 'current', activates: T0 + 100 })
    expect(json.keys.filter((k: Listed) => k.state === 'standby')).toHaveLength(1)
    expect((await signingAt(keysDir, T0 + 100)).kid).toBe(standby.kid)
    expectPrivate(keysDir)
  })

  it('rotate --now picks the longest-published waiting key: a scheduled one before a younger standby', async () => {
    const { keysDir, env, current, standby } = await setup()
    const routine = await keys(['rotate'], env, T0 + 100)
    const youngStandby = routine.json().keys.find((k: Listed) => k.state === 'standby').kid as string
    const out = await keys(['rotate', '--now'], env, T0 + 200)
    expect(out.json().rotated).toEqual({ kid: standby.kid, alg: 'ES256', activates: T0 + 200 })
    expect(states(out.json())).toEqual({
      [current.kid]: 'retired',
      [standby.kid]: 'current',
      [youngStandby]: 'standby',
    })
    expect(keyFiles(keysDir)).toHaveLength(3) // nothing generated: a published key was waiting
  })

  it('rotate --now in the same second as the current key activation still switches keys', async () => {
    // The tie-break (creation, then kid) must never keep the old key signing: try several key pairs.
    for (let i = 0; i < 8; i++) {
      const { keysDir, env, current, standby } = await setup()
      const out = await keys(['rotate', '--now'], env, T0)
      expect(out.code).toBe(0)
      const { kid, activates } = out.json().rotated as { kid: string; activates: number }
      expect(kid).toBe(standby.kid)
      expect(activates).toBeLessThanOrEqual(T0 + 1)
      expect((await signingAt(keysDir, activates)).kid).toBe(standby.kid)
      const later = await keys(['list'], env, activates)
      expect(states(later.json())[standby.kid]).toBe('current')
      expect(states(later.json())[current.kid]).toBe('retired')
    }
  })

  it('three rotate --now in the same second give three activation seconds, and the last key reported is the one that signs', async () => {
    // Which waiting key a rotation promotes depends on the kids' order, so try several key sets.
    for (let i = 0; i < 12; i++) {
      const { keysDir, env } = await setup()
      const reported: { kid: string; activates: number }[] = []
      for (let n = 0; n < 3; n++) {
        const out = await keys(['rotate', '--now'], env, T0 + 100)
        expect(out.code).toBe(0)
        reported.push(out.json().rotated)
      }
      const { records } = await readKeysDir(keysDir)
      const scheduled = records.map((r) => r.activates).filter((t): t is number => t !== null)
      expect(new Set(scheduled).size).toBe(scheduled.length)
      const last = reported.at(-1)!
      expect((await signingAt(keysDir, last.activates)).kid).toBe(last.kid)
      expect((await signingAt(keysDir, T0 + 200)).kid).toBe(last.kid)
    }
  })

  it('rotate --now with no waiting key creates one, warns on stderr, and still leaves a standby', async () => {
    const keysDir = join(tempDir(), 'keys')
    mkdirSync(keysDir, { mode: 0o700 })
    const only = await generateKeyRecord('ES256', T0, T0)
    await writeKeyRecord(keysDir, only)
    const env = { KEYS_DIR: keysDir, KEY_ACTIVATION_DELAY: String(DELAY), CLOCK_TOLERANCE: '30' }
    const out = await keys(['rotate', '--now'], env, T0 + 100)
    expect(out.code).toBe(0)
    expect(out.stderr).toBe(
      "warning: no published ES256 key was waiting; verifiers that cached the JWKS recently will refuse the new key's tokens until they refetch it\n",
    )
    const json = out.json()
    expect(json.rotated).toMatchObject({ alg: 'ES256', activates: T0 + 100 })
    expect(json.rotated.kid).not.toBe(only.kid)
    expect(Object.values(states(json)).sort()).toEqual(['current', 'retired', 'standby'])
    expect(states(json)[only.kid]).toBe('retired')
    expect(states(json)[json.rotated.kid]).toBe('current')
    expectPrivate(keysDir)
  })

  it('rotate --alg EdDSA schedules an EdDSA key, replaces the ES256 standby, and ES256 signs until the switch', async () => {
    const { keysDir, env, current, standby } = await setup()
    const out = await keys(['rotate', '--alg', 'EdDSA'], env, T0 + 100)
    expect(out.code).toBe(0)
    expect(out.stderr).toBe('')
    const json = out.json()
    const eddsa = json.rotated.kid as string
    expect(json.rotated).toEqual({ kid: eddsa, alg: 'EdDSA', activates: T0 + 100 + DELAY })
    expect(existsSync(join(keysDir, `${standby.kid}.json`))).toBe(false)
    const byKid = listed(json)
    expect(Object.keys(byKid)).toHaveLength(3)
    expect(byKid[current.kid]).toMatchObject({ alg: 'ES256', state: 'current' })
    expect(byKid[eddsa]).toMatchObject({ alg: 'EdDSA', state: 'next', created: T0 + 100 })
    const newStandby = json.keys.find((k: Listed) => k.state === 'standby') as Listed
    expect(newStandby).toMatchObject({ alg: 'EdDSA', activates: null })

    expect(await signingAt(keysDir, T0 + 100 + DELAY - 1)).toMatchObject({ kid: current.kid, alg: 'ES256' })
    expect(await signingAt(keysDir, T0 + 100 + DELAY)).toMatchObject({ kid: eddsa, alg: 'EdDSA' })
    expectPrivate(keysDir)
  })

  it('a plain rotate after rotate --alg EdDSA continues the migration instead of undoing it', async () => {
    const { keysDir, env } = await setup()
    const migrated = (await keys(['rotate', '--alg', 'EdDSA'], env, T0 + 100)).json()
    const eddsa = migrated.rotated.kid as string
    const again = await keys(['rotate'], env, T0 + 200)
    expect(again.code).toBe(0)
    const json = again.json()
    expect(json.rotated).toMatchObject({ alg: 'EdDSA', activates: T0 + 200 + DELAY })
    expect(listed(json)[eddsa]).toMatchObject({ state: 'next', activates: T0 + 100 + DELAY }) // not postponed
    expect(json.keys.filter((k: Listed) => k.state === 'standby').map((k: Listed) => k.alg)).toEqual(['EdDSA'])
    expect(await signingAt(keysDir, T0 + 100 + DELAY)).toMatchObject({ kid: eddsa })
  })

  it('prune removes expired keys and spent tombstones, each exactly when its retention is over', async () => {
    const { keysDir, env, current, standby } = await setup()
    const rotated = await keys(['rotate', '--now'], env, T0 + 10)
    const doomed = rotated.json().keys.find((k: Listed) => k.state === 'standby').kid as string
    expect((await keys(['revoke', '--kid', doomed], env, T0 + 20)).code).toBe(0)
    const listing = (await keys(['list'], env, T0 + 20)).json()
    expect(listing.revoked).toEqual([{ kid: doomed, alg: 'ES256', revoked: T0 + 20, prunable: T0 + 20 + RETENTION }])
    const survivor = listing.keys.find((k: Listed) => k.state === 'standby').kid as string

    expect((await keys(['prune'], env, T0 + 10 + RETENTION - 1)).json()).toEqual({ pruned: [] })
    expect(keyFiles(keysDir)).toHaveLength(4)
    expect((await keys(['prune'], env, T0 + 10 + RETENTION)).json()).toEqual({ pruned: [current.kid] })
    expect((await keys(['prune'], env, T0 + 20 + RETENTION - 1)).json()).toEqual({ pruned: [] })
    expect((await keys(['prune'], env, T0 + 20 + RETENTION)).json()).toEqual({ pruned: [doomed] })
    expect(keyFiles(keysDir)).toEqual([standby.kid, survivor].map((kid) => `${kid}.json`).sort())
    expect((await signingAt(keysDir, T0 + 20 + RETENTION)).kid).toBe(standby.kid)
    expectPrivate(keysDir)
  })

  it('revoke --kid of the current key leaves a tombstone, makes another key current at once, and restores a standby', async () => {
    const { keysDir, env, current, standby } = await setup()
    const out = await keys(['revoke', '--kid', current.kid], env, T0 + 100)
    expect(out.code).toBe(0)
    expect(out.stderr).toBe('')
    expect(out.json()).toEqual({
      revoked: {
        kid: current.kid,
        unpublished: true,
        denylisted:
          'each server, on reload (in-memory denylist; no Redis is configured (REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES))',
        until: T0 + 100 + RETENTION,
      },
    })
    const text = readFileSync(join(keysDir, `${current.kid}.json`), 'utf8')
    expect(JSON.parse(text)).toEqual({ kid: current.kid, alg: 'ES256', created: T0, activates: T0, revoked: T0 + 100 })
    expect(text).not.toContain('PRIVATE KEY')

    const contents = await readKeysDir(keysDir)
    expect(contents.tombstones).toEqual([{ kid: current.kid, alg: 'ES256', created: T0, revoked: T0 + 100 }])
    expect(contents.records.map((r) => r.kid)).not.toContain(current.kid)
    const listing = (await keys(['list'], env, T0 + 100)).json()
    expect(listed(listing)[standby.kid]).toMatchObject({ state: 'current', activates: T0 + 100 })
    expect(listing.keys.map((k: Listed) => k.state).sort()).toEqual(['current', 'standby'])
    expect((await signingAt(keysDir, T0 + 100)).kid).toBe(standby.kid)
    expectPrivate(keysDir)
  })

  it('revoke --kid of a symlinked key file erases the private key from the file the link leads to, and the link stays', async () => {
    const { keysDir, env, current, standby } = await setup()
    const elsewhere = join(tempDir(), 'keys-elsewhere')
    mkdirSync(elsewhere, { mode: 0o700 })
    const target = join(elsewhere, `${current.kid}.json`)
    renameSync(join(keysDir, `${current.kid}.json`), target)
    symlinkSync(target, join(keysDir, `${current.kid}.json`))

    const out = await keys(['revoke', '--kid', current.kid], env, T0 + 100)
    expect({ code: out.code, stderr: out.stderr }).toEqual({ code: 0, stderr: '' })
    expect(lstatSync(join(keysDir, `${current.kid}.json`)).isSymbolicLink()).toBe(true)
    const text = readFileSync(target, 'utf8')
    expect(text).not.toContain('PRIVATE KEY')
    expect(JSON.parse(text)).toEqual({ kid: current.kid, alg: 'ES256', created: T0, activates: T0, revoked: T0 + 100 })
    expect(statSync(target).mode & 0o777).toBe(0o600)
    expect(readdirSync(elsewhere)).toEqual([`${current.kid}.json`]) // no temp file left beside it
    expect((await signingAt(keysDir, T0 + 100)).kid).toBe(standby.kid)
  })

  it('prune of a symlinked key file deletes the file the link leads to, not only the link', async () => {
    const { keysDir, env, current } = await setup()
    const elsewhere = join(tempDir(), 'keys-elsewhere')
    mkdirSync(elsewhere, { mode: 0o700 })
    const target = join(elsewhere, `${current.kid}.json`)
    renameSync(join(keysDir, `${current.kid}.json`), target)
    symlinkSync(target, join(keysDir, `${current.kid}.json`))
    expect((await keys(['rotate', '--now'], env, T0 + 10)).code).toBe(0)
    expect((await keys(['prune'], env, T0 + 10 + RETENTION)).json()).toEqual({ pruned: [current.kid] })
    expect(existsSync(target)).toBe(false)
    expect(keyFiles(keysDir)).not.toContain(`${current.kid}.json`)
  })

  it('revoke --kid writes the kid to the Redis denylist until the retention is over', async () => {
    const url = inject('redisUrl')
    const prefix = `test:${randomBytes(6).toString('hex')}:`
    const { keysDir, env, current } = await setup(systemClock)
    const out = await keys(
      ['revoke', '--kid', current.kid],
      { ...env, REDIS_URL: url, REDIS_KEY_PREFIX: prefix },
      systemClock,
    )
    expect({ code: out.code, stderr: out.stderr }).toEqual({ code: 0, stderr: '' })
    expect(out.json().revoked).toMatchObject({ kid: current.kid, denylisted: 'redis' })
    const redis = new Redis(url)
    try {
      const ttl = await redis.pttl(`${prefix}kid:${current.kid}`)
      expect(ttl).toBeGreaterThan((RETENTION - 3) * 1000)
      expect(ttl).toBeLessThanOrEqual(RETENTION * 1000)
    } finally {
      redis.disconnect()
    }
    expectPrivate(keysDir)
  })

  it('revoke --kid accepts a kid that starts with a dash (one kid in 64)', async () => {
    const { keysDir, env } = await setup()
    let dashed: KeyRecord
    do dashed = await generateKeyRecord('ES256', T0, null)
    while (!dashed.kid.startsWith('-'))
    await writeKeyRecord(keysDir, dashed)
    const out = await keys(['revoke', '--kid', dashed.kid], env, T0 + 100)
    expect({ code: out.code, stderr: out.stderr }).toEqual({ code: 0, stderr: '' })
    expect(out.json().revoked).toMatchObject({ kid: dashed.kid, until: T0 + 100 + RETENTION })
    expect(readKey(keysDir, dashed.kid)).toEqual({
      kid: dashed.kid,
      alg: 'ES256',
      created: T0,
      activates: null,
      revoked: T0 + 100,
    })
  })

  it('revoke of an unknown kid fails with exit 1 and changes nothing', async () => {
    const { keysDir, env } = await setup()
    const before = snapshot(keysDir)
    const out = await keys(['revoke', '--kid', 'no-such-kid'], env, T0 + 100)
    expect(out.code).toBe(1)
    expect(out.stdout).toBe('')
    expect(out.stderr).toBe(`error: no key no-such-kid in ${keysDir}\n`)
    expect(snapshot(keysDir)).toEqual(before)
  })

  it('fails with exit 1 on an unreadable key file and writes nothing', async () => {
    const { keysDir, env, standby } = await setup()
    writeFileSync(join(keysDir, `${standby.kid}.json`), '{"kid": ')
    const before = snapshot(keysDir)
    const out = await keys(['rotate', '--now'], env, T0 + 100)
    expect(out.code).toBe(1)
    expect(out.stderr).toMatch(new RegExp(`^error: cannot use KEYS_DIR: ${standby.kid}\\.json: not valid JSON`))
    expect(snapshot(keysDir)).toEqual(before)
  })

  it.each([
    ['rotate', ['rotate']],
    ['rotate --now', ['rotate', '--now']],
    ['prune', ['prune']],
    ['revoke', ['revoke', '--kid', 'KID']],
  ])('%s refuses to write into a KEYS_DIR writable by group or others: exit 1, nothing changed', async (_, argv) => {
    for (const mode of [0o770, 0o777]) {
      const { keysDir, env, current } = await setup()
      chmodSync(keysDir, mode)
      const before = snapshot(keysDir)
      const out = await keys(
        argv.map((arg) => (arg === 'KID' ? current.kid : arg)),
        env,
        T0 + 100,
      )
      expect(out.code).toBe(1)
      expect(out.stdout).toBe('')
      expect(out.stderr).toBe(
        `error: KEYS_DIR is writable by group or others: ${keysDir} has mode 0${mode.toString(8)}, and whoever can write it can add a signing key; run chmod 700 ${keysDir}\n`,
      )
      expect(snapshot(keysDir)).toEqual(before)
    }
  })

  it('list still lists a KEYS_DIR writable by group or others, with a warning on stderr', async () => {
    const { keysDir, env, current } = await setup()
    chmodSync(keysDir, 0o777)
    const out = await keys(['list'], env, T0 + 100)
    expect(out.code).toBe(0)
    expect(out.stderr).toBe(
      `warning: KEYS_DIR is writable by group or others: ${keysDir} has mode 0777, and whoever can write it can add a signing key; run chmod 700 ${keysDir}\n`,
    )
    expect(listed(out.json())[current.kid]).toMatchObject({ state: 'current' })
  })

  it('refuses to write into a KEYS_DIR owned by another user: exit 1, nothing changed', async () => {
    const { keysDir, env } = await setup()
    chownSync(keysDir, 65534, 65534) // tests run as root: give it to nobody
    const before = snapshot(keysDir)
    const out = await keys(['rotate', '--now'], env, T0 + 100)
    expect(out.code).toBe(1)
    expect(out.stderr).toMatch(
      new RegExp(
        `^error: KEYS_DIR is not owned by the user running tokensmith: ${keysDir} belongs to uid 65534, .*chown`,
      ),
    )
    expect(snapshot(keysDir)).toEqual(before)
  })

  it.each([
    [[]],
    [['frobnicate']],
    [['constructor']],
    [['toString']],
    [['valueOf']],
    [['hasOwnProperty']],
    [['__proto__']],
    [['list', '--all']],
    [['rotate', '--bogus']],
    [['rotate', '--alg', 'HS256']],
    [['rotate', '--alg', 'none']],
    [['rotate', '--alg']],
    [['revoke']],
    [['revoke', '--kid']],
    [['prune', 'now']],
  ])('usage error %j exits 2 with the usage on stderr and changes nothing', async (argv) => {
    const { keysDir, env } = await setup()
    const before = snapshot(keysDir)
    const out = await keys(argv, env, T0 + 100)
    expect(out.code).toBe(2)
    expect(out.stdout).toBe('')
    expect(out.stderr).toMatch(/^error: .+\nusage:\n/)
    expect(snapshot(keysDir)).toEqual(before)
  })
})
