import { describe, expect, it } from 'vitest'
import type { ClientEntry } from '../../../src/clients/registry.js'
import {
  DEFAULT_GRACE,
  rotateEntrySecret,
  secretGrace,
  storedSecret,
  type SecretEntry,
} from '../../../src/clients/rotation.js'
import { digestSecret } from '../../../src/clients/secret.js'
import { T0 } from '../../helpers/make-deps.js'

// Secret rotation as a pure function of the client entry and the time.
const T = T0
const digest = (secret: string) => digestSecret(secret).toString('base64url')
const secret = (name: string, created: number, expires: number | null): SecretEntry => ({
  sha256: digest(name),
  created,
  expires,
})
const entry = (secrets: SecretEntry[]): ClientEntry => ({
  client_id: 'billing',
  secrets,
  scopes: ['invoices:read'],
  audiences: ['https://api.example.com'],
  grant_types: ['client_credentials'],
  resource_server: false,
})

describe('storedSecret', () => {
  it('stores only the SHA-256 digest of the secret, live from its creation with no end', () => {
    expect(storedSecret('tks_new', T)).toEqual({ sha256: digest('tks_new'), created: T, expires: null })
  })
})

describe('secretGrace', () => {
  it('gives the previous secret a day by default, or the grace asked for', () => {
    expect(secretGrace({ revokeTokens: false })).toBe(DEFAULT_GRACE)
    expect(DEFAULT_GRACE).toBe(86_400)
    expect(secretGrace({ grace: 60, revokeTokens: false })).toBe(60)
    expect(secretGrace({ grace: 0, revokeTokens: false })).toBe(0)
  })

  it('gives none when the client tokens are revoked: the secret may have leaked with them', () => {
    expect(secretGrace({ revokeTokens: true })).toBe(0)
  })
})

describe('rotateEntrySecret', () => {
  it('keeps the current secret for the grace period beside the new one', () => {
    const rotated = rotateEntrySecret(entry([secret('tks_old', T - 100, null)]), 'tks_new', {
      now: T,
      grace: 60,
      revokeTokens: false,
    })
    expect(rotated).toEqual({
      entry: entry([secret('tks_old', T - 100, T + 60), secret('tks_new', T, null)]),
      previousExpires: T + 60,
    })
  })

  it('keeps at most two secrets: a second rotation within the grace ends the oldest at once', () => {
    const before = entry([secret('tks_first', T - 100, T + 60), secret('tks_second', T, null)])
    const rotated = rotateEntrySecret(before, 'tks_third', { now: T + 10, grace: 60, revokeTokens: false })
    expect(rotated.entry.secrets).toEqual([secret('tks_second', T, T + 70), secret('tks_third', T + 10, null)])
  })

  it('never lets the previous secret work longer than it already would', () => {
    const rotated = rotateEntrySecret(entry([secret('tks_old', T - 100, T + 30)]), 'tks_new', {
      now: T,
      grace: 3600,
      revokeTokens: false,
    })
    expect(rotated.previousExpires).toBe(T + 30)
  })

  it('drops secrets that have already ended, and reports no previous secret', () => {
    const rotated = rotateEntrySecret(entry([secret('tks_old', T - 100, T)]), 'tks_new', {
      now: T,
      grace: 60,
      revokeTokens: false,
    })
    expect(rotated).toEqual({ entry: entry([secret('tks_new', T, null)]), previousExpires: null })
  })

  it('with revokeTokens ends the previous secret now and marks every token issued up to now', () => {
    const rotated = rotateEntrySecret(entry([secret('tks_old', T - 100, null)]), 'tks_new', {
      now: T,
      grace: 0,
      revokeTokens: true,
    })
    expect(rotated.entry).toEqual({
      ...entry([secret('tks_old', T - 100, T), secret('tks_new', T, null)]),
      tokens_revoked_at: T,
    })
    expect(rotated.previousExpires).toBe(T)
  })

  it('leaves the entry it was given as it was', () => {
    const before = entry([secret('tks_old', T - 100, null)])
    const copy = structuredClone(before)
    rotateEntrySecret(before, 'tks_new', { now: T, grace: 60, revokeTokens: true })
    expect(before).toEqual(copy)
  })
})
