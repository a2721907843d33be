import type { Redis } from 'ioredis'
import { clientRevocationCovers, DenylistUnavailableError, type EntryKind, type RevocationCheck } from './denylist.js'
import { describeRedisError } from './redis-error.js'
import {
  closeRedisClient,
  createRedisClient,
  isRevokedInRedis,
  parseRevokedAt,
  revocationChannel,
  unavailable,
  type RedisConnectionOptions,
  type RevocationMessage,
} from './redis.js'

export interface RedisRevocationCheckOptions extends RedisConnectionOptions {
  /** Upper bound on revocations held locally. Default 1,000,000. */
  maxEntries?: number
  /** How often the subscriber connection is PINGed to notice a silent or frozen link. Default 1000 ms. */
  heartbeatMs?: number
  /** How often expired entries are dropped. Default 30 s. */
  sweepIntervalMs?: number
}

/** A RevocationCheck that answers from memory while its Redis feed is live. */
export interface RedisRevocationCheck extends RevocationCheck {
  /** True while subscribed and fully loaded: `isRevoked` then answers locally, with no round trip. */
  readonly live: boolean
  /** Resolves once the feed is live; rejects with DenylistUnavailableError if closed first. */
  ready(): Promise<void>
  close(): Promise<void>
}

const DEFAULT_MAX_ENTRIES = 1_000_000
const DEFAULT_HEARTBEAT_MS = 1_000
const DEFAULT_SWEEP_INTERVAL_MS = 30_000
const SCAN_COUNT = 1_000

/**
 * Revocation check for resource servers that must not pay a Redis round trip per request.
 *
 * A local map of revoked ids (tokens, keys, and clients with their revocation instant) is kept
 * current by a subscriber connection on `${keyPrefix}revocations`. On every (re)connect it first
 * SUBSCRIBEs and only then loads every entry with SCAN + PTTL (+ GET for a client's instant), so a
 * revocation is either published after the subscription or already stored when the scan runs:
 * none falls in between, including those made while this process was disconnected.
 *
 * While the feed is down (disconnected, loading, heartbeat failed, or the local map overflowed),
 * each check asks Redis directly; if that fails too it throws DenylistUnavailableError, which the
 * middleware answers with 503 (checklist decision 4). It never answers false for "don't know".
 */
export function createRedisRevocationCheck(options: RedisRevocationCheckOptions): RedisRevocationCheck {
  const { keyPrefix, clock, log } = options
  const channel = revocationChannel(keyPrefix)
  const maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES
  // id -> until (epoch seconds), one map per namespace; a client's entry also holds its revocation instant.
  const entries = { jti: new Map<string, number>(), kid: new Map<string, number>() }
  const clients = new Map<string, { revokedAt: number; until: number }>()

  let session = 0 // bumped on every connect and disconnect; work from an older session is dropped
  let live = false
  let overflowed = false // a revocation could not be stored locally: the map is incomplete until reloaded
  let closed = false
  let loadFailures = 0
  let lastFullSweep = Number.NEGATIVE_INFINITY
  let pingInFlight = false
  let retryTimer: NodeJS.Timeout | undefined
  let waiters: { resolve: () => void; reject: (err: Error) => void }[] = []
  let closing: Promise<void> | undefined

  // Direct checks and the SCAN load. The subscriber cannot run them: in subscribe mode Redis only
  // accepts (P)SUBSCRIBE, UNSUBSCRIBE and PING.
  const commands = createRedisClient({ ...options, connectionName: 'tokensmith-revocation-check' })
  // We resubscribe ourselves on 'ready' so that every resubscription is followed by a full load.
  const subscriber = createRedisClient({
    ...options,
    connectionName: 'tokensmith-revocation-feed',
    extra: { autoResubscribe: false },
  })

  subscriber.on('ready', () => void startSession())
  subscriber.on('close', endSession)
  subscriber.on('message', (from: string, message: string) => {
    if (from === channel) applyMessage(message)
  })

  // Timers start here, never at import, and are unref'd so they never keep the process alive.
  const heartbeat = setInterval(checkSubscriber, options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS)
  heartbeat.unref()
  const sweeper = setInterval(sweepAndRepair, options.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS)
  sweeper.unref()

  function setLive(value: boolean): void {
    if (live === value) return
    live = value
    if (value) {
      log.info({ entries: size() }, 'revocation feed live')
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
    // A fresh full load repairs whatever an earlier overflow dropped; a new overflow sets it again.
    overflowed = false
    try {
      await subscriber.subscribe(channel)
      if (id !== session) return
      await loadAll(id)
      if (id !== session) return
      loadFailures = 0
      if (overflowed) {
        log.error({ maxEntries }, 'revocation feed cannot hold every revocation; checking Redis directly')
        return
      }
      setLive(true)
    } catch (err) {
      if (id !== session || closed) return
      loadFailures += 1
      if (loadFailures === 1) log.warn({ redisError: describeRedisError(err) }, 'revocation feed could not load; retrying')
      const delay = Math.min(100 * 2 ** loadFailures, 2_000)
      retryTimer = setTimeout(() => {
        if (id === session) void startSession()
      }, delay)
      retryTimer.unref()
    }
  }

  /** SCAN is on the prefix only (escaped), so glob characters inside ids cannot change the match. */
  async function loadAll(id: number): Promise<void> {
    const match = `${escapeGlob(keyPrefix)}*`
    let cursor = '0'
    do {
      const [next, keys] = await commands.scan(cursor, 'MATCH', match, 'COUNT', SCAN_COUNT)
      if (id !== session) return
      cursor = next
      const found = keys.flatMap((key) => parseEntryKey(keyPrefix, key) ?? [])
      if (found.length === 0) continue
      // A client entry's value is its revocation instant: read it with its PTTL.
      const pipeline = commands.pipeline()
      for (const entry of found) {
        pipeline.pttl(entry.key)
        if (entry.kind === 'client') pipeline.get(entry.key)
      }
      const replies = await pipeline.exec()
      if (id !== session) return
      if (replies === null) throw unavailable('revocation feed load aborted')
      const now = clock()
      let index = 0
      const reply = (): unknown => {
        const [err, value] = replies[index++] ?? [unavailable('missing reply'), undefined]
        if (err) throw unavailable('revocation feed load failed', err)
        return value
      }
      for (const entry of found) {
        const until = untilFromPttl(Number(reply()), now)
        const value = entry.kind === 'client' ? reply() : undefined
        if (until === undefined) continue
        if (entry.kind === 'client') {
          // Gone meanwhile: nothing to record. Not a number (written by hand): every token of the client.
          if (typeof value === 'string') recordClient(entry.id, parseRevokedAt(value), until)
        } else {
          record(entry.kind, entry.id, until)
        }
      }
    } while (cursor !== '0')
  }

  function applyMessage(message: string): void {
    let parsed: unknown
    try {
      parsed = JSON.parse(message)
    } catch {
      parsed = undefined
    }
    if (!isRevocationMessage(parsed)) {
      log.warn({ bytes: message.length }, 'ignoring malformed message on the revocation channel')
      return
    }
    if (parsed.t === 'client') recordClient(parsed.id, parsed.revokedAt, parsed.until)
    else record(parsed.t, parsed.id, parsed.until)
  }

  function size(): number {
    return entries.jti.size + entries.kid.size + clients.size
  }

  function sweep(now: number): void {
    lastFullSweep = now
    for (const map of Object.values(entries)) {
      for (const [id, until] of map) if (until <= now) map.delete(id)
    }
    for (const [id, entry] of clients) if (entry.until <= now) clients.delete(id)
  }

  /** False when there is no room for a new entry: the feed then stops answering locally. */
  function hasRoom(now: number): boolean {
    if (size() >= maxEntries && now > lastFullSweep) sweep(now)
    if (size() < maxEntries) return true
    // Dropping or evicting would un-revoke a token: stop answering locally instead.
    if (!overflowed) log.error({ maxEntries }, 'revocation feed full; checking Redis directly')
    overflowed = true
    setLive(false)
    return false
  }

  function record(kind: 'jti' | 'kid', rawId: string, until: number): void {
    const now = clock()
    if (until <= now) return
    const id = wellFormed(rawId)
    const map = entries[kind]
    const current = map.get(id)
    if (current !== undefined) {
      if (until > current) map.set(id, until) // never shorten (RV-6)
      return
    }
    if (hasRoom(now)) map.set(id, until)
  }

  /** Of two instants the later is kept: it covers every token the earlier one did. */
  function recordClient(rawId: string, revokedAt: number, until: number): void {
    const now = clock()
    if (until <= now) return
    const id = wellFormed(rawId)
    const current = clients.get(id)
    if (current !== undefined) {
      clients.set(id, { revokedAt: laterInstant(current.revokedAt, revokedAt), until: Math.max(current.until, until) })
      return
    }
    if (hasRoom(now)) clients.set(id, { revokedAt, until })
  }

  function isLive(kind: 'jti' | 'kid', rawId: string, now: number): boolean {
    const until = entries[kind].get(wellFormed(rawId))
    return until !== undefined && until > now
  }

  function isClientRevoked(rawId: string | undefined, iat: number | undefined, now: number): boolean {
    if (rawId === undefined) return false
    const entry = clients.get(wellFormed(rawId))
    return entry !== undefined && entry.until > now && clientRevocationCovers(entry.revokedAt, iat)
  }

  function checkSubscriber(): void {
    if (subscriber.status !== 'ready' || pingInFlight) return
    pingInFlight = true
    const id = session
    subscriber
      .ping()
      .then(
        () => undefined,
        (err: unknown) => {
          if (id !== session || closed) return
          // A frozen server or a silently dead link delivers no messages: stop trusting the map.
          log.warn({ redisError: describeRedisError(err) }, 'revocation feed heartbeat failed; reconnecting')
          endSession()
          subscriber.disconnect(true)
        },
      )
      .finally(() => {
        pingInFlight = false
      })
  }

  function sweepAndRepair(): void {
    sweep(clock())
    if (overflowed && size() < maxEntries && subscriber.status === 'ready') void startSession()
  }

  return {
    get live() {
      return live
    },
    async isRevoked(token) {
      if (closed) throw new DenylistUnavailableError('revocation check is closed')
      if (!live) return isRevokedInRedis(commands, keyPrefix, token)
      const now = clock()
      return (
        isLive('jti', token.jti, now) ||
        (token.kid !== undefined && isLive('kid', token.kid, now)) ||
        isClientRevoked(token.client_id, token.iat, now)
      )
    },
    ready() {
      if (live) return Promise.resolve()
      if (closed) return Promise.reject(new DenylistUnavailableError('revocation check is closed'))
      return new Promise((resolve, reject) => waiters.push({ resolve, reject }))
    },
    close() {
      closing ??= closeFeed()
      return closing
    },
  }

  async function closeFeed(): Promise<void> {
    closed = true
    endSession()
    clearInterval(heartbeat)
    clearInterval(sweeper)
    for (const waiter of waiters) waiter.reject(new DenylistUnavailableError('revocation check is closed'))
    waiters = []
    await Promise.all([closeRedisClient(subscriber), closeRedisClient(commands)])
    entries.jti.clear()
    entries.kid.clear()
    clients.clear()
  }
}

/** Key prefixes may contain glob characters; SCAN MATCH must treat them literally. */
export function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&')
}

/** Our own keys only: anything else under the prefix (rate limits, ...) is not a revocation. */
function parseEntryKey(keyPrefix: string, key: string): { key: string; kind: EntryKind; id: string } | undefined {
  if (!key.startsWith(keyPrefix)) return undefined
  const rest = key.slice(keyPrefix.length)
  for (const kind of ['jti', 'kid', 'client'] as const) {
    if (rest.startsWith(`${kind}:`)) return { key, kind, id: rest.slice(kind.length + 1) }
  }
  return undefined
}

/**
 * PTTL -> until. -2: gone meanwhile. -1: no TTL (written by hand), revoked for good. The extra second
 * covers `clock()` being whole seconds; erring long is harmless, the token expires by exp + T anyway.
 */
function untilFromPttl(pttl: number, now: number): number | undefined {
  if (pttl === -2 || Number.isNaN(pttl)) return undefined
  if (pttl === -1) return Number.POSITIVE_INFINITY
  return now + Math.ceil(pttl / 1000) + 1
}

function isRevocationMessage(value: unknown): value is RevocationMessage {
  if (typeof value !== 'object' || value === null) return false
  const { t, id, until, revokedAt } = value as Record<string, unknown>
  if (typeof id !== 'string' || typeof until !== 'number') return false
  return t === 'jti' || t === 'kid' || (t === 'client' && typeof revokedAt === 'number')
}

/** NaN (a hand-written value: every token of the client) wins over any instant. */
function laterInstant(a: number, b: number): number {
  return Number.isNaN(a) || Number.isNaN(b) ? Number.NaN : Math.max(a, b)
}

/**
 * Redis stores ids as UTF-8, which turns a lone surrogate into U+FFFD, so an id read back by SCAN
 * differs from the one published as JSON. Normalising both sides keeps lookups consistent.
 */
function wellFormed(id: string): string {
  return /[\uD800-\uDFFF]/.test(id) ? Buffer.from(id, 'utf8').toString('utf8') : id
}
