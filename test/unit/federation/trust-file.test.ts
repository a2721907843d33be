import { mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { DEFAULT_MAX_TOKEN_AGE, trustEntrySchema } from '../../../src/federation/trust-entry.js'
import {
  MISSING,
  loadTrustStore,
  parseTrustFile,
  readTrustFile,
  resolveEntryPath,
  trustFileSignature,
  updateTrustFile,
} from '../../../src/federation/trust-file.js'
import { tempDir } from '../../helpers/cli.js'

const GITHUB = 'https://token.actions.githubusercontent.com'

/** A valid entry as the file holds it, with `fields` over it. */
const entry = (fields: Record<string, unknown> = {}) => ({
  id: 'gha-deploy',
  issuer: GITHUB,
  subject: 'repo:acme/app:ref:refs/heads/main',
  clients: ['deployer'],
  ...fields,
})
/** The same, as parsed: what updateTrustFile's change works with. */
const stored = (fields: Record<string, unknown> = {}) => trustEntrySchema.parse(entry(fields))
const fileText = (...entries: Record<string, unknown>[]) => JSON.stringify({ trust: entries })

/** The message parseTrustFile throws for `text`. */
const problem = (text: string) => {
  try {
    parseTrustFile(text)
  } catch (error) {
    return (error as Error).message
  }
  throw new Error('parsed without a problem')
}

describe('parseTrustFile', () => {
  it('reads an entry and fills in the defaults', () => {
    expect(parseTrustFile(fileText(entry()))).toEqual({
      trust: [
        {
          id: 'gha-deploy',
          issuer: GITHUB,
          subject: 'repo:acme/app:ref:refs/heads/main',
          clients: ['deployer'],
          allow_private_network: false,
          claims: {},
          single_use_jti: true,
          max_token_age: DEFAULT_MAX_TOKEN_AGE,
        },
      ],
    })
    expect(parseTrustFile('{"trust": []}')).toEqual({ trust: [] })
  })

  it.each([
    ['a missing subject', entry({ subject: undefined }), 'entry "gha-deploy" (#0) field subject: '],
    [
      'an empty client list',
      entry({ clients: [] }),
      'entry "gha-deploy" (#0) field clients: needs at least one client id',
    ],
    ['a bad client id', entry({ clients: ['x'] }), 'entry "gha-deploy" (#0) field clients.0: each must match'],
    [
      'a client listed twice',
      entry({ clients: ['a-1', 'a-1'] }),
      'entry "gha-deploy" (#0) field clients: lists a client twice',
    ],
    [
      'an issuer that is no URL',
      entry({ issuer: 'acme' }),
      'entry "gha-deploy" (#0) field issuer: must be an absolute URL',
    ],
    ['a max_token_age out of range', entry({ max_token_age: 10 }), 'entry "gha-deploy" (#0) field max_token_age: '],
    ['an unknown field', entry({ subjet: 'x' }), 'entry "gha-deploy" (#0) field (entry): '],
    ['a bad id', entry({ id: 'has space' }), 'entry "has space" (#0) field id: must match'],
    ['no id at all', entry({ id: undefined }), 'entry #0 field id: '],
    [
      'both jwks_file and jwks_uri',
      entry({ jwks_file: 'k.json', jwks_uri: `${GITHUB}/jwks` }),
      'entry "gha-deploy" (#0) field jwks_file: use jwks_file or jwks_uri, not both',
    ],
  ])('names the entry and the field for %s', (_why, bad, expected) => {
    expect(problem(fileText(bad))).toContain(expected)
  })

  it('names the index of an entry further down the list', () => {
    expect(problem(fileText(entry(), entry({ id: 'second', subject: '' })))).toMatch(
      /^entry "second" \(#1\) field subject: /,
    )
  })

  it('refuses an id listed twice, naming the second', () => {
    expect(problem(fileText(entry(), entry({ subject: 'other' })))).toBe(
      'entry "gha-deploy" (#1) field id: entry gha-deploy is listed twice',
    )
  })

  it('names the root for a file of the wrong shape', () => {
    expect(problem('{"trust": {}}')).toMatch(/^field trust: /)
    expect(problem('{}')).toMatch(/^field trust: /)
    expect(problem('{"trust": [], "extra": 1}')).toMatch(/^field \(root\): /)
    expect(problem('[]')).toMatch(/^field \(root\): /)
    expect(problem('{"trust": [')).toMatch(/^not valid JSON: /)
  })

  it('allows plain http only with allow_private_network, or for an issuer whose keys are pinned', () => {
    expect(problem(fileText(entry({ issuer: 'http://10.0.0.5:8080' })))).toBe(
      'entry "gha-deploy" (#0) field issuer: plain http only with allow_private_network',
    )
    expect(problem(fileText(entry({ jwks_uri: 'http://10.0.0.5/keys' })))).toBe(
      'entry "gha-deploy" (#0) field jwks_uri: plain http only with allow_private_network',
    )
    expect(problem(fileText(entry({ issuer: 'ftp://example.com' })))).toContain('field issuer: must be an https URL')
    expect(problem(fileText(entry({ issuer: 'https://u:p@example.com' })))).toContain(
      'field issuer: must not hold a user name or password',
    )
    for (const ok of [
      entry({ issuer: 'http://10.0.0.5:8080', allow_private_network: true }),
      entry({ jwks_uri: 'http://10.0.0.5/keys', allow_private_network: true }),
      entry({ issuer: 'http://kubernetes.default.svc', jwks_file: 'cluster-jwks.json' }),
    ]) {
      expect(() => parseTrustFile(fileText(ok))).not.toThrow()
    }
  })
})

describe('reading TRUST_FILE', () => {
  it('a missing file is no entries, with source MISSING', async () => {
    const path = join(tempDir(), 'trust.json')
    expect(await loadTrustStore(path)).toEqual({ entries: [], source: MISSING })
    expect(await readTrustFile(path)).toEqual({ trust: [] })
    expect(await trustFileSignature(path)).toBe(MISSING)
  })

  it('prefixes a problem with the path of the file', async () => {
    const path = join(tempDir(), 'trust.json')
    writeFileSync(path, fileText(entry({ subject: '' })))
    await expect(loadTrustStore(path)).rejects.toThrow(`${path}: entry "gha-deploy" (#0) field subject: `)
    await expect(readTrustFile(path)).rejects.toThrow(`${path}: entry "gha-deploy" (#0) field subject: `)
  })

  it('refuses a member name given twice in one entry, which JSON.parse would let pass', async () => {
    const path = join(tempDir(), 'trust.json')
    const text = fileText(entry()).replace('"subject":', '"subject":"*","subject":')
    writeFileSync(path, text)
    await expect(loadTrustStore(path)).rejects.toThrow(
      `${path}: member name "subject" appears twice in trust[0]; names in an object must be unique`,
    )
  })

  it('resolves relative file paths against the trust file directory, and keeps absolute ones', async () => {
    const dir = tempDir()
    mkdirSync(join(dir, 'conf'))
    const path = join(dir, 'conf', 'trust.json')
    writeFileSync(
      path,
      fileText(
        entry({
          id: 'pinned',
          jwks_file: 'keys/cluster.json',
          ca_file: '../ca.pem',
          bearer_token_file: '/var/run/token',
        }),
        entry({ id: 'plain' }),
      ),
    )
    const store = await loadTrustStore(path)
    expect(store.entries[0]).toMatchObject({
      jwks_file: join(dir, 'conf', 'keys', 'cluster.json'),
      ca_file: join(dir, 'ca.pem'),
      bearer_token_file: '/var/run/token',
    })
    expect(store.entries[1]).not.toHaveProperty('jwks_file')
    expect(store.source).toBe(await trustFileSignature(path))
    // The file as written keeps what the operator wrote.
    expect((await readTrustFile(path)).trust[0]).toMatchObject({ jwks_file: 'keys/cluster.json', ca_file: '../ca.pem' })

    expect(resolveEntryPath('/etc/tokensmith/trust.json', 'jwks.json')).toBe('/etc/tokensmith/jwks.json')
    expect(resolveEntryPath('/etc/tokensmith/trust.json', '/srv/jwks.json')).toBe('/srv/jwks.json')
    expect(resolveEntryPath('trust.json', 'jwks.json')).toBe(join(process.cwd(), 'jwks.json'))
  })

  it('a changed file has a new signature', async () => {
    const path = join(tempDir(), 'trust.json')
    writeFileSync(path, fileText(entry()))
    const before = await trustFileSignature(path)
    await updateTrustFile(path, (file) => ({ file: { trust: [...file.trust, stored({ id: 'b' })] }, result: 1 }))
    expect(await trustFileSignature(path)).not.toBe(before)
  })
})

describe('updateTrustFile', () => {
  it('creates the file with mode 0600 and returns what the change returns', async () => {
    const dir = tempDir()
    const path = join(dir, 'trust.json')
    const result = await updateTrustFile(path, (file) => ({ file: { trust: [...file.trust, stored()] }, result: 'ok' }))
    expect(result).toBe('ok')
    expect(statSync(path).mode & 0o777).toBe(0o600)
    expect(parseTrustFile(readFileSync(path, 'utf8')).trust.map((e) => e.id)).toEqual(['gha-deploy'])
    expect(readdirSync(dir)).toEqual(['trust.json']) // no temp or lock file left behind
  })

  it('never writes what the server would refuse to load', async () => {
    const dir = tempDir()
    const path = join(dir, 'trust.json')
    writeFileSync(path, fileText(entry()), { mode: 0o600 })
    const before = readFileSync(path, 'utf8')
    const broken = [
      { ...parseTrustFile(before).trust[0]!, subject: '' },
      { ...parseTrustFile(before).trust[0]!, issuer: 'http://10.0.0.5' },
    ]
    for (const bad of broken) {
      await expect(updateTrustFile(path, () => ({ file: { trust: [bad] }, result: 0 }))).rejects.toThrow(/field/)
    }
    // A duplicate id as well: the file-level check runs too.
    await expect(
      updateTrustFile(path, (file) => ({ file: { trust: [...file.trust, ...file.trust] }, result: 0 })),
    ).rejects.toThrow('is listed twice')
    expect(readFileSync(path, 'utf8')).toBe(before)
    expect(readdirSync(dir)).toEqual(['trust.json'])
  })

  it('leaves the file as it was when the change throws', async () => {
    const path = join(tempDir(), 'trust.json')
    writeFileSync(path, fileText(entry()))
    const before = readFileSync(path, 'utf8')
    await expect(
      updateTrustFile(path, () => {
        throw new Error('no')
      }),
    ).rejects.toThrow('no')
    expect(readFileSync(path, 'utf8')).toBe(before)
  })

  it('refuses to rewrite a broken file', async () => {
    const path = join(tempDir(), 'trust.json')
    writeFileSync(path, '{"trust": [')
    await expect(updateTrustFile(path, (file) => ({ file, result: 0 }))).rejects.toThrow(`${path}: not valid JSON`)
    expect(readFileSync(path, 'utf8')).toBe('{"trust": [')
  })

  it('concurrent updates lose nothing', async () => {
    const path = join(tempDir(), 'trust.json')
    await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        updateTrustFile(path, (file) => ({ file: { trust: [...file.trust, stored({ id: `e${i}` })] }, result: i })),
      ),
    )
    expect((await readTrustFile(path)).trust.map((e) => e.id).sort()).toEqual(
      Array.from({ length: 12 }, (_, i) => `e${i}`).sort(),
    )
  })

  it('writes through a symlink, which stays a link', async () => {
    const dir = tempDir()
    const target = join(dir, 'real-trust.json')
    const path = join(dir, 'trust.json')
    writeFileSync(target, fileText(entry()))
    symlinkSync(target, path)
    await updateTrustFile(path, (file) => ({ file: { trust: [...file.trust, stored({ id: 'b' })] }, result: 0 }))
    expect((await readTrustFile(target)).trust.map((e) => e.id)).toEqual(['gha-deploy', 'b'])
    expect(readdirSync(dir).sort()).toEqual(['real-trust.json', 'trust.json'])
  })
})
