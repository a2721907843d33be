import { mkdir, readdir, readFile, stat, open, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Clock } from '../clock.js'
import type { Logger } from '../observability/logger.js'
import { createFileAtomic } from '../storage/atomic-file.js'
import type { SigningAlg } from './algorithms.js'
import { generateKeyRecord, parseKeyFile, serializeKeyRecord, type KeyRecord } from './key-file.js'

const KEY_FILE = /^[A-Za-z0-9_-]{43}\.json$/

export interface KeysDirContents {
  records: KeyRecord[]
  /** Files that could not be used, with the reason (never key material). */
  problems: { file: string; problem: string }[]
}

/** Reads every `<kid>.json` in the directory; a bad file is reported, not fatal. */
export async function readKeysDir(dir: string): Promise<KeysDirContents> {
  const names = (await readdir(dir)).filter((name) => KEY_FILE.test(name)).sort()
  const records: KeyRecord[] = []
  const problems: KeysDirContents['problems'] = []
  for (const name of names) {
    const path = join(dir, name)
    try {
      const info = await stat(path)
      if ((info.mode & 0o077) !== 0) {
        problems.push({ file: name, problem: `mode ${(info.mode & 0o777).toString(8)} lets others read a private key; chmod 600` })
      }
      const record = await parseKeyFile(await readFile(path, 'utf8'))
      if (`${record.kid}.json` !== name) throw new Error(`file name does not match kid ${record.kid}`)
      records.push(record)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue // removed while we read
      problems.push({ file: name, problem: (error as Error).message })
    }
  }
  return { records, problems }
}

export async function writeKeyRecord(dir: string, record: KeyRecord): Promise<void> {
  await createFileAtomic(join(dir, `${record.kid}.json`), serializeKeyRecord(record), 0o600)
}

const INIT_LOCK = '.init.lock'

/**
 * Start-up: make sure KEYS_DIR exists (0700) and holds a usable key. An empty directory gets one
 * generated key. When several instances start on the same empty directory, an O_EXCL lock file
 * makes exactly one of them generate it; the others wait and read it (checklist SK-11).
 */
export async function ensureKeys(
  dir: string,
  alg: SigningAlg,
  deps: { clock: Clock; log: Logger },
): Promise<KeysDirContents> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const deadline = Date.now() + 15_000
  for (;;) {
    const contents = await readKeysDir(dir)
    if (contents.records.length > 0) return contents
    if (contents.problems.length > 0) return contents // broken keys: never paper over them with a new one

    const lock = join(dir, INIT_LOCK)
    let handle
    try {
      handle = await open(lock, 'wx', 0o600)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      const info = await stat(lock).catch(() => undefined)
      if (info && Date.now() - info.mtimeMs > 30_000) await unlink(lock).catch(() => {})
      if (Date.now() > deadline) throw new Error(`timed out waiting for another process to create a key in ${dir}`)
      await sleep(100)
      continue
    }
    try {
      await handle.close()
      // Re-check under the lock: another process may have finished just before we took it.
      const again = await readKeysDir(dir)
      if (again.records.length > 0 || again.problems.length > 0) return again
      const now = deps.clock()
      const record = await generateKeyRecord(alg, now, now)
      await writeKeyRecord(dir, record)
      deps.log.info({ kid: record.kid, alg }, 'generated a signing key in an empty KEYS_DIR')
      return { records: [record], problems: [] }
    } finally {
      await unlink(lock).catch(() => {})
    }
  }
}
