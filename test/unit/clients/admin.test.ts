import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import {
  createClient,
  createClientInFile,
  deleteClient,
  deleteClientFromFile,
  describeClient,
  rotateClientSecret,
  rotateClientSecretInFile,
  updateClient,
  type ClientSettings,
} from '../../../src/clients/admin.js'
import { readClientsFile } from '../../../src/clients/clients-file.js'
import type { ClientsFile } from '../../../src/clients/registry.js'
import { DEFAULT_GRACE } from '../../../src/clients/rotation.js'
import { digestSecret } from '../../../src/clients/secret.js'
import { tempDir } from '../../helpers/cli.js'
import { T0, fixedClock } from '../../helpers/make-deps.js'

// Client administration as pure functions of CLIENTS_FILE's data, with a fake clock and fake
// secrets; then the file operations and their order against the denylist.
const T = T0
const digest = (secret: string) => digestSecret(secret).toString('base64url')

/** Secrets tks_secret-1, tks_secret-2, … in order. */
function secrets() {
  let n = 0
  return () => `tks_secret-${++n}`
}
const deps = (now = T) => ({ clock: fixedClock(now), generateSecret: secrets() })
const BILLING: ClientSettings = {
  scopes: ['invoices:read'],
  audiences: ['https://api.example.com'],
  resourceServer: false,
}
const EMPTY: ClientsFile = { clients: [] }
const withBilling = () => createClient(EMPTY, 'billing', BILLING, deps(T - 100)).file

describe('createClient', () => {
  it('adds the client with the digest of one new secret, for the client_credentials grant only, and returns the secret', () => {
    const { file, result } = createClient(EMPTY, 'billing', { ...BILLING, accessTokenTtl: 120 }, deps())
    expect(result).toEqual({ clientSecret: 'tks_secret-1' })
    expect(file).toEqual({
      clients: [
        {
          client_id: 'billing',
          secrets: [{ sha256: digest('tks_secret-1'), created: T, expires: null }],
          scopes: ['invoices:read'],
          audiences: ['https://api.example.com'],
          access_token_ttl: 120,
          grant_types: ['client_credentials'],
          resource_server: false,
        },
      ],
    })
    expect(EMPTY).toEqual({ clients: [] })
  })

  it('leaves access_token_ttl out when none is given', () => {
    expect(withBilling().clients[0]).not.toHaveProperty('access_token_ttl')
  })

  it('refuses an id that exists', () => {
    expect(() => createClient(withBilling(), 'billing', BILLING, deps())).toThrow('client billing already exists')
  })
})

describe('updateClient', () => {
  it('changes only the settings given; the secrets stay', () => {
    const before = withBilling()
    const { file, result } = updateClient(before, 'billing', { scopes: ['a', 'b'], resourceServer: true })
    expect(result).toEqual({ ...before.clients[0], scopes: ['a', 'b'], resource_server: true })
    expect(file).toEqual({ clients: [result] })
  })

  it('refuses an unknown client', () => {
    expect(() => updateClient(EMPTY, 'billing', { scopes: ['a'] })).toThrow('no client billing')
  })
})

describe('deleteClient', () => {
  it('removes the client and keeps the others in order', () => {
    const file = createClient(createClient(withBilling(), 'svc-a', BILLING, deps()).file, 'svc-b', BILLING, deps()).file
    expect(deleteClient(file, 'svc-a').file.clients.map((c) => c.client_id)).toEqual(['billing', 'svc-b'])
  })

  it('refuses an unknown client', () => {
    expect(() => deleteClient(EMPTY, 'billing')).toThrow('no client billing')
  })
})

describe('rotateClientSecret', () => {
  it('adds a new secret and keeps the previous one for the default grace', () => {
    const { file, result } = rotateClientSecret(withBilling(), 'billing', { revokeTokens: false }, deps())
    expect(result).toEqual({ clientSecret: 'tks_secret-1', previousExpires: T + DEFAULT_GRACE })
    expect(file.clients[0]?.secrets.map((s) => s.expires)).toEqual([T + DEFAULT_GRACE, null])
    expect(file.clients[0]?.secrets[1]?.sha256).toBe(digest('tks_secret-1'))
  })

  it('with revokeTokens ends the previous secret now and sets tokens_revoked_at', () => {
    const { file, result } = rotateClientSecret(withBilling(), 'billing', { revokeTokens: true }, deps())
    expect(result.previousExpires).toBe(T)
    expect(file.clients[0]?.tokens_revoked_at).toBe(T)
  })

  it('refuses an unknown client', () => {
    expect(() => rotateClientSecret(EMPTY, 'billing', { revokeTokens: false }, deps())).toThrow('no client billing')
  })
})

describe('describeClient', () => {
  it('shows the settings and the secrets times, never a digest', () => {
    const [entry] = rotateClientSecret(withBilling(), 'billing', { revokeTokens: true }, deps()).file.clients
    if (!entry) throw new Error('no entry')
    expect(describeClient(entry)).toEqual({
      client_id: 'billing',
      token_endpoint_auth_method: 'client_secret_basic',
      scopes: ['invoices:read'],
      audiences: ['https://api.example.com'],
      access_token_ttl: null,
      grant_types: ['client_credentials'],
      resource_server: false,
      quota: null,
      require_dpop: false,
      secrets: [
        { created: T - 100, expires: T },
        { created: T, expires: null },
      ],
      tokens_revoked_at: T,
    })
    expect(JSON.stringify(describeClient(entry))).not.toContain(entry.secrets[0]?.sha256)
  })
})

/** CLIENTS_FILE holding `billing`, created at T - 100. */
async function clientsFile() {
  const path = join(tempDir(), 'clients.json')
  await createClientInFile(path, 'billing', BILLING, deps(T - 100))
  return path
}

describe('rotateClientSecretInFile', () => {
  it('with revokeTokens writes the denylist first, then the file, both at the same instant', async () => {
    const path = await clientsFile()
    const seen: { clientId: string; revokedAt: number; fileChanged: boolean }[] = []
    const rotated = await rotateClientSecretInFile(
      path,
      'billing',
      { revokeTokens: true },
      {
        ...deps(T),
        denylistClient: async (clientId, revokedAt) => {
          const entry = (await readClientsFile(path)).clients[0]
          seen.push({ clientId, revokedAt, fileChanged: entry?.tokens_revoked_at !== undefined })
          return 'denylisted'
        },
      },
    )
    expect(seen).toEqual([{ clientId: 'billing', revokedAt: T, fileChanged: false }])
    expect(rotated).toEqual({
      clientSecret: 'tks_secret-1',
      previousExpires: T,
      rotatedAt: T,
      tokensRevoked: 'denylisted',
    })
    expect((await readClientsFile(path)).clients[0]?.tokens_revoked_at).toBe(T)
  })

  it('with revokeTokens changes nothing when the denylist write fails', async () => {
    const path = await clientsFile()
    const before = readFileSync(path, 'utf8')
    const failing = async () => {
      throw new Error('Redis is unreachable')
    }
    await expect(
      rotateClientSecretInFile(path, 'billing', { revokeTokens: true }, { ...deps(T), denylistClient: failing }),
    ).rejects.toThrow('Redis is unreachable')
    expect(readFileSync(path, 'utf8')).toBe(before)
  })

  it('writes no denylist entry for an unknown client', async () => {
    const path = await clientsFile()
    let denylisted = false
    const denylistClient = async () => {
      denylisted = true
    }
    await expect(
      rotateClientSecretInFile(path, 'nobody', { revokeTokens: true }, { ...deps(T), denylistClient }),
    ).rejects.toThrow('no client nobody')
    expect(denylisted).toBe(false)
  })

  it('without revokeTokens writes no denylist entry', async () => {
    const path = await clientsFile()
    let denylisted = false
    const denylistClient = async () => {
      denylisted = true
    }
    const rotated = await rotateClientSecretInFile(
      path,
      'billing',
      { grace: 60, revokeTokens: false },
      { ...deps(T), denylistClient },
    )
    expect(rotated).toMatchObject({ previousExpires: T + 60, tokensRevoked: undefined })
    expect(denylisted).toBe(false)
  })
})

describe('deleteClientFromFile', () => {
  it('removes the client from the file first, then ends its tokens issued up to now', async () => {
    const path = await clientsFile()
    const seen: { clientId: string; revokedAt: number; inFile: boolean }[] = []
    const result = await deleteClientFromFile(path, 'billing', {
      clock: fixedClock(T),
      denylistClient: async (clientId, revokedAt) => {
        seen.push({ clientId, revokedAt, inFile: (await readClientsFile(path)).clients.length > 0 })
        return 'denylisted'
      },
    })
    expect(result).toBe('denylisted')
    expect(seen).toEqual([{ clientId: 'billing', revokedAt: T, inFile: false }])
  })
})
