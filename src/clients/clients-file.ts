import { readFile, stat } from 'node:fs/promises'
import { withFileLock, writeFileAtomic } from '../storage/atomic-file.js'
import { parseClientsFile, type ClientsFile } from './registry.js'

/** Reads CLIENTS_FILE. A missing file is an empty registry; a broken one throws, naming the problem. */
export async function readClientsFile(path: string): Promise<ClientsFile> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { clients: [] }
    throw error
  }
  try {
    return parseClientsFile(text)
  } catch (error) {
    throw new Error(`${path}: ${(error as Error).message}`)
  }
}

/**
 * Read-modify-write under a lock, then an atomic replace: concurrent CLI runs never lose each
 * other's change and the server never reads half a file. `change` may throw to abort; the file is
 * then left as it was.
 */
export async function updateClientsFile<T>(
  path: string,
  change: (file: ClientsFile) => { file: ClientsFile; result: T },
): Promise<T> {
  return withFileLock(path, async () => {
    const { file, result } = change(await readClientsFile(path))
    parseClientsFile(JSON.stringify(file)) // never write what the server would refuse to load
    await writeFileAtomic(path, `${JSON.stringify(file, null, 2)}\n`, 0o600)
    return result
  })
}

/** What changes when the file is replaced or edited (rename gives a new inode). */
export async function clientsFileSignature(path: string): Promise<string> {
  const info = await stat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined
    throw error
  })
  return info ? `${info.ino}:${info.size}:${info.mtimeMs}` : 'missing'
}
