import { createHash } from 'node:crypto'
import { Redis, type RedisOptions } from 'ioredis'
import type { Logger } from 'pino'
import type { Clock } from '../clock.js'
import {
  assertRevokedAt,
  assertUntil,
  clientRevocationCovers,
  DenylistUnavailableError,
  RevocationLimitError,
  type Denylist,
  type EntryKind,
  type RevocationOwner,
  type RevocationQuery,
} from './denylist.js'
import { describeRedisError } from './redis-error.js'

/** Structural subset of pino's Logger, so tests can pass a recorder. */
export type DenylistLog = Pick<Logger, 'info' | 'warn' | 'error'>

export interface RedisConnectionOptions {
  /** redis:// or rediss:// URL. Never logged: it may carry a password. */
  url: string
  /** Prepended to every key and to the pub/sub channel, e.g. `tokensmith:`. */
  keyPrefix: string
  clock: Clock
  log: DenylistLog
  /** A command without a reply after this long fails (checklist E: default ioredis waits forever). Default 500 ms. */
  commandTimeoutMs?: number
  /** A TCP connect + handshake that takes longer is abandoned and retried. Default 1000 ms. */
  connectTimeoutMs?: number
}

export type RedisDenylistOptions = RedisConnectionOptions

export const DEFAULT_COMMAND_TIMEOUT_MS = 500
export const DEFAULT_CONNECT_TIMEOUT_MS = 1_000
const MAX_RECONNECT_DELAY_MS = 1_000

/**
 * A revocation as published on `${keyPrefix}revocations`; `until` and `revokedAt` are epoch
 * seconds. A client entry carries its instant: tokens of that client with `iat <= revokedAt`.
 */
export type RevocationMessage =
  | { t: 'jti' | 'kid'; id: string; until: number }
  | { t: 'client'; id: string; until: number; revokedAt: number }

/**
 * `${prefix}jti:${id}`, `${prefix}kid:${id}`, `${prefix}client:${id}`. The id is only ever a
 * suffix: never parsed, never a pattern. A jti or kid entry holds `1`; a client entry holds its
 * revocation instant (epoch seconds).
 */
export function entryKey(keyPrefix: string, kind: EntryKind, id: string): string {
  return `${keyPrefix}${kind}:${id}`
}

/**
 * `${prefix}revoked-by:${clientId}`: the jtis a client revoked, scored by their `until`, to cap
 * how many live revocations one client holds. Not an entry: verifiers and feeds never read it.
 */
export function ownedKey(keyPrefix: string, clientId: string): string {
  return `${keyPrefix}revoked-by:${clientId}`
}

/**
 * A client entry's value as a revocation instant. Anything but a plain number (written by hand,
 * say) is NaN, which revokes every token of the client: the safe reading of a value we cannot read.
 */
export function parseRevokedAt(value: string): number {
  return /^\d{1,15}(\.\d+)?$/.test(value) ? Number(value) : Number.NaN
}

export function revocationChannel(keyPrefix: string): string {
  return `${keyPrefix}revocations`
}

/** The cause is kept only as its summary: an ioredis error carries the failed command, AUTH's password included. */
export function unavailable(message: string, cause?: unknown): DenylistUnavailableError {
  return new DenylistUnavailableError(message, cause === undefined ? undefined : { cause: describeRedisError(cause) })
}

/**
 * An ioredis client that fails fast and never gives up reconnecting (checklist E, OF-1/2/5):
 * - `enableOfflineQueue: false`: while disconnected a command is rejected at once instead of queued;
 * - `commandTimeout`: a frozen server (SIGSTOP, OF-2) fails each command after this long;
 * - `maxRetriesPerRequest: 0` and `autoResendUnfulfilledCommands: false`: a command in flight when
 *   the connection drops fails; it is never replayed after the caller was told it failed;
 * - `connectTimeout`: a connect that hangs is abandoned and retried;
 * - `retryStrategy`: reconnect forever with capped exponential backoff plus jitter, so the service
 *   is ready again within about a second of Redis coming back and many instances do not reconnect
 *   in lockstep.
 * Constructing never throws and never rejects, even with Redis down (OF-5).
 */
export function createRedisClient(
  options: RedisConnectionOptions & { connectionName: string; extra?: RedisOptions },
): Redis {
  const redis = new Redis(options.url, {
    connectionName: options.connectionName,
    enableOfflineQueue: false,
    commandTimeout: options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
    connectTimeout: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    enableReadyCheck: true,
    retryStrategy: (attempt) => {
      const delay = Math.min(50 * 2 ** attempt, MAX_RECONNECT_DELAY_MS)
      return Math.round(delay * (0.8 + Math.random() * 0.4)) // ±20 % jitter
    },
    ...options.extra,
  })
  logConnectionState(redis, options.log, options.connectionName)
  return redis
}

/**
 * One log line per state change, not one per failed reconnect attempt. The 'error' listener is also
 * what keeps ioredis from emitting an unhandled 'error' event, which would crash the process.
 */
function logConnectionState(redis: Redis, log: DenylistLog, connection: string): void {
  let state: 'starting' | 'up' | 'down' = 'starting'
  redis.on('ready', () => {
    if (state !== 'up') log.info({ connection }, 'redis connection ready')
    state = 'up'
  })
  redis.on('error', (err: unknown) => {
    if (state !== 'down') log.error({ redisError: describeRedisError(err), connection }, 'redis unreachable; retrying in the background')
    state = 'down'
  })
  redis.on('close', () => {
    if (state === 'up') log.warn({ connection }, 'redis connection lost; reconnecting')
    if (state !== 'starting') state = 'down'
  })
}

/** Graceful when possible (QUIT waits for replies in flight), bounded by commandTimeout; idempotent. */
export async function closeRedisClient(redis: Redis): Promise<void> {
  if (redis.status === 'ready') {
    try {
      await redis.quit()
      return
    } catch {
      // Frozen or gone: fall through to dropping the socket.
    }
  }
  redis.disconnect()
}

/** Every namespace in one round trip. Any failure means "don't know", never "not revoked". */
export async function isRevokedInRedis(redis: Redis, keyPrefix: string, token: RevocationQuery): Promise<boolean> {
  const keys = [entryKey(keyPrefix, 'jti', token.jti)]
  if (token.kid !== undefined) keys.push(entryKey(keyPrefix, 'kid', token.kid))
  if (token.client_id !== undefined) keys.push(entryKey(keyPrefix, 'client', token.client_id))
  let values: (string | null)[]
  try {
    values = await redis.mget(...keys)
  } catch (err) {
    throw unavailable('cannot check the revocation denylist', err)
  }
  if (values.length !== keys.length) throw unavailable('cannot check the revocation denylist: short reply')
  const clientValue = token.client_id === undefined ? null : values.pop()!
  if (values.some((value) => value !== null)) return true
  return clientValue !== null && clientRevocationCovers(parseRevokedAt(clientValue), token.iat)
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
async function runScript(redis: Redis, script: { lua: string; sha: string }, keys: string[], args: (string | number)[]): Promise<unknown> {
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
 * Shared denylist in Redis. Each entry is a key whose TTL is the remaining revocation lifetime, so
 * Redis expires it (RV-5: PTTL = exp + T - now). Every write is also published so that feeds
 * (`feed.ts`) learn about it within milliseconds.
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
    const message: RevocationMessage = { t: kind, id, until }
    let results: [Error | null, unknown][] | null
    try {
      // One transaction: create with the TTL if absent (NX), otherwise only ever lengthen it (GT,
      // Redis >= 7), so a second revocation never shortens the first (RV-6); then tell the feeds.
      results = await redis
        .multi()
        .set(key, '1', 'PX', ttlMs, 'NX')
        .pexpire(key, ttlMs, 'GT')
        .publish(channel, JSON.stringify(message))
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
    const message: RevocationMessage = { t: 'jti', id: jti, until }
    const keys = [entryKey(keyPrefix, 'jti', jti), ownedKey(keyPrefix, owner.clientId)]
    let reply: unknown
    try {
      reply = await runScript(redis, REVOKE_OWNED_TOKEN_SCRIPT, keys, [ttlMs, now, until, owner.limit, jti, channel, JSON.stringify(message)])
    } catch (err) {
      throw unavailable('cannot store the revocation', err)
    }
    if (!Array.isArray(reply) || (reply[0] !== 0 && reply[0] !== 1)) throw unavailable('cannot store the revocation: unexpected reply')
    if (reply[0] === 0) throw new RevocationLimitError(owner.clientId, owner.limit, Number(reply[1]) - now)
  }

  async function revokeClient(clientId: string, revokedAt: number, until: number): Promise<void> {
    assertUntil(until)
    assertRevokedAt(revokedAt)
    const ttlMs = Math.ceil((until - clock()) * 1000)
    if (ttlMs <= 0) return
    const message: RevocationMessage = { t: 'client', id: clientId, until, revokedAt }
    try {
      await runScript(redis, REVOKE_CLIENT_SCRIPT, [entryKey(keyPrefix, 'client', clientId)], [String(revokedAt), ttlMs, channel, JSON.stringify(message)])
    } catch (err) {
      throw unavailable('cannot store the client revocation', err)
    }
  }

  return {
    kind: 'redis',
    isRevoked: (token) => isRevokedInRedis(redis, keyPrefix, token),
    revokeToken: (jti, until, owner) => (owner ? revokeOwned(jti, until, owner) : revoke('jti', jti, until)),
    revokeKey: (kid, until) => revoke('kid', kid, until),
    revokeClient,
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
