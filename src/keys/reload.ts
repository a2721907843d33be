import type { Deps } from '../deps.js'
import { readinessOf } from '../deps.js'
import { auditOf } from '../observability/audit.js'
import type { Logger } from '../observability/logger.js'
import { watchForChanges, type Watcher } from '../storage/watch.js'
import { keyEvents } from './key-events.js'
import { createKeyStore, keyRetention } from './key-store.js'
import type { KeyStore } from './key-store.js'
import {
  SECRET_MODE_FIX,
  isTransientKeysDirSignature,
  keysDirAccessProblem,
  keysDirSignature,
  readKeysDir,
  type KeysDirContents,
} from './keys-dir.js'
import { denylistRevokedKeys } from './rotation.js'

/**
 * Why a freshly read KEYS_DIR must not replace the keys in force, or undefined if it may.
 * A reload is all or nothing: a broken file, or a published key that vanished
 * without being revoked (deleted, truncated into oblivion), keeps the last good keys signing and
 * published. Expired keys may go (that is what `keys prune` does), and so may unused standby keys.
 */
export function reloadProblem(inForce: KeyStore, next: KeysDirContents): string | undefined {
  if (next.problems.length > 0) return next.problems.map(({ file, problem }) => `${file}: ${problem}`).join('; ')
  if (next.records.length === 0) return 'no usable key left'
  const present = new Set([...next.records.map((r) => r.kid), ...next.tombstones.map((t) => t.kid)])
  // Expired keys verify nothing and standby keys never signed: either may go. Others may not.
  const vanished = inForce
    .timelines()
    .filter((t) => t.state !== 'expired' && t.state !== 'standby' && !present.has(t.kid))
  if (vanished.length > 0) {
    return `published key ${vanished.map((t) => `${t.kid} (${t.state})`).join(', ')} disappeared without being revoked`
  }
  return undefined
}

/**
 * A private key readable by others is reported as an error at every load (group-readable, 0640 or
 * 0440, is fine: a group the operator chose), and one stored in clear although KEYS_PASSPHRASE is
 * set as a warning (rotate it out to get rid of it).
 */
function reportExposedKeys(contents: KeysDirContents, log: Logger): void {
  for (const file of contents.exposed) {
    log.error({ file }, `key file is readable by others; run chmod 600 on it (${SECRET_MODE_FIX})`)
  }
  for (const file of contents.unencrypted) {
    log.warn({ file }, 'private key is stored unencrypted although KEYS_PASSPHRASE is set; rotate it out')
  }
}

/**
 * Hot reload of KEYS_DIR: within `intervalMs` of a change (or at once on SIGHUP), all or nothing.
 * A reload that would break signing or verification is refused and logged; the last good keys stay.
 * So is every reload while others can write the directory (or it is not ours), and then /readyz
 * answers 503 until that is fixed.
 * The first check runs at once (it denylists revoked keys); a denylist write that fails keeps the
 * new keys in force and fails the reload, so it is tried again at every check until it lands.
 * Each reload is a `keys.reloaded` or `keys.reload_rejected` audit event; the key state changes it
 * brings, and those the clock brings (checked every `intervalMs`), are `key.*` events (key-events.ts).
 */
export async function watchKeys(deps: Deps, intervalMs = 1000): Promise<Watcher> {
  const dir = deps.config.keysDir
  const audit = auditOf(deps)
  const events = keyEvents(audit, deps.keys)
  // The directory as last read, and as applied by a reload retried for its denylist write alone:
  // retrying that (the same directory, every check until Redis answers) is not another `keys.reloaded`.
  let read: string | undefined
  let retrying: string | undefined
  const watcher = watchForChanges({
    name: dir,
    intervalMs,
    log: deps.log,
    initial: undefined,
    onRejected: (problem) => audit.emit('keys.reload_rejected', { problem }),
    signature: async () => {
      read = await keysDirSignature(dir)
      return read
    },
    // A key file gone between the listing and its stat: a link being replaced, so wait one check.
    transient: isTransientKeysDirSignature,
    reload: async () => {
      // Whoever can write KEYS_DIR can add a key that signs: nothing in it is loaded until fixed.
      const access = await keysDirAccessProblem(dir)
      if (access) {
        readinessOf(deps).set('KEYS_DIR', access.summary)
        throw new Error(access.message)
      }
      readinessOf(deps).delete('KEYS_DIR')
      const contents = await readKeysDir(dir, deps.config.keysPassphrase)
      const problem = reloadProblem(deps.keys, contents)
      if (problem) throw new Error(problem)
      reportExposedKeys(contents, deps.log)
      deps.keys = createKeyStore(contents.records, deps.clock, {
        retention: keyRetention(deps.config.clockTolerance),
        publishMin: deps.config.keyPublishMin,
        previous: deps.keys,
        log: deps.log,
      })
      deps.log.info({ kid: deps.keys.signingKey().kid, published: deps.keys.size }, 'signing keys reloaded')
      if (retrying === undefined || retrying !== read) audit.emit('keys.reloaded', { keys: deps.keys.size })
      retrying = undefined
      events.observe(deps.keys, contents.tombstones)
      const failed = await denylistRevokedKeys(
        deps.denylist,
        contents.tombstones,
        keyRetention(deps.config.clockTolerance),
      )
      if (failed.length > 0) {
        retrying = read
        throw new Error(`keys applied, but revoked key ${failed.join(', ')} is not in the denylist yet; retrying`)
      }
    },
  })
  await watcher.check()
  // The clock alone moves signing to a key whose `activates` has come (key-states.ts).
  const clockTimer = setInterval(() => events.observe(deps.keys), intervalMs)
  clockTimer.unref()
  return {
    check: async () => {
      await watcher.check()
      events.observe(deps.keys)
    },
    stop: () => {
      clearInterval(clockTimer)
      watcher.stop()
    },
  }
}
