import { rename, writeFile } from 'node:fs/promises'
import type { ClientEntry } from '../../src/clients/registry.js'
import { digestSecret, generateSecret } from '../../src/clients/secret.js'
import { basic } from '../../test/helpers/make-deps.js'

/**
 * CLIENTS_FILE with many clients, written directly (the client CLI takes a lock and rewrites the
 * whole file per client: minutes for 100,000). Each entry is what `client create` writes: a
 * base64url SHA-256 digest of its own secret, pretty-printed the way the CLI prints the file.
 */

export const AUDIENCE = 'https://api.bench.example'
export const SCOPES = ['invoices:read', 'invoices:write']

export interface BenchClient {
  id: string
  secret: string
  /** RFC 6749 §2.3.1 client_secret_basic. */
  authorization: string
}

export function createBenchClient(id: string): BenchClient {
  const secret = generateSecret()
  return { id, secret, authorization: basic(id, secret) }
}

export function clientEntry(id: string, secret: string): ClientEntry {
  return {
    client_id: id,
    secrets: [
      { sha256: digestSecret(secret).toString('base64url'), created: Math.floor(Date.now() / 1000), expires: null },
    ],
    scopes: SCOPES,
    audiences: [AUDIENCE],
    grant_types: ['client_credentials'],
    resource_server: false,
  }
}

/** `count` entries: the bench's own client first, then fillers with secrets nobody knows. */
export function clientEntries(client: BenchClient, count: number): ClientEntry[] {
  const entries = [clientEntry(client.id, client.secret)]
  for (let i = 1; i < count; i++)
    entries.push(clientEntry(`filler-${String(i).padStart(6, '0')}`, `tks_filler-secret-${i}`))
  return entries
}

export const serializeClients = (entries: readonly ClientEntry[]) =>
  `${JSON.stringify({ clients: entries }, null, 2)}\n`

/** Written beside the target, to be renamed over it: the server never reads half a file. */
export async function writeBeside(path: string, text: string): Promise<string> {
  const temporary = `${path}.bench-${process.pid}`
  await writeFile(temporary, text, { mode: 0o600 })
  return temporary
}

export async function writeClientsFile(path: string, entries: readonly ClientEntry[]): Promise<void> {
  await rename(await writeBeside(path, serializeClients(entries)), path)
}
