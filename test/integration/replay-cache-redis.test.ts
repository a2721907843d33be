import { setTimeout as sleep } from 'node:timers/promises'
import { describe, expect, it } from 'vitest'
import type { Clock } from '../../src/clock.js'
import { DenylistUnavailableError, type Denylist } from '../../src/denylist/denylist.js'
import { replayKey } from '../../src/denylist/protocol.js'
import { createRedisDenylist } from '../../src/denylist/redis.js'
import { freePort } from '../helpers/free-port.js'
import { startRedisServer } from '../helpers/redis-server.js'
import { silentLog, TOPOLOGIES, useSharedRedis } from '../helpers/shared-redis.js'
import { waitFor } from '../helpers/wait-for.js'

/** Fractional seconds: Redis expires on real time, and a whole-second clock would make short TTLs flaky. */
const realClock: Clock = () => Date.now() / 1000

// Fault tests stop or freeze a redis-server of their own; `redis` is for their clean-ups and prefixes.
const redis = useSharedRedis()
const testPrefix = () => redis.prefix('tokensmith-replay-test')

const COMMAND_TIMEOUT_MS = 300

/** A connected denylist on a redis-server of this test's own, to stop or freeze; both closed after the test. */
async function ownServerDenylist() {
  const server = await startRedisServer()
  redis.defer(() => server.stop())
  const denylist = createRedisDenylist({
    url: server.url,
    keyPrefix: testPrefix(),
    clock: realClock,
    log: silentLog,
    commandTimeoutMs: COMMAND_TIMEOUT_MS,
  })
  redis.defer(() => denylist.close())
  await waitFor(() => denylist.ping())
  return { server, denylist }
}

/** How long `promise` takes to settle, and its rejection (undefined when it resolved). */
async function timed(promise: Promise<unknown>): Promise<{ ms: number; error: unknown }> {
  const started = performance.now()
  const error = await promise.then(
    () => undefined,
    (err: unknown) => err,
  )
  return { ms: performance.now() - started, error }
}

// The behaviour on each shared deployment: a single node, a Cluster and a Sentinel group. Tests share
// them (maybe not ours): each uses its own prefix and deletes only its own keys.
describe.each(TOPOLOGIES)('redis replay cache on %s Redis', (topology) => {
  const redis = useSharedRedis(topology)
  const testPrefix = () => redis.prefix('tokensmith-replay-test')
  /** A denylist, connected, on its own connection to the shared Redis; closed after the test. */
  const connected = (keyPrefix: string, clock: Clock = realClock): Promise<Denylist> => redis.denylist(keyPrefix, clock)

  it('answers true on first use and false on a replay', async () => {
    const denylist = await connected(testPrefix())
    const cache = denylist.replayCache('client-assertion')
    const until = realClock() + 60
    expect(await cache.useOnce('svc-a', 'jti-1', until)).toBe(true)
    expect(await cache.useOnce('svc-a', 'jti-1', until)).toBe(false)
    expect(await cache.useOnce('svc-a', 'jti-1', until + 600)).toBe(false)
  })

  it('scopes a jti to its client', async () => {
    const denylist = await connected(testPrefix())
    const cache = denylist.replayCache('client-assertion')
    const until = realClock() + 60
    expect(await cache.useOnce('svc-a', 'shared', until)).toBe(true)
    expect(await cache.useOnce('svc-b', 'shared', until)).toBe(true)
    expect(await cache.useOnce('svc-b', 'shared', until)).toBe(false)
    // No split of the pair is another pair's: JSON keeps them apart, whatever they hold.
    expect(await cache.useOnce('https://idp.example/', 'x', until)).toBe(true)
    expect(await cache.useOnce('https://idp.example', '/x', until)).toBe(true)
  })

  it('keeps each namespace apart', async () => {
    const denylist = await connected(testPrefix())
    const until = realClock() + 60
    expect(await denylist.replayCache('client-assertion').useOnce('svc-a', 'jti-1', until)).toBe(true)
    expect(await denylist.replayCache('federation').useOnce('svc-a', 'jti-1', until)).toBe(true)
    expect(await denylist.replayCache('federation').useOnce('svc-a', 'jti-1', until)).toBe(false)
    expect(await denylist.replayCache('client-assertion').useOnce('svc-a', 'jti-1', until)).toBe(false)
  })

  it('is shared by every instance on the same Redis and prefix', async () => {
    const keyPrefix = testPrefix()
    const [a, b] = [await connected(keyPrefix), await connected(keyPrefix)]
    const until = realClock() + 60
    expect(await a.replayCache('client-assertion').useOnce('svc-a', 'jti-1', until)).toBe(true)
    expect(await b.replayCache('client-assertion').useOnce('svc-a', 'jti-1', until)).toBe(false)
    // Used at both at once: exactly one of them is told "first use".
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (i % 2 === 0 ? a : b).replayCache('federation').useOnce('svc-a', 'race', until),
      ),
    )
    expect(answers.filter(Boolean)).toHaveLength(1)
    // Another prefix is another deployment.
    const other = await connected(testPrefix())
    expect(await other.replayCache('client-assertion').useOnce('svc-a', 'jti-1', until)).toBe(true)
  })

  it('writes one key under the prefix, living until `until`', async () => {
    const keyPrefix = testPrefix()
    const now = 1_800_000_000
    const denylist = await connected(keyPrefix, () => now)
    expect(await denylist.replayCache('client-assertion').useOnce('svc-a', 'jti-1', now + 30)).toBe(true)
    const key = replayKey(keyPrefix, 'client-assertion', 'svc-a', 'jti-1')
    expect(await redis.keysUnder(keyPrefix)).toEqual([key])
    const pttl = await redis.admin.pttl(key)
    expect(pttl).toBeGreaterThan(29_000)
    expect(pttl).toBeLessThanOrEqual(30_000)
    // A fraction of a millisecond left is still at least 1 ms.
    expect(await denylist.replayCache('client-assertion').useOnce('svc-a', 'jti-2', now + 0.0001)).toBe(true)
    expect(await redis.admin.pttl(replayKey(keyPrefix, 'client-assertion', 'svc-a', 'jti-2'))).toBeLessThanOrEqual(1)
  })

  it('forgets a pair once its until has passed', async () => {
    const denylist = await connected(testPrefix())
    const cache = denylist.replayCache('client-assertion')
    expect(await cache.useOnce('svc-a', 'jti-1', realClock() + 0.6)).toBe(true)
    expect(await cache.useOnce('svc-a', 'jti-1', realClock() + 0.6)).toBe(false)
    await sleep(1_200)
    expect(await cache.useOnce('svc-a', 'jti-1', realClock() + 60)).toBe(true)
    expect(await cache.useOnce('svc-a', 'jti-1', realClock() + 60)).toBe(false)
  })

  it('answers true and writes nothing for a pair already past its until', async () => {
    const keyPrefix = testPrefix()
    const denylist = await connected(keyPrefix)
    const cache = denylist.replayCache('client-assertion')
    const now = realClock()
    expect(await cache.useOnce('svc-a', 'jti-1', now - 10)).toBe(true)
    expect(await cache.useOnce('svc-a', 'jti-1', now - 10)).toBe(true)
    expect(await cache.useOnce('svc-a', 'jti-2', now)).toBe(true)
    expect(await redis.keysUnder(keyPrefix)).toEqual([])
  })

  it('throws on a bad namespace and on an until that is not a number', async () => {
    const denylist = await connected(testPrefix())
    expect(() => denylist.replayCache('Client_Assertion')).toThrow(/namespace/)
    expect(() => denylist.replayCache('')).toThrow(/namespace/)
    await expect(denylist.replayCache('dpop').useOnce('svc-a', 'jti-1', Number.NaN)).rejects.toThrow(RangeError)
  })
})

describe('redis replay cache when Redis fails', () => {
  it('rejects with DenylistUnavailableError at once when Redis is down', async () => {
    const { server, denylist } = await ownServerDenylist()
    const cache = denylist.replayCache('client-assertion')
    expect(await cache.useOnce('svc-a', 'jti-1', realClock() + 60)).toBe(true)
    await server.stop()
    const { ms, error } = await timed(cache.useOnce('svc-a', 'jti-2', realClock() + 60))
    expect(error).toBeInstanceOf(DenylistUnavailableError)
    expect(ms).toBeLessThan(COMMAND_TIMEOUT_MS + 200)
  })

  it('rejects with DenylistUnavailableError within the command timeout when Redis is frozen', async () => {
    const { server, denylist } = await ownServerDenylist()
    const cache = denylist.replayCache('client-assertion')
    server.pause()
    const { ms, error } = await timed(cache.useOnce('svc-a', 'jti-1', realClock() + 60))
    server.resume()
    expect(error).toBeInstanceOf(DenylistUnavailableError)
    expect(ms).toBeLessThan(COMMAND_TIMEOUT_MS + 500)
  })

  it('rejects with DenylistUnavailableError when nothing listens at all', async () => {
    const denylist = createRedisDenylist({
      url: `redis://127.0.0.1:${await freePort()}`,
      keyPrefix: testPrefix(),
      clock: realClock,
      log: silentLog,
      commandTimeoutMs: COMMAND_TIMEOUT_MS,
    })
    redis.defer(() => denylist.close())
    const { ms, error } = await timed(denylist.replayCache('federation').useOnce('svc-a', 'jti-1', realClock() + 60))
    expect(error).toBeInstanceOf(DenylistUnavailableError)
    expect(ms).toBeLessThan(COMMAND_TIMEOUT_MS + 200)
  })
})
