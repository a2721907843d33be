import type { Clock } from '../clock.js'
import { readClientsFile, updateClientsFile } from './clients-file.js'
import type { ClientEntry, ClientsFile } from './registry.js'
import { rotateEntrySecret, secretGrace, storedSecret } from './rotation.js'

/**
 * Client administration over CLIENTS_FILE, as the `client` command applies it. Each change is a
 * pure function from the file's data to the next, with what it reports; the operations at the end
 * apply them under the file's lock (updateClientsFile) and order them against the denylist.
 * Secrets are shown once, when made; the file holds only their digests.
 */

/** What making a secret needs: the time, and a fresh secret (generateSecret in secret.ts). */
export interface SecretDeps {
  clock: Clock
  generateSecret(): string
}

/** The next file and what the change reports: the shape updateClientsFile takes. */
export interface ClientsChange<T> {
  file: ClientsFile
  result: T
}

/** A client's settings as the operator gives them. */
export interface ClientSettings {
  scopes: string[]
  audiences: string[]
  /** Seconds; unset: the server's ACCESS_TOKEN_TTL. */
  accessTokenTtl?: number | undefined
  /** May introspect tokens for its audiences (RFC 7662 §2.1). */
  resourceServer: boolean
}

/** The client `id`; throws when there is none. */
export function findClient(file: ClientsFile, id: string): ClientEntry {
  const entry = file.clients.find((c) => c.client_id === id)
  if (!entry) throw new Error(`no client ${id}`)
  return entry
}

/** Public view of a client: no secret, no digest (secrets are shown once, at creation). */
export function describeClient(entry: ClientEntry) {
  return {
    client_id: entry.client_id,
    scopes: entry.scopes,
    audiences: entry.audiences,
    access_token_ttl: entry.access_token_ttl ?? null,
    grant_types: entry.grant_types,
    resource_server: entry.resource_server,
    secrets: entry.secrets.map((secret) => ({ created: secret.created, expires: secret.expires })),
    ...(entry.tokens_revoked_at !== undefined && { tokens_revoked_at: entry.tokens_revoked_at }),
  }
}

const replace = (file: ClientsFile, next: ClientEntry): ClientsFile => ({
  clients: file.clients.map((c) => (c.client_id === next.client_id ? next : c)),
})

/** Adds client `id` with one new secret, for the client_credentials grant (RFC 6749 §4.4) only. Returns the secret. */
export function createClient(
  file: ClientsFile,
  id: string,
  settings: ClientSettings,
  deps: SecretDeps,
): ClientsChange<{ clientSecret: string }> {
  if (file.clients.some((c) => c.client_id === id)) throw new Error(`client ${id} already exists`)
  const clientSecret = deps.generateSecret()
  const entry: ClientEntry = {
    client_id: id,
    secrets: [storedSecret(clientSecret, deps.clock())],
    scopes: settings.scopes,
    audiences: settings.audiences,
    ...(settings.accessTokenTtl !== undefined && { access_token_ttl: settings.accessTokenTtl }),
    grant_types: ['client_credentials'],
    resource_server: settings.resourceServer,
  }
  return { file: { clients: [...file.clients, entry] }, result: { clientSecret } }
}

/** Changes the settings given; the others, and the secrets, stay. Returns the client as changed. */
export function updateClient(
  file: ClientsFile,
  id: string,
  changes: Partial<ClientSettings>,
): ClientsChange<ClientEntry> {
  const entry = findClient(file, id)
  const next: ClientEntry = {
    ...entry,
    ...(changes.scopes && { scopes: changes.scopes }),
    ...(changes.audiences && { audiences: changes.audiences }),
    ...(changes.accessTokenTtl !== undefined && { access_token_ttl: changes.accessTokenTtl }),
    ...(changes.resourceServer !== undefined && { resource_server: changes.resourceServer }),
  }
  return { file: replace(file, next), result: next }
}

/** Removes client `id` (its tokens are ended by deleteClientFromFile). */
export function deleteClient(file: ClientsFile, id: string): ClientsChange<undefined> {
  findClient(file, id)
  return { file: { clients: file.clients.filter((c) => c.client_id !== id) }, result: undefined }
}

export interface RotateSecretOptions {
  /** Seconds the previous secret keeps working (see secretGrace). */
  grace?: number | undefined
  /** End the previous secret now and refuse every token issued to the client up to now. */
  revokeTokens: boolean
}

/**
 * A new secret for client `id` (see rotateEntrySecret). Returns it, and when the previous one stops
 * working (null: there was none).
 */
export function rotateClientSecret(
  file: ClientsFile,
  id: string,
  options: RotateSecretOptions,
  deps: SecretDeps,
): ClientsChange<{ clientSecret: string; previousExpires: number | null }> {
  const entry = findClient(file, id)
  const clientSecret = deps.generateSecret()
  const rotated = rotateEntrySecret(entry, clientSecret, {
    now: deps.clock(),
    grace: secretGrace(options),
    revokeTokens: options.revokeTokens,
  })
  return { file: replace(file, rotated.entry), result: { clientSecret, previousExpires: rotated.previousExpires } }
}

/**
 * Refuses every token issued to `clientId` up to `revokedAt` (epoch seconds), wherever the
 * denylist lives; what it returns is reported. Throws when the write fails.
 */
export type DenylistClient<D> = (clientId: string, revokedAt: number) => Promise<D>

/** Adds client `id` to CLIENTS_FILE. */
export async function createClientInFile(path: string, id: string, settings: ClientSettings, deps: SecretDeps) {
  return updateClientsFile(path, (file) => createClient(file, id, settings, deps))
}

/** Changes client `id` in CLIENTS_FILE. */
export async function updateClientInFile(path: string, id: string, changes: Partial<ClientSettings>) {
  return updateClientsFile(path, (file) => updateClient(file, id, changes))
}

/**
 * Removes client `id` and ends its tokens. The file changes first: the client gets no new token
 * even while the denylist cannot be written, and every server writes the denylist entry itself
 * when it loads the file. Returns what `denylistClient` returned.
 */
export async function deleteClientFromFile<D>(
  path: string,
  id: string,
  deps: { clock: Clock; denylistClient: DenylistClient<D> },
): Promise<D> {
  const now = deps.clock()
  await updateClientsFile(path, (file) => deleteClient(file, id))
  return deps.denylistClient(id, now)
}

/**
 * A new secret for client `id` in CLIENTS_FILE. With `revokeTokens` the denylist is written before
 * the file, so a new secret is never handed out while the old tokens still work; when that write
 * fails nothing has changed and the rotation can simply be run again. The denylist entry and
 * `tokens_revoked_at` name the same instant, `rotatedAt`.
 */
export async function rotateClientSecretInFile<D>(
  path: string,
  id: string,
  options: RotateSecretOptions,
  deps: SecretDeps & { denylistClient: DenylistClient<D> },
): Promise<{ clientSecret: string; previousExpires: number | null; rotatedAt: number; tokensRevoked: D | undefined }> {
  const rotatedAt = deps.clock()
  let tokensRevoked: D | undefined
  if (options.revokeTokens) {
    findClient(await readClientsFile(path), id)
    tokensRevoked = await deps.denylistClient(id, rotatedAt)
  }
  const at = { clock: () => rotatedAt, generateSecret: deps.generateSecret }
  const rotated = await updateClientsFile(path, (file) => rotateClientSecret(file, id, options, at))
  return { ...rotated, rotatedAt, tokensRevoked }
}
