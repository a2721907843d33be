import type { Clock } from './clock.js'
import { clientsFileSignature, readClientsFile } from './clients/clients-file.js'
import { createClientRegistry } from './clients/registry.js'
import type { Config } from './config.js'
import type { Deps } from './deps.js'
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
  return { config, clock, keys, clients, log, lifecycle: { shuttingDown: false } }
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
