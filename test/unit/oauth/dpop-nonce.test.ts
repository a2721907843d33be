/** Stateless DPoP server nonces (RFC 9449 §8): shared by instances with the same keys, 5-minute windows. */
import { describe, expect, it } from 'vitest'

import { generateKeyRecord } from '../../../src/keys/key-file.js'
import { createKeyStore } from '../../../src/keys/key-store.js'
import { createDpopNonces, DPOP_NONCE_WINDOW } from '../../../src/oauth/dpop-binding.js'
import { fixedClock, T0, testKey } from '../../helpers/make-deps.js'

const RETENTION = 3600

describe('createDpopNonces', () => {
  it('hands out one 27-character nonce per window and accepts it on another instance with the same keys', async () => {
    const clock = fixedClock()
    const record = await testKey()
    const a = createDpopNonces({ keys: () => createKeyStore([record], clock, { retention: RETENTION }), clock })
    const b = createDpopNonces({ keys: () => createKeyStore([record], clock, { retention: RETENTION }), clock })
    const nonce = a.current()
    expect(nonce).toMatch(/^[A-Za-z0-9_-]{27}$/)
    expect(a.current()).toBe(nonce)
    expect(b.current()).toBe(nonce)
    expect(b.check(nonce)).toBe('ok')
  })

  it('accepts the previous and next window, nothing further', async () => {
    const clock = fixedClock(Math.floor(T0 / DPOP_NONCE_WINDOW) * DPOP_NONCE_WINDOW)
    const keys = createKeyStore([await testKey()], clock, { retention: RETENTION })
    const nonces = createDpopNonces({ keys: () => keys, clock })
    const issued = nonces.current()
    clock.advance(DPOP_NONCE_WINDOW)
    expect(nonces.current()).not.toBe(issued)
    expect(nonces.check(issued)).toBe('ok')
    clock.advance(DPOP_NONCE_WINDOW)
    expect(nonces.check(issued)).toBe('invalid')
    clock.set(Math.floor(T0 / DPOP_NONCE_WINDOW) * DPOP_NONCE_WINDOW - DPOP_NONCE_WINDOW)
    expect(nonces.check(issued)).toBe('ok')
    clock.advance(-DPOP_NONCE_WINDOW)
    expect(nonces.check(issued)).toBe('invalid')
  })

  it('refuses nonces of other keys, malformed ones, and tampered ones; missing is missing', async () => {
    const clock = fixedClock()
    const mine = createKeyStore([await testKey()], clock, { retention: RETENTION })
    const theirs = createKeyStore([await generateKeyRecord('ES256', T0 - 10, T0 - 10)], clock, { retention: RETENTION })
    const nonces = createDpopNonces({ keys: () => mine, clock })
    const foreign = createDpopNonces({ keys: () => theirs, clock }).current()
    expect(nonces.check(foreign)).toBe('invalid')
    const good = nonces.current()
    const tampered = `${good.slice(0, 10)}${good[10] === 'A' ? 'B' : 'A'}${good.slice(11)}`
    for (const value of [tampered, '', 'short', `${good}A`, `${good.slice(0, 26)}!`]) {
      expect(nonces.check(value)).toBe('invalid')
    }
    expect(nonces.check(undefined)).toBe('missing')
  })

  it('keeps accepting a nonce of the previous signing key after a rotation, while it is published', async () => {
    const clock = fixedClock()
    const old = await testKey()
    const next = await generateKeyRecord('ES256', T0 - 5, T0 + 10)
    const before = createKeyStore([old], clock, { retention: RETENTION })
    const after = createKeyStore([old, next], clock, { retention: RETENTION })
    const issued = createDpopNonces({ keys: () => before, clock }).current()
    clock.advance(20) // `next` is current now; `old` retired but published
    const nonces = createDpopNonces({ keys: () => after, clock })
    expect(nonces.current()).not.toBe(issued)
    expect(nonces.check(issued)).toBe('ok')
  })
})
