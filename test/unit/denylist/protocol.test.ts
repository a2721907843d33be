import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  decodeRevocation,
  encodeRevocation,
  entryKey,
  escapeGlob,
  normalizeId,
  ownedKey,
  parseEntryKey,
  parseRevokedAt,
  revocationChannel,
  type Revocation,
} from '../../../src/denylist/protocol.js'
import { WEIRD_IDS } from '../../helpers/denylist-contract.js'

const id = fc.oneof(fc.string({ unit: 'binary' }), fc.constantFrom(...WEIRD_IDS))
// Epoch seconds, whole or fractional; never -0, which JSON writes as 0.
const seconds = fc.oneof(fc.integer({ min: 0, max: 2 ** 40 }), fc.double({ min: 1, max: 1e10, noNaN: true }))
const revocation: fc.Arbitrary<Revocation> = fc.oneof(
  fc.record({ kind: fc.constantFrom('jti' as const, 'kid' as const), id, until: seconds }),
  fc.record({ kind: fc.constant('client' as const), id, until: seconds, revokedAt: seconds }),
)

describe('revocation messages', () => {
  it('decodes what it encodes, for any id and time (fast-check)', () => {
    fc.assert(
      fc.property(revocation, (r) => {
        expect(decodeRevocation(encodeRevocation(r))).toEqual(r)
      }),
    )
  })

  it('writes the wire format readers of every version parse: { t, id, until } plus revokedAt for a client', () => {
    expect(JSON.parse(encodeRevocation({ kind: 'kid', id: 'k1', until: 10 }))).toEqual({
      t: 'kid',
      id: 'k1',
      until: 10,
    })
    expect(JSON.parse(encodeRevocation({ kind: 'client', id: 'c', until: 10, revokedAt: 5 }))).toEqual({
      t: 'client',
      id: 'c',
      until: 10,
      revokedAt: 5,
    })
  })

  it.each([
    'not json',
    '',
    'null',
    '[]',
    '"jti"',
    '42',
    '{}',
    '{"t":"sub","id":"x","until":9999999999}',
    '{"t":"jti","id":1,"until":1}',
    '{"t":"jti","id":"x"}',
    '{"t":"jti","id":"x","until":"9999999999"}',
    '{"t":"client","id":"x","until":9999999999}',
    '{"t":"client","id":"x","until":9999999999,"revokedAt":"5"}',
    '{"id":"x","until":9999999999}',
  ])('refuses the malformed message %j', (message) => {
    expect(decodeRevocation(message)).toBeUndefined()
  })

  it('drops fields it does not know', () => {
    expect(decodeRevocation('{"t":"jti","id":"x","until":5,"revokedAt":3,"extra":true}')).toEqual({
      kind: 'jti',
      id: 'x',
      until: 5,
    })
  })
})

describe('redis keys', () => {
  it('names entries, per-client counts and the channel under the prefix', () => {
    expect(entryKey('ts:', 'jti', 'a')).toBe('ts:jti:a')
    expect(entryKey('ts:', 'kid', 'a')).toBe('ts:kid:a')
    expect(entryKey('ts:', 'client', 'a')).toBe('ts:client:a')
    expect(ownedKey('ts:', 'svc')).toBe('ts:revoked-by:svc')
    expect(revocationChannel('ts:')).toBe('ts:revocations')
  })

  it('reads back the kind and id of every entry key, whatever the id (fast-check)', () => {
    const kind = fc.constantFrom('jti' as const, 'kid' as const, 'client' as const)
    fc.assert(
      fc.property(fc.string(), kind, id, (prefix, k, i) => {
        expect(parseEntryKey(prefix, entryKey(prefix, k, i))).toEqual({ kind: k, id: i })
      }),
    )
  })

  it('reads no entry in keys that are not entries', () => {
    expect(parseEntryKey('ts:', ownedKey('ts:', 'svc'))).toBeUndefined()
    expect(parseEntryKey('ts:', 'ts:rl:client-1')).toBeUndefined()
    expect(parseEntryKey('ts:', 'ts:jtiNoColon')).toBeUndefined()
    expect(parseEntryKey('ts:', 'other:jti:x')).toBeUndefined()
  })

  it('escapes glob characters so SCAN MATCH takes a prefix literally', () => {
    expect(escapeGlob('p[ab]*?\\:')).toBe('p\\[ab\\]\\*\\?\\\\:')
    expect(escapeGlob('tokensmith:')).toBe('tokensmith:')
  })
})

describe('stored values and ids', () => {
  it('reads a client entry as its instant, and anything but a plain number as NaN (every token)', () => {
    expect(parseRevokedAt('1700000000')).toBe(1_700_000_000)
    expect(parseRevokedAt('1700000000.25')).toBe(1_700_000_000.25)
    for (const value of ['', ' ', 'yes', '-5', '1e9', '0x10', '1700000000 ', '1'.repeat(16)]) {
      expect(parseRevokedAt(value)).toBeNaN()
    }
  })

  it('normalises an id to what Redis stores as UTF-8, leaving well-formed ids alone', () => {
    expect(normalizeId('\uD800-lone')).toBe('\uFFFD-lone')
    expect(normalizeId(normalizeId('\uD800-lone'))).toBe('\uFFFD-lone')
    for (const weird of WEIRD_IDS) expect(normalizeId(weird)).toBe(weird)
  })
})
