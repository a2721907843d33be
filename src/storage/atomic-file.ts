import { randomBytes } from 'node:crypto'
import { open, rename, unlink, stat, link, lstat, readlink, realpath } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { isInKubeletVolume, mountedVolumeMessage } from './mounted-files.js'

/**
 * Files that the server reads while scripts write them. A reader must never see half a file, and
 * two writers must never lose each other's change: write a temp file in the same directory, fsync,
 * then rename over (or link to) the final name.
 *
 * A path that is a symlink is written through: the temp file goes beside the file the link leads
 * to and is renamed over it, and the link stays. Renaming over the link itself would turn it into a
 * regular file and leave the target, which other readers may still use, unchanged (a deleted client
 * would live on there). Mounted configuration (a Kubernetes volume) is made of such links.
 */

const MAX_LINKS = 40 // as Linux's ELOOP limit

/**
 * The file a write to `path` changes: `path` itself, or the file its symlinks lead to. A missing
 * path is itself; a dangling link resolves to the missing file it names, which a write creates.
 */
export async function resolveTarget(path: string): Promise<string> {
  try {
    return await realpath(path)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
  let current = path
  for (let hops = 0; hops < MAX_LINKS; hops++) {
    const next = await readlink(current).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'EINVAL' || error.code === 'ENOENT') return undefined // not a link, or nothing there
      throw error
    })
    if (next === undefined) return current
    current = resolve(dirname(current), next)
  }
  throw new Error(`${path}: too many levels of symbolic links`)
}

async function writeTemp(path: string, data: string, mode: number): Promise<string> {
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`)
  const handle = await open(temp, 'wx', mode)
  try {
    await handle.writeFile(data)
    await handle.sync()
  } catch (error) {
    await handle.close()
    await unlink(temp).catch(() => {})
    throw error
  }
  await handle.close()
  return temp
}

/**
 * Replaces `path` (or the file its symlinks lead to) atomically; the file gets `mode` (0600 by
 * default: secrets and keys live here).
 */
export async function writeFileAtomic(path: string, data: string, mode = 0o600): Promise<void> {
  const target = await resolveTarget(path)
  const temp = await writeTemp(target, data, mode)
  try {
    await rename(temp, target)
  } catch (error) {
    await unlink(temp).catch(() => {})
    throw error
  }
}

/** Creates `path` atomically; fails with EEXIST if it is already there, even as a link (never overwrites). */
export async function createFileAtomic(path: string, data: string, mode = 0o600): Promise<void> {
  const temp = await writeTemp(path, data, mode)
  try {
    await link(temp, path)
  } finally {
    await unlink(temp).catch(() => {})
  }
}

/** Deletes `path`, and when it is a symlink the file it leads to as well: a deleted key must not live on there. */
export async function removeFile(path: string): Promise<void> {
  if ((await lstat(path)).isSymbolicLink()) {
    await unlink(await resolveTarget(path)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error
    })
  }
  await unlink(path)
}

const STALE_LOCK_MS = 30_000

/**
 * Runs `fn` holding an exclusive lock file next to `path` (O_EXCL create), or next to the file its
 * symlinks lead to, so writers that name one file by different links still exclude each other.
 * Used so concurrent read-modify-write runs of the CLI never drop each other's change. A lock older
 * than 30 s is taken to be left by a crashed process and broken. A file in a Kubernetes Secret or
 * ConfigMap volume, or on a read-only file system, is refused with a message saying where to make
 * the change instead (mounted-files.ts).
 */
export async function withFileLock<T>(path: string, fn: () => Promise<T>, timeoutMs = 10_000): Promise<T> {
  // Files in a Kubernetes Secret or ConfigMap volume are the kubelet's: refused before any write.
  if (await isInKubeletVolume(path)) {
    throw new Error(
      mountedVolumeMessage(path, 'is a Kubernetes Secret or ConfigMap volume, which the kubelet rewrites'),
    )
  }
  const lock = `${await resolveTarget(path)}.lock`
  const deadline = Date.now() + timeoutMs
  for (let attempt = 0; ; attempt++) {
    try {
      const handle = await open(lock, 'wx', 0o600)
      await handle.writeFile(String(process.pid))
      await handle.close()
      break
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EROFS') {
        throw new Error(mountedVolumeMessage(path, 'is on a read-only file system (a mounted Secret?)'))
      }
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      const info = await stat(lock).catch(() => undefined)
      if (info && Date.now() - info.mtimeMs > STALE_LOCK_MS) {
        await unlink(lock).catch(() => {})
        continue
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for lock ${lock}`)
      await sleep(Math.min(5 * 2 ** Math.min(attempt, 5), 100) + Math.random() * 10)
    }
  }
  try {
    return await fn()
  } finally {
    await unlink(lock).catch(() => {})
  }
}
