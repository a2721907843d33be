import type { KeyStore } from './key-store.js'
import type { KeysDirContents } from './keys-dir.js'

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
