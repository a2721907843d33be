import { chmodSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { generateKeyRecord, parseKeyFile, serializeKeyRecord, type KeyRecord } from '../../../src/keys/key-file.js'
import { createKeyStore as createStore } from '../../../src/keys/key-store.js'
import type { Clock } from '../../../src/clock.js'

const createKeyStore = (records: KeyRecord[], clock: Clock) => createStore(records, clock, { retention: 3690 })
import { ensureKeys, readKeysDir, writeKeyRecord } from '../../../src/keys/keys-dir.js'
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
    expect(records().find((r) => r.msg === 'generated a signing key and a standby key in an empty KEYS_DIR')).toMatchObject({ kid: current!.kid, standby: standby!.kid })
    expect(readdirSync(dir).filter((name) => name.startsWith('.'))).toEqual([]) // no temp or lock left
  })

  it('never generates a key while valid keys exist, and kids stay stable across restarts (OF-9)', async () => {
    const dir = tempDir()
    const deps = { clock: fixedClock(), log: captureLog().log }
    const first = await ensureKeys(dir, 'ES256', deps)
    const second = await ensureKeys(dir, 'ES256', deps)
    expect(second.records.map((r) => r.kid).sort()).toEqual(first.records.map((r) => r.kid).sort())
    expect(keyFiles(dir)).toHaveLength(2)
  })

  it('five instances starting on one empty directory create exactly one key (SK-11)', async () => {
    const dir = tempDir()
    const results = await Promise.all(
      Array.from({ length: 5 }, () => ensureKeys(dir, 'ES256', { clock: fixedClock(), log: captureLog().log })),
    )
    expect(keyFiles(dir)).toHaveLength(2)
    const currents = results.map((r) => r.records.filter((k) => k.activates !== null).map((k) => k.kid).join())
    expect(new Set(currents).size).toBe(1)
  })

  it('does not paper over a broken key with a new one', async () => {
    const dir = tempDir()
    const record = await generateKeyRecord('ES256', T0)
    writeFileSync(join(dir, `${record.kid}.json`), serializeKeyRecord(record).slice(0, 100), { mode: 0o600 })
    const contents = await ensureKeys(dir, 'ES256', { clock: fixedClock(), log: captureLog().log })
    expect(contents.records).toEqual([])
    expect(contents.problems).toEqual([{ file: `${record.kid}.json`, problem: expect.stringMatching(/not valid JSON/) }])
    expect(keyFiles(dir)).toHaveLength(1)
  })

  it('reports a group- or world-readable key file (SK-9)', async () => {
    const dir = tempDir()
    const record = await generateKeyRecord('ES256', T0)
    await writeKeyRecord(dir, record)
    chmodSync(join(dir, `${record.kid}.json`), 0o644)
    const contents = await readKeysDir(dir)
    expect(contents.problems).toEqual([])
    expect(contents.exposed).toEqual([`${record.kid}.json`])
  })

  it('a key file is never overwritten by a second write', async () => {
    const dir = tempDir()
    const record = await generateKeyRecord('ES256', T0)
    await writeKeyRecord(dir, record)
    const before = readFileSync(join(dir, `${record.kid}.json`), 'utf8')
    await expect(writeKeyRecord(dir, { ...record, created: T0 + 5 })).rejects.toMatchObject({ code: 'EEXIST' })
    expect(readFileSync(join(dir, `${record.kid}.json`), 'utf8')).toBe(before)
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
    if (alg.startsWith('RS') || alg.startsWith('PS')) expect(record.privateKey.asymmetricKeyDetails?.modulusLength).toBe(3072)
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
    const broken = JSON.stringify({ ...json, privateKey: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n' })
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
    expect(JSON.parse(store.jwks().body).keys.map((k: { kid: string }) => k.kid).sort()).toEqual([old.kid, current.kid, next.kid].sort())
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
