import { mkdir, readdir, readFile, stat, open, unlink, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Clock } from '../clock.js'
import type { Logger } from '../observability/logger.js'
import { createFileAtomic, writeFileAtomic } from '../storage/atomic-file.js'
import { cannotWrite, isKubeletVolume, readOneVersion } from '../storage/mounted-files.js'
import type { SigningAlg } from './algorithms.js'
import {
  generateKeyRecord,
  isTombstone,
  parseKeyFile,
  serializeKeyFile,
  type KeyFile,
  type KeyRecord,
  type Tombstone,
} from './key-file.js'

const KEY_FILE = /^[A-Za-z0-9_-]{43}\.json$/

export interface KeysDirContents {
  records: KeyRecord[]
  tombstones: Tombstone[]
  /** Files that could not be used, with the reason (never key material). */
  problems: { file: string; problem: string }[]
  /** Key files readable by others: loaded, and reported as errors. Group-readable (0640, 0440) is fine. */
  exposed: string[]
  /** Plain PKCS#8 files although a passphrase is set (made before it was): loaded, and reported. */
  unencrypted: string[]
}

/**
 * What makes a key file in a Kubernetes Secret volume private to this process: the mode the
 * kubelet gives the files, and the group it gives them (the process's own group, or a
 * supplementary group from fsGroup).
 * https://kubernetes.io/docs/concepts/configuration/secret/#secret-files-permissions
 * https://kubernetes.io/docs/tasks/configure-pod-container/security-context/
 */
export const SECRET_MODE_FIX =
  'for a Kubernetes Secret volume, set defaultMode: 0440 on the volume and fsGroup in the pod securityContext'

/**
 * Reads every `<kid>.json` in the directory; a bad file is reported, not fatal. In a Kubernetes
 * Secret volume the files are read from the version `..data` points to, all from one version
 * (readOneVersion), so the links being swapped, added or removed during an update change nothing.
 * A file may be owned by another user (root, in a Secret volume) and readable by the group: only
 * others may not write it (refused) nor read it (reported).
 */
export async function readKeysDir(dir: string, passphrase?: string): Promise<KeysDirContents> {
  return readOneVersion(dir, (version) => readKeyFiles(version, passphrase))
}

async function readKeyFiles(dir: string, passphrase: string | undefined): Promise<KeysDirContents> {
  const names = (await readdir(dir)).filter((name) => KEY_FILE.test(name)).sort()
  const contents: KeysDirContents = { records: [], tombstones: [], problems: [], exposed: [], unencrypted: [] }
  for (const name of names) {
    const path = join(dir, name)
    try {
      const info = await stat(path)
      // Whoever can change a key file can swap in a key of their own: refused like a broken file.
      if ((info.mode & 0o022) !== 0)
        throw new Error(
          `writable by group or others (mode ${octal(info.mode)}); run chmod 600 on it (${SECRET_MODE_FIX})`,
        )
      const key = await parseKeyFile(await readKeyText(path), passphrase)
      if (`${key.kid}.json` !== name) throw new Error(`file name does not match kid ${key.kid}`)
      if (isTombstone(key)) contents.tombstones.push(key)
      else {
        contents.records.push(key)
        if ((info.mode & 0o004) !== 0) contents.exposed.push(name)
        if (passphrase && !key.stored.privateKey?.startsWith('-----BEGIN ENCRYPTED ')) contents.unencrypted.push(name)
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue // removed while we read
      contents.problems.push({ file: name, problem: (error as Error).message })
    }
  }
  return contents
}

/** The file's text; one this process may not read says how to let it (never the errno alone). */
async function readKeyText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EACCES') throw error
    const gid = process.getgid?.()
    throw new Error(
      `not readable by this process${gid === undefined ? '' : ` (gid ${gid})`}: make it readable by its owner or group (${SECRET_MODE_FIX})`,
    )
  }
}

const octal = (mode: number) => `0${(mode & 0o7777).toString(8)}`

/**
 * Why KEYS_DIR must not be used, or undefined. Whoever can write the directory can add a key file,
 * which is then published and may sign, so it must belong to the user running this process (`uid`)
 * and be writable by nobody else. A directory on a read-only mount (EROFS: a Kubernetes Secret
 * volume, whose top is root-owned and mode 1777) cannot be written from here whatever its owner
 * and mode, and is fine. `summary` is short and names no path (for /readyz); `message` says how to
 * fix it (for the log, the start-up error and the CLI). `probe` is cannotWrite (tests pass their own).
 */
export async function keysDirAccessProblem(
  dir: string,
  uid: number | undefined = process.getuid?.(),
  probe: (dir: string) => Promise<string | undefined> = cannotWrite,
): Promise<{ summary: string; message: string } | undefined> {
  const info = await stat(dir)
  if ((await probe(dir)) === 'EROFS') return undefined
  if (uid !== undefined && info.uid !== uid) {
    const summary = 'KEYS_DIR is not owned by the user running tokensmith'
    return {
      summary,
      message: `${summary}: ${dir} belongs to uid ${info.uid}, this process runs as uid ${uid}; run chown ${uid} ${dir} (or run tokensmith as its owner)`,
    }
  }
  if ((info.mode & 0o022) !== 0) {
    const summary = 'KEYS_DIR is writable by group or others'
    return {
      summary,
      message: `${summary}: ${dir} has mode ${octal(info.mode)}, and whoever can write it can add a signing key; run chmod 700 ${dir}`,
    }
  }
  return undefined
}

/**
 * Signature of the directory for change detection: its owner and mode, the version read (in a
 * Kubernetes volume, the directory `..data` points to, whose name changes at every update even when
 * the files keep their mtimes and sizes), then the names, inodes, sizes, mtimes and modes of key
 * files (a chmod changes no mtime, and must be noticed too). A key file that vanished between the
 * listing and its stat (a dangling link) is `<name>:gone` (isTransientKeysDirSignature).
 */
export async function keysDirSignature(dir: string): Promise<string> {
  const info = await stat(dir)
  return readOneVersion(dir, async (version) => {
    const names = (await readdir(version)).filter((name) => KEY_FILE.test(name)).sort()
    const parts = await Promise.all(
      names.map(async (name) => {
        const info = await stat(join(version, name)).catch(() => undefined)
        return info ? `${name}:${info.ino}:${info.size}:${info.mtimeMs}:${info.mode}` : `${name}${GONE}`
      }),
    )
    return [`dir:${info.uid}:${info.mode}`, `version:${version}`, ...parts].join('|')
  })
}

const GONE = ':gone'

/** A signature naming a key file that vanished under the listing: maybe a moment in an update. */
export const isTransientKeysDirSignature = (signature: string): boolean =>
  signature.split('|').some((part) => part.endsWith(GONE))

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
 * Why an empty KEYS_DIR cannot get its first keys here, or undefined: it is read-only to this
 * process, or a Kubernetes volume (whose content the kubelet replaces). Its keys are made where
 * the Secret is made from.
 */
async function emptyReadOnlyProblem(dir: string): Promise<string | undefined> {
  const why = (await isKubeletVolume(dir)) ? 'a Kubernetes volume' : await cannotWrite(dir)
  if (why === undefined) return undefined
  return (
    `KEYS_DIR ${dir} is empty and read-only (${why}): create keys on a workstation with ` +
    '`KEYS_DIR=./keys npm run --silent keys -- rotate --now` (a signing key and a standby key) and load them with ' +
    '`kubectl create secret generic tokensmith-keys --from-file=./keys`; see README, Deployment'
  )
}

/**
 * Start-up: make sure KEYS_DIR exists (0700), that nobody but us can write it (else throws the
 * message of keysDirAccessProblem), and that it holds a usable key. An empty directory gets a
 * current key and a published standby key (so that `keys rotate --now` can switch to a key that
 * verifiers already have). When several instances start on the same empty directory, an O_EXCL
 * lock file makes exactly one of them generate them; the others wait and read. An empty directory
 * this process cannot write, or a Kubernetes Secret volume, stops start-up with how to make keys
 * for it (emptyReadOnlyProblem).
 */
export async function ensureKeys(
  dir: string,
  alg: SigningAlg,
  deps: { clock: Clock; log: Logger; passphrase?: string | undefined },
): Promise<KeysDirContents> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const access = await keysDirAccessProblem(dir)
  if (access) throw new Error(access.message)
  const deadline = Date.now() + 15_000
  for (;;) {
    const contents = await readKeysDir(dir, deps.passphrase)
    const empty = contents.records.length === 0 && contents.problems.length === 0 && contents.tombstones.length === 0
    // Broken or revoked keys are never papered over with new ones: that is the operator's call.
    if (!empty) return contents
    const readOnly = await emptyReadOnlyProblem(dir)
    if (readOnly) throw new Error(readOnly)

    const lock = join(dir, INIT_LOCK)
    let handle: FileHandle
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
      deps.log.info(
        { kid: current.kid, standby: standby.kid, alg },
        'generated a signing key and a standby key in an empty KEYS_DIR',
      )
      return { records: [current, standby], tombstones: [], problems: [], exposed: [], unencrypted: [] }
    } finally {
      await unlink(lock).catch(() => {})
    }
  }
}
