/**
 * `createRevocationFeed({ metrics: { registry } })`: the feed's up gauge, lag and resync count, on the
 * shared test Redis and, for a restart, on a redis-server of its own. Time for the lag is the feed's
 * injected clock, so lags are exact.
 */
import { randomBytes } from 'node:crypto'
import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'

import { createRedisDenylist } from '../../src/denylist/redis.js'
import { createRevocationFeed, type RevocationFeed } from '../../src/denylist/revocation-feed.js'
import { startRedisServer } from '../helpers/redis-server.js'
import { type RedisConnection, silentLog, TOPOLOGIES, useSharedRedis } from '../helpers/shared-redis.js'
import { waitFor } from '../helpers/wait-for.js'

const shared = useSharedRedis()
const realClock = () => Date.now() / 1000

/** The one value of a metric without labels, as a scrape would read it. */
async function value(registry: Registry, name: string): Promise<number> {
  const metric = registry.getSingleMetric(name)
  if (!metric) throw new Error(`${name} is not registered`)
  const { values } = await metric.get()
  expect(values).toHaveLength(1)
  return values[0]?.value ?? Number.NaN
}

const snapshot = async (registry: Registry) => ({
  up: await value(registry, 'tokensmith_revocation_feed_up'),
  lag: await value(registry, 'tokensmith_revocation_feed_lag_seconds'),
  resyncs: await value(registry, 'tokensmith_revocation_feed_resyncs_total'),
})

/** A clock the test moves: starts at the real time, in whole seconds. */
function fakeClock() {
  const state = { now: Math.floor(realClock()) }
  return { state, clock: () => state.now }
}

function feed(
  connection: RedisConnection,
  keyPrefix: string,
  registry: Registry,
  clock: () => number,
  heartbeatMs = 60_000,
) {
  const check: RevocationFeed = createRevocationFeed({
    ...connection,
    keyPrefix,
    clock,
    log: silentLog,
    heartbeatMs,
    metrics: { registry },
  })
  shared.defer(() => check.close())
  return check
}

// On each shared deployment: a single node, a Cluster and a Sentinel group.
describe.each(TOPOLOGIES)('revocation feed metrics on %s Redis', (topology) => {
  const redis = useSharedRedis(topology, { defer: shared.defer })

  it('up, lag and resyncs follow the feed, and a message proves it current', async () => {
    const keyPrefix = redis.prefix('feed-metrics')
    const registry = new Registry()
    const { state, clock } = fakeClock()
    const check = feed(redis.connection, keyPrefix, registry, clock)
    expect(await snapshot(registry)).toEqual({ up: 0, lag: 0, resyncs: 0 })
    await check.ready()
    expect(await snapshot(registry)).toEqual({ up: 1, lag: 0, resyncs: 1 })

    state.now += 100
    expect(await snapshot(registry)).toEqual({ up: 1, lag: 100, resyncs: 1 })

    const writer = createRedisDenylist({ ...redis.connection, keyPrefix, clock: realClock, log: silentLog })
    redis.defer(() => writer.close())
    await waitFor(() => writer.ping())
    const jti = `jti-${randomBytes(6).toString('hex')}`
    await writer.revokeToken(jti, realClock() + 3600)
    await waitFor(async () => expect(await check.isRevoked({ jti })).toBe(true), 2_000)
    expect(await snapshot(registry)).toEqual({ up: 1, lag: 0, resyncs: 1 })

    state.now += 7
    expect(await value(registry, 'tokensmith_revocation_feed_lag_seconds')).toBe(7)

    await check.close()
    // A closed feed is no longer reported; the resync count stays.
    expect(await snapshot(registry)).toEqual({ up: 0, lag: 0, resyncs: 1 })
  })

  it('an answered heartbeat proves the feed current without any message', async () => {
    const registry = new Registry()
    const { state, clock } = fakeClock()
    const check = feed(redis.connection, redis.prefix('feed-metrics'), registry, clock, 50)
    await check.ready()
    state.now += 100
    await waitFor(async () => expect(await value(registry, 'tokensmith_revocation_feed_lag_seconds')).toBe(0), 2_000)
  })
})

describe('revocation feed metrics', () => {
  const redis = shared

  it('exposes the exact names in the text format', async () => {
    const registry = new Registry()
    const check = feed(redis.connection, redis.prefix('feed-metrics'), registry, fakeClock().clock)
    await check.ready()
    const text = await registry.metrics()
    expect(text).toContain('# TYPE tokensmith_revocation_feed_up gauge\ntokensmith_revocation_feed_up 1\n')
    expect(text).toContain(
      '# TYPE tokensmith_revocation_feed_lag_seconds gauge\ntokensmith_revocation_feed_lag_seconds 0\n',
    )
    expect(text).toContain(
      '# TYPE tokensmith_revocation_feed_resyncs_total counter\ntokensmith_revocation_feed_resyncs_total 1\n',
    )
  })

  it('refuses a metrics option without a registry, before connecting', () => {
    expect(() =>
      createRevocationFeed({ url: redis.url, keyPrefix: 'x:', log: silentLog, metrics: {} as never }),
    ).toThrow(/metrics must be \{ registry \}/)
  })

  it('goes down while Redis is gone, lags meanwhile, and counts the resync after a restart', async () => {
    const server = await startRedisServer()
    redis.defer(() => server.stop())
    const registry = new Registry()
    const { state, clock } = fakeClock()
    const check = feed({ url: server.url }, 'feed-metrics:', registry, clock, 200)
    await check.ready()
    expect(await snapshot(registry)).toEqual({ up: 1, lag: 0, resyncs: 1 })

    await server.kill('SIGKILL')
    await waitFor(() => expect(check.live).toBe(false), 2_000)
    state.now += 30
    expect(await snapshot(registry)).toEqual({ up: 0, lag: 30, resyncs: 1 })

    await server.restart()
    await check.ready()
    expect(await snapshot(registry)).toEqual({ up: 1, lag: 0, resyncs: 2 })
  })
})
