import { createLocalJWKSet, type JWK, type JWTVerifyGetKey } from 'jose'

import type { VerificationKey } from './verify-access-token.js'

/** A validated JWK Set, ready for lookups by `kid`. */
export interface JwkSet extends VerificationKey {
  /** The `kid`s present, so an unknown one can be told apart from a bad signature. */
  readonly kids: ReadonlySet<string>
  /** jose's key resolver over the same keys (it matches `kid`, `alg`, `kty`, `crv` and `use`). */
  readonly key: JWTVerifyGetKey
}

/** JWK members that only private or symmetric keys carry (RFC 7518 §6.2.2, §6.3.2, §6.4.1). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k', 'priv'] as const

export class JwkSetError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'JwkSetError'
  }
}

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

/**
 * Validates a JWK Set (RFC 7517 §5) for signature verification and builds a jose local set from it.
 *
 * The whole set is refused when any member is not an object, has `use` other than `sig` (RFC 7517 §4.2),
 * is symmetric (`kty: oct`, the CVE-2015-9235 family) or carries private material: each means the
 * publisher is misconfigured, and a partly trusted set is harder to reason about than none.
 * Keys without a `kid` are dropped, since tokensmith tokens always name their key.
 */
export function parseJwkSet(value: unknown): JwkSet {
  if (!isPlainObject(value) || !Array.isArray(value.keys)) {
    throw new JwkSetError('JWK Set must be an object with a "keys" array')
  }
  const keys: JWK[] = []
  for (const key of value.keys as unknown[]) {
    if (!isPlainObject(key)) throw new JwkSetError('JWK Set members must be objects')
    if (key.use !== undefined && key.use !== 'sig') throw new JwkSetError('JWK "use" must be "sig"')
    if (typeof key.kty !== 'string' || key.kty === 'oct')
      throw new JwkSetError('JWK "kty" must name an asymmetric key type')
    if (PRIVATE_MEMBERS.some((member) => member in key)) throw new JwkSetError('JWK Set must hold public keys only')
    if (typeof key.kid !== 'string' || key.kid === '') continue
    keys.push(key as JWK)
  }
  const jwks = { keys }
  return { kids: new Set(keys.map((key) => key.kid as string)), key: createLocalJWKSet(jwks) }
}
