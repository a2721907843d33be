import { invalidToken } from './errors.js'

/** Tokensmith tokens are well under 2 KiB; anything past this is refused before any parsing. */
export const MAX_TOKEN_LENGTH = 8192

/** Longest `kid` looked up. Longer ones never match a tokensmith key and would only feed refetches. */
export const MAX_KID_LENGTH = 256

/** RFC 7515 §7.1 compact serialization: three non-empty base64url segments, no padding (RFC 7515 §2). */
export const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/

/**
 * Header parameters refused outright. jose never dereferences `jku`/`x5u` nor trusts `jwk`/`x5c` without
 * `EmbeddedJWK`, but tokensmith never emits them, so their presence alone marks a forgery: a key must
 * come from the verifier's own configuration, never from the token (RFC 8725 §3.10). `crit` and `b64`
 * (RFC 7515 §4.1.11, RFC 7797) are never emitted either.
 */
const FORBIDDEN_HEADER_PARAMETERS = ['jku', 'x5u', 'jwk', 'x5c', 'crit', 'b64'] as const

export interface CompactHeader {
  alg: string
  kid: string
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * A segment decodes to bytes that re-encode to the same text. This refuses non-zero trailing bits
 * (the last character of `...Q` vs `...R`), which would let one signature have several spellings.
 */
function isCanonicalBase64url(segment: string): boolean {
  return Buffer.from(segment, 'base64url').toString('base64url') === segment
}

/**
 * Throws unless `token` is a JWS in canonical compact serialization (RFC 7515 §7.1) of at most
 * `maxLength` characters (8 KiB unless a caller takes larger tokens, such as platform tokens): no JSON
 * serialization, no padding, no `+` or `/`, no second spelling of the same bytes.
 */
export function assertCompactJws(token: string, maxLength = MAX_TOKEN_LENGTH): void {
  if (token.length > maxLength) throw invalidToken('token_too_long')
  if (!COMPACT_JWS.test(token)) throw invalidToken('jws_format')
  if (!token.split('.').every(isCanonicalBase64url)) throw invalidToken('non_canonical_base64url')
}

/**
 * Reads the protected header, before any key is touched: the `alg` must be on the allowlist (never the
 * token's own say, RFC 8725 §3.1) and `kid` a plain string, so forged headers cause no JWKS fetch.
 */
export function readProtectedHeader(token: string, algorithms: ReadonlySet<string>): CompactHeader {
  const encoded = token.slice(0, token.indexOf('.'))
  let header: unknown
  try {
    header = JSON.parse(strictUtf8.decode(Buffer.from(encoded, 'base64url')))
  } catch (cause) {
    throw invalidToken('header_invalid', cause)
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw invalidToken('header_invalid')
  const { alg, kid } = header as Record<string, unknown>
  if (typeof alg !== 'string' || !algorithms.has(alg)) throw invalidToken('alg_not_allowed')
  if (FORBIDDEN_HEADER_PARAMETERS.some((name) => Object.hasOwn(header as object, name))) {
    throw invalidToken('forbidden_header')
  }
  // RFC 7515 §4.1.4: kid is a case-sensitive string. Printable ASCII only; nothing else is ever issued.
  if (typeof kid !== 'string' || kid.length === 0 || kid.length > MAX_KID_LENGTH || !/^[\x21-\x7e]+$/.test(kid)) {
    throw invalidToken('kid_invalid')
  }
  return { alg, kid }
}
