import { createRequire } from 'node:module'
import type { Counter, Registry } from 'prom-client'

import type { RejectReason } from './errors.js'

/**
 * `bearerAuth({ metrics: { registry } })`: the prom-client `Registry` the application scrapes. Without
 * it the middleware keeps no metrics and never loads prom-client.
 */
export interface VerifierMetricsOptions {
  registry: Registry
}

/** How the middleware answered a request: passed, refused (400/401/403), 503, or passed by `failOpen`. */
export type RequestOutcome = 'accepted' | 'rejected' | 'unavailable' | 'fail_open'

/** One JWKS fetch attempt, body parsed and checked (`ok`), or not (`error`). */
export type FetchOutcome = 'ok' | 'error'

/** What the middleware records; one instance per registry, shared by every middleware that uses it. */
export interface VerifierMetrics {
  /** `reason` is the stable reject reason, `''` for an accepted request. */
  request(outcome: RequestOutcome, reason: RejectReason | ''): void
  jwksFetch(outcome: FetchOutcome): void
}

export const RS_REQUESTS_TOTAL = 'tokensmith_rs_requests_total'
export const RS_JWKS_FETCHES_TOTAL = 'tokensmith_rs_jwks_fetches_total'

/** The 503 reasons, shown at 0 from the start so `increase()` sees the first one. */
const UNAVAILABLE_REASONS: readonly RejectReason[] = [
  'denylist_unavailable',
  'jwks_unavailable',
  'dpop_replay_unavailable',
]

type PromClient = typeof import('prom-client')

/**
 * prom-client is an optional peer dependency of `tokensmith/verifier`: it is loaded here, synchronously
 * and only when `metrics` is given, so a resource server without metrics neither installs nor loads it.
 */
function loadPromClient(): PromClient {
  try {
    return createRequire(import.meta.url)('prom-client') as PromClient
  } catch (error) {
    throw new TypeError('bearerAuth: metrics needs the prom-client package (npm install prom-client)', {
      cause: error,
    })
  }
}

const byRegistry = new WeakMap<Registry, VerifierMetrics>()

/**
 * The resource-server metrics in `registry`, created on first use. Several middlewares (one per route
 * group, say) passing the same registry share the same series. A metric of the same name registered
 * by anything else makes prom-client throw here, at start-up.
 */
export function verifierMetrics(registry: Registry): VerifierMetrics {
  const known = byRegistry.get(registry)
  if (known) return known
  const { Counter: CounterClass } = loadPromClient()
  const requests: Counter<'outcome' | 'reason'> = new CounterClass({
    name: RS_REQUESTS_TOTAL,
    help: 'Requests answered by bearerAuth, by outcome (accepted, rejected, unavailable, fail_open) and reject reason',
    labelNames: ['outcome', 'reason'],
    registers: [registry],
  })
  const fetches: Counter<'outcome'> = new CounterClass({
    name: RS_JWKS_FETCHES_TOTAL,
    help: "Fetches of the issuer's JWK Set by bearerAuth, by outcome (ok, error)",
    labelNames: ['outcome'],
    registers: [registry],
  })
  requests.inc({ outcome: 'accepted', reason: '' }, 0)
  for (const reason of UNAVAILABLE_REASONS) requests.inc({ outcome: 'unavailable', reason }, 0)
  fetches.inc({ outcome: 'ok' }, 0)
  fetches.inc({ outcome: 'error' }, 0)
  const metrics: VerifierMetrics = {
    request: (outcome, reason) => requests.inc({ outcome, reason }),
    jwksFetch: (outcome) => fetches.inc({ outcome }),
  }
  byRegistry.set(registry, metrics)
  return metrics
}
