import { createHash } from 'node:crypto'
import type { RedisHandle } from '../denylist/redis-target.js'
import type { Client } from '../clients/registry.js'
import type { Deps } from '../deps.js'
import { describeRedisError } from '../denylist/redis-error.js'
import { OAuthError } from '../errors.js'
import { auditOf } from '../observability/audit.js'

/**
 * Per-client issuance quotas: a client whose registry entry has `quota` gets at most that many tokens
 * per minute, over every instance; past it the token endpoint answers 429 (RFC 6585 §4) with
 * `Retry-After` (RFC 9110 §10.2.3) and an OAuth-shaped body (`temporarily_unavailable`, RFC 6749
 * §5.2 shape). Other clients are unaffected: each client has its own count.
 *
 * A quota is a budget, not a rate limiter: windows are fixed calendar minutes (epoch seconds / 60), so
 * a client may get up to twice its quota within one minute straddling a boundary (N at 12:00:59, N
 * more at 12:01:00). What it bounds is the tokens issued per calendar minute.
 *
 * Counted where the denylist lives:
 * - with a Redis denylist (`deps.denylist.shared`), in Redis, one round trip per issuance: a Lua script
 *   under `${keyPrefix}quota:${clientId}:${window}`, which checks and counts in one atomic step and
 *   lives two windows (Redis expires it), so every instance on that Redis shares the count;
 * - otherwise in memory, per instance: one number per client that was issued a token in the current
 *   minute (at most the registry's size), all dropped when the minute turns.
 *
 * Only issued tokens count: a refused request (429) takes no slot, so a client retrying past its quota
 * does not push its own recovery back, and the count is exactly the tokens issued in the window. A slot
 * is taken before the token is signed, so the rare issuance that fails after the check (a 500) still
 * used one.
 *
 * Redis unreachable, failing or slower than the connection's command timeout: issuance keeps working,
 * and each instance counts on its own (so a client may get up to its quota at each instance)
 * until Redis answers again; one warning per outage, one line when shared counting resumes. While it
 * is out, Redis is tried again at most once a second, so a frozen Redis does not slow every issuance.
 * Each instance also keeps its own count while Redis answers, so its fallback starts from what it
 * issued this window rather than from zero.
 *
 * A client's first refusal in a window is the `limit.tripped` audit event (`limit: "quota"`, `until`
 * the window's end); its further refusals in that window are not (the request log has each 429):
 * one event per client per window per instance, however hard it retries.
 */

/** Seconds per quota window. */
export const QUOTA_WINDOW = 60

/** After a Redis failure, seconds during which counting stays local before Redis is tried again. */
const REDIS_RETRY_INTERVAL = 1

/** Milliseconds a window's Redis key lives: its own minute and the next, for instances whose clocks differ. */
const KEY_TTL_MS = 2 * QUOTA_WINDOW * 1000

/**
 * 429 for a client past its quota: `Retry-After` is the seconds until the window ends and frees a slot
 * (1 to 60). `detail` goes to the log only.
 */
export const quotaExceeded = (retryAfter: number, detail: string) =>
  new OAuthError('temporarily_unavailable', 429, 'this client has reached its token quota, retry later', {
    detail,
    headers: { 'Retry-After': String(Math.min(QUOTA_WINDOW, Math.max(1, Math.ceil(retryAfter)))) },
  })

/**
 * Count one issuance unless the quota is used up. KEYS: the client's key of this window. ARGV: quota,
 * key TTL in ms. Replies 0 when the quota is used up (nothing counted), else the count with this one.
 */
const COUNT_ISSUANCE = `
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used >= tonumber(ARGV[1]) then return 0 end
used = redis.call('INCR', KEYS[1])
if used == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return used
`
const COUNT_ISSUANCE_SHA = createHash('sha1').update(COUNT_ISSUANCE).digest('hex')

/** Issuance counts of one server (deps). */
interface QuotaState {
  /** The window `counts` belong to (epoch seconds / QUOTA_WINDOW, floored). */
  window: number
  /** Tokens this instance issued in `window`, per client with a quota. */
  counts: Map<string, number>
  /** Clients refused in `window` (their `limit.tripped` event written). */
  tripped: Set<string>
  /** Redis failed: counting is local, and Redis is not tried before this instant (epoch seconds). */
  redisDown: boolean
  redisRetryAt: number
}

const states = new WeakMap<Deps, QuotaState>()

/** One quota state per server (deps), made on first use. */
function quotaStateOf(deps: Deps): QuotaState {
  let state = states.get(deps)
  if (!state) {
    state = { window: Number.NaN, counts: new Map(), tripped: new Set(), redisDown: false, redisRetryAt: 0 }
    states.set(deps, state)
  }
  return state
}

/** The counts of `window`: those of another window are dropped whole (bounded by the clients issued to). */
function countsIn(state: QuotaState, window: number): Map<string, number> {
  if (state.window !== window) {
    state.window = window
    state.counts.clear()
    state.tripped.clear()
  }
  return state.counts
}

const DONE: Promise<void> = Promise.resolve()

/**
 * Counts this issuance against `client`'s quota, or rejects with a 429 (`quotaExceeded`) when the quota
 * of the current minute is used up. Call it once per token about to be issued, after every check that
 * can refuse the request and before signing. A client without a quota costs nothing: no Redis call, no
 * allocation (the same resolved promise every time). `requestId` is the request's id: a trip's
 * `limit.tripped` event carries it.
 */
export function checkQuota(deps: Deps, client: Client, requestId?: string): Promise<void> {
  const quota = client.quota
  if (quota === undefined) return DONE
  const now = deps.clock()
  const window = Math.floor(now / QUOTA_WINDOW)
  const state = quotaStateOf(deps)
  const shared = deps.denylist.shared
  if (shared !== undefined && !(state.redisDown && now < state.redisRetryAt)) {
    return countShared(deps, state, shared, client.id, quota, now, window, requestId)
  }
  if (countLocally(state, client.id, quota, window)) return DONE
  return Promise.reject(
    refuse(
      deps,
      state,
      client.id,
      quota,
      now,
      window,
      shared === undefined ? '' : ' (this instance; redis unreachable)',
      requestId,
    ),
  )
}

/** The 429 of the window `window`, seen at `now`. */
const exceeded = (quota: number, now: number, window: number, where: string) =>
  quotaExceeded((window + 1) * QUOTA_WINDOW - now, `quota of ${quota} tokens per minute reached${where}`)

/** The 429 of a refused issuance; the client's first in this window is also the `limit.tripped` event. */
function refuse(
  deps: Deps,
  state: QuotaState,
  clientId: string,
  quota: number,
  now: number,
  window: number,
  where: string,
  requestId: string | undefined,
): OAuthError {
  countsIn(state, window) // a new window forgets the last one's trips too
  if (!state.tripped.has(clientId)) {
    state.tripped.add(clientId)
    auditOf(deps).emit(
      'limit.tripped',
      { limit: 'quota', client_id: clientId, until: (window + 1) * QUOTA_WINDOW },
      requestId,
    )
  }
  return exceeded(quota, now, window, where)
}

/** Counts in memory; false (nothing counted) when this instance's count is at the quota. */
function countLocally(state: QuotaState, clientId: string, quota: number, window: number): boolean {
  const counts = countsIn(state, window)
  const used = counts.get(clientId) ?? 0
  if (used >= quota) return false
  counts.set(clientId, used + 1)
  return true
}

/** Counts in Redis (one round trip); on any failure, locally, with one warning per outage. */
async function countShared(
  deps: Deps,
  state: QuotaState,
  shared: { readonly redis: RedisHandle; readonly keyPrefix: string },
  clientId: string,
  quota: number,
  now: number,
  window: number,
  requestId: string | undefined,
): Promise<void> {
  const key = `${shared.keyPrefix}quota:${clientId}:${window}`
  let reply: unknown
  try {
    reply = await countInRedis(shared.redis, key, quota)
    if (typeof reply !== 'number' || !Number.isInteger(reply) || reply < 0) {
      throw new Error(`unexpected reply to the quota script (${typeof reply})`)
    }
  } catch (error) {
    if (!state.redisDown) {
      deps.log.warn(
        { redisError: describeRedisError(error), client_id: clientId },
        'issuance quotas counted per instance until redis answers again',
      )
    }
    state.redisDown = true
    state.redisRetryAt = deps.clock() + REDIS_RETRY_INTERVAL
    if (countLocally(state, clientId, quota, window)) return
    throw refuse(deps, state, clientId, quota, now, window, ' (this instance; redis unreachable)', requestId)
  }
  if (state.redisDown) {
    state.redisDown = false
    deps.log.info('issuance quotas shared through redis again')
  }
  if (reply === 0) throw refuse(deps, state, clientId, quota, now, window, '', requestId)
  // This instance's own share of the window: where its count starts should Redis fail.
  const counts = countsIn(state, window)
  counts.set(clientId, (counts.get(clientId) ?? 0) + 1)
}

/** EVALSHA, falling back to EVAL once when Redis does not hold the script yet (after a restart, say). */
async function countInRedis(redis: RedisHandle, key: string, quota: number): Promise<unknown> {
  try {
    return await redis.evalsha(COUNT_ISSUANCE_SHA, 1, key, quota, KEY_TTL_MS)
  } catch (error) {
    if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error
    return redis.eval(COUNT_ISSUANCE, 1, key, quota, KEY_TTL_MS)
  }
}
