/**
 * Per-client issuance quotas (src/limits/quota.ts): exact trip at quota + 1 with Retry-After (RFC 6585
 * §4, RFC 9110 §10.2.3), other clients unaffected, fixed one-minute windows, refusals that take no slot,
 * and the Redis paths (one script per issuance; any failure falls back to counting in memory, warned
 * once per outage) against a stub connection.
 */
import type { Redis } from 'ioredis'
import { describe, expect, it } from 'vitest'
import type { Client, ClientEntry } from '../../../src/clients/registry.js'
import type { Denylist } from '../../../src/denylist/denylist.js'
import { createMemoryDenylist } from '../../../src/denylist/memory.js'
import type { Deps } from '../../../src/deps.js'
import { OAuthError } from '../../../src/errors.js'
import { checkQuota, QUOTA_WINDOW, quotaExceeded } from '../../../src/limits/quota.js'
import { T0, captureLog, fixedClock, makeDeps } from '../../helpers/make-deps.js'

/** T0 is 1_800_000_000, a multiple of 60: the start of a window. */
const WINDOW_START = T0

const entry = (client_id: string, quota?: number): ClientEntry => ({
  client_id,
  secrets: [{ sha256: 'A'.repeat(43), created: T0 - 100, expires: null }],
  scopes: ['read'],
  audiences: ['https://api.example.com'],
  grant_types: ['client_credentials'],
  resource_server: false,
  ...(quota !== undefined && { quota }),
})

async function setup(options: { denylist?: (clock: ReturnType<typeof fixedClock>) => Denylist } = {}) {
  const clock = fixedClock(WINDOW_START)
  const captured = captureLog()
  const deps = await makeDeps({
    clock,
    clients: [],
    entries: [entry('q-three', 3), entry('q-two', 2), entry('unlimited')],
    log: captured.log,
    ...(options.denylist && { denylist: options.denylist(clock) }),
  })
  const client = (id: string): Client => {
    const found = deps.clients.get(id)
    if (!found) throw new Error(`no client ${id}`)
    return found
  }
  /** 'ok', or the 429's Retry-After. */
  const issue = async (id: string): Promise<'ok' | number> => {
    try {
      await checkQuota(deps, client(id))
      return 'ok'
    } catch (error) {
      expect(error).toBeInstanceOf(OAuthError)
      const oauth = error as OAuthError
      expect(oauth).toMatchObject({ code: 'temporarily_unavailable', status: 429 })
      expect(oauth.message).toBe('this client has reached its token quota, retry later')
      return Number(oauth.headers['Retry-After'])
    }
  }
  return { deps, clock, issue, client, records: captured.records }
}

describe('quotaExceeded', () => {
  it('is a 429 temporarily_unavailable with Retry-After from 1 to 60 seconds', () => {
    const error = quotaExceeded(12.2, 'why')
    expect(error).toMatchObject({ code: 'temporarily_unavailable', status: 429, detail: 'why' })
    expect(error.headers).toEqual({ 'Retry-After': '13' })
    expect(quotaExceeded(0, '').headers['Retry-After']).toBe('1')
    expect(quotaExceeded(-5, '').headers['Retry-After']).toBe('1')
    expect(quotaExceeded(600, '').headers['Retry-After']).toBe('60')
  })
})

describe('checkQuota in memory', () => {
  it('issues exactly the quota in a window and refuses the next, with the seconds left in the window', async () => {
    const { issue, clock } = await setup()
    clock.advance(20)
    expect([await issue('q-three'), await issue('q-three'), await issue('q-three')]).toEqual(['ok', 'ok', 'ok'])
    expect(await issue('q-three')).toBe(40)
    clock.advance(39)
    expect(await issue('q-three')).toBe(1)
  })

  it('other clients are unaffected: their own quota, and no quota at all', async () => {
    const { issue } = await setup()
    for (let i = 0; i < 3; i++) await issue('q-three')
    expect(await issue('q-three')).toBe(QUOTA_WINDOW)
    expect([await issue('q-two'), await issue('q-two'), await issue('q-two')]).toEqual(['ok', 'ok', QUOTA_WINDOW])
    for (let i = 0; i < 1000; i++) expect(await issue('unlimited')).toBe('ok')
  })

  it('a new window frees the quota (fixed one-minute windows)', async () => {
    const { issue, clock } = await setup()
    clock.advance(59)
    for (let i = 0; i < 3; i++) expect(await issue('q-three')).toBe('ok')
    expect(await issue('q-three')).toBe(1)
    clock.advance(1) // the next window: a budget per calendar minute, not a sliding rate
    for (let i = 0; i < 3; i++) expect(await issue('q-three')).toBe('ok')
    expect(await issue('q-three')).toBe(QUOTA_WINDOW)
    clock.advance(3 * QUOTA_WINDOW + 30)
    expect(await issue('q-three')).toBe('ok')
  })

  it('a refused request takes no slot: hammering past the quota changes nothing for the next window', async () => {
    const { issue, clock } = await setup()
    for (let i = 0; i < 2; i++) await issue('q-two')
    for (let i = 0; i < 50; i++) expect(await issue('q-two')).toBe(QUOTA_WINDOW)
    clock.advance(QUOTA_WINDOW)
    expect([await issue('q-two'), await issue('q-two'), await issue('q-two')]).toEqual(['ok', 'ok', QUOTA_WINDOW])
  })

  it('a client without a quota costs nothing: the same settled promise every time', async () => {
    const { deps, client } = await setup()
    const unlimited = client('unlimited')
    const first = checkQuota(deps, unlimited)
    expect(checkQuota(deps, unlimited)).toBe(first)
    await first
  })

  it('keeps its counts per server (deps): another instance counts on its own', async () => {
    const a = await setup()
    const b = await setup()
    for (let i = 0; i < 2; i++) await a.issue('q-two')
    expect(await a.issue('q-two')).toBe(QUOTA_WINDOW)
    expect(await b.issue('q-two')).toBe('ok')
  })

  it('follows the registry: a quota lowered by a reload applies within the window', async () => {
    const { deps, issue } = await setup()
    for (let i = 0; i < 2; i++) await issue('q-three')
    const lowered = { ...(deps.clients.get('q-three') as Client), quota: 2 }
    await expect(checkQuota(deps, lowered)).rejects.toMatchObject({ status: 429 })
  })
})

/** A stand-in for the Redis connection: runs the quota script's logic, or fails as told. */
function stubRedis() {
  const store = new Map<string, { value: number; ttlMs: number }>()
  let scriptLoaded = false
  const calls: string[] = []
  let failure: Error | undefined
  const run = (key: string, quota: number, ttlMs: number) => {
    const used = store.get(key)?.value ?? 0
    if (used >= quota) return 0
    const next = used + 1
    store.set(key, { value: next, ttlMs: next === 1 ? ttlMs : (store.get(key)?.ttlMs ?? -1) })
    return next
  }
  const redis = {
    async evalsha(_sha: string, _count: number, key: string, quota: number, ttlMs: number) {
      calls.push('evalsha')
      if (failure) throw failure
      if (!scriptLoaded) throw new Error('NOSCRIPT No matching script. Please use EVAL.')
      return run(key, quota, ttlMs)
    },
    async eval(_lua: string, _count: number, key: string, quota: number, ttlMs: number) {
      calls.push('eval')
      if (failure) throw failure
      scriptLoaded = true
      return run(key, quota, ttlMs)
    },
  }
  return {
    redis: redis as unknown as Redis,
    store,
    calls,
    fail(error: Error | undefined) {
      failure = error
    },
  }
}

describe('checkQuota through Redis', () => {
  async function sharedSetup(keyPrefix = 'ts:') {
    const stub = stubRedis()
    const ctx = await setup({
      denylist: (clock) => ({ ...createMemoryDenylist({ clock }), shared: { redis: stub.redis, keyPrefix } }),
    })
    return { ...ctx, stub }
  }

  it('counts under <keyPrefix>quota:<clientId>:<window> with a two-window TTL, one call per issuance', async () => {
    const { issue, stub } = await sharedSetup()
    expect(await issue('q-two')).toBe('ok')
    expect(stub.calls).toEqual(['evalsha', 'eval']) // NOSCRIPT once, then the script is cached
    expect(await issue('q-two')).toBe('ok')
    expect(await issue('q-two')).toBe(QUOTA_WINDOW)
    expect(stub.calls).toEqual(['evalsha', 'eval', 'evalsha', 'evalsha'])
    expect([...stub.store]).toEqual([
      [`ts:quota:q-two:${WINDOW_START / QUOTA_WINDOW}`, { value: 2, ttlMs: 2 * QUOTA_WINDOW * 1000 }],
    ])
  })

  it('a client without a quota makes no Redis call', async () => {
    const { issue, stub } = await sharedSetup()
    for (let i = 0; i < 10; i++) await issue('unlimited')
    expect(stub.calls).toEqual([])
  })

  it('the shared count decides: slots another instance took are not free here', async () => {
    const { issue, stub } = await sharedSetup()
    stub.store.set(`ts:quota:q-three:${WINDOW_START / QUOTA_WINDOW}`, { value: 3, ttlMs: 1 })
    expect(await issue('q-three')).toBe(QUOTA_WINDOW)
  })

  it('Redis failing: counts locally (issuance goes on), warns once per outage, retries after a second', async () => {
    const { issue, stub, clock, records } = await sharedSetup()
    expect(await issue('q-three')).toBe('ok') // counted in Redis, and in this instance's own share
    stub.fail(new Error('Command timed out'))
    expect(await issue('q-three')).toBe('ok')
    const callsAfterFailure = stub.calls.length
    expect(await issue('q-three')).toBe('ok') // local: Redis is not retried within the second
    expect(stub.calls.length).toBe(callsAfterFailure)
    expect(await issue('q-three')).toBe(QUOTA_WINDOW) // this instance's 3, the one Redis counted included
    expect(await issue('unlimited')).toBe('ok')
    clock.advance(1)
    expect(await issue('q-two')).toBe('ok') // tried Redis again: still failing, counted locally
    expect(stub.calls.length).toBe(callsAfterFailure + 1)
    const warnings = records().filter((r) => r.msg === 'issuance quotas counted per instance until redis answers again')
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatchObject({
      level: 40,
      client_id: 'q-three',
      redisError: { type: 'Error', message: 'Command timed out' },
    })

    stub.fail(undefined)
    clock.advance(1)
    expect(await issue('q-two')).toBe('ok') // Redis again
    expect(records().filter((r) => r.msg === 'issuance quotas shared through redis again')).toHaveLength(1)
    stub.fail(new Error('ECONNREFUSED'))
    clock.advance(1)
    await issue('q-two')
    expect(
      records().filter((r) => r.msg === 'issuance quotas counted per instance until redis answers again'),
    ).toHaveLength(2)
  })

  it('an unexpected reply counts as a failure, never as a pass without counting', async () => {
    const { deps, client, records } = await sharedSetup()
    const odd = { evalsha: async () => 'OK', eval: async () => 'OK' } as unknown as Redis
    const depsOdd: Deps = { ...deps, denylist: { ...deps.denylist, shared: { redis: odd, keyPrefix: 'ts:' } } }
    for (let i = 0; i < 2; i++) await checkQuota(depsOdd, client('q-two'))
    await expect(checkQuota(depsOdd, client('q-two'))).rejects.toMatchObject({ status: 429 })
    expect(records().some((r) => r.msg === 'issuance quotas counted per instance until redis answers again')).toBe(true)
  })
})
