import { describe, expect, it } from 'vitest'
import {
  isPublished,
  keyTimelines,
  nextTransition,
  type KeyTimeline,
  type KeyTimes,
} from '../../../src/keys/key-states.js'

// The key lifecycle is a pure function of the key timestamps and `now`; every instance sharing
// KEYS_DIR must compute the same states (OIDC Core §10.1.1 rotation). Times are small offsets from T.
const T = 1_800_000_000
const RETENTION = 3690 // keyRetention(30): 3600 + 30 + 60

const key = (kid: string, created: number, activates: number | null): KeyTimes => ({ kid, created, activates })
const at = (keys: readonly KeyTimes[], now: number) => keyTimelines(keys, now, RETENTION)
const stateOf = (keys: readonly KeyTimes[], now: number) =>
  Object.fromEntries(at(keys, now).map((t) => [t.kid, t.state]))

const current = (kid: string): KeyTimeline => ({ kid, state: 'current', retired: null, unpublishes: null })
const waiting = (kid: string, state: 'standby' | 'next'): KeyTimeline => ({
  kid,
  state,
  retired: null,
  unpublishes: null,
})
const retired = (kid: string, when: number, state: 'retired' | 'expired' = 'retired'): KeyTimeline => ({
  kid,
  state,
  retired: when,
  unpublishes: when + RETENTION,
})

describe('key states', () => {
  it('keeps a standby key (activates null) standby at every time while another key signs', () => {
    const keys = [key('cur', T - 100, T - 100), key('sb', T - 100, null)]
    for (const now of [T - 100, T, T + 10 * RETENTION, T + 10 ** 9]) {
      expect(at(keys, now)).toEqual([current('cur'), waiting('sb', 'standby')])
    }
  })

  it('publishes a scheduled key as next, and makes it current at exactly its activation', () => {
    const keys = [key('cur', T - 100, T - 100), key('nxt', T, T + 900)]
    expect(at(keys, T)).toEqual([current('cur'), waiting('nxt', 'next')])
    expect(at(keys, T + 899)).toEqual([current('cur'), waiting('nxt', 'next')])
    expect(at(keys, T + 900)).toEqual([retired('cur', T + 900), current('nxt')])
  })

  it('retires the old current key at its successor activation, publishes it for the retention, then expires it', () => {
    const keys = [key('old', T - 100, T - 100), key('new', T, T + 900)]
    const lastPublished = T + 900 + RETENTION - 1
    expect(at(keys, lastPublished)).toEqual([retired('old', T + 900), current('new')])
    expect(isPublished(at(keys, lastPublished)[0]!.state)).toBe(true)
    expect(at(keys, lastPublished + 1)).toEqual([retired('old', T + 900, 'expired'), current('new')])
    expect(isPublished(at(keys, lastPublished + 1)[0]!.state)).toBe(false)
    expect(at(keys, T + 10 ** 9)[0]!.state).toBe('expired')
  })

  it('dates each retirement from the key that took over from it, not from the newest key', () => {
    const keys = [key('k1', T - 3000, T - 3000), key('k2', T - 2000, T - 2000), key('k3', T - 1000, T - 1000)]
    expect(at(keys, T)).toEqual([retired('k1', T - 2000), retired('k2', T - 1000), current('k3')])
    expect(stateOf(keys, T - 2000 + RETENTION)).toEqual({ k1: 'expired', k2: 'retired', k3: 'current' })
    expect(stateOf(keys, T - 1000 + RETENTION)).toEqual({ k1: 'expired', k2: 'expired', k3: 'current' })
  })

  it('returns one timeline per key, in the order given', () => {
    const keys = [key('sb', T, null), key('nxt', T, T + 900), key('cur', T - 10, T - 10)]
    expect(at(keys, T).map((t) => t.kid)).toEqual(['sb', 'nxt', 'cur'])
    expect(at([], T)).toEqual([])
  })

  it('breaks an activation tie by the later creation, then by the smaller kid, whatever the input order', () => {
    const byCreation = [key('a', T - 10, T), key('b', T - 5, T)]
    const byKid = [key('b', T - 10, T), key('a', T - 10, T)]
    for (const keys of [byCreation, [...byCreation].reverse()]) {
      expect(stateOf(keys, T)).toEqual({ a: 'retired', b: 'current' })
      expect(at(keys, T).find((t) => t.kid === 'a')).toEqual(retired('a', T))
    }
    for (const keys of [byKid, [...byKid].reverse()]) {
      expect(stateOf(keys, T)).toEqual({ a: 'current', b: 'retired' })
    }
  })

  it('signs with the key due first when nothing has activated yet (clock behind the files), then follows the schedule', () => {
    const keys = [key('later', T, T + 100), key('sooner', T + 1, T + 50), key('sb', T - 5, null)]
    expect(at(keys, T)).toEqual([waiting('later', 'next'), current('sooner'), waiting('sb', 'standby')])
    expect(at(keys, T + 50)).toEqual([waiting('later', 'next'), current('sooner'), waiting('sb', 'standby')])
    expect(at(keys, T + 100)).toEqual([current('later'), retired('sooner', T + 100), waiting('sb', 'standby')])
  })

  it('signs with the oldest standby key when there are only standby keys', () => {
    const keys = [key('young', T + 5, null), key('old', T + 1, null), key('middle', T + 3, null)]
    expect(stateOf(keys, T)).toEqual({ young: 'standby', old: 'current', middle: 'standby' })
  })

  it('reports the next instant at which any key changes state', () => {
    const keys = [
      key('old', T - 1000, T - 1000),
      key('cur', T - 10, T - 10),
      key('nxt', T, T + 600),
      key('sb', T, null),
    ]
    const next = (now: number) => nextTransition(keys, at(keys, now), now)
    // old retired at T - 10 and unpublishes at T - 10 + R; nxt activates at T + 600.
    expect(next(T)).toBe(T + 600)
    expect(next(T + 599)).toBe(T + 600)
    // At its own instant a transition is past: the next one is old's unpublishing.
    expect(next(T + 600)).toBe(T - 10 + RETENTION)
    // Then cur, retired at T + 600, unpublishes.
    expect(next(T - 10 + RETENTION)).toBe(T + 600 + RETENTION)
    expect(next(T + 600 + RETENTION)).toBe(Infinity)
    expect(nextTransition([key('only', T, T)], at([key('only', T, T)], T), T)).toBe(Infinity)
  })

  it('reports a pending activation as the next transition while the fallback key signs', () => {
    const keys = [key('a', T, T + 100), key('b', T, T + 200)]
    expect(nextTransition(keys, at(keys, T), T)).toBe(T + 100)
    expect(nextTransition(keys, at(keys, T + 100), T + 100)).toBe(T + 200)
    expect(nextTransition(keys, at(keys, T + 200), T + 200)).toBe(T + 200 + RETENTION)
  })
})
