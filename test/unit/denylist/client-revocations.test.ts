import { describe, expect, it } from 'vitest'
import { createClientRegistry, type ClientEntry } from '../../../src/clients/registry.js'
import { clientRevocations, createClientRevocationSync } from '../../../src/denylist/client-revocations.js'
import { DenylistUnavailableError, type Denylist } from '../../../src/denylist/denylist.js'
import { createMemoryDenylist } from '../../../src/denylist/memory.js'
import { T0, captureLog, clientEntry, fixedClock } from '../../helpers/make-deps.js'

const T = 30
const LIFETIME = 3600 + T

const entry = (id: string, tokensRevokedAt?: number): ClientEntry => ({
  ...clientEntry({ id, secret: `tks_${id}` }),
  ...(tokensRevokedAt !== undefined && { tokens_revoked_at: tokensRevokedAt }),
})

/** The roster of a load of these entries: the registry built from them. */
const roster = (entries: ClientEntry[]) => createClientRegistry({ clients: entries })
const revocations = (previous: ClientEntry[] | undefined, current: ClientEntry[], now: number, tolerance: number) =>
  clientRevocations(previous && roster(previous), roster(current), now, tolerance)

describe('which clients need a denylist entry', () => {
  it('nothing on a first load without tokens_revoked_at, nor when nothing changed', () => {
    expect(revocations(undefined, [entry('svc-a'), entry('svc-b')], T0, T)).toEqual([])
    expect(revocations([entry('svc-a')], [entry('svc-a'), entry('svc-new')], T0, T)).toEqual([])
  })

  it('a removed client: every token issued up to now, until the longest-lived one has expired', () => {
    expect(revocations([entry('svc-a'), entry('svc-b')], [entry('svc-b')], T0, T)).toEqual([
      { clientId: 'svc-a', revokedAt: T0, until: T0 + LIFETIME },
    ])
    expect(
      revocations([entry('svc-a'), entry('svc-b')], [], T0, T)
        .map((r) => r.clientId)
        .sort(),
    ).toEqual(['svc-a', 'svc-b'])
  })

  it("uses the longest token lifetime any client may have, not the client's current one", () => {
    const shortLived = { ...entry('svc-a'), access_token_ttl: 60 }
    expect(revocations([shortLived], [], T0, 0)).toEqual([{ clientId: 'svc-a', revokedAt: T0, until: T0 + 3600 }])
  })

  it('tokens_revoked_at on the first load: up to that instant', () => {
    expect(revocations(undefined, [entry('svc-a', T0 - 100)], T0, T)).toEqual([
      { clientId: 'svc-a', revokedAt: T0 - 100, until: T0 - 100 + LIFETIME },
    ])
  })

  it('tokens_revoked_at new since the last load: up to now, covering what this server issued with the old secret meanwhile', () => {
    expect(revocations([entry('svc-a')], [entry('svc-a', T0 - 2)], T0, T)).toEqual([
      { clientId: 'svc-a', revokedAt: T0, until: T0 + LIFETIME },
    ])
    expect(revocations([entry('svc-a', T0 - 500)], [entry('svc-a', T0 - 2)], T0, T)).toEqual([
      { clientId: 'svc-a', revokedAt: T0, until: T0 + LIFETIME },
    ])
  })

  it('tokens_revoked_at unchanged: repeated as is (idempotent), and left out once over', () => {
    expect(revocations([entry('svc-a', T0 - 100)], [entry('svc-a', T0 - 100)], T0, T)).toEqual([
      { clientId: 'svc-a', revokedAt: T0 - 100, until: T0 - 100 + LIFETIME },
    ])
    expect(revocations([entry('svc-a', T0 - LIFETIME)], [entry('svc-a', T0 - LIFETIME)], T0, T)).toEqual([])
    expect(revocations(undefined, [entry('svc-a', T0 - LIFETIME - 1)], T0, T)).toEqual([])
  })
})

describe('client revocation sync', () => {
  /** A memory denylist whose writes fail while `down` is set. */
  function flakyDenylist(clock: () => number) {
    const inner = createMemoryDenylist({ clock })
    const state = { down: false }
    const denylist: Denylist = {
      ...inner,
      kind: 'memory',
      async revokeClient(clientId, revokedAt, until) {
        if (state.down) throw new DenylistUnavailableError('down')
        return inner.revokeClient(clientId, revokedAt, until)
      },
    }
    return { denylist, state }
  }

  it('denylists a removed client, and retries a failed write at the next load until it lands', async () => {
    const clock = fixedClock()
    const { denylist, state } = flakyDenylist(clock)
    const { log } = captureLog()
    const sync = createClientRevocationSync({ denylist, clock, log, config: { clockTolerance: T } as never })
    const token = { jti: 'j', client_id: 'svc-a', iat: T0 }

    await sync.apply(roster([entry('svc-a'), entry('svc-b')]))
    expect(await denylist.isRevoked(token)).toBe(false)

    state.down = true
    clock.advance(5)
    await expect(sync.apply(roster([entry('svc-b')]))).rejects.toThrow(/svc-a are not in the denylist yet/)
    expect(await denylist.isRevoked(token)).toBe(false)
    // The same file again (a retry): the removal is remembered, though the diff is now empty.
    clock.advance(5)
    await expect(sync.apply(roster([entry('svc-b')]))).rejects.toThrow(/svc-a/)

    state.down = false
    await sync.apply(roster([entry('svc-b')]))
    expect(await denylist.isRevoked(token)).toBe(true)
    expect(await denylist.isRevoked({ ...token, iat: T0 + 5 })).toBe(true) // removed at T0 + 5
    expect(await denylist.isRevoked({ ...token, iat: T0 + 6 })).toBe(false)
    expect(await denylist.isRevoked({ ...token, client_id: 'svc-b' })).toBe(false)
    await denylist.close()
  })

  it('applies tokens_revoked_at on the first load, so a restarted in-memory server refuses those tokens', async () => {
    const clock = fixedClock()
    const denylist = createMemoryDenylist({ clock })
    const sync = createClientRevocationSync({
      denylist,
      clock,
      log: captureLog().log,
      config: { clockTolerance: T } as never,
    })
    await sync.apply(roster([entry('svc-a', T0 - 100)]))
    expect(await denylist.isRevoked({ jti: 'j', client_id: 'svc-a', iat: T0 - 100 })).toBe(true)
    expect(await denylist.isRevoked({ jti: 'j', client_id: 'svc-a', iat: T0 - 99 })).toBe(false)
    await denylist.close()
  })
})
