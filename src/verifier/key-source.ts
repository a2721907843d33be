import { invalidToken, temporarilyUnavailable } from './errors.js'
import { fetchJwksJson } from './jwks-fetch.js'
import { parseJwkSet, type JwkSet } from './jwk-set.js'

/** Where verification keys come from: a fixed local set, or a cached remote one. */
export interface KeySource {
  /**
   * The set that holds `kid`. Throws `invalid_token` when no set has it, and `temporarily_unavailable`
   * when no trustworthy set can be had right now (the token cannot be judged, so it is not refused).
   */
  setFor(kid: string): Promise<JwkSet>
  /** JWKS fetches started so far. */
  fetches(): number
}

export function createLocalKeySource(set: JwkSet): KeySource {
  return {
    setFor: async (kid) => {
      if (!set.kids.has(kid)) throw invalidToken('unknown_kid')
      return set
    },
    fetches: () => 0,
  }
}

/** The validated `jwks: { uri, … }` option (see `RemoteJwks`); times in seconds. */
export interface RemoteJwksSettings {
  url: URL
  cacheMaxAge: number
  cooldown: number
  timeout: number
  maxBytes: number
  maxStale: number
}

export interface RemoteKeySourceOptions extends RemoteJwksSettings {
  fetch: typeof fetch
  /** Epoch seconds. */
  clock: () => number
  /**
   * Called once after each fetch attempt: `ok` when a valid JWK Set was fetched and parsed, `error`
   * otherwise (network, status, size, timeout, or a set refused). For metrics; what it throws is ignored.
   */
  onFetch?: (outcome: 'ok' | 'error') => void
}

interface CachedSet {
  set: JwkSet
  /** Epoch seconds of the fetch that produced it. */
  fetchedAt: number
}

/**
 * A remote JWK Set with its own cache, instead of jose's `createRemoteJWKSet`, which has no size cap and
 * forgets the set after a failed refresh.
 *
 * - A set older than `cacheMaxAge` is refreshed on the next request; requests wait for that fetch.
 * - Fetch attempts, whatever their cause or outcome, are at least `cooldown` apart; concurrent callers
 *   share the one in flight. So tokens with random `kid`s cost at most one fetch per cooldown.
 * - After failed refreshes the last good set stays in use until it is `maxStale` old; after that, and
 *   before any set was ever fetched, the answer is 503, never 401 (clients would discard good tokens).
 * - An unknown `kid` is 401 once a fetch made no earlier than the cooldown allows still lacks it. While
 *   the latest fetch failed, it is 503 instead: the key may simply be one the RS could not load.
 */
export function createRemoteKeySource(options: RemoteKeySourceOptions): KeySource {
  let cached: CachedSet | undefined
  let lastAttemptAt = Number.NEGATIVE_INFINITY
  let lastAttemptFailed = false
  let lastError: unknown
  let inFlight: Promise<void> | undefined
  let fetches = 0

  // The clock may be stepped (NTP, a resumed VM). A negative elapsed time means it went backwards: treat
  // the timer as expired rather than waiting out the step, which could block key rotation for minutes.
  const since = (then: number) => {
    const elapsed = options.clock() - then
    return elapsed < 0 ? Number.POSITIVE_INFINITY : elapsed
  }
  const canAttempt = () => since(lastAttemptAt) >= options.cooldown

  const refresh = (): Promise<void> => {
    if (inFlight) return inFlight
    lastAttemptAt = options.clock()
    fetches += 1
    inFlight = fetchJwksJson(options.url, {
      fetch: options.fetch,
      timeoutMs: options.timeout * 1000,
      maxBytes: options.maxBytes,
    })
      .then((json) => {
        cached = { set: parseJwkSet(json), fetchedAt: options.clock() }
        lastAttemptFailed = false
        lastError = undefined
      })
      .catch((error: unknown) => {
        lastAttemptFailed = true
        lastError = error
      })
      .finally(() => {
        inFlight = undefined
        report(lastAttemptFailed ? 'error' : 'ok')
      })
    return inFlight
  }

  /** The `onFetch` hook, kept from changing anything: a throwing hook neither fails the fetch nor rejects. */
  function report(outcome: 'ok' | 'error'): void {
    try {
      options.onFetch?.(outcome)
    } catch {
      // Observability hooks never change the answer.
    }
  }

  const retryAfter = () => Math.max(1, Math.ceil(options.cooldown - since(lastAttemptAt)))

  const unavailable = () => temporarilyUnavailable('jwks_unavailable', retryAfter(), lastError)

  /** The cached set if it may still be used, else a 503. */
  const usable = (): JwkSet => {
    // A set whose age the stepped clock cannot tell is still the last good one; `current` refreshes it.
    const age = cached ? options.clock() - cached.fetchedAt : Number.POSITIVE_INFINITY
    if (!cached || age > options.maxStale) throw unavailable()
    return cached.set
  }

  /** Refreshes first when the set is missing or due, within the cooldown; then returns what may be used. */
  const current = async (): Promise<JwkSet> => {
    const due = !cached || since(cached.fetchedAt) > options.cacheMaxAge
    if (due && inFlight) await inFlight
    else if (due && canAttempt()) await refresh()
    return usable()
  }

  return {
    setFor: async (kid) => {
      const set = await current()
      if (set.kids.has(kid)) return set
      // Unknown kid: maybe a key published since the last fetch (rotation). One shared refetch per cooldown.
      if (inFlight) await inFlight
      else if (canAttempt()) await refresh()
      const after = usable()
      if (after.kids.has(kid)) return after
      if (lastAttemptFailed) throw unavailable()
      throw invalidToken('unknown_kid')
    },
    fetches: () => fetches,
  }
}
