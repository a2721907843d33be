import { createHash, randomBytes } from 'node:crypto'
import type { RedisHandle } from '../denylist/redis-target.js'
import type { Clock } from '../clock.js'
import type { Deps } from '../deps.js'
import { duplicateRedisClient } from '../denylist/redis-client.js'
import { describeRedisError } from '../denylist/redis-error.js'
import { tooManyFailures } from '../errors.js'
import { auditOf } from '../observability/audit.js'

/**
 * Failed-authentication limits (RFC 6749 §2.3.1: the authorization server must protect its client
 * authentication against brute force). Two sliding one-minute windows of failures are kept: per
 * (claimed client id, source address), and per source address over every client id. Once a window
 * holds its limit, the next attempt for that key is refused with 429 and Retry-After (RFC 6585 §4)
 * before any secret is compared, until the oldest counted failure leaves the window. Only failures
 * count, and a success resets nothing: the right secret from another address is not locked out by an
 * attacker hammering the client's id, and a success does not clear an attacker's count elsewhere.
 *
 * With a Redis denylist the windows are shared by every instance: each failure is one script (trim,
 * add, count, expire both keys), which publishes when a key reaches its limit, so every instance keeps
 * the blocked keys in memory and the success path never waits for Redis. Without Redis, or while Redis
 * fails, each instance counts in its own memory: limits stay on, per instance.
 */

/** The window: failures older than this no longer count (sliding, not fixed minute buckets). */
export const WINDOW_MS = 60_000
/** Keys one instance tracks at most, per map; past it the least recently counted one is dropped. */
export const DEFAULT_MAX_KEYS = 100_000

type LogMethod = (fields: object, message: string) => void

/** The log the limiter writes to: pino's, or any `{ info, warn }` taking (fields, message). */
export interface LimiterLog {
  info: LogMethod
  warn: LogMethod
}

export interface AuthFailureLimiterOptions {
  clock: Clock
  /** Failures per minute per (client id, source address): AUTH_FAILURE_LIMIT. */
  limit: number
  /** Failures per minute per source address, over all client ids: AUTH_FAILURE_LIMIT_PER_ADDRESS. */
  perAddressLimit: number
  /** The Redis denylist's connection and key prefix: counters shared by every instance. */
  shared?: { redis: RedisHandle; keyPrefix: string } | undefined
  log: LimiterLog
  /** Keys tracked in memory at most (each of the counters and the blocked keys). Default 100,000. */
  maxKeys?: number
  /**
   * Called once per trip, with the warning: by the failure that brought a window to its limit, at the
   * instance that counted it (the `limit.tripped` audit event), with the id of the request whose
   * failure it was. Must not throw.
   */
  onTrip?: (trip: AuthLimitTrip, requestId: string | undefined) => void
}

/** A window that reached its limit: whose, and until when (epoch seconds) attempts are refused. */
export interface AuthLimitTrip {
  scope: 'client' | 'address'
  /** The claimed client id, cut to 128 characters (scope `client`). */
  clientId?: string
  address: string
  until: number
}

export interface AuthFailureLimiter {
  /** Throws the 429 OAuthError when either key is blocked; never touches Redis. */
  check(clientId: string | undefined, address: string): void
  /**
   * Counts one failed authentication; never throws (a Redis failure falls back to memory). `requestId`
   * is the failed request's id: the trip's records carry it.
   */
  recordFailure(clientId: string | undefined, address: string, requestId?: string): Promise<void>
  /** Stops listening for other instances' blocks. Idempotent. */
  close(): Promise<void>
  /** How many keys this instance holds in memory: for tests and diagnostics. */
  size(): { counters: number; blocked: number }
}

type Scope = 'client' | 'address'

/** A key as stored and published: its scope letter and a hash, never the caller's text itself. */
const pairKey = (clientId: string, address: string) => `c:${digest(JSON.stringify([clientId, address]))}`
const addressKey = (address: string) => `a:${digest(address)}`
const digest = (text: string) => createHash('sha256').update(text).digest('base64url').slice(0, 22)

/** Key names under the denylist's prefix, and the channel blocks are published on. */
export const authFailureKey = (keyPrefix: string, key: string) => `${keyPrefix}authfail:${key}`
export const authLimitsChannel = (keyPrefix: string) => `${keyPrefix}auth-limits`

/**
 * One failure counted in both windows, atomically. Each window is a sorted set of failure times
 * (ms): drop the ones out of the window, add this one, keep at most `limit` (the newest: once a key
 * holds its limit, only when the oldest of those leaves does it fall below), and live one window past
 * the last failure. When a key holds its limit it is blocked until its oldest failure + window, and
 * that is published (`<key> <until>`) for the other instances.
 * KEYS: address window, then the (client, address) window when there is a client id.
 * ARGV: now, window, member, channel, address limit, address key, client limit, client key.
 * Reply per KEYS entry: { count before this failure, count after, oldest }.
 */
const RECORD_FAILURE = `
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local reply = {}
for i = 1, #KEYS do
  local key = KEYS[i]
  local limit = tonumber(ARGV[3 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local before = redis.call('ZCARD', key)
  redis.call('ZADD', key, now, ARGV[3])
  local count = before + 1
  if count > limit then
    redis.call('ZREMRANGEBYRANK', key, 0, count - limit - 1)
    count = limit
  end
  redis.call('PEXPIRE', key, window)
  local oldest = tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2])
  if count >= limit then redis.call('PUBLISH', ARGV[4], ARGV[4 + 2 * i] .. ' ' .. (oldest + window)) end
  reply[i] = { before, count, oldest }
end
return reply
`
const RECORD_FAILURE_SHA = createHash('sha1').update(RECORD_FAILURE).digest('hex')

/** A published block: `<scope letter>:<22 base64url chars> <until ms>`; anything else is ignored. */
const BLOCK_MESSAGE = /^([ac]:[A-Za-z0-9_-]{22}) ([0-9]{1,15})$/

export function createAuthFailureLimiter(options: AuthFailureLimiterOptions): AuthFailureLimiter {
  const { clock, limit, perAddressLimit, shared, log, onTrip } = options
  const maxKeys = options.maxKeys ?? DEFAULT_MAX_KEYS
  const nowMs = () => clock() * 1000
  /** Failure times (ms, ascending, at most the key's limit) per key. */
  const counters = createAgedMap<number[]>(maxKeys)
  /** Blocked keys and until when (ms). Checked by every request. */
  const blocked = createAgedMap<number>(maxKeys)
  let redisDown = false
  let closed = false

  const subscriber = shared && subscribe(shared)

  /** Listens for blocks published by the script (ours included), on a connection of its own. */
  function subscribe({ redis, keyPrefix }: { redis: RedisHandle; keyPrefix: string }): RedisHandle {
    const channel = authLimitsChannel(keyPrefix)
    // The same server (node, Sentinel master or Cluster) and options: a subscribed connection can do
    // nothing else. On a Cluster, ioredis keeps the subscription on one node and moves it when that
    // node is lost; blocks are hints (the script counts in Redis), so a message lost then is harmless.
    const connection = duplicateRedisClient(redis, 'tokensmith-auth-limits')
    // The denylist's own connection already logs outages; this one only must not crash the process.
    connection.on('error', () => undefined)
    // No offline queue: subscribe once ready, and again after every reconnect.
    connection.on('ready', () => void connection.subscribe(channel).catch(() => undefined))
    connection.on('message', (from: string, message: string) => {
      if (from !== channel) return
      const [, key, until] = BLOCK_MESSAGE.exec(message) ?? []
      if (key !== undefined && until !== undefined) block(key, Number(until))
    })
    return connection
  }

  function block(key: string, until: number): void {
    const now = nowMs()
    const current = blocked.get(key, now)
    if (current === undefined || current < until) blocked.set(key, until, now)
  }

  /** Until when `key` is blocked (ms), or undefined. */
  function blockedUntil(key: string, now: number): number | undefined {
    const until = blocked.get(key, now)
    return until !== undefined && until > now ? until : undefined
  }

  /** Counts one failure in this instance's memory: the count before and after, and the oldest. */
  function countLocally(key: string, keyLimit: number, now: number): { before: number; count: number; oldest: number } {
    const times = counters.get(key, now) ?? []
    const expired = times.findIndex((time) => time > now - WINDOW_MS)
    times.splice(0, expired === -1 ? times.length : expired)
    const before = times.length
    times.push(now)
    if (times.length > keyLimit) times.splice(0, times.length - keyLimit)
    counters.set(key, times, now)
    return { before, count: times.length, oldest: times[0] ?? now }
  }

  interface Counted {
    key: string
    scope: Scope
    keyLimit: number
    before: number
    count: number
    oldest: number
  }

  async function countShared(
    { redis, keyPrefix }: { redis: RedisHandle; keyPrefix: string },
    keys: { key: string; keyLimit: number }[],
    now: number,
  ): Promise<{ before: number; count: number; oldest: number }[] | undefined> {
    const names = keys.map(({ key }) => authFailureKey(keyPrefix, key))
    const args: (string | number)[] = [
      Math.floor(now),
      WINDOW_MS,
      `${Math.floor(now)}:${randomBytes(6).toString('base64url')}`,
    ]
    args.push(authLimitsChannel(keyPrefix))
    for (const { key, keyLimit } of keys) args.push(keyLimit, key)
    try {
      let reply: unknown
      try {
        reply = await redis.evalsha(RECORD_FAILURE_SHA, names.length, ...names, ...args)
      } catch (err) {
        if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
        reply = await redis.eval(RECORD_FAILURE, names.length, ...names, ...args)
      }
      const parsed = parseReply(reply, keys.length)
      if (redisDown) {
        redisDown = false
        log.info({}, 'authentication failure limits: Redis is back, counting shared again')
      }
      return parsed
    } catch (err) {
      if (!redisDown) {
        redisDown = true
        log.warn(
          { redisError: describeRedisError(err) },
          'authentication failure limits: Redis unavailable, counting in this instance only',
        )
      }
      return undefined
    }
  }

  return {
    check(clientId, address) {
      // The usual case, and the success path's whole cost: nothing is blocked anywhere.
      if (blocked.size === 0) return
      const now = nowMs()
      const byClient = clientId === undefined ? undefined : blockedUntil(pairKey(clientId, address), now)
      const byAddress = blockedUntil(addressKey(address), now)
      const until = Math.max(byClient ?? 0, byAddress ?? 0)
      if (until === 0) return
      const scope = until === byClient ? 'this client id from this address' : 'this address'
      throw tooManyFailures((until - now) / 1000, `authentication failure limit reached for ${scope}`)
    },

    async recordFailure(clientId, address, requestId) {
      const now = nowMs()
      const keys: { key: string; scope: Scope; keyLimit: number }[] = [
        { key: addressKey(address), scope: 'address', keyLimit: perAddressLimit },
      ]
      if (clientId !== undefined) keys.push({ key: pairKey(clientId, address), scope: 'client', keyLimit: limit })
      // Always counted here too, so that a Redis outage starts from this instance's recent failures.
      const local = keys.map(({ key, keyLimit }) => countLocally(key, keyLimit, now))
      const remote = shared && !closed ? await countShared(shared, keys, now) : undefined
      const results: Counted[] = keys.map((spec, index) => ({ ...spec, ...(remote ?? local)[index] }) as Counted)
      for (const result of results) {
        if (result.count < result.keyLimit) continue
        const until = result.oldest + WINDOW_MS
        block(result.key, until)
        // Logged once per trip: by the failure that brought the window to its limit.
        if (result.before >= result.keyLimit) continue
        const trip: AuthLimitTrip = {
          scope: result.scope,
          ...(result.scope === 'client' && clientId !== undefined && { clientId: clientId.slice(0, 128) }),
          address,
          until: Math.ceil(until / 1000),
        }
        log.warn(
          { client_id: trip.clientId, address, scope: trip.scope, until: trip.until, request_id: requestId },
          'authentication failure limit reached',
        )
        onTrip?.(trip, requestId)
      }
    },

    async close() {
      if (closed) return
      closed = true
      if (subscriber) {
        try {
          if (subscriber.status === 'ready') await subscriber.quit()
        } catch {
          // Gone or frozen: drop the socket below.
        }
        subscriber.disconnect()
      }
    },

    size: () => ({ counters: counters.size, blocked: blocked.size }),
  }
}

/**
 * A map bounded in size and age, in two generations: keys are written to the current one, which
 * becomes the previous one when it holds half of `maxKeys` or is one window old; the previous one is
 * then dropped whole. So at most `maxKeys` keys are held however many addresses an attacker sprays
 * (the least recently written half goes first), and a key is forgotten between one and two windows
 * after it was last written, never sooner: every failure time and block it holds is out of the
 * window by then. No per-entry bookkeeping, no timer, O(1) per operation.
 */
function createAgedMap<V>(maxKeys: number) {
  const half = Math.max(1, Math.floor(maxKeys / 2))
  let current = new Map<string, V>()
  let previous = new Map<string, V>()
  let startedAt: number | undefined
  /** Rotates by age. No write since `startedAt + window` means no key of `current` is younger than that. */
  const age = (now: number) => {
    if (startedAt === undefined) startedAt = now
    if (now - startedAt < WINDOW_MS) return
    previous = now - startedAt >= 2 * WINDOW_MS ? new Map() : current
    current = new Map()
    startedAt = now
  }
  return {
    get(key: string, now: number): V | undefined {
      age(now)
      return current.get(key) ?? previous.get(key)
    },
    set(key: string, value: V, now: number): void {
      age(now)
      if (!current.has(key) && current.size >= half) {
        previous = current
        current = new Map()
        startedAt = now
      }
      previous.delete(key)
      current.set(key, value)
    },
    get size() {
      return current.size + previous.size
    },
  }
}

/** The script's reply: per key `{ before, count, oldest }`, all integers. */
function parseReply(reply: unknown, keys: number): { before: number; count: number; oldest: number }[] {
  if (!Array.isArray(reply) || reply.length !== keys) throw new Error('unexpected reply from the failure count')
  return reply.map((entry: unknown) => {
    if (!Array.isArray(entry) || entry.length !== 3 || !entry.every((value) => typeof value === 'number'))
      throw new Error('unexpected reply from the failure count')
    const [before = 0, count = 0, oldest = 0] = entry as number[]
    return { before, count, oldest }
  })
}

const limiters = new WeakMap<Deps, AuthFailureLimiter>()

/**
 * One limiter per server (deps), made on first use: counters shared through the denylist's Redis when
 * it has one, in memory otherwise. `close()` it on shutdown (its pub/sub connection).
 */
export function authLimiterOf(deps: Deps): AuthFailureLimiter {
  let limiter = limiters.get(deps)
  if (!limiter) {
    limiter = createAuthFailureLimiter({
      clock: deps.clock,
      limit: deps.config.authFailureLimit,
      perAddressLimit: deps.config.authFailureLimitPerAddress,
      shared: deps.denylist.shared,
      log: deps.log,
      onTrip: (trip, requestId) =>
        auditOf(deps).emit(
          'limit.tripped',
          {
            limit: trip.scope === 'client' ? 'auth_client' : 'auth_address',
            ...(trip.clientId !== undefined && { client_id: trip.clientId }),
            address: trip.address,
            until: trip.until,
          },
          requestId,
        ),
    })
    limiters.set(deps, limiter)
  }
  return limiter
}

/**
 * For the bench only: this server's limits switched off (check and recordFailure do nothing), so the
 * success path's cost with and without them can be compared. The product never calls it.
 */
export function disableAuthLimitsForBench(deps: Deps): void {
  limiters.set(deps, {
    check: () => undefined,
    recordFailure: async () => undefined,
    close: async () => undefined,
    size: () => ({ counters: 0, blocked: 0 }),
  })
}
