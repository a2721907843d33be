import type { Deps } from '../deps.js'
import { readinessOf } from '../deps.js'
import { createClientRevocationSync } from '../denylist/client-revocations.js'
import { auditOf } from '../observability/audit.js'
import type { Logger } from '../observability/logger.js'
import { watchForChanges, type Watcher } from '../storage/watch.js'
import { MISSING, clientsFileSignature, clientsFileWritableByOthers, loadClientRegistry } from './clients-file.js'
import type { ClientRegistry } from './registry.js'

/** Whoever can write CLIENTS_FILE, or its directory, can register clients: a warning, not a refusal. */
export async function warnIfClientsFileWritable(path: string, log: Logger): Promise<void> {
  for (const exposed of await clientsFileWritableByOthers(path)) {
    log.warn(
      { file: path, path: exposed.path, mode: exposed.mode },
      'CLIENTS_FILE or its directory is writable by others, who could register clients; run chmod o-w on it',
    )
  }
}

/**
 * Hot reload of the client registry: a changed CLIENTS_FILE applies within `intervalMs` (or at
 * once through `check()`, called on SIGHUP). A broken file is logged and the last good registry
 * stays in force; requests in flight keep the registry they started with. So does a file that was
 * loaded and then vanished (a slip, not a way to remove every client: that is {"clients": []}),
 * and /readyz answers 503 until it is back. A file missing from the start means no clients yet.
 * Missing at one check only is no change at all: a Kubernetes Secret or ConfigMap update can leave
 * a key's link dangling for a moment (mounted-files.ts), so a vanished file counts from the next check.
 */
export async function watchClients(deps: Deps, intervalMs = 1000): Promise<Watcher> {
  const path = deps.config.clientsFile
  // Deleted clients and revoked client tokens go to the denylist at every load, this first one
  // included; a failed write fails the load, so it is retried at every check until it lands. The
  // first load is the registry buildDeps read, and the file as it was then; deps built otherwise
  // (tests) have the file read now, for the denylist only.
  const revocations = createClientRevocationSync(deps)
  let first: ClientRegistry | undefined
  try {
    first = deps.clients.source !== undefined ? deps.clients : await loadClientRegistry(path)
  } catch {
    // A broken file: the first check reads it again, and logs why it is refused.
  }
  let loaded = first?.source !== MISSING
  const settled =
    first !== undefined &&
    (await revocations.apply(first).then(
      () => true,
      () => false,
    ))
  const audit = auditOf(deps)
  return watchForChanges({
    name: path,
    intervalMs,
    log: deps.log,
    initial: settled ? first?.source : undefined,
    onRejected: (problem) => audit.emit('clients.reload_rejected', { problem }),
    signature: () => clientsFileSignature(path),
    // A loaded file missing at one check may be a Kubernetes volume update under way: wait one more.
    transient: (signature) => signature === MISSING && loaded,
    reload: async () => {
      const clients = await loadClientRegistry(path)
      const missing = clients.source === MISSING
      if (missing && loaded) {
        readinessOf(deps).set('CLIENTS_FILE', 'CLIENTS_FILE is missing')
        throw new Error(
          `${path} was loaded and is gone; the clients loaded last stay in force until it is back (to remove every client, write {"clients": []})`,
        )
      }
      readinessOf(deps).delete('CLIENTS_FILE')
      loaded ||= !missing
      await warnIfClientsFileWritable(path, deps.log)
      // The registry replaced is released here (the denylist sync moves on to this one below).
      deps.clients = clients
      deps.log.info({ clients: clients.size }, 'clients reloaded')
      audit.emit('clients.reloaded', { clients: clients.size })
      await revocations.apply(clients)
    },
  })
}
