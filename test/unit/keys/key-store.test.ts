import { beforeAll, describe, expect, it } from 'vitest'
import { issueAccessToken } from '../../../src/oauth/access-token.js'
import { verifyOwnToken } from '../../../src/oauth/verify-token.js'
import { generateKeyRecord, type KeyRecord } from '../../../src/keys/key-file.js'
import { createKeyStore, keyRetention, type KeyStore } from '../../../src/keys/key-store.js'
import { ISSUER, T0, fixedClock } from '../../helpers/make-deps.js'

// Rotation through the store the server holds: a rotated key is published before it signs, signs
// from its activation, and the old key stays published until every token it signed has expired
// plus the clock tolerance T plus the reload lag.
const T = 30
const RETENTION = keyRetention(T)
const ACTIVATES = T0 + 900 // `keys rotate` at T0 with KEY_ACTIVATION_DELAY=900
const UNPUBLISHES = ACTIVATES + RETENTION

const kids = (store: KeyStore) => (JSON.parse(store.jwks().body) as { keys: { kid: string }[] }).keys.map((k) => k.kid)
const sorted = (...values: string[]) => [...values].sort()

let old: KeyRecord
let rotated: KeyRecord
let standby: KeyRecord
beforeAll(async () => {
  old = await generateKeyRecord('ES256', T0 - 5000, T0 - 5000)
  rotated = await generateKeyRecord('ES256', T0 - 5000, ACTIVATES)
  standby = await generateKeyRecord('EdDSA', T0, null)
})

describe('key store', () => {
  it('computes the retention as the longest token lifetime plus T plus the reload lag', () => {
    expect(RETENTION).toBe(3600 + 30 + 60)
    expect(keyRetention(0)).toBe(3660)
  })

  it('refuses to build a store without keys', () => {
    expect(() => createKeyStore([], fixedClock(), { retention: RETENTION })).toThrow('no signing keys')
  })

  it('publishes a rotated key as next before it signs, and signs with it from exactly its activation', () => {
    const clock = fixedClock(T0)
    const store = createKeyStore([old, rotated], clock, { retention: RETENTION })
    expect(store.signingKey()).toEqual({ kid: old.kid, alg: 'ES256', privateKey: old.privateKey })
    expect(kids(store)).toEqual(sorted(old.kid, rotated.kid))
    expect(store.verificationKey(rotated.kid)).toEqual({ alg: 'ES256', publicKey: rotated.publicKey })
    expect(store.timelines().map((t) => t.state)).toEqual(['current', 'next'])

    clock.set(ACTIVATES - 1)
    expect(store.signingKey().kid).toBe(old.kid)
    clock.set(ACTIVATES)
    expect(store.signingKey()).toEqual({ kid: rotated.kid, alg: 'ES256', privateKey: rotated.privateKey })
    expect(store.timelines()).toEqual([
      { kid: old.kid, state: 'retired', retired: ACTIVATES, unpublishes: UNPUBLISHES },
      { kid: rotated.kid, state: 'current', retired: null, unpublishes: null },
    ])
  })

  it('keeps the old key in the JWKS and for verification until its last exp + T + lag, then drops it from both', () => {
    const clock = fixedClock(ACTIVATES)
    const store = createKeyStore([old, rotated], clock, { retention: RETENTION })
    // The last token the old key signed was issued at ACTIVATES - 1 and lives at most 3600 s.
    expect(UNPUBLISHES).toBe(ACTIVATES - 1 + 3600 + T + 60 + 1)
    clock.set(UNPUBLISHES - 1)
    expect(kids(store)).toEqual(sorted(old.kid, rotated.kid))
    expect(store.verificationKey(old.kid)).toEqual({ alg: 'ES256', publicKey: old.publicKey })
    expect(store.size).toBe(2)

    clock.set(UNPUBLISHES)
    expect(kids(store)).toEqual([rotated.kid])
    expect(store.verificationKey(old.kid)).toBeUndefined()
    expect(store.size).toBe(1)
    expect(store.signingKey().kid).toBe(rotated.kid)
  })

  it('verifies the old key tokens throughout: issued just before the switch, still valid one second before exp + T', async () => {
    const clock = fixedClock(ACTIVATES - 1)
    const store = createKeyStore([old, rotated], clock, { retention: RETENTION })
    const deps = { clock, keys: store, issuer: ISSUER }
    const lastOld = await issueAccessToken(deps, {
      clientId: 'svc-a',
      scopes: ['read'],
      audience: 'https://api.example.com',
      ttl: 3600,
    })
    expect(lastOld.kid).toBe(old.kid)
    for (const now of [ACTIVATES, ACTIVATES + 1800, ACTIVATES - 1 + 3600 + T - 1]) {
      clock.set(now)
      expect(await verifyOwnToken(deps, lastOld.accessToken, T)).toMatchObject({ kid: old.kid, jti: lastOld.jti })
    }
    clock.set(ACTIVATES)
    const firstNew = await issueAccessToken(deps, {
      clientId: 'svc-a',
      scopes: ['read'],
      audience: 'https://api.example.com',
      ttl: 60,
    })
    expect(firstNew.kid).toBe(rotated.kid)
    clock.set(UNPUBLISHES)
    expect(await verifyOwnToken(deps, lastOld.accessToken, T)).toBeUndefined()
  })

  it('changes the JWKS body and ETag exactly when the set of published keys changes', () => {
    const clock = fixedClock(T0)
    const store = createKeyStore([old, rotated, standby], clock, { retention: RETENTION })
    const before = store.jwks()
    expect(before.etag).toMatch(/^"[A-Za-z0-9_-]{27}"$/)
    expect(JSON.parse(before.body)).toEqual({
      keys: [old, rotated, standby].map((r) => r.publicJwk).sort((a, b) => (a.kid! < b.kid! ? -1 : 1)),
    })
    expect(JSON.parse(before.body).keys.every((k: Record<string, unknown>) => !('d' in k) && k.use === 'sig')).toBe(
      true,
    )

    // The activation moves a key from next to current, and the old one to retired: same keys published.
    for (const now of [ACTIVATES - 1, ACTIVATES, UNPUBLISHES - 1]) {
      clock.set(now)
      expect(store.jwks()).toEqual(before)
    }
    clock.set(UNPUBLISHES)
    const after = store.jwks()
    expect(after.body).not.toBe(before.body)
    expect(after.etag).not.toBe(before.etag)
    expect(kids(store)).toEqual(sorted(rotated.kid, standby.kid))
    clock.set(UNPUBLISHES + 10 ** 6)
    expect(store.jwks()).toEqual(after)
  })

  it('serializes the JWKS once per change, not per request', () => {
    const clock = fixedClock(T0)
    const store = createKeyStore([old, rotated], clock, { retention: RETENTION })
    const first = store.jwks()
    clock.set(T0 + 1)
    expect(store.jwks()).toBe(first)
  })

  it('serves byte-identical JWKS bodies and ETags from stores built from the same records in another order', () => {
    const clockA = fixedClock(T0)
    const clockB = fixedClock(T0)
    const a = createKeyStore([old, rotated, standby], clockA, { retention: RETENTION })
    const b = createKeyStore([standby, rotated, old], clockB, { retention: RETENTION })
    for (const now of [T0, ACTIVATES, UNPUBLISHES]) {
      clockA.set(now)
      clockB.set(now)
      expect(b.jwks().body).toBe(a.jwks().body)
      expect(b.jwks().etag).toBe(a.jwks().etag)
      expect(b.signingKey().kid).toBe(a.signingKey().kid)
    }
  })

  it('counts published keys in size: standby, next, current and retired, not expired', () => {
    const clock = fixedClock(T0)
    const store = createKeyStore([old, rotated, standby], clock, { retention: RETENTION })
    expect(store.size).toBe(3)
    clock.set(ACTIVATES)
    expect(store.size).toBe(3)
    clock.set(UNPUBLISHES)
    expect(store.size).toBe(2)
  })

  it('follows the clock backwards as well as forwards', () => {
    const clock = fixedClock(UNPUBLISHES)
    const store = createKeyStore([old, rotated], clock, { retention: RETENTION })
    expect(store.signingKey().kid).toBe(rotated.kid)
    expect(store.size).toBe(1)
    clock.set(T0)
    expect(store.signingKey().kid).toBe(old.kid)
    expect(store.size).toBe(2)
  })

  it('keeps the records it was built from', () => {
    const records = [old, rotated]
    expect(createKeyStore(records, fixedClock(), { retention: RETENTION }).records).toBe(records)
  })
})
