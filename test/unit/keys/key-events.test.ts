import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { run as keysCli } from '../../../src/cli/keys.js'
import { createMemoryDenylist } from '../../../src/denylist/memory.js'
import { generateKeyRecord, type KeyRecord, type Tombstone } from '../../../src/keys/key-file.js'
import { keyEvents } from '../../../src/keys/key-events.js'
import { createKeyStore, keyRetention } from '../../../src/keys/key-store.js'
import { ensureKeys } from '../../../src/keys/keys-dir.js'
import { watchKeys } from '../../../src/keys/reload.js'
import { auditOf, type AuditEventName } from '../../../src/observability/audit.js'
import type { Watcher } from '../../../src/storage/watch.js'
import { runCli, tempDir } from '../../helpers/cli.js'
import { T0, captureLog, fixedClock, makeDeps } from '../../helpers/make-deps.js'

// Signing-key state changes as a server sees them (src/keys/key-events.ts), each one audit event,
// once: a new key file (key.rotated), the signing key changing on a reload or on the clock reaching
// `activates` (key.activated), a key becoming a tombstone (key.revoked).

const RETENTION = keyRetention(30)

function recorder() {
  const events: [AuditEventName, unknown][] = []
  return { events, audit: { emit: (event: AuditEventName, fields: unknown) => void events.push([event, fields]) } }
}

const tombstone = (record: KeyRecord, revoked: number): Tombstone => ({
  kid: record.kid,
  alg: record.alg,
  created: record.created,
  revoked,
})

describe('keyEvents', () => {
  it('reports a new key, the clock activating it, and a revocation, each once', async () => {
    const clock = fixedClock(T0)
    const a = await generateKeyRecord('ES256', T0 - 100, T0 - 100)
    const b = await generateKeyRecord('EdDSA', T0, T0 + 60)
    const store = (records: KeyRecord[]) => createKeyStore(records, clock, { retention: RETENTION })
    const { events, audit } = recorder()
    const first = store([a])
    const tracker = keyEvents(audit, first)

    // The state it starts from is not news, even when read again (tombstones included).
    const old = await generateKeyRecord('ES256', T0 - 5000, T0 - 5000)
    tracker.observe(store([a]), [tombstone(old, T0 - 4000)])
    tracker.observe(first)
    expect(events).toEqual([])

    // A rotation writes b, due in a minute: rotated, not activated.
    const both = store([a, b])
    tracker.observe(both, [tombstone(old, T0 - 4000)])
    tracker.observe(both, [tombstone(old, T0 - 4000)])
    expect(events).toEqual([['key.rotated', { kid: b.kid, alg: 'EdDSA' }]])

    // The clock reaches `activates`: b signs. Once.
    clock.set(T0 + 59)
    tracker.observe(both)
    expect(events).toHaveLength(1)
    clock.set(T0 + 60)
    tracker.observe(both)
    tracker.observe(both)
    expect(events.slice(1)).toEqual([['key.activated', { kid: b.kid, alg: 'EdDSA' }]])

    // b is revoked: a tombstone, and a signs again (the store without b).
    tracker.observe(store([a]), [tombstone(old, T0 - 4000), tombstone(b, T0 + 70)])
    tracker.observe(store([a]), [tombstone(old, T0 - 4000), tombstone(b, T0 + 70)])
    expect(events.slice(2)).toEqual([
      ['key.revoked', { kid: b.kid, alg: 'EdDSA' }],
      ['key.activated', { kid: a.kid, alg: 'ES256' }],
    ])
  })

  it('reports a key it held that is a tombstone at the first read of the directory', async () => {
    const clock = fixedClock(T0)
    const a = await generateKeyRecord('ES256', T0 - 100, T0 - 100)
    const b = await generateKeyRecord('ES256', T0 - 50, T0 - 50)
    const { events, audit } = recorder()
    const tracker = keyEvents(audit, createKeyStore([a, b], clock, { retention: RETENTION }))
    tracker.observe(createKeyStore([a], clock, { retention: RETENTION }), [tombstone(b, T0)])
    expect(events).toEqual([
      ['key.revoked', { kid: b.kid, alg: 'ES256' }],
      ['key.activated', { kid: a.kid, alg: 'ES256' }],
    ])
  })
})

describe('watchKeys audit events', () => {
  let watchers: Watcher[] = []
  afterEach(() => {
    for (const watcher of watchers) watcher.stop()
    watchers = []
  })

  async function setup(options: { denylistDown?: () => boolean } = {}) {
    const keysDir = join(tempDir(), 'keys')
    const clock = fixedClock(T0)
    const contents = await ensureKeys(keysDir, 'ES256', { clock, log: captureLog().log })
    const memory = createMemoryDenylist({ clock })
    const down = options.denylistDown ?? (() => false)
    const denylist = {
      ...memory,
      revokeKey: (kid: string, until: number) =>
        down() ? Promise.reject(new Error('denylist down')) : memory.revokeKey(kid, until),
    }
    const deps = await makeDeps({ clock, keys: contents.records, config: { keysDir }, denylist })
    const events: [AuditEventName, unknown][] = []
    auditOf(deps).listen((event, fields) => void events.push([event, fields]))
    const watcher = await watchKeys(deps, 60_000)
    watchers.push(watcher)
    const env = { KEYS_DIR: keysDir, KEY_ACTIVATION_DELAY: '900', CLOCK_TOLERANCE: '30' }
    const cli = (argv: string[]) => runCli((args, io) => keysCli(args, io, clock), argv, env)
    return { deps, clock, watcher, events, cli, keysDir, current: contents.records[0] as KeyRecord }
  }

  it('writes keys.reloaded, key.rotated, key.activated (by the clock) and key.revoked, each once', async () => {
    const { deps, clock, watcher, events, cli, current } = await setup()
    // The first read at start-up: a reload, and no key news.
    expect(events).toEqual([['keys.reloaded', { keys: 2 }]])
    events.length = 0

    // A routine rotation: the standby key is scheduled and a new standby written.
    clock.set(T0 + 10)
    expect((await cli(['rotate'])).code).toBe(0)
    await watcher.check()
    const rotated = events.filter(([event]) => event === 'key.rotated')
    expect(rotated).toHaveLength(1)
    expect(events.map(([event]) => event)).toEqual(['keys.reloaded', 'key.rotated'])
    expect(deps.keys.signingKey().kid).toBe(current.kid)
    events.length = 0

    // The clock reaches `activates` (15 minutes on): the scheduled key signs, seen at the next check.
    clock.set(T0 + 10 + 900)
    const next = deps.keys.signingKey()
    expect(next.kid).not.toBe(current.kid)
    await watcher.check()
    await watcher.check()
    expect(events).toEqual([['key.activated', { kid: next.kid, alg: next.alg }]])
    events.length = 0

    // The signing key is revoked: another key signs at once.
    clock.set(T0 + 1000)
    expect((await cli(['revoke', '--kid', next.kid])).code).toBe(0)
    await watcher.check()
    await watcher.check()
    const names = events.map(([event]) => event)
    expect(names.filter((name) => name === 'key.revoked')).toHaveLength(1)
    expect(events).toContainEqual(['key.revoked', { kid: next.kid, alg: next.alg }])
    expect(events).toContainEqual(['key.activated', { kid: deps.keys.signingKey().kid, alg: next.alg }])
    expect(names.filter((name) => name === 'key.activated')).toHaveLength(1)
    // Each logged as its own record.
    const logged = deps.logLines.map((line) => JSON.parse(line) as Record<string, unknown>)
    expect(logged.filter((record) => record.event === 'key.revoked')).toEqual([
      expect.objectContaining({ level: 40, msg: 'key.revoked', kid: next.kid, alg: next.alg }),
    ])
  })

  it('retries a revoked key the denylist could not take without another keys.reloaded or key event', async () => {
    let down = true
    const { watcher, events, cli, current } = await setup({ denylistDown: () => down })
    events.length = 0
    expect((await cli(['revoke', '--kid', current.kid])).code).toBe(0)
    for (let check = 0; check < 4; check++) await watcher.check()
    down = false
    await watcher.check()
    await watcher.check()
    const names = events.map(([event]) => event)
    expect(names.filter((name) => name === 'keys.reloaded')).toHaveLength(1)
    expect(names.filter((name) => name === 'keys.reload_rejected')).toHaveLength(1)
    expect(names.filter((name) => name === 'key.revoked')).toHaveLength(1)
    expect(names.filter((name) => name === 'key.activated')).toHaveLength(1)
    expect(events).toContainEqual(['keys.reload_rejected', { problem: expect.stringContaining('denylist') }])
  })

  it('writes keys.reload_rejected once for a directory it refuses', async () => {
    const { watcher, events, keysDir, clock } = await setup()
    events.length = 0
    const { writeFileSync } = await import('node:fs')
    writeFileSync(join(keysDir, `${'A'.repeat(43)}.json`), '{ not json', { mode: 0o600 })
    clock.advance(1)
    await watcher.check()
    await watcher.check()
    expect(events).toEqual([['keys.reload_rejected', { problem: expect.stringContaining('A'.repeat(43)) }]])
  })
})
