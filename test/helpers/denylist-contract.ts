import { randomBytes } from 'node:crypto'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Clock } from '../../src/clock.js'
import {
  DenylistUnavailableError,
  RevocationLimitError,
  type Denylist,
  type EntryKind,
} from '../../src/denylist/denylist.js'

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

    it('keeps the entry for exactly until - now', async () => {
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

    it('is idempotent and a second revocation never shortens the first', async () => {
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

    describe('client revocations', () => {
      it('revokes every token of the client issued at or before the instant, and none issued after', async () => {
        const clientId = uniqueId('client')
        const revokedAt = Math.floor(h.clock())
        await h.denylist.revokeClient(clientId, revokedAt, h.clock() + 300)
        expect(await h.denylist.isRevoked({ jti: uniqueId(), client_id: clientId, iat: revokedAt - 100 })).toBe(true)
        // iat has whole seconds: a token of the very same second cannot be told apart, so it is refused too.
        expect(await h.denylist.isRevoked({ jti: uniqueId(), client_id: clientId, iat: revokedAt })).toBe(true)
        expect(await h.denylist.isRevoked({ jti: uniqueId(), client_id: clientId, iat: revokedAt + 1 })).toBe(false)
        expect(
          await h.denylist.isRevoked({ jti: uniqueId(), client_id: uniqueId('client'), iat: revokedAt - 100 }),
        ).toBe(false)
        expect(await h.denylist.isRevoked({ jti: uniqueId() })).toBe(false)
      })

      it('counts a token of a revoked client that has no iat as revoked', async () => {
        const clientId = uniqueId('client')
        await h.denylist.revokeClient(clientId, Math.floor(h.clock()), h.clock() + 300)
        expect(await h.denylist.isRevoked({ jti: uniqueId(), client_id: clientId })).toBe(true)
      })

      it('keeps client entries apart from token and key entries', async () => {
        const id = uniqueId('shared')
        await h.denylist.revokeClient(id, Math.floor(h.clock()), h.clock() + 300)
        expect(await h.denylist.isRevoked({ jti: id, kid: id })).toBe(false)
        const other = uniqueId('shared')
        await h.denylist.revokeToken(other, h.clock() + 300)
        await h.denylist.revokeKey(other, h.clock() + 300)
        expect(await h.denylist.isRevoked({ jti: uniqueId(), client_id: other, iat: 0 })).toBe(false)
      })

      it('keeps the later instant and the later until when a client is revoked twice', async () => {
        const clientId = uniqueId('client')
        const now = Math.floor(h.clock())
        await h.denylist.revokeClient(clientId, now - 50, h.clock() + 3)
        await h.denylist.revokeClient(clientId, now - 10, h.clock() + 1)
        // An older instant afterwards (a server loading an old file, say) changes nothing.
        await h.denylist.revokeClient(clientId, now - 100, h.clock() + 1)
        expect(await h.denylist.isRevoked({ jti: uniqueId(), client_id: clientId, iat: now - 20 })).toBe(true)
        expect(await h.denylist.isRevoked({ jti: uniqueId(), client_id: clientId, iat: now - 10 })).toBe(true)
        expect(await h.denylist.isRevoked({ jti: uniqueId(), client_id: clientId, iat: now - 9 })).toBe(false)
        if (h.pttl) expect(await h.pttl('client', clientId)).toBeGreaterThan(2_000)
        await h.elapse(1.5)
        expect(await h.denylist.isRevoked({ jti: uniqueId(), client_id: clientId, iat: now - 20 })).toBe(true)
      })

      it('keeps the entry until `until`, then forgets it', async () => {
        const clientId = uniqueId('client')
        const now = Math.floor(h.clock())
        await h.denylist.revokeClient(clientId, now, h.clock() + 1)
        if (h.pttl) expect(Math.abs((await h.pttl('client', clientId)) - 1_000)).toBeLessThanOrEqual(1_000)
        expect(await h.denylist.isRevoked({ jti: uniqueId(), client_id: clientId, iat: now })).toBe(true)
        await h.elapse(1.2)
        expect(await h.denylist.isRevoked({ jti: uniqueId(), client_id: clientId, iat: now })).toBe(false)
        if (h.pttl) expect(await h.pttl('client', clientId)).toBe(-2)
      })

      it('ignores a client revocation whose until is not in the future, and rejects non-finite times', async () => {
        const clientId = uniqueId('client')
        await h.denylist.revokeClient(clientId, h.clock() - 10, h.clock())
        expect(await h.denylist.isRevoked({ jti: uniqueId(), client_id: clientId, iat: 0 })).toBe(false)
        if (h.pttl) expect(await h.pttl('client', clientId)).toBe(-2)
        await expect(h.denylist.revokeClient(clientId, Number.NaN, h.clock() + 60)).rejects.toBeInstanceOf(RangeError)
        await expect(h.denylist.revokeClient(clientId, h.clock(), Number.POSITIVE_INFINITY)).rejects.toBeInstanceOf(
          RangeError,
        )
      })

      it('treats client ids with glob, control and unicode characters as opaque', async () => {
        const now = Math.floor(h.clock())
        for (const id of WEIRD_IDS) await h.denylist.revokeClient(id, now, h.clock() + 300)
        for (const id of WEIRD_IDS)
          expect(await h.denylist.isRevoked({ jti: uniqueId(), client_id: id, iat: now })).toBe(true)
        expect(await h.denylist.isRevoked({ jti: uniqueId(), client_id: 'anything', iat: now })).toBe(false)
      })
    })

    describe('revocations counted per client', () => {
      const owner = (clientId: string, limit = 2) => ({ clientId, limit })

      it('refuses a new revocation past the client limit, saying when its oldest one expires, and writes nothing', async () => {
        const clientId = uniqueId('client')
        const now = h.clock()
        await h.denylist.revokeToken(uniqueId('jti'), now + 100, owner(clientId))
        await h.denylist.revokeToken(uniqueId('jti'), now + 300, owner(clientId))
        const refused = uniqueId('jti')
        const error = await h.denylist.revokeToken(refused, now + 200, owner(clientId)).then(
          () => undefined,
          (e: unknown) => e,
        )
        expect(error).toBeInstanceOf(RevocationLimitError)
        expect(Math.abs((error as RevocationLimitError).retryAfter - 100)).toBeLessThanOrEqual(1)
        expect(await h.denylist.isRevoked({ jti: refused })).toBe(false)
        if (h.pttl) expect(await h.pttl('jti', refused)).toBe(-2)
      })

      it('never counts an already revoked jti twice, and never refuses it', async () => {
        const clientId = uniqueId('client')
        const jti = uniqueId('jti')
        const until = h.clock() + 300
        await h.denylist.revokeToken(jti, until, owner(clientId))
        for (let i = 0; i < 5; i++) await h.denylist.revokeToken(jti, until, owner(clientId))
        // One entry counted so far: room for exactly one more.
        await h.denylist.revokeToken(uniqueId('jti'), until, owner(clientId))
        await expect(h.denylist.revokeToken(uniqueId('jti'), until, owner(clientId))).rejects.toBeInstanceOf(
          RevocationLimitError,
        )
        // At the limit, revoking a jti that is already revoked is still fine.
        await expect(h.denylist.revokeToken(jti, until, owner(clientId))).resolves.toBeUndefined()
        expect(await h.denylist.isRevoked({ jti })).toBe(true)
      })

      it('does not count a jti that an operator (or nobody in particular) revoked first', async () => {
        const clientId = uniqueId('client')
        const jti = uniqueId('jti')
        await h.denylist.revokeToken(jti, h.clock() + 300)
        await h.denylist.revokeToken(jti, h.clock() + 300, owner(clientId, 1))
        await h.denylist.revokeToken(uniqueId('jti'), h.clock() + 300, owner(clientId, 1))
      })

      it('counts each client on its own, and leaves uncounted revocations alone', async () => {
        const [a, b] = [uniqueId('client'), uniqueId('client')]
        const until = h.clock() + 300
        await h.denylist.revokeToken(uniqueId('jti'), until, owner(a, 1))
        await expect(h.denylist.revokeToken(uniqueId('jti'), until, owner(a, 1))).rejects.toBeInstanceOf(
          RevocationLimitError,
        )
        await h.denylist.revokeToken(uniqueId('jti'), until, owner(b, 1))
        for (let i = 0; i < 3; i++) await h.denylist.revokeToken(uniqueId('jti'), until)
      })

      it('makes room as the client revocations expire', async () => {
        const clientId = uniqueId('client')
        await h.denylist.revokeToken(uniqueId('jti'), h.clock() + 1, owner(clientId, 1))
        await expect(
          h.denylist.revokeToken(uniqueId('jti'), h.clock() + 300, owner(clientId, 1)),
        ).rejects.toBeInstanceOf(RevocationLimitError)
        await h.elapse(1.2)
        const later = uniqueId('jti')
        await h.denylist.revokeToken(later, h.clock() + 300, owner(clientId, 1))
        expect(await h.denylist.isRevoked({ jti: later })).toBe(true)
      })

      it('says at least 1 second when the oldest revocation expires within the second', async () => {
        const clientId = uniqueId('client')
        await h.denylist.revokeToken(uniqueId('jti'), h.clock() + 0.3, owner(clientId, 1))
        const error = await h.denylist.revokeToken(uniqueId('jti'), h.clock() + 300, owner(clientId, 1)).then(
          () => undefined,
          (e: unknown) => e,
        )
        expect(error).toBeInstanceOf(RevocationLimitError)
        expect((error as RevocationLimitError).retryAfter).toBe(1)
      })
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
