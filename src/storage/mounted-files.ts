import { access, constants, lstat, realpath } from 'node:fs/promises'
import { dirname, join, sep } from 'node:path'

/**
 * Files mounted from a Kubernetes Secret or ConfigMap (and projected or downwardAPI volumes). The
 * kubelet's atomic writer keeps each version of the volume in a timestamped directory
 * (`..2026_12_02_15_00_00.123456789`), points the symlink `..data` at the current one, and shows
 * each key as a link `name -> ..data/name`. An update writes a new version directory, points
 * `..data_tmp` at it and renames `..data_tmp` over `..data` (the one atomic step), then adds and
 * removes top-level links and deletes the old version. Files keep the mode of `defaultMode`, and
 * the volume is mounted read-only in the container.
 * https://kubernetes.io/docs/concepts/configuration/secret/#using-secrets-as-files-from-a-pod
 * https://kubernetes.io/docs/concepts/configuration/configmap/#mounted-configmaps-are-updated-automatically
 */

/** The link to the current version of a Kubernetes volume. */
export const DATA_LINK = '..data'

/** `..data`, `..data_tmp`, `..2026_…`: the kubelet's bookkeeping, never a file of the volume's. */
export const isVolumeEntry = (name: string): boolean => name.startsWith('..') && name !== '..'

const isErrno = (error: unknown, ...codes: string[]) => codes.includes((error as NodeJS.ErrnoException).code ?? '')

/** True when `dir` is the top of a Kubernetes volume (it holds `..data`). */
export async function isKubeletVolume(dir: string): Promise<boolean> {
  return lstat(join(dir, DATA_LINK)).then(
    () => true,
    () => false,
  )
}

/**
 * The directory to read `dir`'s files from as one version: in a Kubernetes volume the version
 * `..data` points to now, else the real path of `dir` (itself a link into a version when the
 * volume maps keys into a subdirectory with `items`).
 */
export async function versionDir(dir: string): Promise<string> {
  try {
    return await realpath(join(dir, DATA_LINK))
  } catch (error) {
    if (!isErrno(error, 'ENOENT', 'ENOTDIR')) throw error
  }
  return realpath(dir)
}

const MAX_READS = 5

/**
 * `read` of one version of `dir` (versionDir): a result is used only if `dir` still shows the
 * version it read afterwards, else it is read again. An update during the read (the old version
 * deleted under it, ENOENT) thus never yields a mixture of two versions, nor an error.
 */
export async function readOneVersion<T>(dir: string, read: (version: string) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const version = await versionDir(dir)
    let result: T
    try {
      result = await read(version)
    } catch (error) {
      const moved = isErrno(error, 'ENOENT') && (await versionDir(dir).catch(() => version)) !== version
      if (moved && attempt < MAX_READS) continue
      throw error
    }
    if (attempt >= MAX_READS || (await versionDir(dir)) === version) return result
  }
}

/**
 * Why this process cannot write `dir` (EROFS: a read-only mount, as a Secret volume is; EACCES or
 * EPERM: permissions), or undefined when it can. access(2) answers without creating anything.
 */
export async function cannotWrite(dir: string): Promise<string | undefined> {
  try {
    await access(dir, constants.W_OK)
    return undefined
  } catch (error) {
    if (isErrno(error, 'EROFS', 'EACCES', 'EPERM')) return (error as NodeJS.ErrnoException).code
    throw error
  }
}

/** True when the file `path` would be written in a Kubernetes volume (its directory is one, or lies inside a version). */
export async function isInKubeletVolume(path: string): Promise<boolean> {
  const dir = dirname(path)
  if (await isKubeletVolume(dir)) return true
  const real = await realpath(dir).catch(() => dir)
  return real.split(sep).some(isVolumeEntry)
}

/**
 * What a command that changes a mounted file is told: the kubelet owns the volume (and rewrites
 * it from the Secret), so the change belongs in the files the Secret is made from.
 */
export function mountedVolumeMessage(path: string, why: string): string {
  return (
    `${dirname(path)} ${why}: run this command on a checkout, with KEYS_DIR, CLIENTS_FILE or TRUST_FILE ` +
    'naming a local directory or file, then re-create the Secret from it (kubectl create secret generic ' +
    '... --from-file=... --dry-run=client -o yaml | kubectl apply -f -); see README, Deployment'
  )
}
