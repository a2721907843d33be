import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { Config } from '../config.js'
import type { Deps } from '../deps.js'
import { isPublished } from '../keys/key-states.js'
import { type AuditEventName, type AuditEvents, auditOf } from './audit.js'

/**
 * The authorization server's Prometheus metrics (README, Metrics). Acts are counted from the audit
 * events (audit.ts), so a metric and its log record come from the same call; requests are timed by
 * src/http/middleware/metrics.ts, the denylist by src/denylist/instrumented.ts; key states and
 * readiness are computed when scraped.
 *
 * Label values are bounded: client ids only when registered, trust entries only when in the trust
 * store, reason codes only in their own shape, routes only as registered patterns. Never an address,
 * a jti or an id the caller merely claimed.
 */
export interface Metrics {
  readonly registry: Registry
  readonly tokensIssued: Counter<'client_id' | 'auth_method'>
  /** Token endpoint answers by client and outcome ('issued' or the OAuth error code). */
  tokenRequest(clientId: string | undefined, outcome: string): void
  readonly authFailures: Counter<'reason' | 'auth_method' | 'trust_entry'>
  readonly httpDuration: Histogram<'route' | 'status_class'>
  readonly denylistOperations: Counter<'operation' | 'outcome'>
  readonly denylistDuration: Histogram<'operation'>
  readonly limitTrips: Counter<'limit'>
  readonly reloads: Counter<'source' | 'outcome'>
  readonly remoteKeysFetches: Counter<'source' | 'name' | 'outcome'>
  /**
   * Counts one fetch of a remote key set: a client's `jwks_uri` (name: its client id) or a trust
   * entry's issuer keys (name: the entry id). A name not (or no longer) registered is counted as ''.
   */
  remoteKeysFetched(source: RemoteKeysSource, name: string, outcome: 'ok' | 'error'): void
  /** Stops counting audit events (the registry stays readable). */
  close(): void
}

export type RemoteKeysSource = 'client_jwks_uri' | 'trust_entry'

export type DenylistOperation = 'is_revoked' | 'revoke_token' | 'revoke_key' | 'revoke_client' | 'replay' | 'ping'

export type DenylistOutcome = 'ok' | 'unavailable' | 'error'

/** Metrics are collected when something can read them: METRICS_PORT or METRICS_TOKEN is set. */
export const metricsEnabled = (config: Pick<Config, 'metricsPort' | 'metricsToken'>): boolean =>
  config.metricsPort !== undefined || config.metricsToken !== undefined

/** Request durations: a token request takes about a millisecond, a slow Redis or remote JWKS seconds. */
const HTTP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
/** Denylist round trips: sub-millisecond in memory, about a millisecond to a nearby Redis. */
const DENYLIST_BUCKETS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

const AUTH_METHODS = new Set<string>([
  'client_secret_basic',
  'client_secret_post',
  'private_key_jwt',
  'federation',
  'none',
])
/** Reason codes are our own stable snake_case codes; anything else is counted as 'other'. */
const REASON_CODE = /^[a-z0-9_.-]{1,64}$/
const LIMITS = new Set<string>(['auth_client', 'auth_address', 'quota'])

const RELOADS: Partial<Record<AuditEventName, { source: string; outcome: string }>> = {
  'keys.reloaded': { source: 'keys', outcome: 'applied' },
  'keys.reload_rejected': { source: 'keys', outcome: 'rejected' },
  'clients.reloaded': { source: 'clients', outcome: 'applied' },
  'clients.reload_rejected': { source: 'clients', outcome: 'rejected' },
  'trust.reloaded': { source: 'trust', outcome: 'applied' },
  'trust.reload_rejected': { source: 'trust', outcome: 'rejected' },
}

type MetricsDeps = Pick<Deps, 'clock' | 'keys' | 'clients' | 'trust' | 'denylist' | 'lifecycle' | 'readiness' | 'log'>

export interface CreateMetricsOptions {
  /** process_* and nodejs_* metrics (default true); tests that make many registries may leave them out. */
  defaultMetrics?: boolean
}

export function createMetrics(deps: MetricsDeps, options: CreateMetricsOptions = {}): Metrics {
  const registry = new Registry()
  const registers = [registry]

  const registered = (clientId: string) => (deps.clients.get(clientId) ? clientId : '')
  const trustEntry = (id: string | undefined) =>
    id !== undefined && deps.trust?.entries.some((entry) => entry.id === id) ? id : ''
  const authMethod = (method: string) => (AUTH_METHODS.has(method) ? method : 'other')

  const tokensIssued = new Counter({
    name: 'tokensmith_tokens_issued_total',
    help: 'Access tokens issued, by registered client and client authentication method.',
    labelNames: ['client_id', 'auth_method'] as const,
    registers,
  })
  const tokenRequests = new Counter({
    name: 'tokensmith_token_requests_total',
    help: 'Token endpoint answers, by the registered client the request named ("" for none, an unregistered id or a failed authentication) and outcome: issued, or the OAuth error code.',
    labelNames: ['client_id', 'outcome'] as const,
    registers,
  })
  const authFailures = new Counter({
    name: 'tokensmith_auth_failures_total',
    help: 'Failed client authentications, by stable reason code, method and federation trust entry ("" when none).',
    labelNames: ['reason', 'auth_method', 'trust_entry'] as const,
    registers,
  })
  const httpDuration = new Histogram({
    name: 'tokensmith_http_request_duration_seconds',
    help: 'Time to answer a request, by matched route pattern ("unmatched" when none) and status class.',
    labelNames: ['route', 'status_class'] as const,
    buckets: HTTP_BUCKETS,
    registers,
  })
  const denylistOperations = new Counter({
    name: 'tokensmith_denylist_operations_total',
    help: 'Denylist operations, by operation and outcome (ok, unavailable: the store could not answer, error: a fault).',
    labelNames: ['operation', 'outcome'] as const,
    registers,
  })
  const denylistDuration = new Histogram({
    name: 'tokensmith_denylist_operation_duration_seconds',
    help: 'Time a denylist operation took, whatever its outcome.',
    labelNames: ['operation'] as const,
    buckets: DENYLIST_BUCKETS,
    registers,
  })
  const limitTrips = new Counter({
    name: 'tokensmith_limit_trips_total',
    help: 'Requests answered 429 by a limit: auth_client, auth_address (failed authentications) or quota.',
    labelNames: ['limit'] as const,
    registers,
  })
  const reloads = new Counter({
    name: 'tokensmith_reloads_total',
    help: 'Reloads of KEYS_DIR, CLIENTS_FILE and TRUST_FILE, applied or rejected (the last good state stays).',
    labelNames: ['source', 'outcome'] as const,
    registers,
  })
  const remoteKeysFetches = new Counter({
    name: 'tokensmith_remote_keys_fetches_total',
    help: "Fetches of remote key sets: clients' jwks_uri and trust entries' issuers, by outcome.",
    labelNames: ['source', 'name', 'outcome'] as const,
    registers,
  })

  // Computed when scraped, from the key store in force (replaced as a whole on reload).
  new Gauge({
    name: 'tokensmith_signing_key_state',
    help: 'Each published signing key, 1 with its state (standby, next, current, retired).',
    labelNames: ['kid', 'alg', 'state'] as const,
    registers,
    collect() {
      this.reset()
      for (const key of publishedKeys(deps)) this.set({ kid: key.kid, alg: key.alg, state: key.state }, 1)
    },
  })
  new Gauge({
    name: 'tokensmith_signing_key_age_seconds',
    help: 'Seconds since each published signing key was created.',
    labelNames: ['kid', 'state'] as const,
    registers,
    collect() {
      this.reset()
      const now = deps.clock()
      for (const key of publishedKeys(deps)) this.set({ kid: key.kid, state: key.state }, now - key.created)
    },
  })
  new Gauge({
    name: 'tokensmith_signing_key_next_transition_seconds',
    help: "Seconds until each published signing key's next state change (absent when none is scheduled).",
    labelNames: ['kid'] as const,
    registers,
    collect() {
      this.reset()
      const now = deps.clock()
      for (const key of publishedKeys(deps)) {
        if (key.transition !== undefined) this.set({ kid: key.kid }, key.transition - now)
      }
    },
  })
  new Gauge({
    name: 'tokensmith_ready',
    help: '1 when /readyz would answer 200, else 0.',
    registers,
    async collect() {
      this.set((await isReady(deps)) ? 1 : 0)
    },
  })
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry })

  /** Registered client ids counted per method, so that a client removed from the registry loses its series. */
  const issuedSeries = new Map<string, Set<string>>()

  const listener = <E extends AuditEventName>(event: E, fields: AuditEvents[E]): void => {
    try {
      count(event, fields as AuditEvents[AuditEventName])
    } catch (error) {
      // A listener must not throw into the code that emitted the event.
      deps.log.error({ err: error, event }, 'metrics: could not count an audit event')
    }
  }

  const count = (event: AuditEventName, fields: AuditEvents[AuditEventName]): void => {
    switch (event) {
      case 'token.issued': {
        const { client_id, auth_method } = fields as AuditEvents['token.issued']
        const labels = { client_id: registered(client_id), auth_method: authMethod(auth_method) }
        tokensIssued.inc(labels)
        if (labels.client_id !== '') {
          const methods = issuedSeries.get(labels.client_id) ?? new Set<string>()
          methods.add(labels.auth_method)
          issuedSeries.set(labels.client_id, methods)
        }
        return
      }
      case 'auth.failed': {
        const { reason, auth_method, trust_entry } = fields as AuditEvents['auth.failed']
        authFailures.inc({
          reason: REASON_CODE.test(reason) ? reason : 'other',
          auth_method: authMethod(auth_method),
          trust_entry: trustEntry(trust_entry),
        })
        return
      }
      case 'limit.tripped': {
        const { limit } = fields as AuditEvents['limit.tripped']
        limitTrips.inc({ limit: LIMITS.has(limit) ? limit : 'other' })
        return
      }
      default: {
        const reload = RELOADS[event]
        if (reload) reloads.inc(reload)
        if (event === 'clients.reloaded') {
          for (const [clientId, methods] of issuedSeries) {
            if (deps.clients.get(clientId)) continue
            for (const method of methods) tokensIssued.remove({ client_id: clientId, auth_method: method })
            issuedSeries.delete(clientId)
          }
        }
      }
    }
  }
  const unlisten = auditOf(deps).listen(listener)

  return {
    registry,
    tokensIssued,
    tokenRequest(clientId, outcome) {
      // A failed authentication names no client: the claimed id is the caller's text.
      const client = clientId === undefined || outcome === 'invalid_client' ? '' : registered(clientId)
      tokenRequests.inc({ client_id: client, outcome: TOKEN_OUTCOMES.has(outcome) ? outcome : 'other' })
    },
    authFailures,
    httpDuration,
    denylistOperations,
    denylistDuration,
    limitTrips,
    reloads,
    remoteKeysFetches,
    remoteKeysFetched(source, name, outcome) {
      const bounded = source === 'client_jwks_uri' ? registered(name) : trustEntry(name)
      remoteKeysFetches.inc({ source, name: bounded, outcome })
    },
    close: () => {
      unlisten()
    },
  }
}

/** The outcomes a token request can have: bounded, whatever a handler sets. */
const TOKEN_OUTCOMES = new Set([
  'issued',
  'invalid_request',
  'invalid_client',
  'invalid_grant',
  'unauthorized_client',
  'unsupported_grant_type',
  'invalid_scope',
  'invalid_target',
  'invalid_dpop_proof',
  'use_dpop_nonce',
  'temporarily_unavailable',
  'server_error',
])

interface PublishedKey {
  kid: string
  alg: string
  state: string
  created: number
  /** Epoch seconds of its next state change, when one is scheduled. */
  transition?: number
}

/**
 * Every published key with its state and the time of its next change: a next key activates at its
 * `activates`, or at its timeline's `signsFrom` when KEY_PUBLISH_MIN holds it back; the current key
 * retires when the next key due activates; a retired key is unpublished at its `unpublishes`; a
 * standby key has nothing scheduled until it is promoted.
 */
function publishedKeys(deps: Pick<Deps, 'clock' | 'keys'>): PublishedKey[] {
  const now = deps.clock()
  const { records } = deps.keys
  const byKid = new Map(records.map((record) => [record.kid, record]))
  const timelines = deps.keys.timelines()
  const nextActivation = Math.min(
    ...timelines
      .filter((timeline) => timeline.state === 'next')
      .map((timeline) => timeline.signsFrom ?? byKid.get(timeline.kid)?.activates ?? Infinity),
  )
  const keys: PublishedKey[] = []
  for (const timeline of timelines) {
    const record = byKid.get(timeline.kid)
    if (!record || !isPublished(timeline.state)) continue
    const transition =
      timeline.state === 'next'
        ? (timeline.signsFrom ?? record.activates ?? undefined)
        : timeline.state === 'current'
          ? nextActivation
          : timeline.state === 'retired'
            ? (timeline.unpublishes ?? undefined)
            : undefined
    keys.push({
      kid: record.kid,
      alg: record.alg,
      state: timeline.state,
      created: record.created,
      ...(transition !== undefined && Number.isFinite(transition) && transition > now && { transition }),
    })
  }
  return keys
}

/** The check of /readyz (src/http/health.ts readyHandler), as a yes or no. */
async function isReady(deps: Pick<Deps, 'lifecycle' | 'keys' | 'readiness' | 'denylist'>): Promise<boolean> {
  if (deps.lifecycle.shuttingDown || deps.keys.size === 0 || (deps.readiness?.size ?? 0) > 0) return false
  try {
    await deps.denylist.ping()
    return true
  } catch {
    return false
  }
}

const metricsByDeps = new WeakMap<object, Metrics>()

/** The metrics of a server (its deps), made on first use: make them before anything emits (bootstrap). */
export function metricsOf(deps: MetricsDeps): Metrics {
  let metrics = metricsByDeps.get(deps)
  if (!metrics) {
    metrics = createMetrics(deps)
    metricsByDeps.set(deps, metrics)
  }
  return metrics
}
