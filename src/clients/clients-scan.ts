// biome-ignore-all lint/style/noNonNullAssertion: a byte scanner: every index is checked against the buffer length before it is read
import { DIGEST_BYTES } from './secret.js'
import { createRegistryBuilder, type ClientRegistry } from './registry.js'

/**
 * The server's fast path for CLIENTS_FILE. JSON.parse, the zod schema and the duplicate-name scan
 * of 100,000 clients take seconds and several hundred MiB that the process then keeps (V8 does not
 * hand a grown heap back): the whole text, the parsed tree and the schema's copy of it are alive at
 * once. This reads the file in 64 KiB chunks and builds the registry as it goes: no text, no tree,
 * no object per entry.
 *
 * It takes only the plain form that the `client` script writes (pretty-printed or not, members in
 * any order): strings of printable ASCII without escapes, numbers that are plain non-negative
 * integers, each member once, every value within the schema's limits. Anything else makes it give
 * up (undefined), and the caller reads the file the thorough way (JSON.parse, the schema, the
 * duplicate-name scan: RFC 8259 §4), which accepts it or refuses it with the message it always did.
 * So this never accepts a file the thorough way refuses, and reads no file differently from it (a
 * test checks both on generated and mutated files).
 */

/** Reads up to `length` bytes at file `position` into `buffer` at `offset`; 0 at the end. */
export type ReadAt = (buffer: Buffer, offset: number, length: number, position: number) => number

const CHUNK_BYTES = 64 * 1024
/** The longest string the fast path takes whole (an audience is at most 512 characters). */
const MAX_STRING = 1024
/** 15 digits: every such integer is exact, and within the schema's (safe integer) range. */
const MAX_DIGITS = 15

const QUOTE = 0x22
const COMMA = 0x2c
const COLON = 0x3a
const OPEN_ARRAY = 0x5b
const CLOSE_ARRAY = 0x5d
const OPEN_OBJECT = 0x7b
const CLOSE_OBJECT = 0x7d

/** A 256-entry table of the bytes a kind of string may hold. */
function byteTable(allowed: (byte: number) => boolean): Uint8Array {
  const table = new Uint8Array(256)
  for (let byte = 0; byte < 256; byte++) table[byte] = allowed(byte) ? 1 : 0
  return table
}
const isAlnum = (b: number) => (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a)
/** The registry's CLIENT_ID: [A-Za-z0-9._-]. */
const ID_BYTES = byteTable((b) => isAlnum(b) || b === 0x2e || b === 0x5f || b === 0x2d)
/** RFC 6749 §3.3 scope-token: %x21 / %x23-5B / %x5D-7E (no quote, no backslash). */
const SCOPE_BYTES = byteTable((b) => b === 0x21 || (b >= 0x23 && b <= 0x5b) || (b >= 0x5d && b <= 0x7e))
/** The registry's AUDIENCE: visible ASCII, %x21-7E; a quote or backslash would be an escape, left to the thorough way. */
const AUDIENCE_BYTES = byteTable((b) => b >= 0x21 && b <= 0x7e && b !== QUOTE && b !== 0x5c)
/** base64url (RFC 4648 §5). */
const BASE64URL_BYTES = byteTable((b) => isAlnum(b) || b === 0x2d || b === 0x5f)
/** Member names: printable ASCII without escapes (any other name is unknown anyway). */
const NAME_BYTES = byteTable((b) => b >= 0x20 && b <= 0x7e && b !== QUOTE && b !== 0x5c)
const BASE64URL_VALUE = (() => {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  const values = new Uint8Array(256)
  for (let i = 0; i < alphabet.length; i++) values[alphabet.charCodeAt(i)] = i
  return values
})()

const NAMES = {
  clients: Buffer.from('clients'),
  client_id: Buffer.from('client_id'),
  secrets: Buffer.from('secrets'),
  scopes: Buffer.from('scopes'),
  audiences: Buffer.from('audiences'),
  access_token_ttl: Buffer.from('access_token_ttl'),
  grant_types: Buffer.from('grant_types'),
  resource_server: Buffer.from('resource_server'),
  tokens_revoked_at: Buffer.from('tokens_revoked_at'),
  sha256: Buffer.from('sha256'),
  created: Buffer.from('created'),
  expires: Buffer.from('expires'),
}
const CLIENT_MEMBERS = [
  NAMES.client_id,
  NAMES.secrets,
  NAMES.scopes,
  NAMES.audiences,
  NAMES.access_token_ttl,
  NAMES.grant_types,
  NAMES.resource_server,
  NAMES.tokens_revoked_at,
]
const [CLIENT_ID, SECRETS, SCOPES, AUDIENCES, ACCESS_TOKEN_TTL, GRANT_TYPES, RESOURCE_SERVER, TOKENS_REVOKED_AT] = [
  0, 1, 2, 3, 4, 5, 6, 7,
]
const REQUIRED_CLIENT_MEMBERS = (1 << CLIENT_ID) | (1 << SECRETS) | (1 << SCOPES) | (1 << AUDIENCES)
const SECRET_MEMBERS = [NAMES.sha256, NAMES.created, NAMES.expires]
const [SHA256, CREATED, EXPIRES] = [0, 1, 2]
const REQUIRED_SECRET_MEMBERS = (1 << SHA256) | (1 << CREATED)
const CLIENT_CREDENTIALS = Buffer.from('client_credentials')
const LITERALS = { true: Buffer.from('true'), false: Buffer.from('false'), null: Buffer.from('null') }

/** Thrown inside the scan, caught at its top: the file is not in the plain form. */
const GIVE_UP = new Error('not the plain CLIENTS_FILE form')

/**
 * The registry of the CLIENTS_FILE that `read` reads, or undefined when it is not in the plain
 * form (see above). Errors of `read` are thrown as they are.
 */
export function scanClientsFile(read: ReadAt, source?: string): ClientRegistry | undefined {
  const buffer = Buffer.allocUnsafe(CHUNK_BYTES)
  let position = 0 // next byte of the buffer to look at
  let end = 0 // end of the bytes read into the buffer
  let filePosition = 0
  let atEnd = false
  const builder = createRegistryBuilder()
  const digest = Buffer.alloc(DIGEST_BYTES)
  // Scratch, reused for every client: the builder copies what it keeps.
  const scopes: string[] = []
  const audiences: string[] = []
  const grantTypes: string[] = []

  /** At least `count` bytes from `position` in the buffer, unless the file ends first. */
  function ensure(count: number): void {
    if (end - position >= count || atEnd) return
    buffer.copy(buffer, 0, position, end)
    end -= position
    position = 0
    while (end - position < count && !atEnd) {
      const got = read(buffer, end, buffer.length - end, filePosition)
      if (got === 0) atEnd = true
      filePosition += got
      end += got
    }
  }

  /** The next byte, -1 at the end of the file. */
  function peek(): number {
    ensure(1)
    return position < end ? buffer[position]! : -1
  }

  /** RFC 8259 §2: insignificant whitespace is space, tab, line feed and carriage return. */
  function skipWhitespace(): void {
    for (;;) {
      // Locals in the loop: most of a pretty-printed file is indentation.
      let at = position
      const stop = end
      while (at < stop) {
        const byte = buffer[at]!
        if (byte !== 0x20 && byte !== 0x0a && byte !== 0x0d && byte !== 0x09) break
        at++
      }
      position = at
      if (at < stop) return
      ensure(1)
      if (position === end) return
    }
  }

  function expect(byte: number): void {
    skipWhitespace()
    if (peek() !== byte) throw GIVE_UP
    position++
  }

  /** `,` (true: another element follows) or the closing byte (false), after whitespace. */
  function another(close: number): boolean {
    skipWhitespace()
    const byte = peek()
    position++
    if (byte === COMMA) return true
    if (byte === close) return false
    throw GIVE_UP
  }

  /** A string of `min` to `max` bytes from `allowed`: its start in the buffer (the quote is skipped), until the next `ensure`. */
  function string(allowed: Uint8Array, min: number, max: number): number {
    skipWhitespace()
    ensure(max + 2)
    if (position === end || buffer[position] !== QUOTE) throw GIVE_UP
    const start = position + 1
    const limit = Math.min(end, start + max + 1)
    let at = start
    while (at < limit && buffer[at] !== QUOTE) {
      if (allowed[buffer[at]!] !== 1) throw GIVE_UP
      at++
    }
    if (at === limit || at - start < min) throw GIVE_UP
    position = at + 1
    return start
  }

  /** Length of the string that `string` just read. */
  const stringLength = (start: number) => position - 1 - start

  const equals = (start: number, length: number, name: Buffer) => {
    if (length !== name.length) return false
    for (let i = 0; i < length; i++) if (buffer[start + i] !== name[i]) return false
    return true
  }

  /** A member name (from `names`, else give up) and its colon; its index. */
  function memberName(names: readonly Buffer[]): number {
    const start = string(NAME_BYTES, 1, 32)
    const length = stringLength(start)
    let found = -1
    for (let i = 0; i < names.length && found === -1; i++) if (equals(start, length, names[i]!)) found = i
    if (found === -1) throw GIVE_UP
    expect(COLON)
    return found
  }

  /** A plain non-negative integer from `min` to `max`: no sign, fraction, exponent or leading zero. */
  function integer(min: number, max: number): number {
    skipWhitespace()
    ensure(MAX_DIGITS + 1)
    let value = 0
    let digits = 0
    while (position < end) {
      const byte = buffer[position]!
      if (byte < 0x30 || byte > 0x39) break
      if ((digits === 1 && value === 0) || digits === MAX_DIGITS) throw GIVE_UP
      value = value * 10 + (byte - 0x30)
      digits++
      position++
    }
    if (digits === 0 || value < min || value > max) throw GIVE_UP
    return value
  }

  /** Whether `bytes` (true, false, null) come next; consumed when they do. */
  function literal(bytes: Buffer): boolean {
    skipWhitespace()
    ensure(bytes.length)
    if (end - position < bytes.length || !equals(position, bytes.length, bytes)) return false
    position += bytes.length
    return true
  }

  /** Whether the bytes at `start` spell `text`. */
  const spells = (start: number, length: number, text: string) => {
    if (length !== text.length) return false
    for (let i = 0; i < length; i++) if (buffer[start + i] !== text.charCodeAt(i)) return false
    return true
  }

  /**
   * A non-empty array of strings, into `into`. The previous entry's strings stay where the same
   * ones come again (the usual case), so most entries make no new string here.
   */
  function strings(into: string[], allowed: Uint8Array, max: number): void {
    expect(OPEN_ARRAY)
    let count = 0
    do {
      const start = string(allowed, 1, max)
      const previous = into[count]
      into[count++] =
        previous !== undefined && spells(start, stringLength(start), previous)
          ? previous
          : buffer.toString('latin1', start, position - 1)
    } while (another(CLOSE_ARRAY))
    into.length = count
  }

  /** The 32 bytes a 43-character base64url digest stands for (its last 2 bits unused, as Buffer.from reads it). */
  function decodeDigest(start: number): void {
    let out = 0
    let at = start
    for (let group = 0; group < 10; group++, at += 4) {
      const bits =
        (BASE64URL_VALUE[buffer[at]!]! << 18) |
        (BASE64URL_VALUE[buffer[at + 1]!]! << 12) |
        (BASE64URL_VALUE[buffer[at + 2]!]! << 6) |
        BASE64URL_VALUE[buffer[at + 3]!]!
      digest[out++] = bits >> 16
      digest[out++] = (bits >> 8) & 0xff
      digest[out++] = bits & 0xff
    }
    const bits =
      (BASE64URL_VALUE[buffer[at]!]! << 12) |
      (BASE64URL_VALUE[buffer[at + 1]!]! << 6) |
      BASE64URL_VALUE[buffer[at + 2]!]!
    digest[out++] = bits >> 10
    digest[out] = (bits >> 2) & 0xff
  }

  /** {"sha256": …, "created": …, "expires": … | null}, handed to the builder. */
  function secret(): void {
    expect(OPEN_OBJECT)
    let seen = 0
    let expires: number | null = null
    do {
      const member = memberName(SECRET_MEMBERS)
      if (seen & (1 << member)) throw GIVE_UP
      seen |= 1 << member
      if (member === SHA256) decodeDigest(string(BASE64URL_BYTES, 43, 43))
      else if (member === CREATED) integer(0, Number.MAX_SAFE_INTEGER)
      else if (member === EXPIRES) expires = literal(LITERALS.null) ? null : integer(0, Number.MAX_SAFE_INTEGER)
    } while (another(CLOSE_OBJECT))
    if ((seen & REQUIRED_SECRET_MEMBERS) !== REQUIRED_SECRET_MEMBERS) throw GIVE_UP
    builder.secret(digest, expires)
  }

  /** One client entry, added to the builder. */
  function client(): void {
    expect(OPEN_OBJECT)
    let seen = 0
    let id = ''
    let accessTokenTtl: number | undefined
    let resourceServer = false
    let tokensRevokedAt: number | undefined
    // scopes and audiences keep the previous entry's strings until overwritten (see strings()).
    grantTypes.length = 0
    grantTypes.push('client_credentials') // the schema's default, replaced when the entry has grant_types
    do {
      const member = memberName(CLIENT_MEMBERS)
      if (seen & (1 << member)) throw GIVE_UP
      seen |= 1 << member
      switch (member) {
        case CLIENT_ID: {
          const start = string(ID_BYTES, 3, 64)
          id = buffer.toString('latin1', start, position - 1)
          break
        }
        case SECRETS: {
          expect(OPEN_ARRAY)
          let count = 0
          do {
            secret()
            count++
          } while (another(CLOSE_ARRAY))
          if (count > 2) throw GIVE_UP
          break
        }
        case SCOPES:
          strings(scopes, SCOPE_BYTES, MAX_STRING)
          break
        case AUDIENCES:
          strings(audiences, AUDIENCE_BYTES, 512)
          break
        case ACCESS_TOKEN_TTL:
          accessTokenTtl = integer(60, 3600)
          break
        case GRANT_TYPES:
          grantTypes.length = 0
          expect(OPEN_ARRAY)
          skipWhitespace()
          if (peek() === CLOSE_ARRAY) {
            position++
            break
          }
          do {
            const start = string(NAME_BYTES, 1, CLIENT_CREDENTIALS.length)
            if (!equals(start, stringLength(start), CLIENT_CREDENTIALS)) throw GIVE_UP
            grantTypes.push('client_credentials')
          } while (another(CLOSE_ARRAY))
          break
        case RESOURCE_SERVER:
          if (literal(LITERALS.true)) resourceServer = true
          else if (literal(LITERALS.false)) resourceServer = false
          else throw GIVE_UP
          break
        case TOKENS_REVOKED_AT:
          tokensRevokedAt = integer(0, Number.MAX_SAFE_INTEGER)
          break
      }
    } while (another(CLOSE_OBJECT))
    if ((seen & REQUIRED_CLIENT_MEMBERS) !== REQUIRED_CLIENT_MEMBERS) throw GIVE_UP
    // Listed twice: the thorough way names it.
    if (!builder.client(id, { scopes, audiences, grantTypes, resourceServer, accessTokenTtl, tokensRevokedAt }))
      throw GIVE_UP
  }

  try {
    // {"clients": [ … ]} and nothing else.
    expect(OPEN_OBJECT)
    if (memberName([NAMES.clients]) !== 0) throw GIVE_UP
    expect(OPEN_ARRAY)
    skipWhitespace()
    if (peek() === CLOSE_ARRAY) position++
    else {
      do client()
      while (another(CLOSE_ARRAY))
    }
    expect(CLOSE_OBJECT)
    skipWhitespace()
    if (peek() !== -1) throw GIVE_UP
  } catch (error) {
    if (error === GIVE_UP) return undefined
    throw error
  }
  return builder.build(source)
}
