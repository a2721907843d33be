import { chmodSync, chownSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { generateKeyRecord, parseKeyFile, serializeKeyRecord, type KeyRecord } from '../../../src/keys/key-file.js'
import { createKeyStore as createStore } from '../../../src/keys/key-store.js'
import type { Clock } from '../../../src/clock.js'

const createKeyStore = (records: KeyRecord[], clock: Clock) => createStore(records, clock, { retention: 3690 })
import {
  ensureKeys,
  keysDirAccessProblem,
  keysDirSignature,
  readKeysDir,
  writeKeyRecord,
} from '../../../src/keys/keys-dir.js'
import { tempDir } from '../../helpers/cli.js'
import { T0, captureLog, fixedClock } from '../../helpers/make-deps.js'

const keyFiles = (dir: string) => readdirSync(dir).filter((name) => name.endsWith('.json'))

describe('KEYS_DIR', () => {
  it('an empty directory gets a current and a standby key, written 0600 in a 0700 directory, kids logged', async () => {
    const dir = join(tempDir(), 'keys')
    const { log, records } = captureLog()
    const contents = await ensureKeys(dir, 'ES256', { clock: fixedClock(), log })
    expect(contents.records.map((r) => r.activates)).toEqual([T0, null])
    const [current, standby] = contents.records
    expect(keyFiles(dir).sort()).toEqual([`${current!.kid}.json`, `${standby!.kid}.json`].sort())
    for (const file of keyFiles(dir)) expect(statSync(join(dir, file)).mode & 0o777).toBe(0o600)
    expect(statSync(dir).mode & 0o777).toBe(0o700)
    expect(
      records().find((r) => r.msg === 'generated a signing key and a standby key in an empty KEYS_DIR'),
    ).toMatchObject({ kid: current!.kid, standby: standby!.kid })
    expect(readdirSync(dir).filter((name) => name.startsWith('.'))).toEqual([]) // no temp or lock left
  })

  it('never generates a key while valid keys exist, and kids stay stable across restarts', async () => {
    const dir = tempDir()
    const deps = { clock: fixedClock(), log: captureLog().log }
    const first = await ensureKeys(dir, 'ES256', deps)
    const second = await ensureKeys(dir, 'ES256', deps)
    expect(second.records.map((r) => r.kid).sort()).toEqual(first.records.map((r) => r.kid).sort())
    expect(keyFiles(dir)).toHaveLength(2)
  })

  it('five instances starting on one empty directory create exactly one key', async () => {
    const dir = tempDir()
    const results = await Promise.all(
      Array.from({ length: 5 }, () => ensureKeys(dir, 'ES256', { clock: fixedClock(), log: captureLog().log })),
    )
    expect(keyFiles(dir)).toHaveLength(2)
    const currents = results.map((r) =>
      r.records
        .filter((k) => k.activates !== null)
        .map((k) => k.kid)
        .join(),
    )
    expect(new Set(currents).size).toBe(1)
  })

  it('does not paper over a broken key with a new one', async () => {
    const dir = tempDir()
    const record = await generateKeyRecord('ES256', T0)
    writeFileSync(join(dir, `${record.kid}.json`), serializeKeyRecord(record).slice(0, 100), { mode: 0o600 })
    const contents = await ensureKeys(dir, 'ES256', { clock: fixedClock(), log: captureLog().log })
    expect(contents.records).toEqual([])
    expect(contents.problems).toEqual([
      { file: `${record.kid}.json`, problem: expect.stringMatching(/not valid JSON/) },
    ])
    expect(keyFiles(dir)).toHaveLength(1)
  })

  it('reports a key file readable by others, and accepts one readable by its group (0640, 0440)', async () => {
    const dir = tempDir()
    const modes = [0o644, 0o604, 0o640, 0o440, 0o400]
    const names: string[] = []
    for (const mode of modes) {
      const record = await generateKeyRecord('ES256', T0)
      await writeKeyRecord(dir, record)
      chmodSync(join(dir, `${record.kid}.json`), mode)
      names.push(`${record.kid}.json`)
    }
    const contents = await readKeysDir(dir)
    expect(contents.problems).toEqual([])
    expect(contents.records).toHaveLength(modes.length)
    expect(contents.exposed.sort()).toEqual(names.slice(0, 2).sort())
  })

  it.each(['0620', '0602', '0660', '0666'])(
    'refuses a key file writable by group or others (mode %s), like a broken one',
    async (mode) => {
      const dir = tempDir()
      const record = await generateKeyRecord('ES256', T0)
      await writeKeyRecord(dir, record)
      chmodSync(join(dir, `${record.kid}.json`), Number.parseInt(mode, 8))
      const contents = await readKeysDir(dir)
      expect(contents.records).toEqual([])
      expect(contents.problems).toEqual([
        {
          file: `${record.kid}.json`,
          problem: `writable by group or others (mode ${mode}); run chmod 600 on it (for a Kubernetes Secret volume, set defaultMode: 0440 on the volume and fsGroup in the pod securityContext)`,
        },
      ])
    },
  )

  it('a key file is never overwritten by a second write', async () => {
    const dir = tempDir()
    const record = await generateKeyRecord('ES256', T0)
    await writeKeyRecord(dir, record)
    const before = readFileSync(join(dir, `${record.kid}.json`), 'utf8')
    await expect(writeKeyRecord(dir, { ...record, created: T0 + 5 })).rejects.toMatchObject({ code: 'EEXIST' })
    expect(readFileSync(join(dir, `${record.kid}.json`), 'utf8')).toBe(before)
  })
})

describe('KEYS_DIR access', () => {
  it.each(['0700', '0750', '0755', '0500'])('accepts a directory of ours with mode %s', async (mode) => {
    const dir = tempDir()
    chmodSync(dir, Number.parseInt(mode, 8))
    expect(await keysDirAccessProblem(dir)).toBeUndefined()
  })

  it.each(['0770', '0730', '0707', '0777', '01777'])(
    'refuses a directory writable by group or others (mode %s), saying how to fix it',
    async (mode) => {
      const dir = tempDir()
      chmodSync(dir, Number.parseInt(mode, 8))
      expect(await keysDirAccessProblem(dir)).toEqual({
        summary: 'KEYS_DIR is writable by group or others',
        message: `KEYS_DIR is writable by group or others: ${dir} has mode ${mode}, and whoever can write it can add a signing key; run chmod 700 ${dir}`,
      })
    },
  )

  it('refuses a directory that the user running the process does not own', async () => {
    const dir = tempDir()
    chownSync(dir, 65534, 65534) // tests run as root: give it to nobody
    const uid = process.getuid!()
    expect(await keysDirAccessProblem(dir)).toEqual({
      summary: 'KEYS_DIR is not owned by the user running tokensmith',
      message: `KEYS_DIR is not owned by the user running tokensmith: ${dir} belongs to uid 65534, this process runs as uid ${uid}; run chown ${uid} ${dir} (or run tokensmith as its owner)`,
    })
    // The same directory is fine for its owner.
    expect(await keysDirAccessProblem(dir, 65534)).toBeUndefined()
  })

  it('ensureKeys refuses a directory others can write and generates no key in it', async () => {
    const dir = tempDir()
    chmodSync(dir, 0o777)
    await expect(ensureKeys(dir, 'ES256', { clock: fixedClock(), log: captureLog().log })).rejects.toThrow(
      `KEYS_DIR is writable by group or others: ${dir} has mode 0777`,
    )
    expect(readdirSync(dir)).toEqual([])
  })

  it('the change signature moves when the directory or a key file is chmod-ed', async () => {
    const dir = tempDir()
    const record = await generateKeyRecord('ES256', T0)
    await writeKeyRecord(dir, record)
    const before = await keysDirSignature(dir)
    chmodSync(dir, 0o777)
    const open = await keysDirSignature(dir)
    expect(open).not.toBe(before)
    chmodSync(dir, 0o700)
    expect(await keysDirSignature(dir)).toBe(before)
    chmodSync(join(dir, `${record.kid}.json`), 0o660)
    expect(await keysDirSignature(dir)).not.toBe(before)
  })
})

describe('key files', () => {
  it.each(['ES256', 'EdDSA', 'RS256', 'PS256'] as const)('round-trips a %s key with an RFC 7638 kid', async (alg) => {
    const record = await generateKeyRecord(alg, T0)
    const parsed = (await parseKeyFile(serializeKeyRecord(record))) as KeyRecord
    expect(parsed.kid).toBe(record.kid)
    expect(parsed.publicJwk).toEqual(record.publicJwk)
    expect(parsed.publicJwk).toMatchObject({ kid: record.kid, alg, use: 'sig' })
    expect(Object.keys(parsed.publicJwk)).not.toContain('d')
    if (alg.startsWith('RS') || alg.startsWith('PS'))
      expect(record.privateKey.asymmetricKeyDetails?.modulusLength).toBe(3072)
  })

  it('refuses a file whose kid is not the key thumbprint', async () => {
    const record = await generateKeyRecord('ES256', T0)
    const other = await generateKeyRecord('ES256', T0)
    const text = serializeKeyRecord(record).replace(record.kid, other.kid)
    await expect(parseKeyFile(text)).rejects.toThrow(/thumbprint/)
  })

  it('refuses a key whose type does not fit its alg', async () => {
    const record = await generateKeyRecord('ES256', T0)
    const text = serializeKeyRecord(record).replace('"ES256"', '"RS256"')
    await expect(parseKeyFile(text)).rejects.toThrow(/does not fit alg RS256/)
  })

  it('names the field of a schema error and never echoes key material', async () => {
    const record = await generateKeyRecord('ES256', T0)
    const json = JSON.parse(serializeKeyRecord(record))
    await expect(parseKeyFile(JSON.stringify({ ...json, activates: 'soon' }))).rejects.toThrow(/field activates/)
    const broken = JSON.stringify({
      ...json,
      privateKey: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n',
    })
    const error = await parseKeyFile(broken).catch((e: Error) => e)
    expect(String(error)).toMatch(/not a readable PKCS#8/)
    expect(String(error)).not.toContain('BEGIN')
  })
})

describe('key store', () => {
  it('signs with the most recently activated key and publishes the next one before it signs', async () => {
    const clock = fixedClock(T0)
    const old = await generateKeyRecord('ES256', T0 - 1000, T0 - 1000)
    const current = await generateKeyRecord('ES256', T0 - 10, T0 - 10)
    const next = await generateKeyRecord('ES256', T0, T0 + 600)
    const store = createKeyStore([old, next, current], clock)
    expect(store.signingKey().kid).toBe(current.kid)
    expect(
      JSON.parse(store.jwks().body)
        .keys.map((k: { kid: string }) => k.kid)
        .sort(),
    ).toEqual([old.kid, current.kid, next.kid].sort())
    clock.set(T0 + 600)
    expect(store.signingKey().kid).toBe(next.kid)
    expect(store.verificationKey(old.kid)).toBeDefined()
    expect(store.verificationKey('nope')).toBeUndefined()
  })

  it('serves the same JWKS body and ETag for the same keys in any order', async () => {
    const a = await generateKeyRecord('ES256', T0)
    const b = await generateKeyRecord('EdDSA', T0 + 1)
    const clock = fixedClock()
    expect(createKeyStore([a, b], clock).jwks()).toEqual(createKeyStore([b, a], clock).jwks())
    expect(createKeyStore([a], clock).jwks().etag).not.toBe(createKeyStore([a, b], clock).jwks().etag)
  })
})
