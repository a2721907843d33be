import { open, type FileHandle } from 'node:fs/promises'
import { dirname, isAbsolute, resolve } from 'node:path'
import {
  fileSignature,
  MISSING,
  parseOperatorJson,
  readOperatorJsonIfPresent,
  realPathIfPresent,
  signatureOf,
  updateJsonFile,
} from '../storage/json-file.js'
import { trustFileSchema, type TrustEntry, type TrustFile, type TrustStore } from './trust-entry.js'

/**
 * TRUST_FILE on disk: read, checked, and rewritten by the `trust` script the way CLIENTS_FILE is
 * (see src/clients/clients-file.ts). The schema and what each field means are in trust-entry.ts.
 */

export { MISSING }

/**
 * Parses the text of a trust file. A problem throws one line naming the entry (its id, else its
 * index) and the field: `entry "k8s-prod" field subject: ...`.
 */
export function parseTrustFile(text: string): TrustFile {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (error) {
    throw new Error(`not valid JSON: ${(error as Error).message}`)
  }
  const parsed = trustFileSchema.safeParse(json)
  if (!parsed.success) {
    const issue = parsed.error.issues[0] ?? { path: [], message: 'invalid' }
    const [root, index, ...field] = issue.path
    const where =
      root === 'trust' && typeof index === 'number'
        ? `${describeEntry(json, index)} field ${field.join('.') || '(entry)'}`
        : `field ${issue.path.join('.') || '(root)'}`
    throw new Error(`${where}: ${issue.message}`)
  }
  return parsed.data
}

/** `entry "id" (#2)`, or `entry #2` when the entry has no readable id. */
function describeEntry(json: unknown, index: number): string {
  const entry = (json as { trust?: { id?: unknown }[] }).trust?.[index]
  return typeof entry?.id === 'string'
    ? `entry ${JSON.stringify(entry.id.slice(0, 64))} (#${index})`
    : `entry #${index}`
}

const parseCheckedTrustFile = (path: string, text: string): TrustFile => parseOperatorJson(path, text, parseTrustFile)

/** Reads TRUST_FILE, or undefined when there is none. A broken file throws, naming the problem. */
export function readTrustFileIfPresent(path: string): Promise<TrustFile | undefined> {
  return readOperatorJsonIfPresent(path, parseTrustFile)
}

/** Reads TRUST_FILE as written (paths as the file has them). Missing: no entries. */
export async function readTrustFile(path: string): Promise<TrustFile> {
  return (await readTrustFileIfPresent(path)) ?? { trust: [] }
}

/**
 * A path in the trust file: absolute as it stands, relative to the trust file's directory
 * otherwise (so a trust file and its pinned JWK Sets move together, whatever the working directory).
 */
export function resolveEntryPath(trustFilePath: string, p: string): string {
  return isAbsolute(p) ? p : resolve(dirname(trustFilePath), p)
}

/** The entry with its file paths (`jwks_file`, `ca_file`, `bearer_token_file`) made absolute. */
function withResolvedPaths(trustFilePath: string, entry: TrustEntry): TrustEntry {
  const resolved: TrustEntry = { ...entry }
  for (const field of ['jwks_file', 'ca_file', 'bearer_token_file'] as const) {
    const value = entry[field]
    if (value !== undefined) resolved[field] = resolveEntryPath(trustFilePath, value)
  }
  return resolved
}

/**
 * The server's read of TRUST_FILE: no entries when there is no file (source MISSING), else the
 * entries with their file paths resolved (resolveEntryPath) and `source` set to the signature of the
 * file read, taken from the open file, so a replacement racing the read is seen at the next check.
 * A broken file throws, naming the problem.
 */
export async function loadTrustStore(path: string): Promise<TrustStore> {
  const real = await realPathIfPresent(path)
  if (real === undefined) return { entries: [], source: MISSING }
  let handle: FileHandle
  try {
    handle = await open(path, 'r')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { entries: [], source: MISSING }
    throw error
  }
  try {
    const source = signatureOf(await handle.stat(), real)
    const file = parseCheckedTrustFile(path, await handle.readFile('utf8'))
    return { entries: file.trust.map((entry) => withResolvedPaths(path, entry)), source }
  } finally {
    await handle.close()
  }
}

/** Read-modify-write of TRUST_FILE under its lock, as updateClientsFile does (see updateJsonFile). */
export async function updateTrustFile<T>(
  path: string,
  change: (file: TrustFile) => { file: TrustFile; result: T },
): Promise<T> {
  return updateJsonFile(path, { read: readTrustFile, check: parseTrustFile }, change)
}

/** What changes when the file is replaced or edited (rename gives a new inode); MISSING for no file. */
export const trustFileSignature = fileSignature
