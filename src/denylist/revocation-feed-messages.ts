import { decodeRevocation, type Revocation } from './protocol.js'
import type { DenylistLog } from './redis-client.js'

/**
 * A message on the revocation channel: stored when it is a revocation (`protocol.ts`). Anything
 * else is logged by its size only, never its content, and dropped.
 */
export function handleRevocationMessage(
  message: string,
  store: (revocation: Revocation) => void,
  log: DenylistLog,
): void {
  const revocation = decodeRevocation(message)
  if (revocation === undefined) {
    log.warn({ bytes: message.length }, 'ignoring malformed message on the revocation channel')
    return
  }
  store(revocation)
}
