import { randomBytes } from 'node:crypto'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Clock } from '../../../src/clock.js'
import { DenylistUnavailableError, type Denylist, type EntryKind } from '../../../src/denylist/denylist.js'

/** What the shared suite needs from a backend under test. */
export interface DenylistHarness {
  denylist: Denylist
  /** The clock the denylist was built with. */
  clock: Clock
  /** Let `seconds` pass for the backend: advance a fake clock, or really wait (Redis expires on its own clock). */
  elapse(seconds: number): Promise<void>
  /** Raw remaining lifetime like Redis PTTL (-2 when absent), when the backend can tell. */
  pttl?(kind: EntryKind, id: string): Promise<number>
  /** Release everything the harness made besides the denylist. */
  dispose?(): Promise<void>
}

export const uniqueId = (label = 'id') => `${label}-${randomBytes(8).toString('hex')}`

/** Attacker-influenced ids: glob characters (SCAN MATCH), newlines (RESP), unicode, 10 KB, empty. */
export const WEIRD_IDS: readonly string[] = [
  '*',
  '?',
  '[',
  'a]b[c',
  'x*y?z[0-9]\\',
  'line\nbreak\r\n',
  'jti:nested:colons',
  'ünïcødé-🔑',
  '',
  'k'.repeat(10 * 1024),
]

/**
 * The behaviour every Denylist promises (see src/denylist/denylist.ts), run against each backend.
 * Times are short because the Redis harness really waits.
 */
export function denylistContract(name: string, makeHarness: () => Promise<DenylistHarness>): void {
  describe(`${name} denylist contract`, () => {
    let h: DenylistHarness
    beforeEach(async () => {
      h = await makeHarness()
    })
    afterEach(async () => {
      await h.denylist.close()
      await h.dispose?.()
    })

    it('reports a revoked token as revoked', async () => {
      const jti = uniqueId('jti')
      await h.denylist.revokeToken(jti, h.clock() + 300)
      expect(await h.denylist.isRevoked({ jti })).toBe(true)
      expect(await h.denylist.isRevoked({ jti, kid: uniqueId('kid') })).toBe(true)
    })

    it('reports an unknown token as not revoked', async () => {
      expect(await h.denylist.isRevoked({ jti: uniqueId('jti') })).toBe(false)
      expect(await h.denylist.isRevoked({ jti: uniqueId('jti'), kid: uniqueId('kid') })).toBe(false)
    })

    it('revokes every token signed by a revoked key', async () => {
      const kid = uniqueId('kid')
      await h.denylist.revokeKey(kid, h.clock() + 300)
      expect(await h.denylist.isRevoked({ jti: uniqueId('jti'), kid })).toBe(true)
      expect(await h.denylist.isRevoked({ jti: uniqueId('jti'), kid: uniqueId('kid') })).toBe(false)
      expect(await h.denylist.isRevoked({ jti: uniqueId('jti') })).toBe(false)
    })

    it('keeps token and key entries in separate namespaces', async () => {
      const id = uniqueId('shared')
      await h.denylist.revokeToken(id, h.clock() + 300)
      expect(await h.denylist.isRevoked({ jti: uniqueId('jti'), kid: id })).toBe(false)
      const kid = uniqueId('shared')
      await h.denylist.revokeKey(kid, h.clock() + 300)
      expect(await h.denylist.isRevoked({ jti: kid })).toBe(false)
    })

    it('ignores a revocation whose until is not in the future', async () => {
      const now = h.clock()
      const past = uniqueId('jti')
      const present = uniqueId('jti')
      const kid = uniqueId('kid')
      await h.denylist.revokeToken(past, now - 10)
      await h.denylist.revokeToken(present, now)
      await h.denylist.revokeKey(kid, now)
      expect(await h.denylist.isRevoked({ jti: past })).toBe(false)
      expect(await h.denylist.isRevoked({ jti: present })).toBe(false)
      expect(await h.denylist.isRevoked({ jti: uniqueId('jti'), kid })).toBe(false)
      if (h.pttl) {
        expect(await h.pttl('jti', past)).toBe(-2)
        expect(await h.pttl('jti', present)).toBe(-2)
        expect(await h.pttl('kid', kid)).toBe(-2)
      }
    })

    it('rejects a non-finite until as a programming error', async () => {
      await expect(h.denylist.revokeToken(uniqueId(), Number.NaN)).rejects.toBeInstanceOf(RangeError)
      await expect(h.denylist.revokeKey(uniqueId(), Number.POSITIVE_INFINITY)).rejects.toBeInstanceOf(RangeError)
    })

    it('keeps the entry for exactly until - now (RV-5)', async () => {
      const jti = uniqueId('jti')
      const kid = uniqueId('kid')
      const now = h.clock()
      await h.denylist.revokeToken(jti, now + 300)
      await h.denylist.revokeKey(kid, now + 120)
      if (h.pttl) {
        // PTTL = exp + T - now, ± 1 s, never missing, zero or negative.
        expect(Math.abs((await h.pttl('jti', jti)) - 300_000)).toBeLessThanOrEqual(1_000)
        expect(Math.abs((await h.pttl('kid', kid)) - 120_000)).toBeLessThanOrEqual(1_000)
      }
      await h.elapse(0.5)
      expect(await h.denylist.isRevoked({ jti })).toBe(true)
      expect(await h.denylist.isRevoked({ jti: uniqueId('jti'), kid })).toBe(true)
    })

    it('forgets an entry once until has passed', async () => {
      const jti = uniqueId('jti')
      const kid = uniqueId('kid')
      await h.denylist.revokeToken(jti, h.clock() + 1)
      await h.denylist.revokeKey(kid, h.clock() + 1)
      expect(await h.denylist.isRevoked({ jti })).toBe(true)
      await h.elapse(1.2)
      expect(await h.denylist.isRevoked({ jti })).toBe(false)
      expect(await h.denylist.isRevoked({ jti: uniqueId('jti'), kid })).toBe(false)
      if (h.pttl) expect(await h.pttl('jti', jti)).toBe(-2)
    })

    it('is idempotent and a second revocation never shortens the first (RV-6)', async () => {
      const jti = uniqueId('jti')
      const kid = uniqueId('kid')
      const now = h.clock()
      await h.denylist.revokeToken(jti, now + 3)
      await h.denylist.revokeToken(jti, now + 3)
      await h.denylist.revokeToken(jti, now + 1)
      await h.denylist.revokeKey(kid, now + 3)
      await h.denylist.revokeKey(kid, now + 1)
      if (h.pttl) {
        expect(await h.pttl('jti', jti)).toBeGreaterThan(2_000)
        expect(await h.pttl('kid', kid)).toBeGreaterThan(2_000)
      }
      await h.elapse(1.5)
      expect(await h.denylist.isRevoked({ jti })).toBe(true)
      expect(await h.denylist.isRevoked({ jti: uniqueId('jti'), kid })).toBe(true)
    })

    it('extends an entry when revoked again with a later until', async () => {
      const jti = uniqueId('jti')
      const now = h.clock()
      await h.denylist.revokeToken(jti, now + 1)
      await h.denylist.revokeToken(jti, now + 60)
      if (h.pttl) expect(Math.abs((await h.pttl('jti', jti)) - 60_000)).toBeLessThanOrEqual(1_000)
      await h.elapse(1.2)
      expect(await h.denylist.isRevoked({ jti })).toBe(true)
    })

    it('treats ids with glob, control and unicode characters as opaque', async () => {
      const until = h.clock() + 300
      for (const id of WEIRD_IDS) await h.denylist.revokeToken(id, until)
      for (const id of WEIRD_IDS) expect(await h.denylist.isRevoked({ jti: id })).toBe(true)
      // A glob id must not match anything else.
      expect(await h.denylist.isRevoked({ jti: 'anything' })).toBe(false)
      expect(await h.denylist.isRevoked({ jti: 'a' })).toBe(false)
      for (const id of WEIRD_IDS) await h.denylist.revokeKey(id, until)
      for (const id of WEIRD_IDS) expect(await h.denylist.isRevoked({ jti: uniqueId(), kid: id })).toBe(true)
    })

    it('answers ping while open', async () => {
      await expect(h.denylist.ping()).resolves.toBeUndefined()
    })

    it('fails with DenylistUnavailableError after close, and close is idempotent', async () => {
      await h.denylist.close()
      await h.denylist.close()
      await expect(h.denylist.isRevoked({ jti: uniqueId() })).rejects.toBeInstanceOf(DenylistUnavailableError)
      await expect(h.denylist.revokeToken(uniqueId(), h.clock() + 60)).rejects.toBeInstanceOf(DenylistUnavailableError)
      await expect(h.denylist.ping()).rejects.toBeInstanceOf(DenylistUnavailableError)
    })
  })
}
