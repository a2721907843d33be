import { DenylistUnavailableError, type RevocationCheck, type RevocationQuery } from './denylist.js'
import { isRevokedInRedis, normalizeId, revocationChannel, type Revocation } from './protocol.js'
import type { DenylistLog, RedisConnectionOptions } from './redis-client.js'
import { connectRevocationFeed } from './revocation-feed-connection.js'
import { loadRevocations } from './revocation-feed-load.js'
import { handleRevocationMessage } from './revocation-feed-messages.js'
import { feedMetrics, type FeedMetrics, type RevocationFeedMetricsOptions } from './revocation-feed-metrics.js'
import { createRevocationTable } from './revocation-table.js'

export type { DenylistLog, HostPort, RedisTarget, RedisTlsOptions } from './redis-client.js'
export type { RevocationFeedMetricsOptions } from './revocation-feed-metrics.js'

export interface RevocationFeedOptions extends Omit<RedisConnectionOptions, 'log'> {
  /** The authorization server's `REDIS_KEY_PREFIX`: by default `tokensmith:`, or `{tokensmith}:` on a Redis Cluster. */
  keyPrefix: string
  /** Seconds since the epoch. Default: the system clock, in whole seconds. */
  clock?: () => number
  /** Any `{ info, warn, error }` logger, pino's or `console`. Default `console`. */
  log?: DenylistLog
  /** Upper bound on revocations held locally. Default 1,000,000. */
  maxEntries?: number
  /** How often the subscriber connection is PINGed to notice a silent or frozen link. Default 1000 ms. */
  heartbeatMs?: number
  /** How often expired entries are dropped. Default 30 s. */
  sweepIntervalMs?: number
  /**
   * Prometheus metrics in the application's prom-client `Registry` (prom-client is then needed: an
   * optional peer dependency, loaded only when this is given):
   * - `tokensmith_revocation_feed_up`: 1 while subscribed and fully loaded, 0 while checking Redis directly;
   * - `tokensmith_revocation_feed_lag_seconds`: seconds since the feed last had proof of being current
   *   (a message or an answered heartbeat while live, or a completed full load), by `clock`;
   * - `tokensmith_revocation_feed_resyncs_total`: full loads after (re)subscribing, the first included.
   */
  metrics?: RevocationFeedMetricsOptions
}

/** A RevocationCheck that answers from memory while its Redis feed is live. */
export interface RevocationFeed extends RevocationCheck {
  /** True while subscribed and fully loaded: `isRevoked` then answers locally, with no round trip. */
  readonly live: boolean
  /** Resolves once the feed is live; rejects with DenylistUnavailableError if closed first. */
  ready(): Promise<void>
  close(): Promise<void>
}

const DEFAULT_MAX_ENTRIES = 1_000_000
const DEFAULT_HEARTBEAT_MS = 1_000
const DEFAULT_SWEEP_INTERVAL_MS = 30_000

const systemClock = () => Math.floor(Date.now() / 1000)

/**
 * Revocation check for resource servers that must not pay a Redis round trip per request: the
 * `denylist` of `bearerAuth`, fed by the authorization server's Redis denylist.
 *
 * A local copy of the revoked ids (tokens, keys, and clients with their revocation instant) is kept
 * current over pub/sub: on every (re)connect it subscribes to `${keyPrefix}revocations`, then loads
 * every entry, so no revocation is missed, including those made while it was disconnected.
 *
 * While the feed is down (disconnected, loading, heartbeat failed, or the local copy is full), each
 * check asks Redis directly; if that fails too it throws DenylistUnavailableError, which
 * `bearerAuth` answers with 503. It never answers false for "don't know".
 *
 * Connections and timers start when it is created, never at import; `close()` ends them.
 *
 * @example
 * ```ts
 * import { bearerAuth } from 'tokensmith/verifier'
 * import { createRevocationFeed } from 'tokensmith/revocation-feed'
 *
 * const denylist = createRevocationFeed({ url: 'redis://127.0.0.1:6379', keyPrefix: 'tokensmith:' })
 * app.use('/invoices/*', bearerAuth({ issuer, audience, jwks: { uri }, denylist }))
 * // Sentinel or Cluster: `redis` instead of `url` (see `RedisTarget`), e.g.
 * // createRevocationFeed({ redis: { kind: 'cluster', nodes: [{ host: 'redis-0', port: 6379 }] }, keyPrefix: '{tokensmith}:' })
 * ```
 */
export function createRevocationFeed(options: RevocationFeedOptions): RevocationFeed {
  const { keyPrefix } = options
  const clock = options.clock ?? systemClock
  const log = options.log ?? console
  const maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES
  const table = createRevocationTable({ maxEntries })
  let closing: Promise<void> | undefined
  /** When the local copy was last known current (`clock`); creation until the first proof. */
  let currentAt = clock()
  // Before connecting: a bad `metrics` option throws with nothing started.
  let metrics: FeedMetrics | undefined
  if (options.metrics !== undefined) {
    metrics = feedMetrics(options.metrics, {
      live: () => connection.live,
      lag: () => clock() - currentAt,
    })
  }

  const connection = connectRevocationFeed({
    ...options,
    log,
    channel: revocationChannel(keyPrefix),
    heartbeatMs: options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS,
    clock,
    onCurrent: (at) => {
      currentAt = Math.max(currentAt, at ?? clock())
    },
    onResync: () => metrics?.resynced(),
    onMessage: (message) => handleRevocationMessage(message, store, log),
    load: (redis, current) => loadRevocations({ redis, keyPrefix, clock, store, current }),
    stats: () => ({ entries: table.size, maxEntries }),
  })

  function store(revocation: Revocation): void {
    const now = clock()
    const id = normalizeId(revocation.id)
    const stored =
      revocation.kind === 'client'
        ? table.putClient(id, revocation.revokedAt, revocation.until, now)
        : table.put(revocation.kind, id, revocation.until, now)
    if (stored) return
    // Dropping or evicting would un-revoke a token: stop answering locally instead.
    if (!connection.incomplete) log.error({ maxEntries }, 'revocation feed full; checking Redis directly')
    connection.markIncomplete()
  }

  const sweeper = setInterval(() => {
    table.sweep(clock())
    if (connection.incomplete && table.size < maxEntries) connection.reload()
  }, options.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS)
  sweeper.unref()

  return {
    get live() {
      return connection.live
    },
    async isRevoked(token) {
      if (closing) throw new DenylistUnavailableError('revocation check is closed')
      if (!connection.live) return isRevokedInRedis(connection.commands, keyPrefix, token)
      return table.isRevoked(normalized(token), clock())
    },
    ready: () => connection.ready(),
    close() {
      closing ??= (async () => {
        metrics?.detach()
        clearInterval(sweeper)
        await connection.close()
        table.clear()
      })()
      return closing
    },
  }
}

/** Ids as the local copy holds them (see `normalizeId`). */
function normalized(token: RevocationQuery): RevocationQuery {
  const { jti, kid, client_id, iat } = token
  return {
    jti: normalizeId(jti),
    kid: kid === undefined ? undefined : normalizeId(kid),
    client_id: client_id === undefined ? undefined : normalizeId(client_id),
    iat,
  }
}
