import { describe, expect, it, vi } from 'vitest'
import { createRevocationTable } from '../../../src/denylist/revocation-table.js'

const NOW = 1_700_000_000

describe('revocation table', () => {
  it('holds a token or key id until `until`, in separate namespaces', () => {
    const table = createRevocationTable({ maxEntries: 10 })
    expect(table.put('jti', 'a', NOW + 60, NOW)).toBe(true)
    expect(table.put('kid', 'k', NOW + 60, NOW)).toBe(true)
    expect(table.has('jti', 'a', NOW)).toBe(true)
    expect(table.has('kid', 'a', NOW)).toBe(false)
    expect(table.has('jti', 'k', NOW)).toBe(false)
    expect(table.isRevoked({ jti: 'x', kid: 'k' }, NOW)).toBe(true)
    expect(table.isRevoked({ jti: 'a' }, NOW + 59)).toBe(true)
    expect(table.isRevoked({ jti: 'a' }, NOW + 60)).toBe(false)
  })

  it('never shortens an entry, and lengthens it without needing room', () => {
    const table = createRevocationTable({ maxEntries: 1 })
    table.put('jti', 'a', NOW + 60, NOW)
    expect(table.put('jti', 'a', NOW + 10, NOW)).toBe(true)
    expect(table.has('jti', 'a', NOW + 30)).toBe(true)
    expect(table.put('jti', 'a', NOW + 120, NOW)).toBe(true)
    expect(table.has('jti', 'a', NOW + 90)).toBe(true)
    expect(table.size).toBe(1)
  })

  it('stores nothing whose until is not in the future', () => {
    const table = createRevocationTable({ maxEntries: 10 })
    expect(table.put('jti', 'a', NOW, NOW)).toBe(true)
    expect(table.putClient('c', NOW, NOW - 1, NOW)).toBe(true)
    expect(table.size).toBe(0)
  })

  it('refuses a new entry when full of live ones, keeping every entry it holds', () => {
    const table = createRevocationTable({ maxEntries: 3 })
    table.put('jti', 'a', NOW + 60, NOW)
    table.put('kid', 'k', NOW + 60, NOW)
    table.putClient('c', NOW, NOW + 60, NOW)
    expect(table.put('jti', 'b', NOW + 60, NOW)).toBe(false)
    expect(table.put('kid', 'l', NOW + 60, NOW)).toBe(false)
    expect(table.putClient('d', NOW, NOW + 60, NOW)).toBe(false)
    expect(table.size).toBe(3)
    expect(table.isRevoked({ jti: 'a' }, NOW)).toBe(true)
    expect(table.isRevoked({ jti: 'x', kid: 'k' }, NOW)).toBe(true)
    expect(table.isRevoked({ jti: 'x', client_id: 'c', iat: NOW }, NOW)).toBe(true)
    expect(table.isRevoked({ jti: 'b' }, NOW)).toBe(false)
  })

  it('makes room by sweeping expired entries when full, at most once per clock second', () => {
    const onSweep = vi.fn()
    const table = createRevocationTable({ maxEntries: 2, onSweep })
    table.put('jti', 'short', NOW + 5, NOW)
    table.put('jti', 'long', NOW + 60, NOW)
    expect(table.put('jti', 'x', NOW + 60, NOW)).toBe(false)
    expect(table.put('jti', 'y', NOW + 60, NOW)).toBe(false)
    expect(onSweep).toHaveBeenCalledTimes(1)
    expect(table.put('jti', 'z', NOW + 60, NOW + 10)).toBe(true)
    expect(onSweep).toHaveBeenCalledTimes(2)
    expect(onSweep).toHaveBeenLastCalledWith(NOW + 10)
    expect(table.has('jti', 'z', NOW + 10)).toBe(true)
    expect(table.has('jti', 'short', NOW + 10)).toBe(false)
  })

  it('sweeps expired entries of every kind', () => {
    const table = createRevocationTable({ maxEntries: 10 })
    table.put('jti', 'a', NOW + 5, NOW)
    table.put('kid', 'k', NOW + 5, NOW)
    table.putClient('c', NOW, NOW + 5, NOW)
    table.put('jti', 'b', NOW + 60, NOW)
    table.sweep(NOW + 5)
    expect(table.size).toBe(1)
    expect(table.has('jti', 'b', NOW + 5)).toBe(true)
  })

  it('drops an expired entry when it is looked up', () => {
    const table = createRevocationTable({ maxEntries: 10 })
    table.put('jti', 'a', NOW + 5, NOW)
    table.putClient('c', NOW, NOW + 5, NOW)
    expect(table.isRevoked({ jti: 'a', client_id: 'c', iat: NOW }, NOW + 5)).toBe(false)
    expect(table.size).toBe(0)
  })

  describe('client entries', () => {
    it('cover the tokens issued at or before the instant, and those without iat', () => {
      const table = createRevocationTable({ maxEntries: 10 })
      table.putClient('c', NOW, NOW + 60, NOW)
      expect(table.isRevoked({ jti: 'x', client_id: 'c', iat: NOW - 1 }, NOW)).toBe(true)
      expect(table.isRevoked({ jti: 'x', client_id: 'c', iat: NOW }, NOW)).toBe(true)
      expect(table.isRevoked({ jti: 'x', client_id: 'c', iat: NOW + 1 }, NOW)).toBe(false)
      expect(table.isRevoked({ jti: 'x', client_id: 'c' }, NOW)).toBe(true)
      expect(table.isRevoked({ jti: 'c', kid: 'c' }, NOW)).toBe(false)
    })

    it('keep the later instant and the later until', () => {
      const table = createRevocationTable({ maxEntries: 1 })
      table.putClient('c', NOW - 50, NOW + 3, NOW)
      expect(table.putClient('c', NOW - 10, NOW + 1, NOW)).toBe(true)
      expect(table.putClient('c', NOW - 100, NOW + 1, NOW)).toBe(true)
      expect(table.isRevoked({ jti: 'x', client_id: 'c', iat: NOW - 10 }, NOW)).toBe(true)
      expect(table.isRevoked({ jti: 'x', client_id: 'c', iat: NOW - 9 }, NOW)).toBe(false)
      expect(table.isRevoked({ jti: 'x', client_id: 'c', iat: NOW - 10 }, NOW + 2)).toBe(true)
    })

    it('start afresh once expired: an older instant after expiry is not merged with the gone one', () => {
      const table = createRevocationTable({ maxEntries: 10 })
      table.putClient('c', NOW, NOW + 5, NOW)
      table.putClient('c', NOW - 100, NOW + 60, NOW + 10)
      expect(table.isRevoked({ jti: 'x', client_id: 'c', iat: NOW - 50 }, NOW + 10)).toBe(false)
      expect(table.isRevoked({ jti: 'x', client_id: 'c', iat: NOW - 100 }, NOW + 10)).toBe(true)
    })

    it('let an unreadable instant (NaN: every token) win over any other', () => {
      const table = createRevocationTable({ maxEntries: 10 })
      table.putClient('c', Number.NaN, NOW + 60, NOW)
      table.putClient('c', NOW - 10, NOW + 60, NOW)
      expect(table.isRevoked({ jti: 'x', client_id: 'c', iat: NOW + 30 }, NOW)).toBe(true)
    })
  })

  it('clears everything', () => {
    const table = createRevocationTable({ maxEntries: 10 })
    table.put('jti', 'a', NOW + 60, NOW)
    table.putClient('c', NOW, NOW + 60, NOW)
    table.clear()
    expect(table.size).toBe(0)
    expect(table.isRevoked({ jti: 'a', client_id: 'c' }, NOW)).toBe(false)
  })
})
