import type { ClientEntry } from './registry.js'
import { digestSecret } from './secret.js'

/**
 * Rotation of a client's secret (its RFC 6749 §2.3.1 client password) without downtime: a new
 * secret, shown once; the newest old one keeps working for a grace period while the client rolls
 * the new one out. At most two secrets are live (the registry refuses a third), so an old secret
 * never lingers behind two rotations. Revoking the client's tokens (a leaked secret or token)
 * ends the old secret at once.
 */

export type SecretEntry = ClientEntry['secrets'][number]

/** How long a rotated-out secret keeps working by default: a day to roll the new one out. */
export const DEFAULT_GRACE = 24 * 3600
/** The longest grace a rotation may give: 30 days. */
export const MAX_GRACE = 30 * 86400

/** A secret as stored: its SHA-256 digest only (see secret.ts), live from `created` with no end. */
export function storedSecret(secret: string, created: number): SecretEntry {
  return { sha256: digestSecret(secret).toString('base64url'), created, expires: null }
}

/**
 * How long the previous secret keeps working: none when the client's tokens are revoked (the
 * secret may have leaked with them), else `grace`, by default DEFAULT_GRACE.
 */
export function secretGrace(options: { grace?: number | undefined; revokeTokens: boolean }): number {
  if (options.revokeTokens) return 0
  return options.grace ?? DEFAULT_GRACE
}

/**
 * `entry` after a rotation to `secret` at `now`: the newest live secret stays, ending at `now +
 * grace` at the latest (never later than it already would); every older one ends now and is
 * dropped. With `revokeTokens`, `tokens_revoked_at` is `now`: each server then refuses every token
 * issued to the client up to this instant. Returns when the previous secret stops working (null:
 * there was none).
 */
export function rotateEntrySecret(
  entry: ClientEntry,
  secret: string,
  options: { now: number; grace: number; revokeTokens: boolean },
): { entry: ClientEntry; previousExpires: number | null } {
  const { now, grace, revokeTokens } = options
  const [newest] = entry.secrets
    .filter((s) => s.expires === null || s.expires > now)
    .sort((a, b) => b.created - a.created)
  const previous = newest && { ...newest, expires: Math.min(newest.expires ?? Infinity, now + grace) }
  const secrets = [...(previous ? [previous] : []), storedSecret(secret, now)]
  return {
    entry: { ...entry, secrets, ...(revokeTokens && { tokens_revoked_at: now }) },
    previousExpires: previous?.expires ?? null,
  }
}
