import { describe, expect, it } from 'vitest'

import { createMemoryReplayCache, ReplayCacheFullError } from '../../../src/oauth/replay-cache.js'
import { fixedClock, T0 } from '../../helpers/make-deps.js'

describe('createMemoryReplayCache', () => {
  it('answers true for the first use of a jti and false for the next', async () => {
    const replay = createMemoryReplayCache({ clock: fixedClock() })
    expect(await replay.useOnce('client-a', 'jti-1', T0 + 60)).toBe(true)
    expect(await replay.useOnce('client-a', 'jti-1', T0 + 60)).toBe(false)
  })

  it('keeps each client apart: the same jti from another client is a first use', async () => {
    const replay = createMemoryReplayCache({ clock: fixedClock() })
    expect(await replay.useOnce('client-a', 'shared', T0 + 60)).toBe(true)
    expect(await replay.useOnce('client-b', 'shared', T0 + 60)).toBe(true)
    expect(await replay.useOnce('client-b', 'shared', T0 + 60)).toBe(false)
  })

  it('does not confuse pairs whose concatenation is equal', async () => {
    const replay = createMemoryReplayCache({ clock: fixedClock() })
    expect(await replay.useOnce('a', 'bc', T0 + 60)).toBe(true)
    expect(await replay.useOnce('ab', 'c', T0 + 60)).toBe(true)
  })

  it('forgets an entry once its until has passed', async () => {
    const clock = fixedClock()
    const replay = createMemoryReplayCache({ clock })
    expect(await replay.useOnce('client-a', 'jti-1', T0 + 60)).toBe(true)
    clock.advance(59)
    expect(await replay.useOnce('client-a', 'jti-1', T0 + 60)).toBe(false)
    clock.advance(1)
    expect(await replay.useOnce('client-a', 'jti-1', T0 + 120)).toBe(true)
  })

  it('throws when full of live entries rather than forgetting one, and makes room as they expire', async () => {
    const clock = fixedClock()
    const replay = createMemoryReplayCache({ clock, maxEntries: 2 })
    expect(await replay.useOnce('client-a', 'jti-1', T0 + 10)).toBe(true)
    expect(await replay.useOnce('client-a', 'jti-2', T0 + 20)).toBe(true)
    await expect(replay.useOnce('client-a', 'jti-3', T0 + 30)).rejects.toThrow(ReplayCacheFullError)
    // The live entries are still remembered.
    expect(await replay.useOnce('client-a', 'jti-1', T0 + 10)).toBe(false)
    clock.advance(10)
    expect(await replay.useOnce('client-a', 'jti-3', T0 + 30)).toBe(true)
    expect(await replay.useOnce('client-a', 'jti-2', T0 + 20)).toBe(false)
  })

  it('refuses a maxEntries that is not a positive integer', () => {
    expect(() => createMemoryReplayCache({ clock: fixedClock(), maxEntries: 0 })).toThrow(/maxEntries/)
  })
})
