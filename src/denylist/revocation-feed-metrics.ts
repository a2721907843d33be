import { createRequire } from 'node:module'
import type { Counter, Registry } from 'prom-client'

/**
 * `createRevocationFeed({ metrics: { registry } })`: the prom-client `Registry` the resource server
 * scrapes. Without it the feed keeps no metrics and never loads prom-client.
 */
export interface RevocationFeedMetricsOptions {
  registry: Registry
}

export const FEED_UP = 'tokensmith_revocation_feed_up'
export const FEED_LAG_SECONDS = 'tokensmith_revocation_feed_lag_seconds'
export const FEED_RESYNCS_TOTAL = 'tokensmith_revocation_feed_resyncs_total'

/** What one feed tells its registry's gauges, read at scrape time. */
export interface FeedProbe {
  /** Subscribed and fully loaded (`RevocationFeed.live`). */
  live(): boolean
  /** Seconds since the feed last had proof of being current. */
  lag(): number
}

/** One feed's handle on the registry's metrics. */
export interface FeedMetrics {
  /** A full (re)load completed and the feed went live. */
  resynced(): void
  /** The feed is closed: its gauges stop counting it. */
  detach(): void
}

interface RegistryState {
  feeds: Set<FeedProbe>
  resyncs: Counter
}

type PromClient = typeof import('prom-client')

/**
 * prom-client is an optional peer dependency of `tokensmith/revocation-feed`: loaded here, synchronously
 * and only when `metrics` is given.
 */
function loadPromClient(): PromClient {
  try {
    return createRequire(import.meta.url)('prom-client') as PromClient
  } catch (error) {
    throw new TypeError('createRevocationFeed: metrics needs the prom-client package (npm install prom-client)', {
      cause: error,
    })
  }
}

const byRegistry = new WeakMap<Registry, RegistryState>()

function stateOf(registry: Registry): RegistryState {
  const known = byRegistry.get(registry)
  if (known) return known
  const { Counter, Gauge } = loadPromClient()
  const feeds = new Set<FeedProbe>()
  // Several feeds in one registry (rare) are reported as one: down if any is down, the largest lag.
  new Gauge({
    name: FEED_UP,
    help: 'Revocation feed subscribed and fully loaded (1), or checking Redis directly (0)',
    registers: [registry],
    collect() {
      this.set(feeds.size > 0 && [...feeds].every((feed) => feed.live()) ? 1 : 0)
    },
  })
  new Gauge({
    name: FEED_LAG_SECONDS,
    help: 'Seconds since the revocation feed last had proof of being current (a message, an answered heartbeat or a full load)',
    registers: [registry],
    collect() {
      this.set(Math.max(0, ...[...feeds].map((feed) => feed.lag())))
    },
  })
  const resyncs = new Counter({
    name: FEED_RESYNCS_TOTAL,
    help: 'Full loads of the revocation feed after (re)subscribing, the first included',
    registers: [registry],
  })
  const state = { feeds, resyncs }
  byRegistry.set(registry, state)
  return state
}

/** Registers `probe` with the feed metrics of `options.registry` (created on first use). */
export function feedMetrics(options: RevocationFeedMetricsOptions, probe: FeedProbe): FeedMetrics {
  const registry = typeof options === 'object' && options !== null ? options.registry : undefined
  if (
    typeof registry !== 'object' ||
    registry === null ||
    typeof registry.registerMetric !== 'function' ||
    typeof registry.getSingleMetric !== 'function'
  ) {
    throw new TypeError('createRevocationFeed: metrics must be { registry }, a prom-client Registry')
  }
  const state = stateOf(registry)
  state.feeds.add(probe)
  return {
    resynced: () => state.resyncs.inc(),
    detach: () => void state.feeds.delete(probe),
  }
}
