import { readFile, realpath, stat } from 'node:fs/promises'
import { withFileLock, writeFileAtomic } from './atomic-file.js'
import { findDuplicateName } from './duplicate-names.js'

/**
 * What the operator-edited JSON files (CLIENTS_FILE, TRUST_FILE) share: how a watcher tells that one
 * changed, and how the CLIs change one safely.
 */

/** The signature of a file that does not exist (or a link that leads nowhere). */
export const MISSING = 'missing'

/**
 * What changes when the file is replaced or edited (a rename gives a new inode), given the real
 * path it was read through. The real path is what a Kubernetes Secret or ConfigMap update changes
 * for sure: the kubelet swaps `..data` to a new version directory named after the time to the
 * nanosecond (mounted-files.ts), and may keep mtime and size, while the filesystem may reuse the
 * inode number of a deleted version. It costs a readlink per link, less than hashing the content.
 */
export const signatureOf = (info: { ino: number; size: number; mtimeMs: number }, real: string): string =>
  `${info.ino}:${info.size}:${info.mtimeMs}:${real}`

/**
 * The real path `path` leads to, or undefined when there is no file (or a dangling link: a key of a
 * Kubernetes volume being added or removed). A loader takes it before it opens the file; should an
 * update come in between, the next check sees a signature that differs and reads the file again.
 */
export async function realPathIfPresent(path: string): Promise<string | undefined> {
  return realpath(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined
    throw error
  })
}

/** The file's signature, or MISSING when there is no file. */
export async function fileSignature(path: string): Promise<string> {
  const real = await realPathIfPresent(path)
  const info =
    real === undefined
      ? undefined
      : await stat(path).catch((error: NodeJS.ErrnoException) => {
          if (error.code === 'ENOENT') return undefined
          throw error
        })
  return real !== undefined && info ? signatureOf(info, real) : MISSING
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

/** `parseOperatorJson` of the file at `path`, or undefined when there is no file. */
export async function readOperatorJsonIfPresent<F>(path: string, parse: (text: string) => F): Promise<F | undefined> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
  return parseOperatorJson(path, text, parse)
}
