import { readSync } from 'node:fs'
import { open, stat, type FileHandle } from 'node:fs/promises'
import { dirname } from 'node:path'
import { resolveTarget } from '../storage/atomic-file.js'
import {
  fileSignature,
  MISSING,
  parseOperatorJson,
  readOperatorJsonIfPresent,
  realPathIfPresent,
  signatureOf,
  updateJsonFile,
} from '../storage/json-file.js'
import { scanClientsFile } from './clients-scan.js'
import { createClientRegistry, parseClientsFile, type ClientRegistry, type ClientsFile } from './registry.js'

/** clientsFileSignature of a file that is not there. */
export { MISSING }

/** Reads CLIENTS_FILE, or undefined when there is none. A broken file throws, naming the problem. */
export function readClientsFileIfPresent(path: string): Promise<ClientsFile | undefined> {
  return readOperatorJsonIfPresent(path, parseClientsFile)
}

const parseCheckedClientsFile = (path: string, text: string): ClientsFile =>
  parseOperatorJson(path, text, parseClientsFile)

/**
 * The server's read of CLIENTS_FILE: the registry, empty when there is no file, with `source` set
 * to the signature of the file read (taken from the open file, so a replacement racing the read is
 * seen at the next check). Accepts and refuses exactly what readClientsFileIfPresent does, with
 * the same messages; a file in the plain form the `client` script writes is read in chunks without
 * being held whole (see clients-scan.ts), anything else the thorough way.
 */
export async function loadClientRegistry(path: string): Promise<ClientRegistry> {
  const real = await realPathIfPresent(path)
  if (real === undefined) return createClientRegistry({ clients: [] }, MISSING)
  let handle: FileHandle
  try {
    handle = await open(path, 'r')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return createClientRegistry({ clients: [] }, MISSING)
    throw error
  }
  try {
    const source = signatureOf(await handle.stat(), real)
    const fd = handle.fd
    // Synchronous reads of 64 KiB: the scan runs in one go, as JSON.parse of the whole text did.
    const scanned = scanClientsFile(
      (buffer, offset, length, position) => readSync(fd, buffer, offset, length, position),
      source,
    )
    // Positioned reads leave the handle at 0: readFile reads the same file from its start.
    return scanned ?? createClientRegistry(parseCheckedClientsFile(path, await handle.readFile('utf8')), source)
  } finally {
    await handle.close()
  }
}

/** Reads CLIENTS_FILE. A missing file is an empty registry; a broken one throws, naming the problem. */
export async function readClientsFile(path: string): Promise<ClientsFile> {
  return (await readClientsFileIfPresent(path)) ?? { clients: [] }
}

/**
 * Whoever can write CLIENTS_FILE, or rename another file over it, can add a client with any scope.
 * Returns the file and directories (the link's and its target's) that others may write, for a
 * warning; missing ones are skipped.
 */
export async function clientsFileWritableByOthers(path: string): Promise<{ path: string; mode: string }[]> {
  const target = await resolveTarget(path).catch(() => path) // a warning never stops a load
  const found: { path: string; mode: string }[] = []
  for (const candidate of new Set([target, dirname(path), dirname(target)])) {
    const info = await stat(candidate).catch(() => undefined)
    if (info && (info.mode & 0o002) !== 0) found.push({ path: candidate, mode: `0${(info.mode & 0o7777).toString(8)}` })
  }
  return found
}

/** Read-modify-write of CLIENTS_FILE under its lock (see updateJsonFile). */
export async function updateClientsFile<T>(
  path: string,
  change: (file: ClientsFile) => { file: ClientsFile; result: T },
): Promise<T> {
  return updateJsonFile(path, { read: readClientsFile, check: parseClientsFile }, change)
}

/** What changes when the file is replaced or edited (rename gives a new inode). */
export const clientsFileSignature = fileSignature
