import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis'

/**
 * Where the shared store lives: one Redis node (a URL), a master found through Redis Sentinel
 * (https://redis.io/docs/latest/operate/oss_and_stack/management/sentinel/), or a Redis Cluster
 * (https://redis.io/docs/latest/operate/oss_and_stack/management/scaling/). Credentials here are
 * never logged: `describeRedisTarget` is what a log line may say.
 */
export type RedisTarget =
  | { kind: 'single'; url: string; tls?: RedisTlsOptions }
  | {
      kind: 'sentinel'
      sentinels: HostPort[]
      /** The master group name the sentinels monitor. */
      name: string
      username?: string
      password?: string
      sentinelPassword?: string
      tls?: RedisTlsOptions
    }
  | { kind: 'cluster'; nodes: HostPort[]; username?: string; password?: string; tls?: RedisTlsOptions }

export type HostPort = { host: string; port: number }

/** TLS to every node (and every sentinel): `ca` is a PEM bundle; absent, the system's CAs. */
export type RedisTlsOptions = { ca?: string }

/** A connection to the store: one node (single, or the master behind sentinels), or a Cluster. */
export type RedisHandle = Redis | Cluster

/** How connections to the store behave; the same for every topology (see `createRedisHandle`). */
export interface RedisHandleOptions {
  /** CLIENT SETNAME, so an operator's CLIENT LIST shows which connection is which. */
  connectionName: string
  /** A command without a reply after this long fails. */
  commandTimeoutMs: number
  /** A TCP connect + handshake that takes longer is abandoned and retried. */
  connectTimeoutMs: number
  /** Further ioredis options for a single node or a sentinel master (e.g. `autoResubscribe`). */
  extra?: RedisOptions
}

const MAX_RECONNECT_DELAY_MS = 1_000

/**
 * Capped exponential backoff with ±20 % jitter: the service is ready again within about a second of
 * Redis coming back, and many instances do not reconnect in lockstep. Never gives up.
 */
export function reconnectDelay(attempt: number): number {
  const delay = Math.min(50 * 2 ** attempt, MAX_RECONNECT_DELAY_MS)
  return Math.round(delay * (0.8 + Math.random() * 0.4))
}

/**
 * ioredis's `reconnectOnError` for a Sentinel master: a READONLY error means the node was demoted
 * to a replica (https://redis.io/docs/latest/operate/oss_and_stack/management/replication/#read-only-replica),
 * so the connection is dropped and resolved through the sentinels again. `true`, not `2`: the
 * command fails and is never resent (see `nodeOptions`).
 */
export function reconnectOnReadonly(err: Error): boolean {
  // A script's write fails with the same code inside its own message ("... READONLY You can't ...").
  return /\bREADONLY\b/.test(err.message)
}

/**
 * RESP2, set explicitly (ioredis 6 defaults to RESP3, https://redis.io/docs/latest/develop/reference/protocol-spec/):
 * - every connection that subscribes is a connection of its own, so RESP3's one advantage for us
 *   (pub/sub push messages interleaved with commands on one connection) buys nothing;
 * - the replies our code parses (EVAL's Lua tables, MGET, SCAN's [cursor, keys], MULTI/EXEC, PING in
 *   subscribe mode) keep the shapes the code and its tests were written for, on Redis 7.0 as on later
 *   versions, with no HELLO round trip on every (re)connect;
 * - ioredis itself uses RESP2 for its Cluster slot refreshes and its sentinel queries, so one
 *   protocol runs everywhere.
 */
const PROTOCOL = 2

/**
 * The fail-fast options shared by every data connection:
 * - `enableOfflineQueue: false`: while disconnected a command is rejected at once instead of queued;
 * - `commandTimeout`: a frozen server (SIGSTOP) fails each command after this long;
 * - `maxRetriesPerRequest: 0` and `autoResendUnfulfilledCommands: false`: a command in flight when
 *   the connection drops fails; it is never replayed after the caller was told it failed;
 * - `connectTimeout`: a connect that hangs is abandoned and retried.
 */
function nodeOptions(
  options: RedisHandleOptions,
  auth: { username?: string; password?: string },
  tls?: RedisTlsOptions,
) {
  return {
    connectionName: options.connectionName,
    commandTimeout: options.commandTimeoutMs,
    connectTimeout: options.connectTimeoutMs,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    enableReadyCheck: true,
    protocol: PROTOCOL,
    ...(auth.username === undefined ? {} : { username: auth.username }),
    ...(auth.password === undefined ? {} : { password: auth.password }),
    ...(tls === undefined ? {} : { tls: tlsOptions(tls) }),
  } satisfies RedisOptions
}

function tlsOptions(tls: RedisTlsOptions): { ca?: string } {
  return tls.ca === undefined ? {} : { ca: tls.ca }
}

/**
 * An ioredis `Redis` (single node, or the master behind sentinels) or `Cluster` for `target`, that
 * fails fast (see `nodeOptions`) and reconnects forever with `reconnectDelay`. Constructing never
 * throws for an unreachable store, and never connects in the caller's stack: it connects in the
 * background.
 */
export function createRedisHandle(target: RedisTarget, options: RedisHandleOptions): RedisHandle {
  switch (target.kind) {
    case 'single': {
      // ioredis turns TLS on for `tls` whatever the scheme: a redis:// URL with a CA would be
      // TLS the URL does not say, a rediss:// one without is TLS with the system's CAs.
      if (target.tls !== undefined && !target.url.startsWith('rediss://'))
        throw new TypeError('Redis TLS options need a rediss:// URL')
      return new Redis(target.url, {
        ...nodeOptions(options, {}, target.tls),
        enableOfflineQueue: false,
        retryStrategy: reconnectDelay,
        ...options.extra,
      })
    }
    case 'sentinel': {
      // The sentinels tell which node is master (and the ready check that it still is one); when
      // the connection closes, ioredis asks them again. A failover always closes it: a primary that
      // dies takes its connections with it, and Sentinel, when it demotes or reconfigures a node,
      // kills that node's normal and pub/sub clients (CLIENT KILL TYPE normal|pubsub) so that
      // they resolve the master again (https://redis.io/docs/latest/develop/reference/sentinel-clients/).
      // ioredis's `failoverDetector` (+switch-master) is off: a detector left over from a connection
      // that closed by itself calls disconnect while the connection is resolving the new master,
      // and ioredis then ends it for good ("Connection is closed.", status `end`), never to
      // reconnect. A write that still reaches a demoted node (READONLY) reconnects as well.
      const tls =
        target.tls === undefined ? {} : { enableTLSForSentinelMode: true, sentinelTLS: tlsOptions(target.tls) }
      return new Redis({
        ...nodeOptions(options, target, target.tls),
        sentinels: target.sentinels.map(({ host, port }) => ({ host, port })),
        name: target.name,
        role: 'master',
        ...(target.sentinelPassword === undefined ? {} : { sentinelPassword: target.sentinelPassword }),
        ...tls,
        sentinelRetryStrategy: reconnectDelay,
        sentinelCommandTimeout: options.commandTimeoutMs,
        failoverDetector: false,
        reconnectOnError: reconnectOnReadonly,
        enableOfflineQueue: false,
        retryStrategy: reconnectDelay,
        ...options.extra,
      })
    }
    case 'cluster': {
      const clusterOptions: ClusterOptions = {
        redisOptions: { ...nodeOptions(options, target, target.tls), ...options.extra },
        enableOfflineQueue: false,
        enableReadyCheck: true,
        clusterRetryStrategy: reconnectDelay,
        // A node connection that drops (a restarted replica, say) comes back by itself too.
        clusterNodeRetryStrategy: reconnectDelay,
        // MOVED and ASK are followed at once (a resharding); a closed node connection
        // (a failover), CLUSTERDOWN and TRYAGAIN are retried after a short pause while the slot map
        // is refreshed: at most `maxRedirections` tries, so a command fails within about a second
        // instead of hanging through a failover. https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/#redirection-and-resharding
        maxRedirections: 8,
        retryDelayOnFailover: 100,
        retryDelayOnClusterDown: 100,
        retryDelayOnTryAgain: 100,
        slotsRefreshTimeout: options.connectTimeoutMs,
      }
      return new Cluster(
        target.nodes.map(({ host, port }) => ({ host, port })),
        clusterOptions,
      )
    }
  }
}

/**
 * A plain connection to one node of a Cluster target, with its credentials, TLS and fail-fast
 * options, that does not reconnect: its owner decides which node to connect to next.
 */
export function createClusterNodeConnection(
  target: Extract<RedisTarget, { kind: 'cluster' }>,
  node: HostPort,
  options: RedisHandleOptions,
): Redis {
  return new Redis({
    ...nodeOptions(options, target, target.tls),
    host: node.host,
    port: node.port,
    enableOfflineQueue: false,
    autoResubscribe: false,
    retryStrategy: () => null,
    ...options.extra,
  })
}

/** What a log line may say about a target: topology and addresses, never credentials. */
export function describeRedisTarget(target: RedisTarget): Record<string, string | boolean> {
  const list = (nodes: HostPort[]) => nodes.map(({ host, port }) => `${host}:${port}`).join(',')
  switch (target.kind) {
    case 'single': {
      const url = new URL(target.url)
      return { topology: 'single', node: url.host, tls: url.protocol === 'rediss:' }
    }
    case 'sentinel':
      return {
        topology: 'sentinel',
        sentinels: list(target.sentinels),
        master: target.name,
        tls: target.tls !== undefined,
      }
    case 'cluster':
      return { topology: 'cluster', nodes: list(target.nodes), tls: target.tls !== undefined }
  }
}
