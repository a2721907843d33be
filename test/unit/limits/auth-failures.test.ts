import { describe, expect, it } from 'vitest'
import { OAuthError } from '../../../src/errors.js'
import { createAuthFailureLimiter, WINDOW_MS } from '../../../src/limits/auth-failures.js'
import { fixedClock, T0 } from '../../helpers/make-deps.js'

function recordingLog() {
  const records: { level: string; fields: Record<string, unknown>; msg: string }[] = []
  const at = (level: string) => (fields: object, msg: string) =>
    void records.push({ level, fields: fields as Record<string, unknown>, msg })
  return { log: { info: at('info'), warn: at('warn') }, records }
}

function setup(options: { limit?: number; perAddressLimit?: number; maxKeys?: number } = {}) {
  const clock = fixedClock(T0)
  const { log, records } = recordingLog()
  const limiter = createAuthFailureLimiter({
    clock,
    limit: options.limit ?? 10,
    perAddressLimit: options.perAddressLimit ?? 100,
    log,
    ...(options.maxKeys !== undefined && { maxKeys: options.maxKeys }),
  })
  return { clock, limiter, records }
}

/** The Retry-After of the 429 `check` throws, or undefined when it lets the attempt through. */
function retryAfter(run: () => void): number | undefined {
  try {
    run()
    return undefined
  } catch (error) {
    expect(error).toBeInstanceOf(OAuthError)
    const oauth = error as OAuthError
    expect(oauth.status).toBe(429)
    expect(oauth.code).toBe('temporarily_unavailable')
    return Number(oauth.headers['Retry-After'])
  }
}

describe('failed-authentication limits', () => {
  it('lets exactly `limit` failures through, then refuses until the oldest leaves the sliding window', async () => {
    const { clock, limiter } = setup()
    // Failures 1 s apart at T0 .. T0+9.
    for (let index = 0; index < 10; index++) {
      expect(retryAfter(() => limiter.check('svc-a', '10.0.0.1'))).toBeUndefined()
      await limiter.recordFailure('svc-a', '10.0.0.1')
      if (index < 9) clock.advance(1)
    }
    // The 11th attempt, whatever its secret: the oldest failure (T0) leaves at T0+60, 51 s from now.
    expect(retryAfter(() => limiter.check('svc-a', '10.0.0.1'))).toBe(51)
    clock.advance(50)
    expect(retryAfter(() => limiter.check('svc-a', '10.0.0.1'))).toBe(1)
    clock.advance(1) // T0+60: the first failure is out, nine remain
    expect(retryAfter(() => limiter.check('svc-a', '10.0.0.1'))).toBeUndefined()
    // Sliding, not a fresh minute: one more failure and the window is full again, until T0+61.
    await limiter.recordFailure('svc-a', '10.0.0.1')
    expect(retryAfter(() => limiter.check('svc-a', '10.0.0.1'))).toBe(1)
    clock.advance(1)
    expect(retryAfter(() => limiter.check('svc-a', '10.0.0.1'))).toBeUndefined()
  })

  it('answers Retry-After 60 after a burst, and never below 1 nor above 60', async () => {
    const { clock, limiter } = setup({ limit: 3 })
    for (let index = 0; index < 3; index++) await limiter.recordFailure('svc-a', '10.0.0.1')
    expect(retryAfter(() => limiter.check('svc-a', '10.0.0.1'))).toBe(60)
    clock.advance(59.5)
    expect(retryAfter(() => limiter.check('svc-a', '10.0.0.1'))).toBe(1)
    clock.advance(0.5)
    expect(retryAfter(() => limiter.check('svc-a', '10.0.0.1'))).toBeUndefined()
  })

  it('keys the client limit on (client id, address): another address and another client are not blocked', async () => {
    const { limiter } = setup({ limit: 2 })
    await limiter.recordFailure('svc-a', '10.0.0.1')
    await limiter.recordFailure('svc-a', '10.0.0.1')
    expect(retryAfter(() => limiter.check('svc-a', '10.0.0.1'))).toBe(60)
    expect(retryAfter(() => limiter.check('svc-a', '10.0.0.2'))).toBeUndefined()
    expect(retryAfter(() => limiter.check('svc-b', '10.0.0.1'))).toBeUndefined()
    expect(retryAfter(() => limiter.check(undefined, '10.0.0.1'))).toBeUndefined()
  })

  it('limits an address over every client id, unknown and absent ids included', async () => {
    const { limiter } = setup({ perAddressLimit: 5 })
    for (let index = 0; index < 4; index++) await limiter.recordFailure(`guess-${index}`, '10.0.0.9')
    expect(retryAfter(() => limiter.check('fresh', '10.0.0.9'))).toBeUndefined()
    await limiter.recordFailure(undefined, '10.0.0.9') // an assertion without client_id
    expect(retryAfter(() => limiter.check('fresh', '10.0.0.9'))).toBe(60)
    expect(retryAfter(() => limiter.check(undefined, '10.0.0.9'))).toBe(60)
    expect(retryAfter(() => limiter.check('fresh', '10.0.0.10'))).toBeUndefined()
  })

  it('gives the later of the two blocks when both apply', async () => {
    const { clock, limiter } = setup({ limit: 2, perAddressLimit: 3 })
    await limiter.recordFailure('other', '10.0.0.1') // T0: address 1 of 3
    clock.advance(10)
    await limiter.recordFailure('svc-a', '10.0.0.1') // T0+10
    await limiter.recordFailure('svc-a', '10.0.0.1') // T0+10: client full until T0+70, address until T0+60
    expect(retryAfter(() => limiter.check('svc-a', '10.0.0.1'))).toBe(60)
    expect(retryAfter(() => limiter.check('other', '10.0.0.1'))).toBe(50)
  })

  it('logs a warning once per trip, with the client id cut to 128 characters', async () => {
    const { limiter, records } = setup({ limit: 2, perAddressLimit: 1000 })
    const long = 'x'.repeat(300)
    await limiter.recordFailure(long, '10.0.0.1')
    await limiter.recordFailure(long, '10.0.0.1')
    await limiter.recordFailure(long, '10.0.0.1') // a racing failure past the limit: no second line
    const warnings = records.filter((record) => record.msg === 'authentication failure limit reached')
    expect(warnings).toEqual([
      {
        level: 'warn',
        msg: 'authentication failure limit reached',
        fields: { client_id: 'x'.repeat(128), address: '10.0.0.1', scope: 'client', until: T0 + 60 },
      },
    ])
  })

  it('keeps at most `limit` failure times per key', async () => {
    const { clock, limiter } = setup({ limit: 3, perAddressLimit: 1000 })
    for (let index = 0; index < 50; index++) {
      await limiter.recordFailure('svc-a', '10.0.0.1')
      clock.advance(0.1)
    }
    // Only the newest 3 (at T0+4.7 .. T0+4.9) count: blocked until T0+64.7.
    expect(retryAfter(() => limiter.check('svc-a', '10.0.0.1'))).toBe(60)
    clock.advance(59.8) // T0+64.8
    expect(retryAfter(() => limiter.check('svc-a', '10.0.0.1'))).toBeUndefined()
  })

  it('keeps memory bounded under a spray of 100,000 distinct addresses, and forgets them after the window', async () => {
    const { clock, limiter } = setup()
    for (let index = 0; index < 100_000; index++) {
      await limiter.recordFailure('svc-a', `10.${(index >> 16) & 255}.${(index >> 8) & 255}.${index & 255}`)
    }
    // Two keys per address (the address, the client id at it) capped at 100,000 entries.
    expect(limiter.size().counters).toBeLessThanOrEqual(100_000)
    expect(limiter.size().blocked).toBe(0)
    // A window later none of them counts any more; two windows after, none is held.
    clock.advance(WINDOW_MS / 1000)
    for (let index = 0; index < 9; index++) await limiter.recordFailure('svc-a', '10.0.0.1')
    expect(retryAfter(() => limiter.check('svc-a', '10.0.0.1'))).toBeUndefined()
    clock.advance((2 * WINDOW_MS) / 1000)
    await limiter.recordFailure('svc-a', '192.0.2.1')
    expect(limiter.size()).toEqual({ counters: 2, blocked: 0 })
  })

  it('never tracks more keys than maxKeys, evicting the least recently counted', async () => {
    const { limiter } = setup({ limit: 1, perAddressLimit: 1, maxKeys: 1_000 })
    for (let index = 0; index < 100_000; index++)
      await limiter.recordFailure(undefined, `2001:db8::${index.toString(16)}`)
    expect(limiter.size().counters).toBeLessThanOrEqual(1_000)
    expect(limiter.size().blocked).toBeLessThanOrEqual(1_000)
    // The most recent block is kept.
    expect(retryAfter(() => limiter.check(undefined, `2001:db8::${(99_999).toString(16)}`))).toBe(60)
  })
})
