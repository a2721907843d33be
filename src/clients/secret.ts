import crypto, { createHash, randomBytes, timingSafeEqual } from 'node:crypto'

/**
 * Client secrets: 256 bits from the OS CSPRNG behind a fixed prefix, so a leaked secret is easy
 * for secret scanners to recognise. Only the SHA-256 digest is ever stored. A slow password hash
 * (bcrypt, scrypt, argon2) protects low-entropy human passwords against offline guessing; against
 * a uniformly random 256-bit value guessing is already hopeless, so SHA-256 loses nothing and
 * keeps the token endpoint fast (RFC 6819 §5.1.4.1.3).
 */
export const SECRET_PREFIX = 'tks_'
const SECRET_BYTES = 32

export function generateSecret(): string {
  return SECRET_PREFIX + randomBytes(SECRET_BYTES).toString('base64url')
}

/**
 * One-shot crypto.hash (Node 20.12 and later) costs a third of a Hash object, and this runs on
 * every token request; earlier Node 20 releases, which lack it, get the Hash object.
 */
const sha256: (text: string) => Buffer =
  typeof crypto.hash === 'function'
    ? (text) => crypto.hash('sha256', text, 'buffer')
    : (text) => createHash('sha256').update(text, 'utf8').digest()

export function digestSecret(secret: string): Buffer {
  return sha256(secret)
}

/** Length of a SHA-256 digest. */
export const DIGEST_BYTES = 32

/** A digest no secret hashes to in practice: unknown clients compare against it (the same work as a known one). */
export const DUMMY_DIGEST = digestSecret(`${SECRET_PREFIX}unknown-client-placeholder`)

/** Constant-time comparison of two SHA-256 digests (equal length by construction). */
export function digestsEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b)
}
