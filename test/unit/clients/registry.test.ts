import { beforeEach, describe, expect, it, vi } from 'vitest'
import { createClientRegistry, parseClientsFile, verifyClientSecret } from '../../../src/clients/registry.js'
import { digestSecret, digestsEqual } from '../../../src/clients/secret.js'
import { T0, clientEntry, fixedClock } from '../../helpers/make-deps.js'

// Count the hashing and comparing verifyClientSecret does: the same work for every caller, so timing tells nothing.
vi.mock('../../../src/clients/secret.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../../src/clients/secret.js')>()
  return { ...original, digestSecret: vi.fn(original.digestSecret), digestsEqual: vi.fn(original.digestsEqual) }
})

const DIGEST = digestSecret('tks_a').toString('base64url')
const entry = (overrides: Record<string, unknown> = {}) => ({
  client_id: 'svc-a',
  secrets: [{ sha256: DIGEST, created: T0 - 10 }],
  scopes: ['read'],
  audiences: ['https://api.example.com'],
  ...overrides,
})
const file = (...clients: unknown[]) => JSON.stringify({ clients })
const parseError = (text: string) => {
  try {
    parseClientsFile(text)
  } catch (error) {
    return (error as Error).message
  }
  throw new Error('expected parseClientsFile to throw')
}

describe('parseClientsFile', () => {
  it('parses a valid file and fills in the defaults', () => {
    expect(
      parseClientsFile(file(entry(), entry({ client_id: 'svc-b', access_token_ttl: 900, resource_server: true }))),
    ).toEqual({
      clients: [
        {
          client_id: 'svc-a',
          secrets: [{ sha256: DIGEST, created: T0 - 10, expires: null }],
          scopes: ['read'],
          audiences: ['https://api.example.com'],
          grant_types: ['client_credentials'],
          resource_server: false,
        },
        {
          client_id: 'svc-b',
          secrets: [{ sha256: DIGEST, created: T0 - 10, expires: null }],
          scopes: ['read'],
          audiences: ['https://api.example.com'],
          access_token_ttl: 900,
          grant_types: ['client_credentials'],
          resource_server: true,
        },
      ],
    })
  })

  it('accepts an empty client list', () => {
    expect(parseClientsFile('{"clients":[]}')).toEqual({ clients: [] })
  })

  it('says when the text is not JSON', () => {
    expect(parseError('{"clients": [')).toMatch(/^not valid JSON: /)
    expect(parseError('')).toMatch(/^not valid JSON: /)
  })

  it.each([
    ['no clients array', '{}', /^field clients: /],
    ['an array at the root', '[]', /^field \(root\): /],
    ['an unknown root key', JSON.stringify({ clients: [], other: 1 }), /^field \(root\): .*other/],
  ])('names the root field for %s', (_name, text, message) => {
    expect(parseError(text)).toMatch(message)
  })

  it.each([
    ['no secret', { secrets: [] }, 'client "svc-a" field secrets: needs at least one secret digest'],
    [
      'a malformed digest',
      { secrets: [{ sha256: 'abc', created: 1 }] },
      'client "svc-a" field secrets.0.sha256: must be a base64url SHA-256 digest',
    ],
    [
      'a negative expiry',
      { secrets: [{ sha256: DIGEST, created: 1, expires: -1 }] },
      /^client "svc-a" field secrets\.0\.expires: /,
    ],
    [
      'a bad scope',
      { scopes: ['ok', 'a"b'] },
      'client "svc-a" field scopes.1: each scope must be an RFC 6749 section 3.3 scope-token',
    ],
    ['no scopes', { scopes: [] }, /^client "svc-a" field scopes: /],
    ['no audiences', { audiences: [] }, /^client "svc-a" field audiences: /],
    [
      'an audience with a space',
      { audiences: ['a b'] },
      'client "svc-a" field audiences.0: each audience must be 1-512 visible ASCII characters',
    ],
    ['a TTL below 60 s', { access_token_ttl: 30 }, /^client "svc-a" field access_token_ttl: /],
    ['a TTL above 3600 s', { access_token_ttl: 3601 }, /^client "svc-a" field access_token_ttl: /],
    ['an unknown grant type', { grant_types: ['password'] }, /^client "svc-a" field grant_types\.0: /],
    ['an unknown field', { extra: true }, /^client "svc-a" field \(entry\): .*extra/],
    [
      'a client_id with a space',
      { client_id: 'svc a' },
      'client "svc a" field client_id: must match ^[A-Za-z0-9._-]{3,64}$',
    ],
    ['a client_id with a colon', { client_id: 'svc:a' }, /^client "svc:a" field client_id: /],
    ['a client_id too short', { client_id: 'ab' }, /^client "ab" field client_id: /],
  ])('names the client and field for %s', (_name, overrides, message) => {
    const text = file(entry({ client_id: 'svc-ok' }), entry(overrides))
    if (typeof message === 'string') expect(parseError(text)).toBe(message)
    else expect(parseError(text)).toMatch(message)
  })

  it('names a client without a usable id by its position', () => {
    expect(parseError(file(entry({ client_id: 'svc-ok' }), entry({ client_id: undefined })))).toMatch(
      /^client "#1" field client_id: /,
    )
    expect(parseError(file('not an object'))).toMatch(/^client "#0" field \(entry\): /)
  })

  it('escapes a hostile client_id in the message', () => {
    const message = parseError(file(entry({ client_id: 'x\n{"level":60}' })))
    expect(message).not.toContain('\n')
    expect(message.startsWith('client "x\\n{\\"level\\":60}" field client_id')).toBe(true)
  })

  it('refuses a client listed twice, naming it', () => {
    expect(parseError(file(entry(), entry({ client_id: 'svc-b' }), entry()))).toBe('client "svc-a" is listed twice')
  })

  it('refuses more than two secrets, naming the client', () => {
    const secrets = [1, 2, 3].map((created) => ({ sha256: DIGEST, created }))
    expect(parseError(file(entry({ secrets })))).toBe('client "svc-a" field secrets: at most two live secrets')
  })
})

describe('createClientRegistry', () => {
  const registry = createClientRegistry(
    parseClientsFile(
      file(
        entry({ scopes: ['write', 'read'] }),
        entry({ client_id: 'svc-b', scopes: ['admin', 'read'], access_token_ttl: 600 }),
      ),
    ),
  )

  it('finds clients by id and nothing else', () => {
    expect(registry.size).toBe(2)
    expect(registry.get('svc-a')).toStrictEqual({
      id: 'svc-a',
      scopes: ['write', 'read'],
      audiences: ['https://api.example.com'],
      accessTokenTtl: undefined,
      grantTypes: ['client_credentials'],
      resourceServer: false,
      quota: undefined,
      requireDpop: false,
    })
    expect(registry.get('svc-b')?.accessTokenTtl).toBe(600)
    expect(registry.get('svc-c')).toBeUndefined()
    expect(registry.get('SVC-A')).toBeUndefined()
    expect(registry.get('__proto__')).toBeUndefined()
  })

  it('lists the union of every scope, sorted, once each', () => {
    expect(registry.scopes).toEqual(['admin', 'read', 'write'])
  })

  it('lists ids in file order and the tokens_revoked_at of those that have one', () => {
    const withRevocation = createClientRegistry({
      clients: [
        clientEntry({ id: 'svc-b', secret: 'tks_b' }),
        { ...clientEntry({ id: 'svc-a', secret: 'tks_a' }), tokens_revoked_at: T0 },
      ],
    })
    expect([...withRevocation.ids()]).toEqual(['svc-b', 'svc-a'])
    expect(withRevocation.has('svc-a') && !withRevocation.has('svc-c')).toBe(true)
    expect([...withRevocation.tokensRevokedAt]).toEqual([['svc-a', T0]])
  })

  it('shares one frozen copy of the settings between clients that have the same', () => {
    const many = createClientRegistry({
      clients: ['svc-1', 'svc-2', 'svc-3'].map((id) =>
        clientEntry({ id, secret: `tks_${id}`, scopes: ['read', 'write'] }),
      ),
    })
    const [one, two] = [many.get('svc-1')!, many.get('svc-3')!]
    expect(two.scopes).toBe(one.scopes)
    expect(two.audiences).toBe(one.audiences)
    expect(() => (one.scopes as string[]).push('admin')).toThrow(TypeError)
    expect(many.get('svc-2')!.scopes).toEqual(['read', 'write'])
  })
})

describe('verifyClientSecret', () => {
  const clock = fixedClock()
  const registry = createClientRegistry({
    clients: [
      clientEntry({ id: 'svc-a', secret: 'tks_a' }),
      clientEntry({
        id: 'svc-rot',
        secret: 'tks_new',
        secrets: [
          { secret: 'tks_old', expires: T0 + 60 },
          { secret: 'tks_new', expires: null },
        ],
      }),
      clientEntry({ id: 'svc-gone', secret: 'tks_gone', secrets: [{ secret: 'tks_gone', expires: T0 - 1 }] }),
    ],
  })
  const counts = (id: string, secret: string) => {
    vi.mocked(digestSecret).mockClear()
    vi.mocked(digestsEqual).mockClear()
    const client = verifyClientSecret(registry, id, secret, clock)
    return {
      client: client?.id,
      hashes: vi.mocked(digestSecret).mock.calls.length,
      compares: vi.mocked(digestsEqual).mock.calls.length,
    }
  }

  beforeEach(() => clock.set(T0))

  it('returns the client for its secret, and undefined for a wrong one', () => {
    expect(verifyClientSecret(registry, 'svc-a', 'tks_a', clock)?.id).toBe('svc-a')
    expect(verifyClientSecret(registry, 'svc-a', 'tks_b', clock)).toBeUndefined()
    expect(verifyClientSecret(registry, 'svc-a', '', clock)).toBeUndefined()
    expect(verifyClientSecret(registry, 'svc-a', 'tks_a ', clock)).toBeUndefined()
  })

  it("refuses another client's secret", () => {
    expect(verifyClientSecret(registry, 'svc-rot', 'tks_a', clock)).toBeUndefined()
  })

  it('accepts either live secret during rotation', () => {
    expect(verifyClientSecret(registry, 'svc-rot', 'tks_old', clock)?.id).toBe('svc-rot')
    expect(verifyClientSecret(registry, 'svc-rot', 'tks_new', clock)?.id).toBe('svc-rot')
  })

  it('stops accepting a secret from its expiry time on', () => {
    clock.set(T0 + 59)
    expect(verifyClientSecret(registry, 'svc-rot', 'tks_old', clock)?.id).toBe('svc-rot')
    clock.set(T0 + 60)
    expect(verifyClientSecret(registry, 'svc-rot', 'tks_old', clock)).toBeUndefined()
    expect(verifyClientSecret(registry, 'svc-rot', 'tks_new', clock)?.id).toBe('svc-rot')
  })

  it('refuses a client whose only secret has expired', () => {
    expect(verifyClientSecret(registry, 'svc-gone', 'tks_gone', clock)).toBeUndefined()
  })

  it('hashes once and compares at least once whether or not the client exists', () => {
    expect(counts('svc-a', 'tks_wrong')).toEqual({ client: undefined, hashes: 1, compares: 1 })
    expect(counts('svc-unknown', 'tks_wrong')).toEqual({ client: undefined, hashes: 1, compares: 1 })
    expect(counts('svc-gone', 'tks_gone')).toEqual({ client: undefined, hashes: 1, compares: 1 })
  })

  it('compares every live secret without stopping at the first match', () => {
    expect(counts('svc-rot', 'tks_old')).toEqual({ client: 'svc-rot', hashes: 1, compares: 2 })
    expect(counts('svc-rot', 'tks_new')).toEqual({ client: 'svc-rot', hashes: 1, compares: 2 })
  })

  it('compares only the live secrets once one has expired, and each with its own digest', () => {
    clock.set(T0 + 60)
    expect(counts('svc-rot', 'tks_new')).toEqual({ client: 'svc-rot', hashes: 1, compares: 1 })
    const compared = vi.mocked(digestsEqual).mock.calls[0]!
    expect(compared[0].equals(digestSecret('tks_new')) && compared[1].equals(digestSecret('tks_new'))).toBe(true)
    expect(counts('svc-rot', 'tks_old')).toEqual({ client: undefined, hashes: 1, compares: 1 })
  })
})
