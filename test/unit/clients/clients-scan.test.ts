import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  MISSING,
  clientsFileSignature,
  loadClientRegistry,
  readClientsFile,
} from '../../../src/clients/clients-file.js'
import { scanClientsFile, type ReadAt } from '../../../src/clients/clients-scan.js'
import {
  createClientRegistry,
  parseClientsFile,
  type ClientEntry,
  type ClientRegistry,
} from '../../../src/clients/registry.js'
import { findDuplicateName } from '../../../src/storage/duplicate-names.js'
import { tempDir } from '../../helpers/cli.js'
import { T0, clientEntry } from '../../helpers/make-deps.js'

/** Reads `text` at most `chunk` bytes per call, so refills fall everywhere. */
function readerOf(text: string, chunk = Infinity): ReadAt {
  const bytes = Buffer.from(text)
  return (buffer, offset, length, position) => {
    const count = Math.max(0, Math.min(length, chunk, bytes.length - position))
    bytes.copy(buffer, offset, position, position + count)
    return count
  }
}

/** What the thorough way makes of `text`: its entries, or undefined when it refuses the file. */
function reference(text: string): ClientEntry[] | undefined {
  try {
    const file = parseClientsFile(text)
    return findDuplicateName(text) ? undefined : file.clients
  } catch {
    return undefined
  }
}

/** Everything a registry answers about `entries`, secrets probed around each expiry. */
function dump(registry: ClientRegistry, entries: readonly ClientEntry[]) {
  const ids = [...registry.ids()]
  return {
    size: registry.size,
    scopes: registry.scopes,
    ids,
    tokensRevokedAt: [...registry.tokensRevokedAt],
    clients: ids.map((id) => registry.get(id)),
    matches: entries.map((entry) =>
      entry.secrets.map((secret) => {
        const digest = Buffer.from(secret.sha256, 'base64url')
        const times = [0, T0, ...(secret.expires === null ? [] : [secret.expires - 1, secret.expires])]
        return times.map((now) => registry.match(entry.client_id, digest, now)?.id ?? null)
      }),
    ),
  }
}

const scanText = (text: string, chunk?: number) => scanClientsFile(readerOf(text, chunk))

const id = fc.stringMatching(/^[A-Za-z0-9._-]{3,20}$/)
const sha256 = fc.stringMatching(/^[A-Za-z0-9_-]{43}$/) // not always canonical base64url: the last character's low bits vary
const scope = fc.oneof(
  fc.constantFrom('read', 'write', 'invoices:read', 'a/b'),
  fc.stringMatching(/^[\x21\x23-\x5B\x5D-\x7E]{1,12}$/),
)
const audience = fc.oneof(
  fc.constantFrom('https://api.example.com', 'urn:api:b'),
  fc.stringMatching(/^[\x21-\x7E]{1,20}$/),
)
const time = fc.integer({ min: 0, max: 2 * T0 })
const secret = fc.record(
  { sha256, created: time, expires: fc.option(time, { nil: null }) },
  { requiredKeys: ['sha256', 'created'] },
)
const entry = fc.record(
  {
    client_id: id,
    secrets: fc.array(secret, { minLength: 1, maxLength: 2 }),
    scopes: fc.array(scope, { minLength: 1, maxLength: 3 }),
    audiences: fc.array(audience, { minLength: 1, maxLength: 2 }),
    access_token_ttl: fc.integer({ min: 60, max: 3600 }),
    grant_types: fc.constantFrom([], ['client_credentials'], ['client_credentials', 'client_credentials']),
    resource_server: fc.boolean(),
    tokens_revoked_at: time,
  },
  { requiredKeys: ['client_id', 'secrets', 'scopes', 'audiences'] },
)
/** Entries with their members in any order, written compact or indented. */
const fileText = fc
  .tuple(
    fc.uniqueArray(entry, { selector: (e) => e.client_id, maxLength: 4 }),
    fc.constantFrom(0, 2, '\t'),
    fc.boolean(),
  )
  .map(([entries, indent, reversed]) => {
    const ordered = entries.map((e) => Object.fromEntries(reversed ? Object.entries(e).reverse() : Object.entries(e)))
    return JSON.stringify({ clients: ordered }, null, indent)
  })

describe('scanClientsFile', () => {
  it('reads files as the client script and the bench write them, whatever the chunk size', () => {
    const entries = [
      clientEntry({ id: 'svc-a', secret: 'tks_a', scopes: ['read', 'write'] }),
      clientEntry({
        id: 'svc-rot',
        secret: 'tks_new',
        secrets: [
          { secret: 'tks_old', expires: T0 + 60 },
          { secret: 'tks_new', expires: null },
        ],
        ttl: 600,
      }),
      {
        ...clientEntry({ id: 'svc-rs', secret: 'tks_rs', resourceServer: true, grantTypes: [] }),
        tokens_revoked_at: T0 - 5,
      },
    ]
    for (const text of [
      `${JSON.stringify({ clients: entries }, null, 2)}\n`,
      JSON.stringify({ clients: entries }),
      '{"clients": []}',
    ]) {
      const expected = dump(createClientRegistry(parseClientsFile(text)), entries)
      for (const chunk of [1, 3, 7, 64, Infinity]) {
        const scanned = scanText(text, chunk)
        expect(scanned).toBeDefined()
        expect(dump(scanned!, entries)).toEqual(expected)
      }
    }
  })

  it('reads every generated file in the plain form exactly as the thorough way does', () => {
    let scanned = 0
    fc.assert(
      fc.property(fileText, fc.constantFrom(1, 5, 64, Infinity), (text, chunk) => {
        const entries = reference(text)!
        expect(entries).toBeDefined()
        const registry = scanText(text, chunk)
        if (!registry) return // an escaped quote or backslash in an audience: left to the thorough way
        scanned++
        expect(dump(registry, entries)).toEqual(dump(createClientRegistry({ clients: entries }), entries))
      }),
      { numRuns: 300 },
    )
    expect(scanned).toBeGreaterThan(150)
  })

  it('never accepts a file the thorough way refuses, nor reads one differently', () => {
    const inserted = fc.oneof(
      fc.constantFrom(
        '{',
        '}',
        '[',
        ']',
        ',',
        ':',
        '"',
        '\\',
        ' ',
        '\n',
        '0',
        '1',
        '-',
        '.',
        'e',
        'E',
        '+',
        'n',
        't',
        'f',
        'é',
        '\u0000',
        '"a":1',
        'null',
      ),
      fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 3 }),
    )
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: inserted }),
      fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 8 }) }),
      fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), text: inserted }),
      fc.record({ kind: fc.constant('repeat' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 60 }) }),
    )
    fc.assert(
      fc.property(
        fileText,
        fc.array(mutation, { minLength: 1, maxLength: 3 }),
        fc.constantFrom(2, 64, Infinity),
        (original, mutations, chunk) => {
          let text = original
          for (const m of mutations) {
            const at = text.length === 0 ? 0 : m.at % text.length
            if (m.kind === 'insert') text = text.slice(0, at) + m.text + text.slice(at)
            else if (m.kind === 'delete') text = text.slice(0, at) + text.slice(at + m.length)
            else if (m.kind === 'replace') text = text.slice(0, at) + m.text + text.slice(at + m.text.length)
            else text = text.slice(0, at) + text.slice(at, at + m.length) + text.slice(at)
          }
          const entries = reference(text)
          const registry = scanText(text, chunk)
          if (!entries) expect(registry).toBeUndefined()
          else if (registry)
            expect(dump(registry, entries)).toEqual(dump(createClientRegistry({ clients: entries }), entries))
        },
      ),
      { numRuns: 3000 },
    )
  })

  it.each([
    ['a digest of the wrong length', '"sha256":"AAAA"'],
    ['a negative time', '"created":-1'],
    ['a fraction', '"created":1.5'],
    ['a leading zero', '"created":01'],
    ['an unknown member', '"created":1,"extra":true'],
    ['a repeated member', '"created":1,"created":2'],
  ])('gives up on %s (the thorough way then decides)', (_name, replacement) => {
    const text = JSON.stringify({ clients: [clientEntry({ id: 'svc-a', secret: 'tks_a' })] }).replace(
      /"created":\d+/,
      replacement,
    )
    expect(scanText(text)).toBeUndefined()
  })
})

describe('loadClientRegistry', () => {
  const write = (text: string) => {
    const path = join(tempDir(), 'clients.json')
    writeFileSync(path, text, { mode: 0o600 })
    return path
  }
  const good = clientEntry({ id: 'svc-a', secret: 'tks_a' })

  it('an absent file is an empty registry whose source says so', async () => {
    const registry = await loadClientRegistry(join(tempDir(), 'clients.json'))
    expect({ size: registry.size, source: registry.source }).toEqual({ size: 0, source: MISSING })
  })

  it('records the signature of the file it read', async () => {
    const path = write(JSON.stringify({ clients: [good] }))
    expect((await loadClientRegistry(path)).source).toBe(await clientsFileSignature(path))
  })

  it.each([
    ['an escaped client_id', JSON.stringify({ clients: [good] }).replace('"svc-a"', '"svc\\u002da"')],
    ['a time written as 1.0', JSON.stringify({ clients: [good] }).replace(/"created":(\d+)/, '"created":$1.0')],
    [
      'an unknown member in a secret (dropped by the schema)',
      JSON.stringify({ clients: [good] }).replace('"created":', '"note":"x","created":'),
    ],
    [
      'a string with a non-ASCII character where any is allowed',
      JSON.stringify({ clients: [{ ...good, secrets: [{ ...good.secrets[0], note: 'é' }] }] }),
    ],
  ])('reads a file outside the plain form the thorough way: %s', async (_name, text) => {
    expect(scanText(text)).toBeUndefined()
    const entries = (await readClientsFile(write(text))).clients
    expect(dump(await loadClientRegistry(write(text)), entries)).toEqual(
      dump(createClientRegistry({ clients: entries }), entries),
    )
  })

  it.each([
    ['not JSON', '{"clients": ['],
    ['empty', ''],
    [
      'a duplicate member name',
      JSON.stringify({ clients: [good] }).replace('"scopes":', '"scopes":["admin"],"scopes":'),
    ],
    ['a malformed digest', JSON.stringify({ clients: [{ ...good, secrets: [{ sha256: 'abc', created: 1 }] }] })],
    ['a client listed twice', JSON.stringify({ clients: [good, good] })],
    [
      'three secrets',
      JSON.stringify({ clients: [{ ...good, secrets: [good.secrets[0], good.secrets[0], good.secrets[0]] }] }),
    ],
    ['a TTL out of range', JSON.stringify({ clients: [{ ...good, access_token_ttl: 30 }] })],
    ['an unknown top-level member', JSON.stringify({ clients: [good], other: 1 })],
    ['no secrets', JSON.stringify({ clients: [{ ...good, secrets: [] }] })],
  ])('refuses %s with the message readClientsFile gives', async (_name, text) => {
    const path = write(text)
    const expected = await readClientsFile(path).then(
      () => 'accepted',
      (error: Error) => error.message,
    )
    expect(expected).toMatch(new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `))
    await expect(loadClientRegistry(path)).rejects.toThrow(expected)
  })
})
