import { clientsFileWritableByOthers } from '../clients/clients-file.js'
import type { Deps } from '../deps.js'
import { readinessOf } from '../deps.js'
import { auditOf } from '../observability/audit.js'
import type { Logger } from '../observability/logger.js'
import { watchForChanges, type Watcher } from '../storage/watch.js'
import { MISSING, loadTrustStore, trustFileSignature } from './trust-file.js'

/**
 * Whoever can write TRUST_FILE, or its directory, can make any platform token authenticate as any
 * client: a warning, not a refusal (as for CLIENTS_FILE).
 */
export async function warnIfTrustFileWritable(path: string, log: Logger): Promise<void> {
  for (const exposed of await clientsFileWritableByOthers(path)) {
    log.warn(
      { file: path, path: exposed.path, mode: exposed.mode },
      'TRUST_FILE or its directory is writable by others, who could let their own tokens authenticate as any client; run chmod o-w on it',
    )
  }
}

/**
 * Hot reload of the trust entries, as watchClients does for the clients: a changed TRUST_FILE
 * applies within `intervalMs` (or at once through `check()`, on SIGHUP). A broken file is logged
 * and the last good entries stay in force; a request in flight keeps the store it started with. So
 * does a file that was loaded and then vanished (a slip, not a way to remove every entry: that is
 * {"trust": []}), and /readyz answers 503 until it is back. A file missing from the start means no
 * trust entries. As for CLIENTS_FILE, a file missing at one check only (a Kubernetes volume update
 * under way) changes nothing; a vanished file counts from the next check.
 *
 * `deps.trust`, when set (by start-up, through loadTrustStore), is what is loaded now; when unset,
 * the file is read here before this resolves (a broken one is logged, and `deps.trust` stays unset
 * until a check reads a good one).
 */
export async function watchTrust(deps: Deps, intervalMs = 1000): Promise<Watcher> {
  const path = deps.config.trustFile
  let loaded = deps.trust?.source !== undefined && deps.trust.source !== MISSING
  const audit = auditOf(deps)
  const watcher = watchForChanges({
    name: path,
    intervalMs,
    log: deps.log,
    initial: deps.trust?.source,
    onRejected: (problem) => audit.emit('trust.reload_rejected', { problem }),
    signature: () => trustFileSignature(path),
    // A loaded file missing at one check may be a Kubernetes volume update under way: wait one more.
    transient: (signature) => signature === MISSING && loaded,
    reload: async () => {
      const trust = await loadTrustStore(path)
      const missing = trust.source === MISSING
      if (missing && loaded) {
        readinessOf(deps).set('TRUST_FILE', 'TRUST_FILE is missing')
        throw new Error(
          `${path} was loaded and is gone; the trust entries loaded last stay in force until it is back (to remove every entry, write {"trust": []})`,
        )
      }
      readinessOf(deps).delete('TRUST_FILE')
      loaded ||= !missing
      await warnIfTrustFileWritable(path, deps.log)
      deps.trust = trust
      deps.log.info({ trust: trust.entries.length }, 'trust entries reloaded')
      audit.emit('trust.reloaded', { entries: trust.entries.length })
    },
  })
  if (deps.trust === undefined) await watcher.check()
  return watcher
}
