import type { Clock } from './clock.js'
import { clientsFileSignature, readClientsFile } from './clients/clients-file.js'
import { createClientRegistry } from './clients/registry.js'
import type { Config } from './config.js'
import type { Deps } from './deps.js'
import { createMemoryDenylist } from './denylist/memory.js'
import { createRedisDenylist } from './denylist/redis.js'
import type { Denylist } from './denylist/denylist.js'
import { createKeyStore } from './keys/key-store.js'
import { ensureKeys } from './keys/keys-dir.js'
import type { Logger } from './observability/logger.js'
import { watchForChanges, type Watcher } from './storage/watch.js'

/**
 * Loads keys and clients and assembles the dependencies. Throws (and main exits non-zero) when the
 * server could not work correctly: unreadable clients file, no usable signing key.
 */
export async function buildDeps(config: Config, log: Logger, clock: Clock): Promise<Deps> {
  const { records, problems } = await ensureKeys(config.keysDir, config.signingAlg, { clock, log })
  for (const { file, problem } of problems) log.error({ file, problem }, 'key file problem')
  if (records.length === 0) throw new Error(`no usable signing key in ${config.keysDir}`)
  const keys = createKeyStore(records, clock)
  log.info({ kid: keys.signingKey().kid, alg: keys.signingKey().alg, keys: records.length }, 'signing keys loaded')

  const clients = createClientRegistry(await readClientsFile(config.clientsFile))
  if (clients.size === 0) {
    log.warn({ file: config.clientsFile }, 'no clients registered; create one with: npm run --silent client -- create')
  } else {
    log.info({ clients: clients.size }, 'clients loaded')
  }
  return { config, clock, keys, clients, denylist: createDenylist(config, log, clock), log, lifecycle: { shuttingDown: false } }
}

/**
 * Redis when REDIS_URL is set, and then only Redis: an unreachable Redis makes revocation and
 * introspection answer 503 until it is back, never a silent switch to memory that would split
 * state between instances (OF-5).
 */
export function createDenylist(config: Config, log: Logger, clock: Clock): Denylist {
  if (config.redisUrl) {
    log.info({ keyPrefix: config.redisKeyPrefix }, 'denylist: Redis')
    return createRedisDenylist({ url: config.redisUrl, keyPrefix: config.redisKeyPrefix, clock, log })
  }
  log.warn('denylist: in memory, for a single instance only; revocations are lost on restart. Set REDIS_URL to share them.')
  return createMemoryDenylist({ clock })
}

/**
 * Hot reload of the client registry: a changed CLIENTS_FILE applies within `intervalMs` (or at
 * once through `check()`, called on SIGHUP). A broken file is logged and the last good registry
 * stays in force; requests in flight keep the registry they started with.
 */
export async function watchClients(deps: Deps, intervalMs = 1000): Promise<Watcher> {
  const path = deps.config.clientsFile
  return watchForChanges({
    name: path,
    intervalMs,
    log: deps.log,
    initial: await clientsFileSignature(path),
    signature: () => clientsFileSignature(path),
    reload: async () => {
      deps.clients = createClientRegistry(await readClientsFile(path))
      deps.log.info({ clients: deps.clients.size }, 'clients reloaded')
    },
  })
}
