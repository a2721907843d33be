import { DenylistUnavailableError } from './denylist.js'
import { closeRedisClient, createRedisClient, type RedisConnectionOptions, redisTargetOf } from './redis-client.js'
import { describeRedisError } from './redis-error.js'
import type { RedisHandle } from './redis-target.js'
import { createFeedSubscriber } from './revocation-feed-subscriber.js'

export interface FeedConnectionOptions extends RedisConnectionOptions {
  channel: string
  /** How often the subscriber connection is PINGed to notice a silent or frozen link. */
  heartbeatMs: number
  /** The caller's clock, for the instant given to `onCurrent` after a heartbeat. */
  clock?: () => number
  /** Every message on `channel`, from SUBSCRIBE on. */
  onMessage(message: string): void
  /**
   * Fill the local copy, on every (re)subscription, after SUBSCRIBE. `commands` is a connection in
   * normal mode; `current()` turns false once this load is superseded. Rejecting means retry.
   */
  load(commands: RedisHandle, current: () => boolean): Promise<void>
  /** The local copy's size and bounds, for the log. */
  stats(): Record<string, number>
  /**
   * Proof that the local copy was current at `at` (the caller's clock, or now when absent): a message
   * received, or a heartbeat answered, while live. Pub/sub is ordered on the connection, so a PING
   * answered means every revocation published before it was sent has arrived.
   */
  onCurrent?(at?: number): void
  /** A full (re)load completed and the feed went live. */
  onResync?(): void
}

export interface FeedConnection {
  /** For direct checks while not live. */
  readonly commands: RedisHandle
  /** Subscribed, fully loaded, heartbeat answered, and no revocation missed since. */
  readonly live: boolean
  /** The local copy missed a revocation (it was full) since the last (re)subscription. */
  readonly incomplete: boolean
  /** Resolves once live; rejects with DenylistUnavailableError if closed first. */
  ready(): Promise<void>
  /** The local copy missed a revocation: not live until a `reload()` fills it completely. */
  markIncomplete(): void
  /** Subscribe and load again, when connected: after a missed revocation, once there is room. */
  reload(): void
  close(): Promise<void>
}

/**
 * The feed's two Redis connections and when the local copy may be trusted.
 *
 * On every (re)connect the subscriber first SUBSCRIBEs and only then `load`s every entry, so a
 * revocation is either published after the subscription or already stored when the load reads:
 * none falls in between, including those made while this process was disconnected. A disconnect,
 * a failed load (retried with backoff), a heartbeat PING without a reply (a frozen server or a
 * silently dead link delivers no messages) or a missed revocation ends `live` until the next
 * complete load.
 */
export function connectRevocationFeed(options: FeedConnectionOptions): FeedConnection {
  const { channel, log } = options
  let session = 0 // bumped on every connect and disconnect; work from an older session is dropped
  let live = false
  let incomplete = false
  let closed = false
  let loadFailures = 0
  let pingInFlight = false
  let retryTimer: NodeJS.Timeout | undefined
  let waiters: { resolve: () => void; reject: (err: Error) => void }[] = []
  let closing: Promise<void> | undefined

  // Direct checks and the load. The subscriber cannot run them: in subscribe mode Redis only
  // accepts (P)SUBSCRIBE, UNSUBSCRIBE and PING.
  const target = redisTargetOf(options)
  const commands = createRedisClient({ ...options, connectionName: 'tokensmith-revocation-check' })
  // Every 'ready' of the subscriber (a reconnect, a Sentinel failover, a move to another Cluster
  // node) starts a session: SUBSCRIBE, then a full load.
  const subscriber = createFeedSubscriber(
    { ...options, target, commands, channel },
    {
      ready: () => void startSession(),
      close: endSession,
      message: (from, message) => {
        if (from !== channel) return
        options.onMessage(message)
        if (live) options.onCurrent?.()
      },
    },
  )

  // Started here, never at import, and unref'd so it never keeps the process alive.
  const heartbeat = setInterval(checkSubscriber, options.heartbeatMs)
  heartbeat.unref()

  function setLive(value: boolean): void {
    if (live === value) return
    live = value
    if (value) {
      log.info(options.stats(), 'revocation feed live')
      for (const waiter of waiters) waiter.resolve()
      waiters = []
    } else if (!closed) {
      log.warn('revocation feed down; checking Redis directly')
    }
  }

  function endSession(): void {
    session += 1
    clearTimeout(retryTimer)
    setLive(false)
  }

  async function startSession(): Promise<void> {
    endSession()
    const id = session
    const current = () => id === session
    // A fresh full load repairs whatever an earlier overflow dropped; a new overflow sets it again.
    incomplete = false
    try {
      await subscriber.subscribe(channel)
      if (!current()) return
      await options.load(commands, current)
      if (!current()) return
      loadFailures = 0
      if (incomplete) {
        log.error(options.stats(), 'revocation feed cannot hold every revocation; checking Redis directly')
        return
      }
      setLive(true)
      options.onResync?.()
      options.onCurrent?.()
    } catch (err) {
      if (!current() || closed) return
      loadFailures += 1
      if (loadFailures === 1)
        log.warn({ redisError: describeRedisError(err) }, 'revocation feed could not load; retrying')
      const delay = Math.min(100 * 2 ** loadFailures, 2_000)
      retryTimer = setTimeout(() => {
        if (current()) void startSession()
      }, delay)
      retryTimer.unref()
    }
  }

  function checkSubscriber(): void {
    if (subscriber.status !== 'ready' || pingInFlight) return
    pingInFlight = true
    const id = session
    const wasLive = live
    const sentAt = options.clock?.()
    subscriber
      .ping()
      .then(
        () => {
          // Live from before the PING to its answer: nothing published before it was missed.
          if (id === session && wasLive && live) options.onCurrent?.(sentAt)
        },
        (err: unknown) => {
          if (id !== session || closed) return
          log.warn({ redisError: describeRedisError(err) }, 'revocation feed heartbeat failed; reconnecting')
          endSession()
          subscriber.reconnect()
        },
      )
      .finally(() => {
        pingInFlight = false
      })
  }

  async function close(): Promise<void> {
    closed = true
    endSession()
    clearInterval(heartbeat)
    for (const waiter of waiters) waiter.reject(new DenylistUnavailableError('revocation check is closed'))
    waiters = []
    await Promise.all([subscriber.close(), closeRedisClient(commands)])
  }

  return {
    commands,
    get live() {
      return live
    },
    get incomplete() {
      return incomplete
    },
    ready() {
      if (live) return Promise.resolve()
      if (closed) return Promise.reject(new DenylistUnavailableError('revocation check is closed'))
      return new Promise((resolve, reject) => waiters.push({ resolve, reject }))
    },
    markIncomplete() {
      incomplete = true
      setLive(false)
    },
    reload() {
      if (subscriber.status === 'ready') void startSession()
    },
    close() {
      closing ??= close()
      return closing
    },
  }
}
