import { Hono } from 'hono'
import { afterEach, describe, expect, it } from 'vitest'
import { createClientRegistry } from '../../../src/clients/registry.js'
import { type Denylist, DenylistUnavailableError, RevocationLimitError } from '../../../src/denylist/denylist.js'
import { instrumentDenylist } from '../../../src/denylist/instrumented.js'
import { createMemoryDenylist } from '../../../src/denylist/memory.js'
import type { TrustStore } from '../../../src/federation/trust-entry.js'
import { readyHandler } from '../../../src/http/health.js'
import { requestMetrics, statusClass } from '../../../src/http/middleware/metrics.js'
import type { AppEnv } from '../../../src/http/types.js'
import { generateKeyRecord } from '../../../src/keys/key-file.js'
import { createKeyStore, keyRetention } from '../../../src/keys/key-store.js'
import { auditOf } from '../../../src/observability/audit.js'
import { createMetrics, type Metrics, metricsEnabled } from '../../../src/observability/metrics.js'
import { BEARER_AUTH_DEFAULTS } from '../../../src/verifier/options.js'
import { createRemoteKeySource } from '../../../src/verifier/key-source.js'
import { clientEntry, DEFAULT_CLIENTS, fixedClock, makeDeps, T0 } from '../../helpers/make-deps.js'

type Labels = Record<string, string>

/** The value of the series of `name` with exactly these labels (undefined: no such series). */
async function value(metrics: Metrics, name: string, labels: Labels = {}): Promise<number | undefined> {
  const metric = metrics.registry.getSingleMetric(name)
  if (!metric) throw new Error(`no metric ${name}`)
  const { values } = await metric.get()
  const same = (other: object) =>
    JSON.stringify(Object.entries(other).sort()) === JSON.stringify(Object.entries(labels).sort())
  return values.find((v) => same(v.labels))?.value
}

async function series(metrics: Metrics, name: string): Promise<{ labels: Labels; value: number }[]> {
  const metric = metrics.registry.getSingleMetric(name)
  if (!metric) throw new Error(`no metric ${name}`)
  return (await metric.get()).values.map((v) => ({ labels: v.labels as Labels, value: v.value }))
}

const opened: Metrics[] = []
async function setup(options: Parameters<typeof makeDeps>[0] = {}) {
  const deps = await makeDeps(options)
  const metrics = createMetrics(deps, { defaultMetrics: false })
  opened.push(metrics)
  return { deps, metrics, audit: auditOf(deps) }
}
afterEach(() => {
  for (const metrics of opened.splice(0)) metrics.close()
})

const issued = (client_id: string, auth_method: 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt') =>
  ({ client_id, auth_method, jti: 'j', scope: 'read', aud: 'https://api.example.com', exp: T0 + 60 }) as const

describe('metricsEnabled', () => {
  it('is on with METRICS_PORT or METRICS_TOKEN, off without both', () => {
    expect(metricsEnabled({ metricsPort: undefined, metricsToken: undefined })).toBe(false)
    expect(metricsEnabled({ metricsPort: 9464, metricsToken: undefined })).toBe(true)
    expect(metricsEnabled({ metricsPort: undefined, metricsToken: 'x'.repeat(32) })).toBe(true)
  })
})

describe('counters from audit events', () => {
  it('counts tokens issued by registered client and method; an unregistered id is never a label', async () => {
    const { metrics, audit } = await setup()
    audit.emit('token.issued', issued('svc-a', 'client_secret_basic'))
    audit.emit('token.issued', issued('svc-a', 'client_secret_basic'))
    audit.emit('token.issued', issued('svc-a', 'client_secret_post'))
    audit.emit('token.issued', issued('svc-b', 'private_key_jwt'))
    audit.emit('token.issued', issued('not-registered', 'client_secret_basic'))
    expect(await series(metrics, 'tokensmith_tokens_issued_total')).toEqual([
      { labels: { client_id: 'svc-a', auth_method: 'client_secret_basic' }, value: 2 },
      { labels: { client_id: 'svc-a', auth_method: 'client_secret_post' }, value: 1 },
      { labels: { client_id: 'svc-b', auth_method: 'private_key_jwt' }, value: 1 },
      { labels: { client_id: '', auth_method: 'client_secret_basic' }, value: 1 },
    ])
    expect(await metrics.registry.metrics()).not.toContain('not-registered')
  })

  it('drops the series of a client removed from the registry when the clients reload', async () => {
    const { deps, metrics, audit } = await setup()
    audit.emit('token.issued', issued('svc-a', 'client_secret_basic'))
    audit.emit('token.issued', issued('svc-b', 'client_secret_basic'))
    deps.clients = createClientRegistry({ clients: DEFAULT_CLIENTS.filter((c) => c.id !== 'svc-b').map(clientEntry) })
    audit.emit('clients.reloaded', { clients: 2 })
    expect(await series(metrics, 'tokensmith_tokens_issued_total')).toEqual([
      { labels: { client_id: 'svc-a', auth_method: 'client_secret_basic' }, value: 1 },
    ])
    expect(await value(metrics, 'tokensmith_reloads_total', { source: 'clients', outcome: 'applied' })).toBe(1)
  })

  it('counts authentication failures by reason, method and trust entry, never by claimed id or address', async () => {
    const trust = { entries: [{ id: 'ci-pipeline' }] } as unknown as TrustStore
    const { metrics, audit } = await setup({ trust })
    const address = '203.0.113.7'
    audit.emit('auth.failed', { client_id: 'svc-a', auth_method: 'client_secret_basic', reason: 'bad_secret', address })
    audit.emit('auth.failed', { client_id: 'who?', auth_method: 'client_secret_basic', reason: 'bad_secret', address })
    audit.emit('auth.failed', { auth_method: 'none', reason: 'no_credentials', address })
    audit.emit('auth.failed', {
      client_id: 'svc-a',
      auth_method: 'federation',
      reason: 'audience_mismatch',
      address,
      trust_entry: 'ci-pipeline',
    })
    audit.emit('auth.failed', {
      auth_method: 'federation',
      reason: 'issuer_untrusted',
      address,
      trust_entry: 'made-up-entry',
    })
    audit.emit('auth.failed', { auth_method: 'private_key_jwt', reason: 'Not A Code <script>', address })
    expect(await series(metrics, 'tokensmith_auth_failures_total')).toEqual([
      { labels: { reason: 'bad_secret', auth_method: 'client_secret_basic', trust_entry: '' }, value: 2 },
      { labels: { reason: 'no_credentials', auth_method: 'none', trust_entry: '' }, value: 1 },
      { labels: { reason: 'audience_mismatch', auth_method: 'federation', trust_entry: 'ci-pipeline' }, value: 1 },
      { labels: { reason: 'issuer_untrusted', auth_method: 'federation', trust_entry: '' }, value: 1 },
      { labels: { reason: 'other', auth_method: 'private_key_jwt', trust_entry: '' }, value: 1 },
    ])
    const text = await metrics.registry.metrics()
    for (const leaked of [address, 'who?', 'made-up-entry', '<script>']) expect(text).not.toContain(leaked)
  })

  it('counts limit trips and reloads by source and outcome', async () => {
    const { metrics, audit } = await setup()
    audit.emit('limit.tripped', { limit: 'auth_address', address: '203.0.113.7', until: T0 + 60 })
    audit.emit('limit.tripped', { limit: 'auth_address', address: '203.0.113.8', until: T0 + 60 })
    audit.emit('limit.tripped', { limit: 'quota', client_id: 'svc-a', until: T0 + 60 })
    audit.emit('keys.reloaded', { keys: 2 })
    audit.emit('keys.reload_rejected', { problem: 'x' })
    audit.emit('trust.reloaded', { entries: 1 })
    audit.emit('trust.reload_rejected', { problem: 'y' })
    audit.emit('trust.reload_rejected', { problem: 'z' })
    audit.emit('clients.reload_rejected', { problem: 'w' })
    // Events that are not counted here change nothing.
    audit.emit('token.revoked', { client_id: 'svc-a', jti: 'j' })
    audit.emit('key.rotated', { kid: 'k', alg: 'ES256' })
    expect(await series(metrics, 'tokensmith_limit_trips_total')).toEqual([
      { labels: { limit: 'auth_address' }, value: 2 },
      { labels: { limit: 'quota' }, value: 1 },
    ])
    expect(await series(metrics, 'tokensmith_reloads_total')).toEqual([
      { labels: { source: 'keys', outcome: 'applied' }, value: 1 },
      { labels: { source: 'keys', outcome: 'rejected' }, value: 1 },
      { labels: { source: 'trust', outcome: 'applied' }, value: 1 },
      { labels: { source: 'trust', outcome: 'rejected' }, value: 2 },
      { labels: { source: 'clients', outcome: 'rejected' }, value: 1 },
    ])
  })

  it('stops counting once closed', async () => {
    const { metrics, audit } = await setup()
    metrics.close()
    audit.emit('limit.tripped', { limit: 'quota', until: T0 })
    expect(await series(metrics, 'tokensmith_limit_trips_total')).toEqual([])
  })

  it('counts remote key fetches with registered names only', async () => {
    const trust = { entries: [{ id: 'ci-pipeline' }] } as unknown as TrustStore
    const { metrics } = await setup({ trust })
    metrics.remoteKeysFetched('client_jwks_uri', 'svc-a', 'ok')
    metrics.remoteKeysFetched('client_jwks_uri', 'svc-a', 'error')
    metrics.remoteKeysFetched('client_jwks_uri', 'ghost', 'error')
    metrics.remoteKeysFetched('trust_entry', 'ci-pipeline', 'ok')
    metrics.remoteKeysFetched('trust_entry', 'ci-pipeline', 'ok')
    metrics.remoteKeysFetched('trust_entry', 'gone', 'error')
    expect(await series(metrics, 'tokensmith_remote_keys_fetches_total')).toEqual([
      { labels: { source: 'client_jwks_uri', name: 'svc-a', outcome: 'ok' }, value: 1 },
      { labels: { source: 'client_jwks_uri', name: 'svc-a', outcome: 'error' }, value: 1 },
      { labels: { source: 'client_jwks_uri', name: '', outcome: 'error' }, value: 1 },
      { labels: { source: 'trust_entry', name: 'ci-pipeline', outcome: 'ok' }, value: 2 },
      { labels: { source: 'trust_entry', name: '', outcome: 'error' }, value: 1 },
    ])
  })
})

describe('remote key fetches through the key source hook', () => {
  it("counts each fetch attempt of a remote key source's onFetch", async () => {
    const { metrics, deps } = await setup()
    const current = await generateKeyRecord('ES256', T0, T0)
    let up = true
    const fetchStub = (async () =>
      up
        ? new Response(JSON.stringify({ keys: [current.publicJwk] }), {
            headers: { 'content-type': 'application/json' },
          })
        : new Response('down', { status: 503 })) as unknown as typeof fetch
    const clock = fixedClock(T0)
    const source = createRemoteKeySource({
      ...BEARER_AUTH_DEFAULTS.jwks,
      url: new URL('https://keys.example.com/jwks.json'),
      fetch: fetchStub,
      clock,
      onFetch: (outcome) => metrics.remoteKeysFetched('client_jwks_uri', 'svc-a', outcome),
    })
    await source.setFor(current.kid)
    up = false
    clock.advance(BEARER_AUTH_DEFAULTS.jwks.cacheMaxAge + 1)
    await source.setFor(current.kid)
    expect(deps.clients.get('svc-a')).toBeDefined()
    expect(await series(metrics, 'tokensmith_remote_keys_fetches_total')).toEqual([
      { labels: { source: 'client_jwks_uri', name: 'svc-a', outcome: 'ok' }, value: 1 },
      { labels: { source: 'client_jwks_uri', name: 'svc-a', outcome: 'error' }, value: 1 },
    ])
  })
})

describe('instrumentDenylist', () => {
  it('counts and times every operation, answering exactly as the denylist does', async () => {
    const { deps, metrics } = await setup()
    const denylist = instrumentDenylist(deps.denylist, metrics)
    expect(denylist.kind).toBe('memory')
    expect(denylist.shared).toBeUndefined()
    await denylist.revokeToken('jti-1', T0 + 60)
    await denylist.revokeKey('kid-1', T0 + 60)
    await denylist.revokeClient('svc-a', T0, T0 + 60)
    expect(await denylist.isRevoked({ jti: 'jti-1' })).toBe(true)
    expect(await denylist.isRevoked({ jti: 'jti-2' })).toBe(false)
    const replay = denylist.replayCache('dpop')
    expect(await replay.useOnce('svc-a', 'proof-1', T0 + 60)).toBe(true)
    expect(await denylist.replayCache('dpop').useOnce('svc-a', 'proof-1', T0 + 60)).toBe(false)
    expect(() => denylist.replayCache('Not Valid')).toThrow(RangeError)
    await denylist.ping()
    expect(await series(metrics, 'tokensmith_denylist_operations_total')).toEqual([
      { labels: { operation: 'revoke_token', outcome: 'ok' }, value: 1 },
      { labels: { operation: 'revoke_key', outcome: 'ok' }, value: 1 },
      { labels: { operation: 'revoke_client', outcome: 'ok' }, value: 1 },
      { labels: { operation: 'is_revoked', outcome: 'ok' }, value: 2 },
      { labels: { operation: 'replay', outcome: 'ok' }, value: 2 },
      { labels: { operation: 'ping', outcome: 'ok' }, value: 1 },
    ])
    // Every operation is timed once, whatever its outcome.
    const counts = (await series(metrics, 'tokensmith_denylist_operation_duration_seconds'))
      .filter((s) => s.labels.le === '+Inf')
      .map(({ labels, value }) => [labels.operation, value])
    expect(Object.fromEntries(counts)).toEqual({
      revoke_token: 1,
      revoke_key: 1,
      revoke_client: 1,
      is_revoked: 2,
      replay: 2,
      ping: 1,
    })
    await denylist.close()
  })

  it("counts an unreachable store as 'unavailable', a fault as 'error', a store's refusal as 'ok', and rethrows", async () => {
    const { metrics } = await setup()
    const unavailable = new DenylistUnavailableError('down')
    const fault = new TypeError('bug')
    const refusal = new RevocationLimitError('svc-a', 10, 5)
    const failing: Denylist = {
      kind: 'redis',
      isRevoked: async () => {
        throw unavailable
      },
      revokeToken: async () => {
        throw refusal
      },
      revokeKey: async () => {
        throw fault
      },
      revokeClient: async () => {},
      replayCache: () => ({
        useOnce: async () => {
          throw unavailable
        },
      }),
      ping: async () => {
        throw unavailable
      },
      close: async () => {},
    }
    const denylist = instrumentDenylist(failing, metrics)
    expect(denylist.kind).toBe('redis')
    await expect(denylist.isRevoked({ jti: 'j' })).rejects.toBe(unavailable)
    await expect(denylist.revokeToken('j', T0 + 60, { clientId: 'svc-a', limit: 10 })).rejects.toBe(refusal)
    await expect(denylist.revokeKey('k', T0 + 60)).rejects.toBe(fault)
    await expect(denylist.replayCache('federation').useOnce('svc-a', 'j', T0 + 60)).rejects.toBe(unavailable)
    await expect(denylist.ping()).rejects.toBe(unavailable)
    expect(await series(metrics, 'tokensmith_denylist_operations_total')).toEqual([
      { labels: { operation: 'is_revoked', outcome: 'unavailable' }, value: 1 },
      { labels: { operation: 'revoke_token', outcome: 'ok' }, value: 1 },
      { labels: { operation: 'revoke_key', outcome: 'error' }, value: 1 },
      { labels: { operation: 'replay', outcome: 'unavailable' }, value: 1 },
      { labels: { operation: 'ping', outcome: 'unavailable' }, value: 1 },
    ])
  })
})

describe('signing keys, computed when scraped', () => {
  it('gives each published key its state, age and seconds to its next transition, following the clock', async () => {
    const clock = fixedClock(T0)
    const current = await generateKeyRecord('ES256', T0 - 1000, T0 - 1000)
    const next = await generateKeyRecord('ES256', T0 - 100, T0 + 600)
    const standby = await generateKeyRecord('EdDSA', T0 - 50, null)
    const { deps, metrics } = await setup({ clock, keys: [current, next, standby] })
    const retention = keyRetention(deps.config.clockTolerance)

    expect(await series(metrics, 'tokensmith_signing_key_state')).toEqual([
      { labels: { kid: current.kid, alg: 'ES256', state: 'current' }, value: 1 },
      { labels: { kid: next.kid, alg: 'ES256', state: 'next' }, value: 1 },
      { labels: { kid: standby.kid, alg: 'EdDSA', state: 'standby' }, value: 1 },
    ])
    expect(await series(metrics, 'tokensmith_signing_key_age_seconds')).toEqual([
      { labels: { kid: current.kid, state: 'current' }, value: 1000 },
      { labels: { kid: next.kid, state: 'next' }, value: 100 },
      { labels: { kid: standby.kid, state: 'standby' }, value: 50 },
    ])
    expect(await series(metrics, 'tokensmith_signing_key_next_transition_seconds')).toEqual([
      { labels: { kid: current.kid }, value: 600 },
      { labels: { kid: next.kid }, value: 600 },
    ])

    // The next key activates: the old one is retired until its last token expired.
    clock.set(T0 + 700)
    expect(await series(metrics, 'tokensmith_signing_key_state')).toEqual([
      { labels: { kid: current.kid, alg: 'ES256', state: 'retired' }, value: 1 },
      { labels: { kid: next.kid, alg: 'ES256', state: 'current' }, value: 1 },
      { labels: { kid: standby.kid, alg: 'EdDSA', state: 'standby' }, value: 1 },
    ])
    expect(await series(metrics, 'tokensmith_signing_key_next_transition_seconds')).toEqual([
      { labels: { kid: current.kid }, value: 600 + retention - 700 },
    ])

    // Past retention the old key is no longer published, and no longer a series.
    clock.set(T0 + 600 + retention)
    expect((await series(metrics, 'tokensmith_signing_key_state')).map((s) => s.labels.kid)).toEqual([
      next.kid,
      standby.kid,
    ])
    expect(await value(metrics, 'tokensmith_signing_key_age_seconds', { kid: current.kid, state: 'retired' })).toBe(
      undefined,
    )

    // A reloaded key store (replaced as a whole) is what the next scrape reads.
    deps.keys = createKeyStore([current], clock, { retention })
    expect(await series(metrics, 'tokensmith_signing_key_state')).toEqual([
      { labels: { kid: current.kid, alg: 'ES256', state: 'current' }, value: 1 },
    ])
  })
})

describe('tokensmith_ready', () => {
  it('is 1 exactly when /readyz answers 200', async () => {
    const { deps, metrics } = await setup()
    const app = new Hono<AppEnv>().get('/readyz', readyHandler(deps))
    const check = async (ready: boolean) => {
      expect((await app.request('/readyz')).status).toBe(ready ? 200 : 503)
      expect(await value(metrics, 'tokensmith_ready')).toBe(ready ? 1 : 0)
    }
    await check(true)
    deps.readiness = new Map([['KEYS_DIR', 'KEYS_DIR is writable by others']])
    await check(false)
    deps.readiness.clear()
    await check(true)
    const ping = deps.denylist.ping
    deps.denylist.ping = async () => {
      throw new DenylistUnavailableError('down')
    }
    await check(false)
    deps.denylist.ping = ping
    await check(true)
    deps.lifecycle.shuttingDown = true
    await check(false)
  })
})

describe('default metrics', () => {
  it('exposes process and Node metrics in the same registry', async () => {
    const deps = await makeDeps()
    const metrics = createMetrics(deps)
    opened.push(metrics)
    const text = await metrics.registry.metrics()
    for (const name of [
      'process_cpu_user_seconds_total',
      'process_start_time_seconds',
      'nodejs_eventloop_lag_seconds',
      'nodejs_heap_size_used_bytes',
    ])
      expect(text).toContain(`\n${name}`)
  })
})

describe('request durations middleware', () => {
  it('labels by route pattern and status class; unmatched paths are one label', async () => {
    const deps = await makeDeps()
    const metrics = createMetrics(deps, { defaultMetrics: false })
    opened.push(metrics)
    const app = new Hono<AppEnv>()
    app.use(requestMetrics(metrics))
    app.use(async (_c, next) => next())
    app.get('/items/:id', (c) => c.text('ok'))
    app
      .post('/oauth/token', (c) => c.text('no', 400))
      .all(() => {
        throw new Error('boom')
      })
    app.onError((_error, c) => c.text('fault', 500))
    await app.request('/items/1')
    await app.request('/items/2')
    await app.request('/oauth/token', { method: 'POST' })
    await app.request('/oauth/token')
    await app.request('/nowhere/203.0.113.7')
    const counts = (await series(metrics, 'tokensmith_http_request_duration_seconds'))
      .filter((s) => s.labels.le === '+Inf')
      .map(({ labels: { route, status_class }, value }) => ({ route, status_class, value }))
    expect(counts).toEqual([
      { route: '/items/:id', status_class: '2xx', value: 2 },
      { route: '/oauth/token', status_class: '4xx', value: 1 },
      { route: '/oauth/token', status_class: '5xx', value: 1 },
      { route: 'unmatched', status_class: '4xx', value: 1 },
    ])
    expect(await metrics.registry.metrics()).not.toContain('203.0.113.7')
  })

  it('classes statuses', () => {
    expect([101, 200, 204, 304, 404, 429, 503, 99, 600].map(statusClass)).toEqual([
      '1xx',
      '2xx',
      '2xx',
      '3xx',
      '4xx',
      '4xx',
      '5xx',
      'other',
      'other',
    ])
  })
})

describe('metrics of a memory denylist with its clock', () => {
  it('leaves an instrumented denylist closable', async () => {
    const { metrics } = await setup()
    const memory = createMemoryDenylist({ clock: fixedClock() })
    await instrumentDenylist(memory, metrics).close()
  })
})
