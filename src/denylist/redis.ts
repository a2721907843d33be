import { createHash } from 'node:crypto'
import type { Redis } from 'ioredis'
import type { Clock } from '../clock.js'
import type { ReplayCache } from '../oauth/replay-cache.js'
import {
  assertReplayNamespace,
  assertRevokedAt,
  assertUntil,
  RevocationLimitError,
  type Denylist,
  type RevocationOwner,
} from './denylist.js'
import { encodeRevocation, entryKey, isRevokedInRedis, ownedKey, replayKey, revocationChannel } from './protocol.js'
import { closeRedisClient, createRedisClient, type RedisConnectionOptions } from './redis-client.js'
import { unavailable } from './redis-error.js'

export interface RedisDenylistOptions extends RedisConnectionOptions {
  /** Prepended to every key and to the pub/sub channel, e.g. `tokensmith:` (key names: `protocol.ts`). */
  keyPrefix: string
  clock: Clock
}

/**
 * A revocation counted against its client, in one atomic step: drop the client's expired
 * revocations from its sorted set, then either lengthen an entry that already exists (not a new
 * entry: never counted twice, never refused), or refuse when the client is at its limit (reply:
 * the score, i.e. until, of its oldest live revocation), or write the entry and count it. The
 * sorted set lives as long as its longest member. Publishes like every other write.
 * KEYS: entry, sorted set. ARGV: ttl ms, now, until, limit, jti, channel, message.
 */
const REVOKE_OWNED_TOKEN = `
local ttl = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ttl, 'GT')
  redis.call('ZADD', KEYS[2], 'XX', 'GT', ARGV[3], ARGV[5])
else
  if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then
    return {0, redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')[2]}
  end
  redis.call('SET', KEYS[1], '1', 'PX', ttl)
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[5])
end
local left = redis.call('PTTL', KEYS[2])
if left == -1 or (left >= 0 and left < ttl) then redis.call('PEXPIRE', KEYS[2], ttl) end
redis.call('PUBLISH', ARGV[6], ARGV[7])
return {1}
`

/**
 * A client-wide revocation: the entry's value is the revocation instant, and of two instants the
 * later one is kept (it covers every token the earlier one did); the TTL only ever grows. A value
 * that is not a number (written by hand) revokes every token of the client, and is kept.
 * KEYS: entry. ARGV: revokedAt, ttl ms, channel, message.
 */
const REVOKE_CLIENT = `
local current = redis.call('GET', KEYS[1])
if not current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  local stored = tonumber(current)
  if stored ~= nil and stored < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL') end
  redis.call('PEXPIRE', KEYS[1], ARGV[2], 'GT')
end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
`

/** EVALSHA, falling back to EVAL once when Redis does not hold the script yet (after a restart, say). */
async function runScript(
  redis: Redis,
  script: { lua: string; sha: string },
  keys: string[],
  args: (string | number)[],
): Promise<unknown> {
  try {
    return await redis.evalsha(script.sha, keys.length, ...keys, ...args)
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
    return redis.eval(script.lua, keys.length, ...keys, ...args)
  }
}

const script = (lua: string) => ({ lua, sha: createHash('sha1').update(lua).digest('hex') })
const REVOKE_OWNED_TOKEN_SCRIPT = script(REVOKE_OWNED_TOKEN)
const REVOKE_CLIENT_SCRIPT = script(REVOKE_CLIENT)

/**
 * Shared denylist in Redis, in the format of `protocol.ts`. Each entry is a key whose TTL is the
 * remaining revocation lifetime (PTTL = exp + clock tolerance - now), so Redis expires it. Every
 * write is also published so that revocation feeds (`revocation-feed.ts`) learn of it within
 * milliseconds.
 */
export function createRedisDenylist(options: RedisDenylistOptions): Denylist {
  const { keyPrefix, clock } = options
  const channel = revocationChannel(keyPrefix)
  const redis = createRedisClient({ ...options, connectionName: 'tokensmith-denylist' })
  let closing: Promise<void> | undefined

  async function revoke(kind: 'jti' | 'kid', id: string, until: number): Promise<void> {
    assertUntil(until)
    const ttlMs = Math.ceil((until - clock()) * 1000)
    if (ttlMs <= 0) return // already outside every verifier's window: nothing to remember
    const key = entryKey(keyPrefix, kind, id)
    let results: [Error | null, unknown][] | null
    try {
      // One transaction: create with the TTL if absent (NX), otherwise only ever lengthen it (GT,
      // Redis >= 7), so a second revocation never shortens the first; then tell the feeds.
      results = await redis
        .multi()
        .set(key, '1', 'PX', ttlMs, 'NX')
        .pexpire(key, ttlMs, 'GT')
        .publish(channel, encodeRevocation({ kind, id, until }))
        .exec()
    } catch (err) {
      throw unavailable('cannot store the revocation', err)
    }
    // null means the transaction was discarded; a per-command error means the entry is unconfirmed.
    if (results === null) throw unavailable('cannot store the revocation: transaction aborted')
    for (const [err] of results) if (err) throw unavailable('cannot store the revocation', err)
  }

  async function revokeOwned(jti: string, until: number, owner: RevocationOwner): Promise<void> {
    assertUntil(until)
    const now = clock()
    const ttlMs = Math.ceil((until - now) * 1000)
    if (ttlMs <= 0) return
    const keys = [entryKey(keyPrefix, 'jti', jti), ownedKey(keyPrefix, owner.clientId)]
    let reply: unknown
    try {
      const message = encodeRevocation({ kind: 'jti', id: jti, until })
      reply = await runScript(redis, REVOKE_OWNED_TOKEN_SCRIPT, keys, [
        ttlMs,
        now,
        until,
        owner.limit,
        jti,
        channel,
        message,
      ])
    } catch (err) {
      throw unavailable('cannot store the revocation', err)
    }
    if (!Array.isArray(reply) || (reply[0] !== 0 && reply[0] !== 1))
      throw unavailable('cannot store the revocation: unexpected reply')
    if (reply[0] === 0) throw new RevocationLimitError(owner.clientId, owner.limit, Number(reply[1]) - now)
  }

  async function revokeClient(clientId: string, revokedAt: number, until: number): Promise<void> {
    assertUntil(until)
    assertRevokedAt(revokedAt)
    const ttlMs = Math.ceil((until - clock()) * 1000)
    if (ttlMs <= 0) return
    try {
      const message = encodeRevocation({ kind: 'client', id: clientId, until, revokedAt })
      await runScript(
        redis,
        REVOKE_CLIENT_SCRIPT,
        [entryKey(keyPrefix, 'client', clientId)],
        [String(revokedAt), ttlMs, channel, message],
      )
    } catch (err) {
      throw unavailable('cannot store the client revocation', err)
    }
  }

  /**
   * A replay cache on this connection: each use is one `SET key 1 PX ttl NX`, so of several instances
   * using the same pair at once exactly one is told "first use". The key lives until `until`, and Redis
   * expires it. A failure or a timeout is DenylistUnavailableError: the pair was maybe not recorded,
   * so the caller refuses (503), never accepts.
   */
  function replayCache(namespace: string): ReplayCache {
    assertReplayNamespace(namespace)
    return {
      async useOnce(clientId, jti, until) {
        if (!Number.isFinite(until)) throw new RangeError(`replay "until" must be a finite number, got ${until}`)
        const ttlMs = Math.ceil((until - clock()) * 1000)
        // Past `until` the caller refuses the assertion on its `exp` anyway; there is nothing left to remember.
        if (ttlMs <= 0) return true
        let reply: unknown
        try {
          reply = await redis.set(replayKey(keyPrefix, namespace, clientId, jti), '1', 'PX', ttlMs, 'NX')
        } catch (err) {
          throw unavailable('cannot record the replay cache entry', err)
        }
        if (reply === 'OK') return true
        if (reply === null) return false
        throw unavailable('cannot record the replay cache entry: unexpected reply')
      },
    }
  }

  return {
    kind: 'redis',
    shared: { redis, keyPrefix },
    isRevoked: (token) => isRevokedInRedis(redis, keyPrefix, token),
    revokeToken: (jti, until, owner) => (owner ? revokeOwned(jti, until, owner) : revoke('jti', jti, until)),
    revokeKey: (kid, until) => revoke('kid', kid, until),
    revokeClient,
    replayCache,
    async ping() {
      try {
        await redis.ping()
      } catch (err) {
        throw unavailable('revocation denylist unreachable', err)
      }
    },
    close() {
      closing ??= closeRedisClient(redis)
      return closing
    },
  }
}
