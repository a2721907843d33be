import { mkdir, readdir, readFile, stat, open, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Clock } from '../clock.js'
import type { Logger } from '../observability/logger.js'
import { createFileAtomic, writeFileAtomic } from '../storage/atomic-file.js'
import type { SigningAlg } from './algorithms.js'
import { generateKeyRecord, isTombstone, parseKeyFile, serializeKeyFile, type KeyFile, type KeyRecord, type Tombstone } from './key-file.js'

const KEY_FILE = /^[A-Za-z0-9_-]{43}\.json$/

export interface KeysDirContents {
  records: KeyRecord[]
  tombstones: Tombstone[]
  /** Files that could not be used, with the reason (never key material). */
  problems: { file: string; problem: string }[]
  /** Key files readable by group or others (checklist SK-9): loaded, and reported as errors. */
  exposed: string[]
  /** Plain PKCS#8 files although a passphrase is set (made before it was): loaded, and reported. */
  unencrypted: string[]
}

/** Reads every `<kid>.json` in the directory; a bad file is reported, not fatal. */
export async function readKeysDir(dir: string, passphrase?: string): Promise<KeysDirContents> {
  const names = (await readdir(dir)).filter((name) => KEY_FILE.test(name)).sort()
  const contents: KeysDirContents = { records: [], tombstones: [], problems: [], exposed: [], unencrypted: [] }
  for (const name of names) {
    const path = join(dir, name)
    try {
      const info = await stat(path)
      const key = await parseKeyFile(await readFile(path, 'utf8'), passphrase)
      if (`${key.kid}.json` !== name) throw new Error(`file name does not match kid ${key.kid}`)
      if (isTombstone(key)) contents.tombstones.push(key)
      else {
        contents.records.push(key)
        if ((info.mode & 0o077) !== 0) contents.exposed.push(name)
        if (passphrase && !key.stored.privateKey?.startsWith('-----BEGIN ENCRYPTED ')) contents.unencrypted.push(name)
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue // removed while we read
      contents.problems.push({ file: name, problem: (error as Error).message })
    }
  }
  return contents
}

/** Signature of the directory for change detection: names, sizes, mtimes, inodes of key files. */
export async function keysDirSignature(dir: string): Promise<string> {
  const names = (await readdir(dir)).filter((name) => KEY_FILE.test(name)).sort()
  const parts = await Promise.all(
    names.map(async (name) => {
      const info = await stat(join(dir, name)).catch(() => undefined)
      return info ? `${name}:${info.ino}:${info.size}:${info.mtimeMs}` : `${name}:gone`
    }),
  )
  return parts.join('|')
}

/** Adds a new key file; never overwrites one (EEXIST). */
export async function writeKeyRecord(dir: string, record: KeyRecord): Promise<void> {
  await createFileAtomic(join(dir, `${record.kid}.json`), serializeKeyFile(record.stored), 0o600)
}

/** Replaces a key file's content atomically (a state change, or a tombstone). */
export async function rewriteKeyFile(dir: string, file: KeyFile): Promise<void> {
  await writeFileAtomic(join(dir, `${file.kid}.json`), serializeKeyFile(file), 0o600)
}

const INIT_LOCK = '.init.lock'

/**
 * Start-up: make sure KEYS_DIR exists (0700) and holds a usable key. An empty directory gets a
 * current key and a published standby key (so that `keys rotate --now` can switch to a key that
 * verifiers already have). When several instances start on the same empty directory, an O_EXCL
 * lock file makes exactly one of them generate them; the others wait and read (checklist SK-11).
 */
export async function ensureKeys(
  dir: string,
  alg: SigningAlg,
  deps: { clock: Clock; log: Logger; passphrase?: string | undefined },
): Promise<KeysDirContents> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const deadline = Date.now() + 15_000
  for (;;) {
    const contents = await readKeysDir(dir, deps.passphrase)
    const empty = contents.records.length === 0 && contents.problems.length === 0 && contents.tombstones.length === 0
    // Broken or revoked keys are never papered over with new ones: that is the operator's call.
    if (!empty) return contents

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
      const again = await readKeysDir(dir, deps.passphrase)
      if (again.records.length > 0 || again.problems.length > 0 || again.tombstones.length > 0) return again
      const now = deps.clock()
      const current = await generateKeyRecord(alg, now, now, deps.passphrase)
      const standby = await generateKeyRecord(alg, now, null, deps.passphrase)
      // Standby first: a reader that sees only one file sees a standby, which it would sign with rather than nothing.
      await writeKeyRecord(dir, standby)
      await writeKeyRecord(dir, current)
      deps.log.info({ kid: current.kid, standby: standby.kid, alg }, 'generated a signing key and a standby key in an empty KEYS_DIR')
      return { records: [current, standby], tombstones: [], problems: [], exposed: [], unencrypted: [] }
    } finally {
      await unlink(lock).catch(() => {})
    }
  }
}
