import { z } from 'zod'
import type { Clock } from '../clock.js'
import { DUMMY_DIGEST, digestSecret, digestsEqual } from './secret.js'

/**
 * The client registry: who may ask for tokens, with which scopes and for which audiences.
 * Stored as JSON in CLIENTS_FILE; secrets appear only as SHA-256 digests.
 */

/** RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ) */
export const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/
/** Safe, log- and URL-friendly ids (checklist TF-23). */
export const CLIENT_ID = /^[A-Za-z0-9._-]{3,64}$/
const AUDIENCE = /^[\x21-\x7E]{1,512}$/

export const GRANT_TYPES = ['client_credentials'] as const

const secretEntry = z.object({
  /** base64url SHA-256 of the secret */
  sha256: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'must be a base64url SHA-256 digest'),
  created: z.number().int().nonnegative(),
  /** Epoch seconds from which this secret no longer works (set on rotation); null: no end. */
  expires: z.number().int().nonnegative().nullable().default(null),
})

export const clientEntrySchema = z.object({
  client_id: z.string().regex(CLIENT_ID, 'must match ^[A-Za-z0-9._-]{3,64}$'),
  secrets: z.array(secretEntry).min(1, 'needs at least one secret digest').max(2, 'at most two live secrets'),
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
}).strict()

export const clientsFileSchema = z.object({ clients: z.array(clientEntrySchema) }).strict()

export type ClientEntry = z.infer<typeof clientEntrySchema>
export type ClientsFile = z.infer<typeof clientsFileSchema>

export interface Client {
  id: string
  secrets: { digest: Buffer; expires: number | null }[]
  scopes: string[]
  audiences: string[]
  accessTokenTtl: number | undefined
  grantTypes: string[]
  resourceServer: boolean
}

export interface ClientRegistry {
  get(id: string): Client | undefined
  /** Union of every client's scopes, for RFC 8414 scopes_supported. */
  readonly scopes: readonly string[]
  readonly size: number
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
    const issue = parsed.error.issues[0]!
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

export function createClientRegistry(file: ClientsFile): ClientRegistry {
  const clients = new Map<string, Client>()
  for (const entry of file.clients) {
    clients.set(entry.client_id, {
      id: entry.client_id,
      secrets: entry.secrets.map((secret) => ({
        digest: Buffer.from(secret.sha256, 'base64url'),
        expires: secret.expires,
      })),
      scopes: entry.scopes,
      audiences: entry.audiences,
      accessTokenTtl: entry.access_token_ttl,
      grantTypes: entry.grant_types,
      resourceServer: entry.resource_server,
    })
  }
  const scopes = [...new Set(file.clients.flatMap((client) => client.scopes))].sort()
  return { get: (id) => clients.get(id), scopes, size: clients.size }
}

/**
 * RFC 6749 §2.3.1. Returns the client when `secret` matches one of its live secrets, else
 * undefined. Unknown ids do the same hashing and comparing work against a dummy digest, and
 * every live secret is compared (no early exit), so timing tells nothing (checklist SK-4).
 */
export function verifyClientSecret(
  registry: ClientRegistry,
  clientId: string,
  secret: string,
  clock: Clock,
): Client | undefined {
  const digest = digestSecret(secret)
  const client = registry.get(clientId)
  const now = clock()
  const candidates = client?.secrets.filter((s) => s.expires === null || s.expires > now) ?? []
  let match = false
  for (const candidate of candidates.length > 0 ? candidates : [{ digest: DUMMY_DIGEST }]) {
    match = digestsEqual(digest, candidate.digest) || match
  }
  return match && candidates.length > 0 ? client : undefined
}
