// biome-ignore-all lint/style/noNonNullAssertion: typed-array rows: every index comes from the registry's own tables, built together
import { z } from 'zod'
import type { Clock } from '../clock.js'
import { DIGEST_BYTES, DUMMY_DIGEST, digestSecret, digestsEqual } from './secret.js'
import { SCOPE_TOKEN } from '../verifier/grammar.js'
import { parseJwkSet, type JwkSet } from '../verifier/jwk-set.js'
import { isLoopbackHost } from '../config.js'

/**
 * The client registry: who may ask for tokens, with which scopes and for which audiences.
 * Stored as JSON in CLIENTS_FILE; secrets appear only as SHA-256 digests.
 */

/** RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ) */
export { SCOPE_TOKEN }
/** Safe, log- and URL-friendly ids: no `:` (RFC 6749 §2.3.1 Basic credentials), nothing to escape in a log or URL. */
export const CLIENT_ID = /^[A-Za-z0-9._-]{3,64}$/
const AUDIENCE = /^[\x21-\x7E]{1,512}$/

export const GRANT_TYPES = ['client_credentials'] as const

/**
 * RFC 7591 §2 `token_endpoint_auth_method`. Absent: a secret, sent either way RFC 6749 §2.3.1 allows
 * (`client_secret_basic`, `client_secret_post`). `private_key_jwt` (RFC 7523 §2.2): a JWT signed with
 * the client's key (`jwks` or `jwks_uri`), or, with neither, a platform token that a trust entry of
 * TRUST_FILE maps to this client (workload identity federation). Such a client has no secret.
 */
export const ASSERTION_AUTH_METHOD = 'private_key_jwt'

/** Why `value` is not an acceptable client `jwks_uri` (https; plain http only on loopback), or undefined. */
export function jwksUriProblem(value: string): string | undefined {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return 'must be an absolute URL'
  }
  if (url.username || url.password) return 'must not hold a user name or password'
  if (url.hash || value.includes('#')) return 'must not have a fragment'
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname))) {
    return 'must be an https URL (http only for a loopback host)'
  }
  return undefined
}

/** A JWK Set of public signature keys (RFC 7517 §5), as parseJwkSet accepts it. */
const publicJwks = z
  .object({ keys: z.array(z.record(z.string(), z.unknown())).min(1, 'needs at least one key').max(10) })
  .passthrough()
  .superRefine((value, ctx) => {
    try {
      const set = parseJwkSet(value)
      if (set.kids.size !== value.keys.length) ctx.addIssue({ code: 'custom', message: 'every key needs a kid' })
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: (error as Error).message })
    }
  })

const secretEntry = z.object({
  /** base64url SHA-256 of the secret */
  sha256: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'must be a base64url SHA-256 digest'),
  created: z.number().int().nonnegative(),
  /** Epoch seconds from which this secret no longer works (set on rotation); null: no end. */
  expires: z.number().int().nonnegative().nullable().default(null),
})

export const clientEntrySchema = z
  .object({
    client_id: z.string().regex(CLIENT_ID, 'must match ^[A-Za-z0-9._-]{3,64}$'),
    /** Empty only for `private_key_jwt` clients, which have none. */
    secrets: z.array(secretEntry).max(2, 'at most two live secrets').default([]),
    scopes: z.array(z.string().regex(SCOPE_TOKEN, 'each scope must be an RFC 6749 section 3.3 scope-token')).min(1),
    audiences: z.array(z.string().regex(AUDIENCE, 'each audience must be 1-512 visible ASCII characters')).min(1),
    access_token_ttl: z.number().int().min(60).max(3600).optional(),
    grant_types: z.array(z.enum(GRANT_TYPES)).default(['client_credentials']),
    /** May introspect tokens whose aud is one of its audiences (RFC 7662 §2.1). */
    resource_server: z.boolean().default(false),
    /**
     * Epoch seconds: every token issued to this client at or before this instant is refused (set by
     * `client rotate-secret --revoke-tokens`; each server denylists the client when it loads the file).
     */
    tokens_revoked_at: z.number().int().nonnegative().optional(),
    token_endpoint_auth_method: z.literal(ASSERTION_AUTH_METHOD).optional(),
    /** private_key_jwt: the client's public keys, inline (RFC 7591 §2 `jwks`). */
    jwks: publicJwks.optional(),
    /** private_key_jwt: where the client publishes its public keys (RFC 7591 §2 `jwks_uri`). */
    jwks_uri: z
      .string()
      .max(2048)
      .superRefine((value, ctx) => {
        const problem = jwksUriProblem(value)
        if (problem) ctx.addIssue({ code: 'custom', message: problem })
      })
      .optional(),
    /** private_key_jwt: refuse assertions without `typ: client-authentication+jwt` (RFC 10070). */
    require_typ: z.boolean().optional(),
    /** Tokens this client may be issued per minute, over every instance; past it 429. Unset: no quota. */
    quota: z.number().int().min(1).max(1_000_000).optional(),
    /** Refuse token requests without a DPoP proof (RFC 9449 §5): every token is sender-constrained. */
    require_dpop: z.boolean().optional(),
  })
  .strict()
  .superRefine((entry, ctx) => {
    if (entry.token_endpoint_auth_method === ASSERTION_AUTH_METHOD) {
      if (entry.secrets.length > 0) {
        ctx.addIssue({ code: 'custom', path: ['secrets'], message: 'a private_key_jwt client has no secret' })
      }
      if (entry.jwks !== undefined && entry.jwks_uri !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['jwks_uri'], message: 'use jwks or jwks_uri, not both' })
      }
      return
    }
    if (entry.secrets.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['secrets'], message: 'needs at least one secret digest' })
    }
    for (const field of ['jwks', 'jwks_uri', 'require_typ'] as const) {
      if (entry[field] !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: [field],
          message: 'only for token_endpoint_auth_method "private_key_jwt"',
        })
      }
    }
  })

export const clientsFileSchema = z.object({ clients: z.array(clientEntrySchema) }).strict()

export type ClientEntry = z.infer<typeof clientEntrySchema>
export type ClientsFile = z.infer<typeof clientsFileSchema>

/**
 * How a private_key_jwt client proves itself (RFC 7523 §2.2): its own keys, inline or at a URL; with
 * neither, only through a workload identity federation trust entry.
 */
export interface AssertionSettings {
  jwks?: JwkSet
  jwksUri?: string
  /** Refuse assertions without `typ: client-authentication+jwt` (RFC 10070). */
  requireTyp: boolean
}

/** One client, as the token endpoint sees it. Clients with the same settings share these arrays. */
export interface Client {
  id: string
  scopes: readonly string[]
  audiences: readonly string[]
  accessTokenTtl: number | undefined
  grantTypes: readonly string[]
  resourceServer: boolean
  /** Set for private_key_jwt clients (which have no secret); undefined for secret clients. */
  assertion?: AssertionSettings
  /** Tokens per minute, over every instance; undefined: no quota. */
  quota: number | undefined
  /** Token requests need a DPoP proof (RFC 9449 §5). */
  requireDpop: boolean
}

export interface ClientRegistry {
  get(id: string): Client | undefined
  /**
   * RFC 6749 §2.3.1: the client when `digest` is that of one of its live secrets (expiry after
   * `now`), else undefined. Compares in constant time, every live secret, and against a dummy
   * digest when there is none, so timing tells neither whether the id exists nor which secret
   * matched. Use verifyClientSecret.
   */
  match(id: string, digest: Buffer, now: number): Client | undefined
  /** Union of every client's scopes, for RFC 8414 scopes_supported. */
  readonly scopes: readonly string[]
  readonly size: number
  has(id: string): boolean
  /** Every client id, in file order. */
  ids(): IterableIterator<string>
  /** `tokens_revoked_at` of the clients that have one. */
  readonly tokensRevokedAt: ReadonlyMap<string, number>
  /**
   * What CLIENTS_FILE was when this registry was read from it (inode, size, mtime, as
   * clientsFileSignature gives it; 'missing' for no file), so the watcher starts from there.
   */
  readonly source?: string
}

/**
 * Parses the registry file's text. Throws an Error whose message names the client and field, so a
 * broken file stops start-up (or a reload) with something an operator can act on.
 */
export function parseClientsFile(text: string): ClientsFile {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (error) {
    throw new Error(`not valid JSON: ${(error as Error).message}`)
  }
  const parsed = clientsFileSchema.safeParse(json)
  if (!parsed.success) {
    const issue = parsed.error.issues[0] ?? { path: [], message: 'invalid' }
    const [root, index, ...field] = issue.path
    const where =
      root === 'clients' && typeof index === 'number'
        ? `client ${JSON.stringify(readClientId(json, index))} field ${field.join('.') || '(entry)'}`
        : `field ${issue.path.join('.') || '(root)'}`
    throw new Error(`${where}: ${issue.message}`)
  }
  const seen = new Set<string>()
  for (const client of parsed.data.clients) {
    if (seen.has(client.client_id)) throw new Error(`client ${JSON.stringify(client.client_id)} is listed twice`)
    seen.add(client.client_id)
  }
  return parsed.data
}

function readClientId(json: unknown, index: number): string {
  const entry = (json as { clients?: { client_id?: unknown }[] }).clients?.[index]
  return typeof entry?.client_id === 'string' ? entry.client_id.slice(0, 64) : `#${index}`
}

/** The settings clients share: interned, so 100,000 clients with one set of scopes hold one array. */
interface Profile {
  scopes: readonly string[]
  audiences: readonly string[]
  grantTypes: readonly string[]
  resourceServer: boolean
  accessTokenTtl: number | undefined
  quota: number | undefined
  requireDpop: boolean
}

/** What a client entry says besides its id and secrets; the arrays are copied when kept. */
export interface ClientSettings {
  scopes: readonly string[]
  audiences: readonly string[]
  grantTypes: readonly string[]
  resourceServer: boolean
  accessTokenTtl: number | undefined
  tokensRevokedAt: number | undefined
  /** Tokens per minute; undefined: no quota. */
  quota?: number | undefined
  /** Token requests need a DPoP proof. */
  requireDpop?: boolean | undefined
  /** private_key_jwt clients only (they are few: kept beside the compact rows). */
  assertion?: AssertionSettings | undefined
}

export interface RegistryBuilder {
  /** A secret of the client added next: its 32-byte digest (copied) and expiry (null: none). */
  secret(digest: Buffer, expires: number | null): void
  /** Adds the client with the secrets given since the last one. False when the id was added before (the later entry wins). */
  client(id: string, settings: ClientSettings): boolean
  build(source?: string): ClientRegistry
}

/**
 * Builds a registry that costs about a hundred bytes per client beyond its id: one Map from id to
 * row, and per row a settings index, the first secret's index, and per secret 32 digest bytes in
 * one shared Buffer and an expiry in one Float64Array. No object per client or per secret lives on
 * (nothing for the garbage collector to trace, whatever the number of clients); `get` makes the
 * small Client object a request needs.
 */
export function createRegistryBuilder(): RegistryBuilder {
  const rows = new Map<string, number>()
  const profiles: Profile[] = []
  const profileIndex = new Map<string, number>()
  const tokensRevokedAt = new Map<string, number>()
  const assertions = new Map<string, AssertionSettings>()
  let profileOf = new Uint32Array(1024)
  let firstSecret = new Uint32Array(1025)
  let digests = Buffer.alloc(1024 * DIGEST_BYTES)
  let expiries = new Float64Array(1024)
  let rowCount = 0
  let secretCount = 0

  const grow = <T extends Uint32Array | Float64Array>(array: T, needed: number): T => {
    if (needed <= array.length) return array
    const larger = new (array.constructor as new (length: number) => T)(Math.max(needed, array.length * 2))
    larger.set(array)
    return larger
  }

  // Entries usually repeat the settings of the one before: checked first, without building a key.
  let last: { settings: Profile; index: number } | undefined
  const profileFor = (settings: ClientSettings): number => {
    if (last && sameSettings(last.settings, settings)) return last.index
    // Scope-tokens and audiences have no spaces or line breaks, so this key is unambiguous.
    const key = `${settings.scopes.join(' ')}\n${settings.audiences.join(' ')}\n${settings.grantTypes.join(' ')}\n${settings.resourceServer}\n${settings.accessTokenTtl}\n${settings.quota}\n${settings.requireDpop === true}`
    let index = profileIndex.get(key)
    if (index === undefined) {
      index = profiles.length
      profiles.push({
        scopes: Object.freeze([...settings.scopes]),
        audiences: Object.freeze([...settings.audiences]),
        grantTypes: Object.freeze([...settings.grantTypes]),
        resourceServer: settings.resourceServer,
        accessTokenTtl: settings.accessTokenTtl,
        quota: settings.quota,
        requireDpop: settings.requireDpop === true,
      })
      profileIndex.set(key, index)
    }
    last = { settings: profiles[index]!, index }
    return index
  }

  return {
    secret(digest, expires) {
      if (digest.length !== DIGEST_BYTES) throw new Error('a secret digest is 32 bytes')
      if ((secretCount + 1) * DIGEST_BYTES > digests.length) {
        const larger = Buffer.alloc(digests.length * 2)
        digests.copy(larger)
        digests = larger
      }
      const offset = secretCount * DIGEST_BYTES
      for (let i = 0; i < DIGEST_BYTES; i++) digests[offset + i] = digest[i]!
      expiries = grow(expiries, secretCount + 1)
      expiries[secretCount++] = expires ?? Infinity
    },
    client(id, settings) {
      const row = rowCount++
      profileOf = grow(profileOf, rowCount)
      firstSecret = grow(firstSecret, rowCount + 1)
      profileOf[row] = profileFor(settings)
      firstSecret[row + 1] = secretCount
      const before = rows.size
      rows.set(id, row)
      const added = rows.size > before
      if (settings.tokensRevokedAt !== undefined) tokensRevokedAt.set(id, settings.tokensRevokedAt)
      else if (!added) tokensRevokedAt.delete(id)
      if (settings.assertion !== undefined) assertions.set(id, settings.assertion)
      else if (!added) assertions.delete(id)
      return added
    },
    build(source) {
      // Exact sizes: the slack of the doubling goes back with the builder.
      return compactRegistry({
        rows,
        profiles,
        profileOf: profileOf.slice(0, rowCount),
        firstSecret: firstSecret.slice(0, rowCount + 1),
        digests: Buffer.from(digests.subarray(0, secretCount * DIGEST_BYTES)),
        expiries: expiries.slice(0, secretCount),
        tokensRevokedAt,
        assertions,
        source,
      })
    },
  }
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

const sameSettings = (profile: Profile, settings: ClientSettings) =>
  profile.resourceServer === settings.resourceServer &&
  profile.accessTokenTtl === settings.accessTokenTtl &&
  profile.quota === settings.quota &&
  profile.requireDpop === (settings.requireDpop === true) &&
  sameStrings(profile.scopes, settings.scopes) &&
  sameStrings(profile.audiences, settings.audiences) &&
  sameStrings(profile.grantTypes, settings.grantTypes)

function compactRegistry(parts: {
  rows: Map<string, number>
  profiles: Profile[]
  profileOf: Uint32Array
  firstSecret: Uint32Array
  digests: Buffer
  expiries: Float64Array
  tokensRevokedAt: Map<string, number>
  assertions: Map<string, AssertionSettings>
  source: string | undefined
}): ClientRegistry {
  const { rows, profiles, profileOf, firstSecret, digests, expiries, assertions } = parts
  const clientAt = (id: string, row: number): Client => {
    const profile = profiles[profileOf[row]!]!
    const client: Client = {
      id,
      scopes: profile.scopes,
      audiences: profile.audiences,
      accessTokenTtl: profile.accessTokenTtl,
      grantTypes: profile.grantTypes,
      resourceServer: profile.resourceServer,
      quota: profile.quota,
      requireDpop: profile.requireDpop,
    }
    if (assertions.size > 0) {
      const assertion = assertions.get(id)
      if (assertion) client.assertion = assertion
    }
    return client
  }
  const scopes = [...new Set(profiles.flatMap((profile) => profile.scopes))].sort()
  return {
    get(id) {
      const row = rows.get(id)
      return row === undefined ? undefined : clientAt(id, row)
    },
    match(id, digest, now) {
      const row = rows.get(id)
      let live = 0
      let match = false
      if (row !== undefined) {
        for (let index = firstSecret[row]!, end = firstSecret[row + 1]!; index < end; index++) {
          if (!(expiries[index]! > now)) continue
          live++
          // No early exit: every live secret is compared.
          match = digestsEqual(digest, digests.subarray(index * DIGEST_BYTES, (index + 1) * DIGEST_BYTES)) || match
        }
      }
      // Unknown id, or no live secret: the same comparison against a digest nothing matches.
      if (live === 0) digestsEqual(digest, DUMMY_DIGEST)
      return match && row !== undefined ? clientAt(id, row) : undefined
    },
    scopes,
    size: rows.size,
    has: (id) => rows.has(id),
    ids: () => rows.keys(),
    tokensRevokedAt: parts.tokensRevokedAt,
    ...(parts.source !== undefined && { source: parts.source }),
  }
}

/** The registry of already parsed entries (the CLI's, tests'). A client listed twice: the later entry wins. */
export function createClientRegistry(file: ClientsFile, source?: string): ClientRegistry {
  const builder = createRegistryBuilder()
  for (const entry of file.clients) {
    for (const secret of entry.secrets) builder.secret(Buffer.from(secret.sha256, 'base64url'), secret.expires)
    builder.client(entry.client_id, {
      scopes: entry.scopes,
      audiences: entry.audiences,
      grantTypes: entry.grant_types,
      resourceServer: entry.resource_server,
      accessTokenTtl: entry.access_token_ttl,
      tokensRevokedAt: entry.tokens_revoked_at,
      quota: entry.quota,
      requireDpop: entry.require_dpop,
      assertion: assertionSettings(entry),
    })
  }
  return builder.build(source)
}

/** A private_key_jwt entry's keys and options, parsed once when the registry is built. */
function assertionSettings(entry: ClientEntry): AssertionSettings | undefined {
  if (entry.token_endpoint_auth_method !== ASSERTION_AUTH_METHOD) return undefined
  return {
    ...(entry.jwks !== undefined && { jwks: parseJwkSet(entry.jwks) }),
    ...(entry.jwks_uri !== undefined && { jwksUri: entry.jwks_uri }),
    requireTyp: entry.require_typ ?? false,
  }
}

/**
 * RFC 6749 §2.3.1. Returns the client when `secret` matches one of its live secrets, else
 * undefined. The secret is hashed once whether or not the client exists, and the registry compares
 * in constant time (see ClientRegistry.match), so timing tells nothing (RFC 6819 §5.1.4.1.3).
 */
export function verifyClientSecret(
  registry: ClientRegistry,
  clientId: string,
  secret: string,
  clock: Clock,
): Client | undefined {
  return registry.match(clientId, digestSecret(secret), clock())
}
