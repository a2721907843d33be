import { createHash, randomBytes } from 'node:crypto'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { DUMMY_DIGEST, SECRET_PREFIX, digestSecret, digestsEqual, generateSecret } from '../../../src/clients/secret.js'

// Watch the CSPRNG calls the module makes: a secret holds 256 bits from the system CSPRNG.
vi.mock('node:crypto', async (importOriginal) => {
  const original = await importOriginal<typeof import('node:crypto')>()
  return { ...original, randomBytes: vi.fn(original.randomBytes) }
})

beforeEach(() => void vi.mocked(randomBytes).mockClear())

describe('generateSecret: 256 random bits', () => {
  it('is tks_ followed by 32 CSPRNG bytes in base64url', () => {
    const secret = generateSecret()
    expect(SECRET_PREFIX).toBe('tks_')
    expect(secret).toMatch(/^tks_[A-Za-z0-9_-]{43}$/)
    expect(Buffer.from(secret.slice(4), 'base64url')).toHaveLength(32)
    expect(vi.mocked(randomBytes)).toHaveBeenCalledTimes(1)
    expect(vi.mocked(randomBytes).mock.calls[0]![0]).toBeGreaterThanOrEqual(32)
  })

  it('gives 10,000 different secrets', () => {
    const secrets = new Set(Array.from({ length: 10_000 }, generateSecret))
    expect(secrets.size).toBe(10_000)
  })

  it('uses every base64url character over many secrets (no constant or biased positions)', () => {
    const seen = new Set<string>()
    const firstChars = new Set<string>()
    for (let i = 0; i < 2_000; i++) {
      const body = generateSecret().slice(4)
      for (const char of body) seen.add(char)
      firstChars.add(body[0]!)
    }
    expect(seen.size).toBe(64)
    expect(firstChars.size).toBeGreaterThan(50)
  })
})

describe('digestSecret: stored as SHA-256 only (RFC 6819 §5.1.4.1.3)', () => {
  it('is the SHA-256 of the UTF-8 secret', () => {
    // FIPS 180-2 test vector
    expect(digestSecret('abc').toString('hex')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
    expect(
      digestSecret('tks_é:+&%').equals(createHash('sha256').update(Buffer.from('tks_é:+&%', 'utf8')).digest()),
    ).toBe(true)
    expect(digestSecret('x')).toHaveLength(32)
  })

  it('differs for secrets that differ in one character', () => {
    expect(digestSecret('tks_a').equals(digestSecret('tks_b'))).toBe(false)
  })
})

describe('digestsEqual', () => {
  it('is true for equal digests and false otherwise', () => {
    expect(digestsEqual(digestSecret('a'), digestSecret('a'))).toBe(true)
    expect(digestsEqual(digestSecret('a'), digestSecret('b'))).toBe(false)
  })

  it('is false, without throwing, for buffers of different length', () => {
    expect(digestsEqual(digestSecret('a'), digestSecret('a').subarray(0, 16))).toBe(false)
    expect(digestsEqual(Buffer.alloc(0), digestSecret('a'))).toBe(false)
  })
})

describe('DUMMY_DIGEST', () => {
  it('is a SHA-256-sized digest that no empty or prefix-only secret matches', () => {
    expect(DUMMY_DIGEST).toHaveLength(32)
    for (const secret of ['', 'tks_', 'unknown']) expect(digestsEqual(DUMMY_DIGEST, digestSecret(secret))).toBe(false)
  })
})
