import { randomBytes } from 'node:crypto'
import { open, rename, unlink, stat, link } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

/**
 * Files that the server reads while scripts write them. A reader must never see half a file, and
 * two writers must never lose each other's change: write a temp file in the same directory, fsync,
 * then rename over (or link to) the final name.
 */

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

/** Replaces `path` atomically; the file gets `mode` (0600 by default: secrets and keys live here). */
export async function writeFileAtomic(path: string, data: string, mode = 0o600): Promise<void> {
  const temp = await writeTemp(path, data, mode)
  try {
    await rename(temp, path)
  } catch (error) {
    await unlink(temp).catch(() => {})
    throw error
  }
}

/** Creates `path` atomically; fails with EEXIST if it is already there (never overwrites). */
export async function createFileAtomic(path: string, data: string, mode = 0o600): Promise<void> {
  const temp = await writeTemp(path, data, mode)
  try {
    await link(temp, path)
  } finally {
    await unlink(temp).catch(() => {})
  }
}

const STALE_LOCK_MS = 30_000

/**
 * Runs `fn` holding an exclusive lock file next to `path` (O_EXCL create). Used so concurrent
 * read-modify-write runs of the CLI never drop each other's change. A lock older than 30 s is
 * taken to be left by a crashed process and broken.
 */
export async function withFileLock<T>(path: string, fn: () => Promise<T>, timeoutMs = 10_000): Promise<T> {
  const lock = `${path}.lock`
  const deadline = Date.now() + timeoutMs
  for (let attempt = 0; ; attempt++) {
    try {
      const handle = await open(lock, 'wx', 0o600)
      await handle.writeFile(String(process.pid))
      await handle.close()
      break
    } catch (error) {
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
