import type { Clock } from './clock.js'
import type { ClientRegistry } from './clients/registry.js'
import type { Config } from './config.js'
import type { Denylist } from './denylist/denylist.js'
import type { TrustStore } from './federation/trust-entry.js'
import type { KeyStore } from './keys/key-store.js'
import type { Logger } from './observability/logger.js'

/**
 * Everything the app needs, built once in main.ts (or by test/helpers/make-deps.ts) and passed
 * down. `keys` and `clients` are replaced as a whole when their files are reloaded; handlers read
 * them per request, so a reload never disturbs a request in flight.
 */
export interface Deps {
  config: Config
  clock: Clock
  keys: KeyStore
  clients: ClientRegistry
  /** TRUST_FILE: which workload tokens authenticate as which clients; replaced as a whole on reload. */
  trust?: TrustStore
  /** Revoked token ids (and keys): Redis when REDIS_URL is set, else in memory. */
  denylist: Denylist
  log: Logger
  /** Set on SIGTERM: /readyz turns 503 so load balancers stop sending traffic before we close. */
  lifecycle: { shuttingDown: boolean }
  /**
   * What keeps /readyz at 503 until an operator fixes it, by source: a KEYS_DIR others can write,
   * a CLIENTS_FILE or TRUST_FILE that vanished. The file watchers set and clear it (created on
   * first use).
   */
  readiness?: Map<ReadinessSource, string>
}

/** The files whose problems hold /readyz at 503. */
export type ReadinessSource = 'KEYS_DIR' | 'CLIENTS_FILE' | 'TRUST_FILE'

/** The problems /readyz reports (see Deps.readiness), created for deps built without them. */
export const readinessOf = (deps: Deps): Map<ReadinessSource, string> => (deps.readiness ??= new Map())
