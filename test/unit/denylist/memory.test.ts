import { afterEach, describe, expect, it, vi } from 'vitest'
import { DenylistUnavailableError } from '../../../src/denylist/denylist.js'
import { createMemoryDenylist } from '../../../src/denylist/memory.js'
import { denylistContract, uniqueId } from '../../helpers/denylist-contract.js'

/** A clock the test moves by hand. */
function fakeClock(start = 1_700_000_000) {
  let now = start
  const clock = () => now
  return Object.assign(clock, {
    advance(seconds: number) {
      now += seconds
    },
  })
}

denylistContract('memory', async () => {
  const clock = fakeClock()
  return {
    denylist: createMemoryDenylist({ clock }),
    clock,
    async elapse(seconds) {
      clock.advance(seconds)
    },
  }
})

describe('memory denylist', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('refuses a new revocation when full of live entries instead of evicting one', async () => {
    const clock = fakeClock()
    const denylist = createMemoryDenylist({ clock, maxEntries: 3 })
    const ids = [uniqueId(), uniqueId()]
    const kid = uniqueId('kid')
    for (const id of ids) await denylist.revokeToken(id, clock() + 60)
    await denylist.revokeKey(kid, clock() + 60)

    await expect(denylist.revokeToken(uniqueId(), clock() + 60)).rejects.toBeInstanceOf(DenylistUnavailableError)
    await expect(denylist.revokeKey(uniqueId(), clock() + 60)).rejects.toBeInstanceOf(DenylistUnavailableError)
    // Every earlier revocation is still in force.
    for (const id of ids) expect(await denylist.isRevoked({ jti: id })).toBe(true)
    expect(await denylist.isRevoked({ jti: uniqueId(), kid })).toBe(true)
    // Re-revoking an id already stored needs no room.
    await expect(denylist.revokeToken(ids[0]!, clock() + 120)).resolves.toBeUndefined()
    await denylist.close()
  })

  it('makes room by sweeping expired entries when full', async () => {
    const clock = fakeClock()
    const denylist = createMemoryDenylist({ clock, maxEntries: 2 })
    const shortLived = uniqueId()
    await denylist.revokeToken(shortLived, clock() + 5)
    await denylist.revokeToken(uniqueId(), clock() + 60)
    await expect(denylist.revokeToken(uniqueId(), clock() + 60)).rejects.toBeInstanceOf(DenylistUnavailableError)

    clock.advance(10)
    const fresh = uniqueId()
    await denylist.revokeToken(fresh, clock() + 60)
    expect(await denylist.isRevoked({ jti: fresh })).toBe(true)
    expect(await denylist.isRevoked({ jti: shortLived })).toBe(false)
    await denylist.close()
  })

  it('sweeps expired entries in the background on an unref-ed timer', async () => {
    vi.useFakeTimers()
    const clock = fakeClock()
    const denylist = createMemoryDenylist({ clock, maxEntries: 2, sweepIntervalMs: 1_000 })
    await denylist.revokeToken(uniqueId(), clock() + 5)
    await denylist.revokeToken(uniqueId(), clock() + 5)
    clock.advance(10)
    vi.advanceTimersByTime(1_000)
    // The sweep ran in the background, so the table has room without a lookup touching either entry.
    await denylist.revokeToken(uniqueId(), clock() + 60)
    await denylist.revokeToken(uniqueId(), clock() + 60)
    await expect(denylist.revokeToken(uniqueId(), clock() + 60)).rejects.toBeInstanceOf(DenylistUnavailableError)
    await denylist.close()
    expect(vi.getTimerCount()).toBe(0)
  })

  it('starts no timer until a denylist is created', async () => {
    vi.useFakeTimers()
    expect(vi.getTimerCount()).toBe(0)
    const denylist = createMemoryDenylist({ clock: fakeClock() })
    expect(vi.getTimerCount()).toBe(1)
    await denylist.close()
    expect(vi.getTimerCount()).toBe(0)
  })
})
