import { Redis, type RedisOptions } from 'ioredis'
import type { Logger } from 'pino'
import type { Clock } from '../clock.js'
import {
  assertUntil,
  DenylistUnavailableError,
  type Denylist,
  type EntryKind,
} from './denylist.js'

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

/** A revocation as published on `${keyPrefix}revocations`; `until` is epoch seconds. */
export interface RevocationMessage {
  t: EntryKind
  id: string
  until: number
}

/** `${prefix}jti:${id}` / `${prefix}kid:${id}`. The id is only ever a suffix: never parsed, never a pattern. */
export function entryKey(keyPrefix: string, kind: EntryKind, id: string): string {
  return `${keyPrefix}${kind}:${id}`
}

export function revocationChannel(keyPrefix: string): string {
  return `${keyPrefix}revocations`
}

export function unavailable(message: string, cause?: unknown): DenylistUnavailableError {
  return new DenylistUnavailableError(message, { cause })
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
    if (state !== 'down') log.error({ err, connection }, 'redis unreachable; retrying in the background')
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

/** EXISTS on both namespaces in one round trip. Any failure means "don't know", never "not revoked". */
export async function isRevokedInRedis(
  redis: Redis,
  keyPrefix: string,
  token: { jti: string; kid?: string },
): Promise<boolean> {
  const keys = [entryKey(keyPrefix, 'jti', token.jti)]
  if (token.kid !== undefined) keys.push(entryKey(keyPrefix, 'kid', token.kid))
  try {
    return (await redis.exists(...keys)) > 0
  } catch (err) {
    throw unavailable('cannot check the revocation denylist', err)
  }
}

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

  async function revoke(kind: EntryKind, id: string, until: number): Promise<void> {
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

  return {
    kind: 'redis',
    isRevoked: (token) => isRevokedInRedis(redis, keyPrefix, token),
    revokeToken: (jti, until) => revoke('jti', jti, until),
    revokeKey: (kid, until) => revoke('kid', kid, until),
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
