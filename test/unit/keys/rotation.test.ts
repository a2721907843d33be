import { chmodSync, existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { SigningAlg } from '../../../src/keys/algorithms.js'
import type { KeyRecord, Tombstone } from '../../../src/keys/key-file.js'
import { ensureKeys, readKeysDir } from '../../../src/keys/keys-dir.js'
import {
  activationSecond,
  denylistRevokedKeys,
  describeKeys,
  listKeys,
  newestAlg,
  prunableKids,
  pruneKeys,
  requestedActivation,
  revocationEnd,
  revokeKey,
  rotateKeys,
  standbyChanges,
  waitingKey,
  type KeysDirSettings,
  type RotationKey,
} from '../../../src/keys/rotation.js'
import { tempDir } from '../../helpers/cli.js'
import { T0, captureLog, fixedClock } from '../../helpers/make-deps.js'

// The rotation policy as pure functions of the key times, then applied to a KEYS_DIR on a fake clock.
const T = T0
const RETENTION = 3690 // keyRetention(30): 3600 + 30 + 60
const DELAY = 900

const key = (kid: string, created: number, activates: number | null, alg: SigningAlg = 'ES256'): RotationKey => ({
  kid,
  alg,
  created,
  activates,
})
const tombstone = (kid: string, revoked: number): Tombstone => ({ kid, alg: 'ES256', created: T - 1000, revoked })

describe('newestAlg', () => {
  it('is the algorithm of the most recently created key, so a migration continues', () => {
    expect(newestAlg([key('a', T, T), key('b', T + 10, null, 'EdDSA'), key('c', T + 5, null)])).toBe('EdDSA')
  })

  it('is undefined without keys', () => {
    expect(newestAlg([])).toBeUndefined()
  })
})

describe('requestedActivation', () => {
  it('asks a routine rotation to sign after the activation delay, an immediate one now', () => {
    expect(requestedActivation(T, DELAY, false)).toBe(T + DELAY)
    expect(requestedActivation(T, DELAY, true)).toBe(T)
  })
})

describe('waitingKey', () => {
  const keys = [
    key('current', T - 500, T - 500),
    key('scheduled', T - 400, T + 300),
    key('old-standby', T - 300, null),
    key('young-standby', T - 100, null),
    key('eddsa-standby', T - 600, null, 'EdDSA'),
  ]

  it('takes the longest-published standby key of the algorithm for a routine rotation, leaving a scheduled key alone', () => {
    expect(waitingKey(keys, 'ES256', T, T + DELAY)?.kid).toBe('old-standby')
  })

  it('takes the longest-published waiting key, scheduled or standby, for an immediate rotation', () => {
    expect(waitingKey(keys, 'ES256', T, T)?.kid).toBe('scheduled')
  })

  it('takes only a key of the algorithm asked for', () => {
    expect(waitingKey(keys, 'EdDSA', T, T)?.kid).toBe('eddsa-standby')
    expect(waitingKey(keys, 'RS256', T, T)).toBeUndefined()
  })

  it('never takes a key that already signs', () => {
    expect(waitingKey([key('current', T - 500, T - 500)], 'ES256', T, T)).toBeUndefined()
  })
})

describe('activationSecond', () => {
  it('is the second requested when no other key claims it', () => {
    const keys = [key('current', T - 500, T - 500), key('sb', T - 100, null)]
    expect(activationSecond(keys, keys[1], T + DELAY)).toBe(T + DELAY)
  })

  it('follows every key already active at that second, so the promoted key is the one that signs', () => {
    const keys = [key('current', T - 10, T), key('sb', T - 100, null)]
    expect(activationSecond(keys, keys[1], T)).toBe(T + 1)
  })

  it('skips the seconds other keys activate at', () => {
    const keys = [
      key('current', T - 10, T),
      key('next', T - 5, T + 1),
      key('after', T - 5, T + 2),
      key('sb', T - 100, null),
    ]
    expect(activationSecond(keys, keys[3], T)).toBe(T + 3)
  })

  it("ignores the chosen key's own earlier schedule", () => {
    const keys = [key('current', T - 500, T - 500), key('scheduled', T - 400, T + 300)]
    expect(activationSecond(keys, keys[1], T)).toBe(T)
  })
})

describe('standbyChanges', () => {
  it('asks for a standby key when none of the algorithm is left', () => {
    expect(standbyChanges([key('current', T, T)], 'ES256')).toEqual({ remove: [], create: true })
  })

  it('keeps the standby key of the algorithm as it is', () => {
    expect(standbyChanges([key('current', T, T), key('sb', T, null)], 'ES256')).toEqual({ remove: [], create: false })
  })

  it('removes the standby keys of another algorithm after a migration', () => {
    const old = key('es-sb', T, null)
    expect(standbyChanges([key('current', T, T, 'EdDSA'), old], 'EdDSA')).toEqual({ remove: [old], create: true })
  })
})

describe('prunableKids', () => {
  const records = [key('old', T - 100, T - 100), key('current', T - 10, T)]

  it('prunes a retired key exactly when its retention is over', () => {
    expect(prunableKids({ records, tombstones: [] }, T + RETENTION - 1, RETENTION)).toEqual([])
    expect(prunableKids({ records, tombstones: [] }, T + RETENTION, RETENTION)).toEqual(['old'])
  })

  it('prunes a tombstone exactly when its revocation has run its course', () => {
    const tombstones = [tombstone('gone', T)]
    expect(prunableKids({ records: [], tombstones }, T + RETENTION - 1, RETENTION)).toEqual([])
    expect(prunableKids({ records: [], tombstones }, revocationEnd(T, RETENTION), RETENTION)).toEqual(['gone'])
  })
})

describe('describeKeys', () => {
  it('lists the keys oldest first with their states and times, then the revoked ones with when they may go', () => {
    const records = [
      key('b-next', T - 10, T + DELAY),
      key('a-current', T - 100, T - 100),
      key('c-standby', T - 10, null),
    ]
    const settings = { retention: RETENTION, publishMin: DELAY }
    expect(describeKeys({ records, tombstones: [tombstone('gone', T - 50)] }, T, settings)).toEqual({
      publishMin: DELAY,
      keys: [
        {
          kid: 'a-current',
          alg: 'ES256',
          state: 'current',
          created: T - 100,
          activates: T - 100,
          // Servers running when it was written held it back for KEY_PUBLISH_MIN.
          signsFrom: T - 100 + DELAY,
          retired: null,
          unpublishes: null,
        },
        {
          kid: 'b-next',
          alg: 'ES256',
          state: 'next',
          created: T - 10,
          activates: T + DELAY,
          signsFrom: T + DELAY,
          retired: null,
          unpublishes: null,
        },
        {
          kid: 'c-standby',
          alg: 'ES256',
          state: 'standby',
          created: T - 10,
          activates: null,
          signsFrom: null,
          retired: null,
          unpublishes: null,
        },
      ],
      revoked: [{ kid: 'gone', alg: 'ES256', revoked: T - 50, prunable: T - 50 + RETENTION }],
    })
  })
})

/** A KEYS_DIR with a current key and a standby key made at T. */
async function keysDir() {
  const dir = join(tempDir(), 'keys')
  const { records } = await ensureKeys(dir, 'ES256', { clock: fixedClock(T), log: captureLog().log })
  const [current, standby] = records as [KeyRecord, KeyRecord]
  const settings: KeysDirSettings = { dir, retention: RETENTION, publishMin: DELAY }
  const warnings: string[] = []
  const deps = (now: number) => ({ clock: fixedClock(now), warn: (message: string) => void warnings.push(message) })
  return { dir, settings, current, standby, warnings, deps }
}

const stored = (dir: string, kid: string) =>
  JSON.parse(readFileSync(join(dir, `${kid}.json`), 'utf8')) as Record<string, unknown>

describe('rotateKeys', () => {
  it('schedules the standby key after the delay and writes a new standby key, without a warning', async () => {
    const { dir, settings, current, standby, warnings, deps } = await keysDir()
    const result = await rotateKeys(settings, deps(T + 100), {
      defaultAlg: 'ES256',
      activationDelay: DELAY,
      immediate: false,
    })
    expect(result.rotated).toEqual({ kid: standby.kid, alg: 'ES256', activates: T + 100 + DELAY })
    const fresh = result.keys.find((k) => k.kid !== current.kid && k.kid !== standby.kid)
    expect(fresh).toMatchObject({ state: 'standby', created: T + 100, activates: null })
    expect(stored(dir, standby.kid).activates).toBe(T + 100 + DELAY)
    expect(warnings).toEqual([])
  })

  it('warns when an immediate rotation finds no published key waiting', async () => {
    const { dir, settings, standby, warnings, deps } = await keysDir()
    await rotateKeys(settings, deps(T + 100), { defaultAlg: 'ES256', activationDelay: DELAY, immediate: true })
    // No EdDSA key is waiting: one is made, and signs at once.
    const again = await rotateKeys(settings, deps(T + 200), {
      alg: 'EdDSA',
      defaultAlg: 'ES256',
      activationDelay: DELAY,
      immediate: true,
    })
    expect(again.rotated).toMatchObject({ alg: 'EdDSA', activates: T + 200 })
    expect(warnings).toEqual([
      "no published EdDSA key was waiting; verifiers that cached the JWKS recently will refuse the new key's tokens until they refetch it",
    ])
    expect(stored(dir, standby.kid).activates).toBe(T + 100)
  })
})

describe('pruneKeys', () => {
  it('removes the files of expired keys and returns their kids', async () => {
    const { dir, settings, current, deps } = await keysDir()
    await rotateKeys(settings, deps(T + 10), { defaultAlg: 'ES256', activationDelay: DELAY, immediate: true })
    expect(await pruneKeys(settings, deps(T + 10 + RETENTION - 1))).toEqual([])
    expect(await pruneKeys(settings, deps(T + 10 + RETENTION))).toEqual([current.kid])
    expect(existsSync(join(dir, `${current.kid}.json`))).toBe(false)
  })
})

describe('revokeKey', () => {
  it('unpublishes the key before denylisting its kid until its last token has expired', async () => {
    const { dir, settings, current, standby, deps } = await keysDir()
    const calls: { kid: string; until: number; tombstone: boolean }[] = []
    const result = await revokeKey(settings, deps(T + 100), current.kid, async (kid, until) => {
      calls.push({ kid, until, tombstone: (await readKeysDir(dir)).tombstones.some((t) => t.kid === kid) })
      return 'denylisted'
    })
    expect(result).toEqual({ kid: current.kid, revoked: T + 100, until: T + 100 + RETENTION, denylisted: 'denylisted' })
    expect(calls).toEqual([{ kid: current.kid, until: T + 100 + RETENTION, tombstone: true }])
    expect(stored(dir, current.kid)).toEqual({
      kid: current.kid,
      alg: 'ES256',
      created: T,
      activates: T,
      revoked: T + 100,
    })
    expect(stored(dir, standby.kid).activates).toBe(T + 100) // the standby key signs from now
  })

  it('keeps the key unpublished when the denylist write fails, and a second run denylists from the first revocation', async () => {
    const { dir, settings, current, deps } = await keysDir()
    const failing = async () => {
      throw new Error('Redis is unreachable')
    }
    await expect(revokeKey(settings, deps(T + 100), current.kid, failing)).rejects.toThrow('Redis is unreachable')
    expect(stored(dir, current.kid).revoked).toBe(T + 100)
    const again = await revokeKey(settings, deps(T + 200), current.kid, async (_kid, until) => until)
    expect(again).toMatchObject({ revoked: T + 100, until: T + 100 + RETENTION, denylisted: T + 100 + RETENTION })
  })

  it('refuses an unknown kid and changes nothing', async () => {
    const { dir, settings, deps } = await keysDir()
    const before = readdirSync(dir).sort()
    let denylisted = false
    const denylist = async () => {
      denylisted = true
    }
    await expect(revokeKey(settings, deps(T + 100), 'no-such-kid', denylist)).rejects.toThrow(
      `no key no-such-kid in ${dir}`,
    )
    expect(denylisted).toBe(false)
    expect(readdirSync(dir).sort()).toEqual(before)
  })
})

describe('listKeys', () => {
  it('lists a directory others can write, with a warning', async () => {
    const { dir, settings, current, warnings, deps } = await keysDir()
    chmodSync(dir, 0o777)
    const listing = await listKeys(settings, deps(T))
    expect(listing.keys.find((k) => k.kid === current.kid)?.state).toBe('current')
    expect(warnings).toEqual([
      `KEYS_DIR is writable by group or others: ${dir} has mode 0777, and whoever can write it can add a signing key; run chmod 700 ${dir}`,
    ])
  })
})

describe('denylistRevokedKeys', () => {
  it('denylists each revoked kid until its revocation ends, and returns the kids it could not write', async () => {
    const written: [string, number][] = []
    const denylist = {
      async revokeKey(kid: string, until: number) {
        if (kid === 'down') throw new Error('Redis is unreachable')
        written.push([kid, until])
      },
    }
    const failed = await denylistRevokedKeys(
      denylist,
      [tombstone('a', T), tombstone('down', T), tombstone('b', T + 5)],
      RETENTION,
    )
    expect(failed).toEqual(['down'])
    expect(written).toEqual([
      ['a', T + RETENTION],
      ['b', T + 5 + RETENTION],
    ])
  })
})
