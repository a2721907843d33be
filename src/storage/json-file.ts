import { stat } from 'node:fs/promises'
import { withFileLock, writeFileAtomic } from './atomic-file.js'
import { findDuplicateName } from './duplicate-names.js'

/**
 * What the operator-edited JSON files (CLIENTS_FILE, TRUST_FILE) share: how a watcher tells that one
 * changed, and how the CLIs change one safely.
 */

/** The signature of a file that does not exist. */
export const MISSING = 'missing'

/** What changes when the file is replaced or edited (a rename gives a new inode). */
export const signatureOf = (info: { ino: number; size: number; mtimeMs: number }): string =>
  `${info.ino}:${info.size}:${info.mtimeMs}`

/** The file's signature, or MISSING when there is no file. */
export async function fileSignature(path: string): Promise<string> {
  const info = await stat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined
    throw error
  })
  return info ? signatureOf(info) : MISSING
}

/**
 * Read-modify-write under a lock, then an atomic replace (mode 0600): concurrent CLI runs never lose
 * each other's change and the server never reads half a file. `check` parses the text about to be
 * written as the server would, so nothing is written that the server would refuse to load. `change`
 * may throw to abort; the file is then left as it was.
 */
export async function updateJsonFile<F, T>(
  path: string,
  io: { read(path: string): Promise<F>; check(text: string): unknown },
  change: (file: F) => { file: F; result: T },
): Promise<T> {
  return withFileLock(path, async () => {
    const { file, result } = change(await io.read(path))
    const text = `${JSON.stringify(file, null, 2)}\n`
    io.check(text)
    await writeFileAtomic(path, text, 0o600)
    return result
  })
}

/**
 * The file's text parsed by `parse` and checked for a member name given twice in one object (JSON.parse
 * keeps the last; the operator may have meant the first: RFC 8259 §4). A problem throws, prefixed with
 * the file's path.
 */
export function parseOperatorJson<F>(path: string, text: string, parse: (text: string) => F): F {
  try {
    const file = parse(text)
    const duplicate = findDuplicateName(text)
    if (duplicate) {
      throw new Error(
        `member name ${JSON.stringify(duplicate.name)} appears twice in ${duplicate.path || 'the top-level object'}; names in an object must be unique`,
      )
    }
    return file
  } catch (error) {
    throw new Error(`${path}: ${(error as Error).message}`)
  }
}
