import { EventEmitter } from 'node:events'
import type { Cluster, Redis, RedisOptions } from 'ioredis'
import { describeRedisError } from './redis-error.js'
import { createRedisHandle, type RedisHandle, type RedisTarget, reconnectDelay } from './redis-target.js'

export type { HostPort, RedisHandle, RedisTarget, RedisTlsOptions } from './redis-target.js'

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
  /** redis:// or rediss:// URL of a single node: shorthand for `redis: { kind: 'single', url }`. Never logged: it may carry a password. */
  url?: string
  /** A single node, a Sentinel group or a Cluster (`redis-target.ts`). Exactly one of `url` and `redis`. */
  redis?: RedisTarget
  log: DenylistLog
  /** A command without a reply after this long fails (ioredis by default waits forever). Default 500 ms. */
  commandTimeoutMs?: number
  /** A TCP connect + handshake that takes longer is abandoned and retried. Default 1000 ms. */
  connectTimeoutMs?: number
}

const DEFAULT_COMMAND_TIMEOUT_MS = 500
const DEFAULT_CONNECT_TIMEOUT_MS = 1_000

/** The target of `url` or `redis`; throws a TypeError unless exactly one is given. */
export function redisTargetOf(options: Pick<RedisConnectionOptions, 'url' | 'redis'>): RedisTarget {
  if ((options.url === undefined) === (options.redis === undefined))
    throw new TypeError(
      'give exactly one of `url` (a single Redis node) and `redis` (a single node, Sentinel or Cluster)',
    )
  return options.redis ?? { kind: 'single', url: options.url as string }
}

/**
 * An ioredis client (a `Redis`, or a `Cluster` for a cluster target) that fails fast and never
 * gives up reconnecting, so a Redis outage is a quick "don't know" (503) and never a hang: see
 * `createRedisHandle` for the options. Constructing never throws and never rejects, even with
 * Redis down (it throws a TypeError for options that name no target).
 */
export function createRedisClient(
  options: RedisConnectionOptions & { connectionName: string; extra?: RedisOptions },
): RedisHandle {
  const redis = createRedisHandle(redisTargetOf(options), {
    connectionName: options.connectionName,
    commandTimeoutMs: options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
    connectTimeoutMs: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    ...(options.extra === undefined ? {} : { extra: options.extra }),
  })
  logConnectionState(redis, options.log, options.connectionName)
  if (!isCluster(redis)) {
    absorbLateSocketErrors(redis)
    reconnectUnlessClosed(redis, options.log, options.connectionName)
  }
  return redis
}

/**
 * ioredis listens for only the first 'error' of each socket it opens (`once`). A TLS socket can
 * emit a second one (an alert read after the failure that raised the first), and an 'error' with no
 * listener is an uncaught exception that ends the process. Every socket of this connection gets a
 * listener that takes such late errors; the first still reaches ioredis, which closes and reconnects.
 */
export function absorbLateSocketErrors(redis: Redis): void {
  // The connector keeps the socket it opens in `stream` (Standalone and Sentinel alike), the first
  // one included: it is opened on the next tick after the constructor starts connecting.
  const connector = (redis as unknown as { connector?: { stream?: unknown } }).connector
  if (connector === undefined) return
  let socket = connector.stream
  Object.defineProperty(connector, 'stream', {
    configurable: true,
    enumerable: true,
    get: () => socket,
    set(value: unknown) {
      if (value instanceof EventEmitter && value !== socket) value.on('error', () => undefined)
      socket = value
    },
  })
}

/**
 * A connection that reaches status `end` although its owner never closed it (`disconnect()` or
 * `quit()`) would stay down for good: ioredis gives up on a connect that is cut short, for
 * instance a Sentinel connector told to disconnect while it asks the sentinels for the master
 * ("Connection is closed.", status `end`, never left). Such a connection is connected again after
 * the usual backoff, with a log line each time; a Cluster recovers its node connections itself.
 */
function reconnectUnlessClosed(redis: Redis, log: DenylistLog, connection: string): void {
  let closing = false
  let attempt = 0
  const disconnect = redis.disconnect.bind(redis)
  redis.disconnect = (reconnect = false) => {
    if (!reconnect) closing = true
    disconnect(reconnect)
  }
  const quit = redis.quit.bind(redis)
  redis.quit = ((...args: Parameters<Redis['quit']>) => {
    closing = true
    return quit(...args)
  }) as Redis['quit']
  redis.on('ready', () => {
    attempt = 0
  })
  redis.on('end', () => {
    if (closing) return
    log.warn({ connection }, 'redis connection ended without being closed; connecting again')
    setTimeout(() => {
      if (!closing && redis.status === 'end') redis.connect().catch(() => undefined)
    }, reconnectDelay(++attempt))
  })
}

/**
 * One log line per state change, not one per failed reconnect attempt, for a node and a Cluster
 * alike. The 'error' listener is also what keeps ioredis from emitting an unhandled 'error' event,
 * which would crash the process. A Cluster also reports each node's errors ('node error'): those
 * count as "down" only while the Cluster itself is not ready (a lost replica is not an outage).
 */
export function logConnectionState(redis: RedisHandle | EventEmitter, log: DenylistLog, connection: string): void {
  let state: 'starting' | 'up' | 'down' = 'starting'
  const down = (err: unknown) => {
    if (state !== 'down')
      log.error({ redisError: describeRedisError(err), connection }, 'redis unreachable; retrying in the background')
    state = 'down'
  }
  redis.on('ready', () => {
    if (state !== 'up') log.info({ connection }, 'redis connection ready')
    state = 'up'
  })
  redis.on('error', down)
  redis.on('close', () => {
    if (state === 'up') log.warn({ connection }, 'redis connection lost; reconnecting')
    if (state !== 'starting') state = 'down'
  })
  if ('isCluster' in redis && isCluster(redis)) {
    const cluster = redis
    cluster.on('node error', (err: unknown) => {
      if (cluster.status !== 'ready') down(err)
    })
  }
}

export function isCluster(redis: RedisHandle): redis is Cluster {
  return redis.isCluster
}

/**
 * Another connection to the same store with the same options and another name: a subscriber needs
 * a connection of its own (in subscribe mode Redis accepts nothing else).
 */
export function duplicateRedisClient(redis: RedisHandle, connectionName: string, log?: DenylistLog): RedisHandle {
  if (isCluster(redis)) return redis.duplicate([], { redisOptions: { ...redis.options.redisOptions, connectionName } })
  const duplicate = (redis as Redis).duplicate({ connectionName })
  absorbLateSocketErrors(duplicate)
  reconnectUnlessClosed(duplicate, log ?? silent, connectionName)
  return duplicate
}

const silent: DenylistLog = { info: () => undefined, warn: () => undefined, error: () => undefined }

/** Graceful when possible (QUIT waits for replies in flight), bounded by commandTimeout; idempotent. */
export async function closeRedisClient(redis: RedisHandle): Promise<void> {
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
