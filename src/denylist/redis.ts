import { createHash } from 'node:crypto'
import { type ChainableCommander, Command, type Pipeline } from 'ioredis'
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
import type { RedisTarget } from './redis-target.js'
import { describeRedisError, unavailable } from './redis-error.js'

export interface RedisDenylistOptions extends RedisConnectionOptions {
  /** Prepended to every key and to the pub/sub channel, e.g. `{tokensmith}:` (key names: `protocol.ts`). */
  keyPrefix: string
  clock: Clock
  /**
   * Replicas that must acknowledge each revocation (Redis WAIT) before it is answered as done; 0
   * (the default) sends no WAIT. Replay caches and rate limits never wait.
   */
  waitReplicas?: number
  /** How long a revocation waits for those replicas, in ms (WAIT's timeout). Default 500. */
  waitMs?: number
}

/** The settings a server's (or a CLI's) denylist takes from its configuration: REDIS_* variables. */
export interface RedisDenylistSettings {
  redis: RedisTarget
  redisKeyPrefix: string
  redisWaitReplicas: number
  redisWaitMs: number
}

export function redisDenylistOptionsOf(
  config: RedisDenylistSettings,
): Pick<RedisDenylistOptions, 'redis' | 'keyPrefix' | 'waitReplicas' | 'waitMs'> {
  return {
    redis: config.redis,
    keyPrefix: config.redisKeyPrefix,
    waitReplicas: config.redisWaitReplicas,
    waitMs: config.redisWaitMs,
  }
}

/**
 * One token or key revocation, atomically: create the entry with its TTL if absent (NX), otherwise
 * only ever lengthen it (GT, Redis >= 7), so a second revocation never shortens the first; then tell
 * the feeds. KEYS: entry. ARGV: ttl ms, channel, message.
 */
const REVOKE_ENTRY = `
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1], 'NX')
redis.call('PEXPIRE', KEYS[1], ARGV[1], 'GT')
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
`

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

/** What WAIT answered: the number of replicas that acknowledged, or an error; undefined when not sent. */
type WaitReply = [Error | null, unknown] | undefined

const DEFAULT_WAIT_MS = 500
/** WAIT's reply deadline beyond `waitMs` when no command timeout is given (the client's default). */
const WAIT_REPLY_MARGIN_MS = 500

const script = (lua: string) => ({ lua, sha: createHash('sha1').update(lua).digest('hex') })
const REVOKE_ENTRY_SCRIPT = script(REVOKE_ENTRY)
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

  const waitReplicas = options.waitReplicas ?? 0
  const waitMs = options.waitMs ?? DEFAULT_WAIT_MS
  // Redis answers WAIT by `waitMs` at the latest; the reply then has the usual command timeout to arrive.
  const waitDeadlineMs = waitMs + (options.commandTimeoutMs ?? WAIT_REPLY_MARGIN_MS)

  /**
   * Runs a write script: EVALSHA, followed when replicas must acknowledge by `WAIT waitReplicas
   * waitMs` in the same pipeline (https://redis.io/docs/latest/commands/wait/). One round trip on one
   * connection, so WAIT counts the replicas that hold this write; on a Redis Cluster ioredis sends a
   * pipeline to the node owning its keys' slot, keyless WAIT included, i.e. the primary that took the
   * write. WAIT is not allowed inside a script and does not block inside MULTI, hence after it.
   * When Redis does not hold the script (after a restart or a failover), NOSCRIPT: nothing ran, and
   * the pipeline is sent once more with EVAL. Returns the script's reply and what WAIT answered.
   */
  async function runWrite(
    lua: { lua: string; sha: string },
    keys: string[],
    args: (string | number)[],
  ): Promise<{ reply: unknown; wait: WaitReply }> {
    let replies = await sendWithWait((pipeline) => pipeline.evalsha(lua.sha, keys.length, ...keys, ...args))
    const [first] = replies
    if (first?.[0] instanceof Error && first[0].message.startsWith('NOSCRIPT'))
      replies = await sendWithWait((pipeline) => pipeline.eval(lua.lua, keys.length, ...keys, ...args))
    const [written, wait] = replies
    if (written === undefined) throw new Error('no reply to the write')
    if (written[0]) throw written[0]
    return { reply: written[1], wait }
  }

  async function sendWithWait(write: (pipeline: ChainableCommander) => void): Promise<[Error | null, unknown][]> {
    const pipeline = redis.pipeline()
    write(pipeline)
    if (waitReplicas > 0) {
      const wait = new Command('wait', [waitReplicas, waitMs])
      // ioredis arms its command timeout only on a command that has none: WAIT gets a longer one.
      wait.setTimeout(waitDeadlineMs)
      ;(pipeline as unknown as Pipeline).sendCommand(wait)
    }
    return (await pipeline.exec()) ?? []
  }

  /**
   * Throws unless WAIT reported at least `waitReplicas` replicas. The write may well be in Redis,
   * and in force, although the caller is then told 503: that is safe, since a revocation is
   * idempotent and RFC 7009 §2.2.1 has the client assume the token still valid and retry.
   */
  function confirmReplicas(what: string, wait: WaitReply): void {
    if (waitReplicas === 0) return
    const [err, acknowledged] = wait ?? [new Error('no reply to WAIT'), undefined]
    if (!err && typeof acknowledged === 'number' && acknowledged >= waitReplicas) return
    const count = typeof acknowledged === 'number' ? acknowledged : undefined
    options.log.warn(
      {
        replicasAcknowledged: count ?? 'unknown',
        replicasRequired: waitReplicas,
        waitMs,
        ...(err && { redisError: describeRedisError(err) }),
      },
      `${what} written but not acknowledged by enough replicas (REDIS_WAIT_REPLICAS); answered as unavailable, to be retried`,
    )
    throw unavailable(
      `${what} not confirmed: ${count ?? 'an unknown number of'} of ${waitReplicas} replicas acknowledged within ${waitMs} ms`,
      err ?? undefined,
    )
  }

  async function revoke(kind: 'jti' | 'kid', id: string, until: number): Promise<void> {
    assertUntil(until)
    const ttlMs = Math.ceil((until - clock()) * 1000)
    if (ttlMs <= 0) return // already outside every verifier's window: nothing to remember
    let written: Awaited<ReturnType<typeof runWrite>>
    try {
      const message = encodeRevocation({ kind, id, until })
      written = await runWrite(REVOKE_ENTRY_SCRIPT, [entryKey(keyPrefix, kind, id)], [ttlMs, channel, message])
    } catch (err) {
      throw unavailable('cannot store the revocation', err)
    }
    if (written.reply !== 1) throw unavailable('cannot store the revocation: unexpected reply')
    confirmReplicas('revocation', written.wait)
  }

  async function revokeOwned(jti: string, until: number, owner: RevocationOwner): Promise<void> {
    assertUntil(until)
    const now = clock()
    const ttlMs = Math.ceil((until - now) * 1000)
    if (ttlMs <= 0) return
    const keys = [entryKey(keyPrefix, 'jti', jti), ownedKey(keyPrefix, owner.clientId)]
    let written: Awaited<ReturnType<typeof runWrite>>
    try {
      const message = encodeRevocation({ kind: 'jti', id: jti, until })
      written = await runWrite(REVOKE_OWNED_TOKEN_SCRIPT, keys, [ttlMs, now, until, owner.limit, jti, channel, message])
    } catch (err) {
      throw unavailable('cannot store the revocation', err)
    }
    const { reply } = written
    if (!Array.isArray(reply) || (reply[0] !== 0 && reply[0] !== 1))
      throw unavailable('cannot store the revocation: unexpected reply')
    // Refused: nothing was written, so there is nothing for replicas to hold.
    if (reply[0] === 0) throw new RevocationLimitError(owner.clientId, owner.limit, Number(reply[1]) - now)
    confirmReplicas('revocation', written.wait)
  }

  async function revokeClient(clientId: string, revokedAt: number, until: number): Promise<void> {
    assertUntil(until)
    assertRevokedAt(revokedAt)
    const ttlMs = Math.ceil((until - clock()) * 1000)
    if (ttlMs <= 0) return
    let written: Awaited<ReturnType<typeof runWrite>>
    try {
      const message = encodeRevocation({ kind: 'client', id: clientId, until, revokedAt })
      written = await runWrite(
        REVOKE_CLIENT_SCRIPT,
        [entryKey(keyPrefix, 'client', clientId)],
        [String(revokedAt), ttlMs, channel, message],
      )
    } catch (err) {
      throw unavailable('cannot store the client revocation', err)
    }
    confirmReplicas('client revocation', written.wait)
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
