import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose'
import type { Clock } from '../clock.js'
import { SUPPORTED_ALGORITHMS } from '../verifier/algorithms.js'
import { MAX_KID_LENGTH } from '../verifier/compact-jws.js'
import { readClientsFile, updateClientsFile } from './clients-file.js'
import { ASSERTION_AUTH_METHOD, type ClientEntry, type ClientsFile } from './registry.js'
import { rotateEntrySecret, secretGrace, storedSecret } from './rotation.js'

/**
 * Client administration over CLIENTS_FILE, as the `client` command applies it. Each change is a
 * pure function from the file's data to the next, with what it reports; the operations at the end
 * apply them under the file's lock (updateClientsFile) and order them against the denylist.
 * Secrets are shown once, when made; the file holds only their digests. A private_key_jwt client
 * (RFC 7523 §2.2) has no secret: the file holds its public keys, or their URL, and never a private key.
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
  /** Tokens it may be issued per minute, over every instance (src/limits/quota.ts); unset: no quota. */
  quota?: number | undefined
  /** Its token requests need a DPoP proof (RFC 9449 §5), so every token it gets is sender-constrained. */
  requireDpop?: boolean | undefined
}

/** The client `id`; throws when there is none. */
export function findClient(file: ClientsFile, id: string): ClientEntry {
  const entry = file.clients.find((c) => c.client_id === id)
  if (!entry) throw new Error(`no client ${id}`)
  return entry
}

/**
 * RFC 7591 §2 `token_endpoint_auth_method` of a client as `list` shows it. A secret client is shown as
 * `client_secret_basic`, RFC 7591's default, though it may send its secret in the body too
 * (`client_secret_post`, RFC 6749 §2.3.1): the file does not tell the two apart.
 */
export function authMethodOf(entry: ClientEntry): 'client_secret_basic' | typeof ASSERTION_AUTH_METHOD {
  return entry.token_endpoint_auth_method ?? 'client_secret_basic'
}

/**
 * Public view of a client: no secret, no digest (secrets are shown once, at creation). Every client
 * shows its `quota` (null: none) and `require_dpop`. A private_key_jwt client shows its public keys
 * (`jwks`) or their URL (`jwks_uri`), neither when only a trust entry authenticates it, and
 * `require_typ`; a secret client shows its secrets' times.
 */
export function describeClient(entry: ClientEntry) {
  const method = authMethodOf(entry)
  return {
    client_id: entry.client_id,
    token_endpoint_auth_method: method,
    scopes: entry.scopes,
    audiences: entry.audiences,
    access_token_ttl: entry.access_token_ttl ?? null,
    grant_types: entry.grant_types,
    resource_server: entry.resource_server,
    quota: entry.quota ?? null,
    require_dpop: entry.require_dpop ?? false,
    ...(method === ASSERTION_AUTH_METHOD
      ? {
          ...(entry.jwks !== undefined && { jwks: entry.jwks }),
          ...(entry.jwks_uri !== undefined && { jwks_uri: entry.jwks_uri }),
          require_typ: entry.require_typ ?? false,
        }
      : { secrets: entry.secrets.map((secret) => ({ created: secret.created, expires: secret.expires })) }),
    ...(entry.tokens_revoked_at !== undefined && { tokens_revoked_at: entry.tokens_revoked_at }),
  }
}

/** The entry fields of a new client's quota and DPoP requirement: written only when set. */
const limitFields = (settings: ClientSettings): Pick<ClientEntry, 'quota' | 'require_dpop'> => ({
  ...(settings.quota !== undefined && { quota: settings.quota }),
  ...(settings.requireDpop && { require_dpop: true }),
})

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
    ...limitFields(settings),
  }
  return { file: { clients: [...file.clients, entry] }, result: { clientSecret } }
}

/** A JWK Set (RFC 7517 §5) of public signature keys, each with a `kid`: the `jwks` a client entry stores. */
export type PublicJwkSet = { keys: Record<string, unknown>[] }

/**
 * Where a private_key_jwt client's public keys come from (RFC 7591 §2): inline (`jwks`), at a URL
 * (`jwksUri`), or nowhere (`federated`): the client then authenticates only through a workload
 * identity federation trust entry that names it.
 */
export type ClientKeys = { jwks: PublicJwkSet } | { jwksUri: string } | { federated: true }

/** The algorithms `--generate-key` makes keys for: asymmetric only (RFC 8725 §3.1). */
export const CLIENT_KEY_ALGS = ['ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519', 'RS256', 'PS256'] as const
export type ClientKeyAlg = (typeof CLIENT_KEY_ALGS)[number]
export const DEFAULT_CLIENT_KEY_ALG: ClientKeyAlg = 'ES256'

/** JWK members only private or symmetric keys carry (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037 §2). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k', 'priv'] as const

/** A key pair for a client: the public JWK to register, and the private JWK the client signs with. */
export interface GeneratedClientKey {
  /** With `kid` (RFC 7638 thumbprint), `alg` and `use: "sig"`: what the registry stores. */
  publicJwk: JWK
  /** With the same `kid` and `alg`. Shown once; never stored. */
  privateJwk: JWK
}

/** A new key pair for `alg`; RSA keys are 3072 bits, as the server's own (NIST SP 800-57). */
export async function generateClientKey(alg: ClientKeyAlg): Promise<GeneratedClientKey> {
  const rsa = alg === 'RS256' || alg === 'PS256'
  const pair = await generateKeyPair(alg, { extractable: true, ...(rsa && { modulusLength: 3072 }) })
  const publicMembers = withoutKeyUsage(await exportJWK(pair.publicKey))
  // RFC 7638: the thumbprint of the required public members names the key.
  const kid = await calculateJwkThumbprint(publicMembers, 'sha256')
  return {
    publicJwk: { ...publicMembers, kid, alg, use: 'sig' },
    privateJwk: { ...withoutKeyUsage(await exportJWK(pair.privateKey)), kid, alg },
  }
}

/** The key material of an exported JWK, without WebCrypto's `ext` and `key_ops`. */
function withoutKeyUsage(jwk: JWK): JWK {
  const { ext: _ext, key_ops: _keyOps, ...rest } = jwk
  return rest
}

/** The JWS algorithms a public key can verify (RFC 7518 §3.1, RFC 8037 §3.1), or none for a type not supported. */
function algorithmsFor(jwk: Record<string, unknown>): string[] {
  if (jwk.kty === 'RSA') return ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512']
  if (jwk.kty === 'EC') {
    const alg = { 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512' }[String(jwk.crv)]
    return alg ? [alg] : []
  }
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return ['EdDSA', 'Ed25519']
  return []
}

/** Bits of an RSA modulus given as base64url (RFC 7518 §6.3.1.1: no leading zero octets). */
function modulusBits(n: string): number {
  const bytes = Buffer.from(n, 'base64url')
  return bytes.length === 0 ? 0 : (bytes.length - 1) * 8 + (32 - Math.clz32(bytes[0] ?? 0))
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

/** What readClientJwks made of the operator's keys. */
export interface ClientJwks {
  jwks: PublicJwkSet
  /** The keys that had no `kid` and are now named by their RFC 7638 thumbprint. */
  kidsAdded: string[]
}

/**
 * The public keys a client registers (`--jwks FILE`): a JWK Set (RFC 7517 §5), or one JWK, wrapped.
 * Throws, naming the key, for private material (the private key never leaves the client, and is never
 * stored even when given), a symmetric key, a key type or `alg` the client could not sign with, `use`
 * other than `sig` (RFC 7517 §4.2), a duplicate or unusable `kid`, or an RSA modulus under 2048 bits.
 * A key without `kid` gets its RFC 7638 thumbprint, reported in `kidsAdded`.
 */
export async function readClientJwks(value: unknown): Promise<ClientJwks> {
  const given =
    isObject(value) && Array.isArray(value.keys) ? value.keys : isObject(value) && 'kty' in value ? [value] : undefined
  if (!given) throw new Error('must be a JWK Set ({"keys": [...]}) or a single public JWK')
  if (given.length === 0) throw new Error('the JWK Set holds no key')
  if (given.length > 10) throw new Error('at most 10 keys')
  const keys: PublicJwkSet['keys'] = []
  const kidsAdded: string[] = []
  for (const [index, key] of given.entries()) {
    const name = `key ${index + 1}${isObject(key) && typeof key.kid === 'string' ? ` (kid ${JSON.stringify(key.kid)})` : ''}`
    const refused = (problem: string) => new Error(`${name}: ${problem}`)
    if (!isObject(key)) throw refused('is not a JSON object')
    const secret = PRIVATE_MEMBERS.filter((member) => member in key)
    if (key.kty === 'oct') throw refused('is a symmetric key; register the public key of a key pair')
    if (secret.length > 0) {
      throw refused(
        `holds private key material (${secret.join(', ')}); give the public key only: the private key stays with the client`,
      )
    }
    if (key.use !== undefined && key.use !== 'sig') throw refused('has "use" other than "sig"')
    const algorithms = algorithmsFor(key)
    if (algorithms.length === 0) throw refused('is no EC (P-256, P-384, P-521), OKP (Ed25519) or RSA key')
    if (
      key.alg !== undefined &&
      !(typeof key.alg === 'string' && algorithms.includes(key.alg) && SUPPORTED_ALGORITHMS.has(key.alg))
    ) {
      throw refused(
        `"alg" ${JSON.stringify(key.alg)} does not fit a ${String(key.kty)} key (one of ${algorithms.join(', ')})`,
      )
    }
    if (key.kty === 'RSA' && typeof key.n === 'string' && modulusBits(key.n) < 2048)
      throw refused('RSA keys need 2048 bits or more')
    try {
      await importJWK(key as JWK, (key.alg as string | undefined) ?? algorithms[0])
    } catch (error) {
      throw refused(`is not a valid public key (${(error as Error).message})`)
    }
    // RFC 7638: a key without kid is named by its thumbprint.
    const thumbprint = key.kid === undefined ? await calculateJwkThumbprint(key as JWK, 'sha256') : undefined
    const kid = thumbprint ?? key.kid
    // As the assertion's header must name it (RFC 7515 §4.1.4; see readProtectedHeader).
    if (typeof kid !== 'string' || kid.length === 0 || kid.length > MAX_KID_LENGTH || !/^[\x21-\x7e]+$/.test(kid)) {
      throw refused(`"kid" must be 1 to ${MAX_KID_LENGTH} visible ASCII characters`)
    }
    if (keys.some((other) => other.kid === kid)) throw refused(`"kid" ${JSON.stringify(kid)} is used by another key`)
    if (thumbprint) kidsAdded.push(thumbprint)
    keys.push({ ...key, kid })
  }
  return { jwks: { keys }, kidsAdded }
}

/** The entry fields that hold `keys`. */
const keyFields = (keys: ClientKeys): Pick<ClientEntry, 'jwks' | 'jwks_uri'> =>
  'jwks' in keys ? { jwks: keys.jwks } : 'jwksUri' in keys ? { jwks_uri: keys.jwksUri } : {}

/** How a private_key_jwt client authenticates. */
export interface AssertionAuth {
  keys: ClientKeys
  /** Refuse assertions without `typ: client-authentication+jwt` (RFC 10070). */
  requireTyp: boolean
}

/**
 * Adds client `id` authenticating with private_key_jwt (RFC 7523 §2.2), for the client_credentials
 * grant (RFC 6749 §4.4) only. It has no secret. Returns the entry.
 */
export function createAssertionClient(
  file: ClientsFile,
  id: string,
  settings: ClientSettings,
  auth: AssertionAuth,
): ClientsChange<ClientEntry> {
  if (file.clients.some((c) => c.client_id === id)) throw new Error(`client ${id} already exists`)
  const entry: ClientEntry = {
    client_id: id,
    token_endpoint_auth_method: ASSERTION_AUTH_METHOD,
    secrets: [],
    scopes: settings.scopes,
    audiences: settings.audiences,
    ...(settings.accessTokenTtl !== undefined && { access_token_ttl: settings.accessTokenTtl }),
    grant_types: ['client_credentials'],
    resource_server: settings.resourceServer,
    ...limitFields(settings),
    ...keyFields(auth.keys),
    ...(auth.requireTyp && { require_typ: true }),
  }
  return { file: { clients: [...file.clients, entry] }, result: entry }
}

/** What `update` may change: the settings, and for a private_key_jwt client its keys and `require_typ`. */
export interface ClientChanges extends Partial<Omit<ClientSettings, 'quota'>> {
  /** A new quota; null removes it (no quota). */
  quota?: number | null | undefined
  /**
   * Replaces the keys: a key rotation. Without downtime, the new set holds the old key beside the
   * new one until the client signs with the new one. `federated` drops them: trust entries only.
   */
  keys?: ClientKeys | undefined
  requireTyp?: boolean | undefined
}

/**
 * Changes the settings given; the others, and the secrets, stay. Keys and `require_typ` belong to
 * private_key_jwt clients only: a client changes how it authenticates by delete and create. Returns
 * the client as changed.
 */
export function updateClient(file: ClientsFile, id: string, changes: ClientChanges): ClientsChange<ClientEntry> {
  const entry = findClient(file, id)
  if (
    (changes.keys !== undefined || changes.requireTyp !== undefined) &&
    authMethodOf(entry) !== ASSERTION_AUTH_METHOD
  ) {
    throw new Error(
      `client ${id} authenticates with a secret; keys and require_typ are for private_key_jwt clients (to switch, delete the client and create it again)`,
    )
  }
  const next: ClientEntry = {
    ...entry,
    ...(changes.scopes && { scopes: changes.scopes }),
    ...(changes.audiences && { audiences: changes.audiences }),
    ...(changes.accessTokenTtl !== undefined && { access_token_ttl: changes.accessTokenTtl }),
    ...(changes.resourceServer !== undefined && { resource_server: changes.resourceServer }),
    ...(changes.requireTyp !== undefined && { require_typ: changes.requireTyp }),
    ...(typeof changes.quota === 'number' && { quota: changes.quota }),
    ...(changes.requireDpop === true && { require_dpop: true }),
  }
  // Removed rather than written as null or false: the entry reads as one created without them.
  if (changes.quota === null) delete next.quota
  if (changes.requireDpop === false) delete next.require_dpop
  if (changes.keys !== undefined) {
    delete next.jwks
    delete next.jwks_uri
    Object.assign(next, keyFields(changes.keys))
  }
  return { file: replace(file, next), result: next }
}

/** The client `id`, which must authenticate with a secret; throws when there is none, or it has keys instead. */
function findSecretClient(file: ClientsFile, id: string): ClientEntry {
  const entry = findClient(file, id)
  if (authMethodOf(entry) === ASSERTION_AUTH_METHOD) {
    throw new Error(
      `client ${id} uses private_key_jwt and has no secret; rotate its keys with update --jwks FILE or --generate-key`,
    )
  }
  return entry
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
  const entry = findSecretClient(file, id)
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

/** Adds private_key_jwt client `id` to CLIENTS_FILE. */
export async function createAssertionClientInFile(
  path: string,
  id: string,
  settings: ClientSettings,
  auth: AssertionAuth,
) {
  return updateClientsFile(path, (file) => createAssertionClient(file, id, settings, auth))
}

/** Changes client `id` in CLIENTS_FILE. */
export async function updateClientInFile(path: string, id: string, changes: ClientChanges) {
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
    findSecretClient(await readClientsFile(path), id)
    tokensRevoked = await deps.denylistClient(id, rotatedAt)
  }
  const at = { clock: () => rotatedAt, generateSecret: deps.generateSecret }
  const rotated = await updateClientsFile(path, (file) => rotateClientSecret(file, id, options, at))
  return { ...rotated, rotatedAt, tokensRevoked }
}
