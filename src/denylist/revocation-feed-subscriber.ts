import { EventEmitter } from 'node:events'
import type { Cluster, Redis } from 'ioredis'
import {
  closeRedisClient,
  createRedisClient,
  isCluster,
  absorbLateSocketErrors,
  logConnectionState,
  type RedisConnectionOptions,
} from './redis-client.js'
import { unavailable } from './redis-error.js'
import { createClusterNodeConnection, reconnectDelay, type RedisHandle, type RedisTarget } from './redis-target.js'

/** The feed's subscriber connection, on every topology. */
export interface FeedSubscriber {
  /** 'ready' while subscribed or ready to subscribe. */
  readonly status: string
  subscribe(channel: string): Promise<unknown>
  ping(): Promise<unknown>
  /** Drop the connection (a failed heartbeat): it comes back, on another node of a Cluster if need be. */
  reconnect(): void
  close(): Promise<void>
}

export interface FeedSubscriberEvents {
  /** A connection is ready: start a session (SUBSCRIBE, then load). */
  ready(): void
  /** The connection is lost: whatever was subscribed on it is gone. */
  close(): void
  message(channel: string, message: string): void
}

/**
 * The subscriber. A single node or a Sentinel master: one ioredis connection that reconnects by
 * itself (through the sentinels to the current master after a failover) and does not resubscribe
 * on its own: `ready` does, then loads.
 *
 * A Cluster: classic pub/sub is broadcast to every node (https://redis.io/docs/latest/develop/interact/pubsub/#pubsub-and-cluster),
 * but ioredis's own cluster subscriber moves to another node without telling anyone, and a move
 * needs a new load like any reconnect. So the subscriber is a plain connection of ours to the
 * primary that owns the prefix's slot (`clusterSlotOwner`: where every revocation is written and
 * published, so a PING answered there proves as much as on a single node), re-created, on whichever
 * primary owns the slot then, each time it is lost. Every 'ready' is a new session.
 */
export function createFeedSubscriber(
  options: RedisConnectionOptions & { target: RedisTarget; commands: RedisHandle; channel: string },
  events: FeedSubscriberEvents,
): FeedSubscriber {
  const { commands, target } = options
  if (target.kind !== 'cluster' || !isCluster(commands)) {
    const subscriber = createRedisClient({
      log: options.log,
      redis: target,
      ...(options.commandTimeoutMs === undefined ? {} : { commandTimeoutMs: options.commandTimeoutMs }),
      ...(options.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: options.connectTimeoutMs }),
      connectionName: 'tokensmith-revocation-feed',
      // We resubscribe ourselves on 'ready' so that every resubscription is followed by a full load.
      extra: { autoResubscribe: false },
    })
    subscriber.on('ready', events.ready)
    subscriber.on('close', events.close)
    subscriber.on('message', events.message)
    return {
      get status() {
        return subscriber.status
      },
      subscribe: (channel) => subscriber.subscribe(channel),
      ping: () => subscriber.ping(),
      // Only a connection that is up is dropped: one already reconnecting comes back by itself, and
      // a Sentinel connector told to disconnect while it asks the sentinels ends for good.
      reconnect: () => {
        if (subscriber.status === 'ready' || subscriber.status === 'connect') subscriber.disconnect(true)
      },
      close: () => closeRedisClient(subscriber),
    }
  }
  return clusterSubscriber({ ...options, target, commands }, events)
}

function clusterSubscriber(
  options: RedisConnectionOptions & {
    target: Extract<RedisTarget, { kind: 'cluster' }>
    commands: Cluster
    channel: string
  },
  events: FeedSubscriberEvents,
): FeedSubscriber {
  const connectionName = 'tokensmith-revocation-feed'
  // One log line per state change over the successive node connections.
  const state = new EventEmitter()
  logConnectionState(state, options.log, connectionName)
  let current: Redis | undefined
  let attempt = 0
  let closed = false
  let timer: NodeJS.Timeout | undefined

  function schedule(): void {
    if (closed) return
    clearTimeout(timer)
    timer = setTimeout(() => void connect(), reconnectDelay(attempt++))
    timer.unref()
  }

  async function connect(): Promise<void> {
    let owner: Redis
    try {
      owner = await clusterSlotOwner(options.commands, options.channel)
    } catch (err) {
      // Before the Cluster has its slot map (at start-up) there is nothing to report: its own
      // connection logs an outage.
      if (options.commands.status === 'ready') state.emit('error', err)
      schedule()
      return
    }
    if (closed) return
    const { host, port } = owner.options
    const node = createClusterNodeConnection(
      options.target,
      { host: host ?? '', port: port ?? 0 },
      {
        connectionName,
        commandTimeoutMs: options.commandTimeoutMs ?? 500,
        connectTimeoutMs: options.connectTimeoutMs ?? 1_000,
      },
    )
    absorbLateSocketErrors(node)
    current = node
    node.on('ready', () => {
      attempt = 0
      state.emit('ready')
      events.ready()
    })
    node.on('error', (err: unknown) => state.emit('error', err))
    node.on('message', events.message)
    node.on('close', () => {
      state.emit('close')
      events.close()
    })
    // It never reconnects by itself (its node may be gone for good): find the owner again.
    node.once('end', () => {
      if (current === node) current = undefined
      schedule()
    })
  }

  void connect()
  return {
    get status() {
      return current?.status ?? 'connecting'
    },
    subscribe(channel) {
      if (current === undefined) return Promise.reject(unavailable('revocation feed subscriber not connected'))
      return current.subscribe(channel)
    },
    ping() {
      if (current === undefined) return Promise.reject(unavailable('revocation feed subscriber not connected'))
      return current.ping()
    },
    reconnect() {
      current?.disconnect()
    },
    async close() {
      closed = true
      clearTimeout(timer)
      if (current !== undefined) await closeRedisClient(current)
    },
  }
}

/**
 * The primary that owns `key`'s slot: each primary the Cluster knows is asked `EXISTS key` on its
 * own connection (not routed by the Cluster), and only the owner answers; the others redirect
 * (MOVED, or ASK while the slot migrates: https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/#redirection-and-resharding).
 * With no answer (a failover under way, a stale slot map), the slot map is refreshed and this
 * rejects with DenylistUnavailableError: the caller retries.
 */
export async function clusterSlotOwner(cluster: Cluster, key: string): Promise<Redis> {
  for (const node of cluster.nodes('master')) {
    try {
      await node.exists(key)
      return node
    } catch {
      // Redirected, or unreachable: not the one to use.
    }
  }
  cluster.refreshSlotsCache()
  throw unavailable('no reachable Redis Cluster primary owns the revocation slot')
}
