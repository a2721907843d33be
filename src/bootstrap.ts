import type { Clock } from './clock.js'
import { loadClientRegistry } from './clients/clients-file.js'
import { warnIfClientsFileWritable } from './clients/reload.js'
import type { Config } from './config.js'
import type { Deps } from './deps.js'
import { instrumentDenylist } from './denylist/instrumented.js'
import { metricsEnabled, metricsOf } from './observability/metrics.js'
import { createMemoryDenylist } from './denylist/memory.js'
import type { Denylist } from './denylist/denylist.js'
import { readTlsPair } from './http/tls.js'
import { warnIfTrustFileWritable } from './federation/reload.js'
import { loadTrustStore } from './federation/trust-file.js'
import { createKeyStore, keyRetention } from './keys/key-store.js'
import { ensureKeys, type KeysDirContents } from './keys/keys-dir.js'
import type { Logger } from './observability/logger.js'

/**
 * Loads keys and clients and assembles the dependencies. Throws (and main exits non-zero) when the
 * server could not work correctly: unreadable clients file, no usable signing key.
 */
export async function buildDeps(config: Config, log: Logger, clock: Clock): Promise<Deps> {
  const contents = await prepareKeys(config, log, clock)
  const keys = createKeyStore(contents.records, clock, {
    retention: keyRetention(config.clockTolerance),
    publishMin: config.keyPublishMin,
    log,
  })
  log.info({ kid: keys.signingKey().kid, alg: keys.signingKey().alg, published: keys.size }, 'signing keys loaded')

  await warnIfClientsFileWritable(config.clientsFile, log)
  const clients = await loadClientRegistry(config.clientsFile)
  if (clients.size === 0) {
    log.warn({ file: config.clientsFile }, 'no clients registered; create one with: npm run --silent client -- create')
  } else {
    log.info({ clients: clients.size }, 'clients loaded')
  }
  const trust = await loadTrust(config, log)
  const denylist = await createDenylist(config, log, clock)
  const deps: Deps = {
    config,
    clock,
    keys,
    clients,
    trust,
    denylist,
    log,
    lifecycle: { shuttingDown: false },
    readiness: new Map(),
  }
  // Counted from now, so the file watchers' first events are in.
  if (metricsEnabled(config)) deps.denylist = instrumentDenylist(deps.denylist, metricsOf(deps))
  return deps
}

/** TRUST_FILE, when there is one: a broken file stops start-up like a broken CLIENTS_FILE. */
async function loadTrust(config: Config, log: Logger) {
  const trust = await loadTrustStore(config.trustFile)
  if (trust.entries.length > 0) {
    await warnIfTrustFileWritable(config.trustFile, log)
    log.info(
      { file: config.trustFile, entries: trust.entries.length },
      'workload identity federation: trust entries loaded',
    )
  }
  return trust
}

/**
 * KEYS_DIR made ready to serve from: created with a first key when empty (by exactly one of the
 * processes starting on it), then read. Throws when no key can sign.
 */
export async function prepareKeys(config: Config, log: Logger, clock: Clock): Promise<KeysDirContents> {
  const contents = await ensureKeys(config.keysDir, config.signingAlg, {
    clock,
    log,
    passphrase: config.keysPassphrase,
  })
  // A key that cannot be read (a wrong KEYS_PASSPHRASE, a corrupt file) stops start-up: serving
  // without it could mean signing with the wrong key or not verifying tokens still in use.
  if (contents.problems.length > 0) {
    throw new Error(
      `cannot use KEYS_DIR ${config.keysDir}: ${contents.problems.map(({ file, problem }) => `${file}: ${problem}`).join('; ')}`,
    )
  }
  if (contents.records.length === 0) throw new Error(`no usable signing key in ${config.keysDir}`)
  return contents
}

/**
 * What a cluster primary checks before it forks: the keys (made once, so that workers do not race
 * to create the first ones) and the clients file, so that a mistake stops start-up with its
 * message instead of every worker failing in turn.
 */
export async function checkBeforeFork(config: Config, log: Logger, clock: Clock): Promise<void> {
  await prepareKeys(config, log, clock)
  await loadClientRegistry(config.clientsFile)
  await loadTrustStore(config.trustFile)
  if (config.tlsCertFile && config.tlsKeyFile) {
    await readTlsPair({ certFile: config.tlsCertFile, keyFile: config.tlsKeyFile })
  }
}

/**
 * Redis when REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES is set, and then only Redis: an
 * unreachable Redis makes revocation and introspection answer 503 until it is back, never a silent
 * switch to memory that would split state between instances (README, Revocation). The Redis client
 * is loaded only then: ioredis and its dependencies are about 10 MiB of resident memory that a
 * process without Redis never uses.
 */
export async function createDenylist(config: Config, log: Logger, clock: Clock): Promise<Denylist> {
  if (config.redis) {
    const [{ createRedisDenylist, redisDenylistOptionsOf }, { describeRedisTarget }] = await Promise.all([
      import('./denylist/redis.js'),
      import('./denylist/redis-target.js'),
    ])
    // Topology and addresses only: never a password, never the URL (it may hold one).
    log.info({ ...describeRedisTarget(config.redis), keyPrefix: config.redisKeyPrefix }, 'denylist: Redis')
    return createRedisDenylist({ ...redisDenylistOptionsOf({ ...config, redis: config.redis }), clock, log })
  }
  log.warn(
    'denylist: in memory, for a single instance only; revocations are lost on restart. Set REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES to share them.',
  )
  return createMemoryDenylist({ clock })
}
