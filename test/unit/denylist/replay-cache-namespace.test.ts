import { describe, expect, expectTypeOf, it } from 'vitest'
import { DenylistUnavailableError, type StoredReplayCache } from '../../../src/denylist/denylist.js'
import { createMemoryDenylist } from '../../../src/denylist/memory.js'
import { entryKey, parseEntryKey, replayKey } from '../../../src/denylist/protocol.js'
import type { ReplayCache } from '../../../src/oauth/replay-cache.js'
import { WEIRD_IDS } from '../../helpers/denylist-contract.js'

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

const BAD_NAMESPACES = ['', 'Client-Assertion', 'client_assertion', 'a:b', 'a*', 'dpop ', 'é', 'x'.repeat(33)]

describe('memory denylist replay caches', () => {
  it('answers the same cache for the same namespace, and keeps each namespace apart', async () => {
    const clock = fakeClock()
    const denylist = createMemoryDenylist({ clock })
    const assertions = denylist.replayCache('client-assertion')
    expect(denylist.replayCache('client-assertion')).toBe(assertions)
    const federation = denylist.replayCache('federation')
    expect(federation).not.toBe(assertions)

    expect(await assertions.useOnce('svc-a', 'jti-1', clock() + 60)).toBe(true)
    expect(await denylist.replayCache('client-assertion').useOnce('svc-a', 'jti-1', clock() + 60)).toBe(false)
    expect(await federation.useOnce('svc-a', 'jti-1', clock() + 60)).toBe(true)
    expect(await federation.useOnce('svc-a', 'jti-1', clock() + 60)).toBe(false)
    await denylist.close()
  })

  it('forgets a pair after its until, on the denylist clock', async () => {
    const clock = fakeClock()
    const denylist = createMemoryDenylist({ clock })
    const cache = denylist.replayCache('dpop')
    expect(await cache.useOnce('svc-a', 'jti-1', clock() + 10)).toBe(true)
    clock.advance(9)
    expect(await cache.useOnce('svc-a', 'jti-1', clock() + 10)).toBe(false)
    clock.advance(1)
    expect(await cache.useOnce('svc-a', 'jti-1', clock() + 10)).toBe(true)
    await denylist.close()
  })

  it('throws on a namespace that is not 1 to 32 of a-z, 0-9 and -', async () => {
    const denylist = createMemoryDenylist({ clock: fakeClock() })
    for (const namespace of BAD_NAMESPACES) expect(() => denylist.replayCache(namespace)).toThrow(/namespace/)
    expect(() => denylist.replayCache('x'.repeat(32))).not.toThrow()
    expect(() => denylist.replayCache('dpop-2')).not.toThrow()
    await denylist.close()
  })

  it('refuses with DenylistUnavailableError once closed', async () => {
    const clock = fakeClock()
    const denylist = createMemoryDenylist({ clock })
    const cache = denylist.replayCache('client-assertion')
    await denylist.close()
    await expect(cache.useOnce('svc-a', 'jti-1', clock() + 60)).rejects.toThrow(DenylistUnavailableError)
  })

  it('is the ReplayCache of src/oauth/replay-cache.ts', () => {
    expectTypeOf<StoredReplayCache>().toEqualTypeOf<ReplayCache>()
  })
})

describe('replay cache keys', () => {
  const prefix = 'tokensmith:'

  it('names a pair under the prefix and namespace, hashed to a fixed length', () => {
    const key = replayKey(prefix, 'client-assertion', 'svc-a', 'jti-1')
    expect(key).toMatch(/^tokensmith:replay:client-assertion:[A-Za-z0-9_-]{43}$/)
    expect(replayKey(prefix, 'client-assertion', 'svc-a', 'jti-1')).toBe(key)
    expect(replayKey(prefix, 'client-assertion', 'x'.repeat(2000), 'j'.repeat(256)).length).toBe(key.length)
  })

  it('keeps pairs apart whatever characters they hold', () => {
    const pairs: [string, string][] = [
      ['a', 'bc'],
      ['ab', 'c'],
      ['a:b', 'c'],
      ['a', 'b:c'],
      ['https://idp.example/', 'x'],
      ['https://idp.example', '/x'],
      ['a","b', 'c'],
      ['a', '","b'],
      ...WEIRD_IDS.map((id): [string, string] => ['svc-a', id]),
      ...WEIRD_IDS.map((id): [string, string] => [id, 'jti-1']),
    ]
    const keys = new Set(pairs.map(([clientId, jti]) => replayKey(prefix, 'federation', clientId, jti)))
    expect(keys.size).toBe(new Set(pairs.map((pair) => JSON.stringify(pair))).size)
    expect(replayKey(prefix, 'federation', 'a', 'b')).not.toBe(replayKey(prefix, 'dpop', 'a', 'b'))
  })

  it('are never read as revocations, whatever the pair', () => {
    const pairs: [string, string][] = [
      ['svc-a', 'jti-1'],
      ['jti', 'jti:x'],
      ['client:svc-a', 'kid:k1'],
    ]
    for (const [clientId, jti] of pairs) {
      for (const namespace of ['client-assertion', 'federation', 'dpop', 'jti', 'kid', 'client']) {
        expect(parseEntryKey(prefix, replayKey(prefix, namespace, clientId, jti))).toBeUndefined()
      }
    }
    // Entries still parse beside them.
    expect(parseEntryKey(prefix, entryKey(prefix, 'jti', 'replay:x'))).toEqual({ kind: 'jti', id: 'replay:x' })
  })
})
