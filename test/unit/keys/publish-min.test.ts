import { join } from 'node:path'
import { createLocalJWKSet, jwtVerify, SignJWT } from 'jose'
import { afterEach, describe, expect, it } from 'vitest'
import { run as keysCli } from '../../../src/cli/keys.js'
import { generateKeyRecord, type KeyRecord } from '../../../src/keys/key-file.js'
import { createKeyStore, keyRetention, type KeyStore } from '../../../src/keys/key-store.js'
import { ensureKeys, writeKeyRecord } from '../../../src/keys/keys-dir.js'
import { watchKeys } from '../../../src/keys/reload.js'
import { auditOf, type AuditEventName } from '../../../src/observability/audit.js'
import { createMetrics, type Metrics } from '../../../src/observability/metrics.js'
import type { Watcher } from '../../../src/storage/watch.js'
import { runCli, tempDir } from '../../helpers/cli.js'
import { T0, captureLog, fixedClock, makeDeps } from '../../helpers/make-deps.js'

// KEY_PUBLISH_MIN: a key signs on an instance only once that instance has served it in its JWKS
// (RFC 7517 §5) for that long, whatever the key file's `activates` says, so that a file synced late
// (GitOps) never signs tokens that verifiers holding a cached key set cannot verify yet.

const RETENTION = keyRetention(30)
const MIN = 900
const LATE_MESSAGE = 'signing key published; it signs once verifiers have had time to fetch it'

const kids = (store: KeyStore) => (JSON.parse(store.jwks().body) as { keys: { kid: string }[] }).keys.map((k) => k.kid)

const watchers: Watcher[] = []
const opened: Metrics[] = []
afterEach(() => {
  for (const watcher of watchers.splice(0)) watcher.stop()
  for (const metrics of opened.splice(0)) metrics.close()
})

/** A server on a KEYS_DIR made at T0 (a current and a standby key), watching it, on a fake clock. */
async function server(publishMin = MIN) {
  const clock = fixedClock(T0)
  const keysDir = join(tempDir(), 'keys')
  const { records } = await ensureKeys(keysDir, 'ES256', { clock, log: captureLog().log })
  const current = records.find((r) => r.activates !== null) as KeyRecord
  const deps = await makeDeps({ clock, keys: records, config: { keysDir, keyPublishMin: publishMin } })
  const events: [AuditEventName, unknown][] = []
  auditOf(deps).listen((event, fields) => void events.push([event, fields]))
  const watcher = await watchKeys(deps, 60_000)
  watchers.push(watcher)
  const metrics = createMetrics(deps, { defaultMetrics: false })
  opened.push(metrics)
  const logged = () => deps.logLines.map((line) => JSON.parse(line) as Record<string, unknown>)
  return { clock, keysDir, deps, current, events, watcher, metrics, logged }
}

async function keyStates(metrics: Metrics) {
  const metric = metrics.registry.getSingleMetric('tokensmith_signing_key_state')
  return Object.fromEntries(
    ((await metric?.get())?.values ?? []).map((v) => [String(v.labels.kid), String(v.labels.state)]),
  )
}

async function nextTransition(metrics: Metrics, kid: string) {
  const metric = metrics.registry.getSingleMetric('tokensmith_signing_key_next_transition_seconds')
  return ((await metric?.get())?.values ?? []).find((v) => v.labels.kid === kid)?.value
}

describe('KEY_PUBLISH_MIN on a server (reloads of KEYS_DIR on a fake clock)', () => {
  it('publishes a key whose activates is past at once, and signs with it only KEY_PUBLISH_MIN later', async () => {
    const { clock, keysDir, deps, current, events, watcher, metrics, logged } = await server()
    // GitOps syncs a key file whose `activates` passed long ago.
    clock.set(T0 + 5000)
    const late = await generateKeyRecord('ES256', T0 + 4000, T0 + 4500)
    await writeKeyRecord(keysDir, late)
    await watcher.check()

    expect(kids(deps.keys)).toContain(late.kid)
    expect(deps.keys.verificationKey(late.kid)).toBeDefined()
    expect(deps.keys.signingKey().kid).toBe(current.kid)
    expect(logged().filter((r) => r.msg === LATE_MESSAGE)).toEqual([
      expect.objectContaining({ level: 30, kid: late.kid, activates: T0 + 4500, signsFrom: T0 + 5000 + MIN }),
    ])
    // Published, not signing: `next` in the metrics, due when the rule lets it sign.
    expect((await keyStates(metrics))[late.kid]).toBe('next')
    expect(await nextTransition(metrics, late.kid)).toBe(MIN)
    expect(await nextTransition(metrics, current.kid)).toBe(MIN)

    // Another change to KEYS_DIR does not restart the count.
    clock.set(T0 + 5300)
    await writeKeyRecord(keysDir, await generateKeyRecord('ES256', T0 + 5300, null))
    await watcher.check()
    expect(logged().filter((r) => r.msg === LATE_MESSAGE)).toHaveLength(1)

    clock.set(T0 + 5000 + MIN - 1)
    expect(deps.keys.signingKey().kid).toBe(current.kid)
    await watcher.check()
    expect(events.filter(([event]) => event === 'key.activated')).toEqual([])

    clock.set(T0 + 5000 + MIN)
    expect(deps.keys.signingKey().kid).toBe(late.kid)
    await watcher.check()
    expect(events.filter(([event]) => event === 'key.activated')).toEqual([
      ['key.activated', { kid: late.kid, alg: 'ES256' }],
    ])
    expect((await keyStates(metrics))[current.kid]).toBe('retired')
    expect((await keyStates(metrics))[late.kid]).toBe('current')

    // The key it replaced stays published for the retention counted from when it stopped signing
    // here, not from the late key's `activates`.
    clock.set(T0 + 5000 + MIN + RETENTION - 1)
    expect(kids(deps.keys)).toContain(current.kid)
    clock.set(T0 + 5000 + MIN + RETENTION)
    expect(kids(deps.keys)).not.toContain(current.kid)
  })

  it('signs with a key scheduled further ahead than KEY_PUBLISH_MIN exactly at its activates, logging nothing', async () => {
    const { clock, keysDir, deps, current, watcher, logged } = await server()
    clock.set(T0 + 100)
    const scheduled = await generateKeyRecord('ES256', T0 + 100, T0 + 100 + 5000)
    await writeKeyRecord(keysDir, scheduled)
    await watcher.check()
    expect(kids(deps.keys)).toContain(scheduled.kid)
    clock.set(T0 + 100 + 5000 - 1)
    expect(deps.keys.signingKey().kid).toBe(current.kid)
    clock.set(T0 + 100 + 5000)
    expect(deps.keys.signingKey().kid).toBe(scheduled.kid)
    expect(logged().filter((r) => r.msg === LATE_MESSAGE)).toEqual([])
  })

  it('holds back a standby key promoted by keys rotate --now soon after this server published it', async () => {
    const { clock, keysDir, deps, current, watcher, logged } = await server()
    const env = { KEYS_DIR: keysDir, KEY_PUBLISH_MIN: String(MIN) }
    clock.set(T0 + 100)
    const rotated = await runCli((args, io) => keysCli(args, io, clock), ['rotate', '--now'], env)
    const { kid } = rotated.json().rotated as { kid: string }
    await watcher.check()
    expect(deps.keys.signingKey().kid).toBe(current.kid)
    expect(logged().filter((r) => r.msg === LATE_MESSAGE)).toEqual([
      expect.objectContaining({ kid, activates: T0 + 100, signsFrom: T0 + MIN }),
    ])
    clock.set(T0 + MIN)
    expect(deps.keys.signingKey().kid).toBe(kid)
  })

  it('with KEY_PUBLISH_MIN=0 signs with a late key as soon as it is loaded', async () => {
    const { clock, keysDir, deps, watcher, logged } = await server(0)
    clock.set(T0 + 5000)
    const late = await generateKeyRecord('ES256', T0 + 4000, T0 + 4500)
    await writeKeyRecord(keysDir, late)
    await watcher.check()
    expect(deps.keys.signingKey().kid).toBe(late.kid)
    expect(logged().filter((r) => r.msg === LATE_MESSAGE)).toEqual([])
  })
})

describe('KEY_PUBLISH_MIN in the key store', () => {
  const options = { retention: RETENTION, publishMin: MIN }

  it('signs with the only usable key even when this instance has not published it long enough', async () => {
    const clock = fixedClock(T0)
    const old = await generateKeyRecord('ES256', T0 - 1000, T0 - 1000)
    const replacement = await generateKeyRecord('ES256', T0 + 10, T0 + 10)
    const before = createKeyStore([old], clock, options)
    // The old key is gone (revoked: a tombstone holds no key); the new one just appeared.
    clock.set(T0 + 20)
    const after = createKeyStore([replacement], clock, { ...options, previous: before })
    expect(after.signingKey().kid).toBe(replacement.kid)
    expect(after.jwks().body).toContain(replacement.kid)
  })

  it('at start-up signs with the keys already active, and holds back a key due within KEY_PUBLISH_MIN', async () => {
    const clock = fixedClock(T0)
    const retired = await generateKeyRecord('ES256', T0 - 5000, T0 - 5000)
    const active = await generateKeyRecord('ES256', T0 - 1000, T0 - 1000)
    const due = await generateKeyRecord('ES256', T0 - 100, T0 + 60)
    const { log, records } = captureLog()
    const store = createKeyStore([retired, active, due], clock, { ...options, log })
    expect(store.signingKey().kid).toBe(active.kid)
    expect(records().filter((r) => r.msg === LATE_MESSAGE)).toEqual([
      expect.objectContaining({ kid: due.kid, activates: T0 + 60, signsFrom: T0 + MIN }),
    ])
    clock.set(T0 + MIN - 1)
    expect(store.signingKey().kid).toBe(active.kid)
    clock.set(T0 + MIN)
    expect(store.signingKey().kid).toBe(due.kid)
    // A key retired before the start keeps the files' schedule: a restart does not extend it.
    clock.set(T0 - 1000 + RETENTION - 1)
    expect(kids(store)).toContain(retired.kid)
    clock.set(T0 - 1000 + RETENTION)
    expect(kids(store)).not.toContain(retired.kid)
  })

  it('switches two instances that saw the key a minute apart a minute apart, every token verifying at both', async () => {
    const clock = fixedClock(T0)
    const current = await generateKeyRecord('ES256', T0 - 1000, T0 - 1000)
    const late = await generateKeyRecord('ES256', T0 + 4000, T0 + 4500)
    let one = createKeyStore([current], clock, options)
    let two = createKeyStore([current], clock, options)
    const sign = async (store: KeyStore) => {
      const { kid, alg, privateKey } = store.signingKey()
      return new SignJWT({}).setProtectedHeader({ alg, kid }).setIssuedAt(clock()).sign(privateKey)
    }
    const verifies = async (token: string, store: KeyStore) => {
      const jwks = createLocalJWKSet(JSON.parse(store.jwks().body))
      return jwtVerify(token, jwks, { currentDate: new Date(clock() * 1000) }).then(
        () => true,
        () => false,
      )
    }
    const signers = async () => {
      for (const a of [one, two]) {
        const token = await sign(a)
        for (const b of [one, two]) expect(await verifies(token, b)).toBe(true)
      }
      return [one.signingKey().kid, two.signingKey().kid]
    }

    clock.set(T0 + 5000)
    one = createKeyStore([current, late], clock, { ...options, previous: one })
    expect(await signers()).toEqual([current.kid, current.kid])
    clock.set(T0 + 5060)
    two = createKeyStore([current, late], clock, { ...options, previous: two })
    for (const store of [one, two]) expect(kids(store)).toEqual(expect.arrayContaining([current.kid, late.kid]))
    clock.set(T0 + 5000 + MIN - 1)
    expect(await signers()).toEqual([current.kid, current.kid])
    clock.set(T0 + 5000 + MIN)
    expect(await signers()).toEqual([late.kid, current.kid])
    clock.set(T0 + 5060 + MIN - 1)
    expect(await signers()).toEqual([late.kid, current.kid])
    clock.set(T0 + 5060 + MIN)
    expect(await signers()).toEqual([late.kid, late.kid])
    // Past the retention counted from the files alone, both still publish the old key.
    clock.set(T0 + 4500 + RETENTION + 1)
    for (const store of [one, two]) expect(kids(store)).toContain(current.kid)
  })
})
