import { Redis, type RedisOptions } from 'ioredis'
import { describeRedisError } from './redis-error.js'

type LogMethod = (fieldsOrMessage: object | string, message?: string) => void

/**
 * Any `{ info, warn, error }` logger: pino's, `console`, or a test recorder. Called as
 * `log.warn(fields, message)` (pino's order) or `log.warn(message)`; a Redis error only ever as
 * its summary (`describeRedisError`), never the error itself.
 */
export interface DenylistLog {
  info: LogMethod
  warn: LogMethod
  error: LogMethod
}

export interface RedisConnectionOptions {
  /** redis:// or rediss:// URL. Never logged: it may carry a password. */
  url: string
  log: DenylistLog
  /** A command without a reply after this long fails (ioredis by default waits forever). Default 500 ms. */
  commandTimeoutMs?: number
  /** A TCP connect + handshake that takes longer is abandoned and retried. Default 1000 ms. */
  connectTimeoutMs?: number
}

const DEFAULT_COMMAND_TIMEOUT_MS = 500
const DEFAULT_CONNECT_TIMEOUT_MS = 1_000
const MAX_RECONNECT_DELAY_MS = 1_000

/**
 * An ioredis client that fails fast and never gives up reconnecting, so a Redis outage is a quick
 * "don't know" (503) and never a hang:
 * - `enableOfflineQueue: false`: while disconnected a command is rejected at once instead of queued;
 * - `commandTimeout`: a frozen server (SIGSTOP) fails each command after this long;
 * - `maxRetriesPerRequest: 0` and `autoResendUnfulfilledCommands: false`: a command in flight when
 *   the connection drops fails; it is never replayed after the caller was told it failed;
 * - `connectTimeout`: a connect that hangs is abandoned and retried;
 * - `retryStrategy`: reconnect forever with capped exponential backoff plus jitter, so the service
 *   is ready again within about a second of Redis coming back and many instances do not reconnect
 *   in lockstep.
 * Constructing never throws and never rejects, even with Redis down.
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
    if (state !== 'down')
      log.error({ redisError: describeRedisError(err), connection }, 'redis unreachable; retrying in the background')
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
