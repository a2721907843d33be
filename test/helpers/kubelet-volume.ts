import {
  chmodSync,
  existsSync,
  mkdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'

/** One mtime for every file of every version: an update that changes neither mtime nor size. */
export const FIXED_MTIME = new Date('2026-01-01T00:00:00Z')

let versions = 0

/**
 * A directory laid out and updated as the kubelet's atomic writer does for a Secret or ConfigMap
 * volume (pkg/volume/util/atomic_writer.go): each version in `..<timestamp>`, `..data` linking to
 * the current one, and a top-level link `name -> ..data/name` per key. `swap` runs the steps up to
 * the atomic rename of `..data_tmp` over `..data`; `finish` adds the new links, removes the old ones
 * and deletes the previous version. `update` does both.
 */
export function kubeletVolume(dir: string, options: { mode?: number } = {}) {
  const mode = options.mode ?? 0o440
  mkdirSync(dir, { recursive: true })
  let previous: string | undefined
  let names: string[] = []

  const swap = (files: Record<string, string>): string[] => {
    versions += 1
    const version = `..2026_12_02_15_00_00.${String(versions).padStart(9, '0')}`
    mkdirSync(join(dir, version))
    for (const [name, text] of Object.entries(files)) {
      const path = join(dir, version, name)
      writeFileSync(path, text)
      chmodSync(path, mode)
      utimesSync(path, FIXED_MTIME, FIXED_MTIME)
    }
    symlinkSync(version, join(dir, '..data_tmp'))
    previous = existsSync(join(dir, '..data')) ? readlinkSync(join(dir, '..data')) : undefined
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'))
    const old = names
    names = Object.keys(files)
    return old.filter((name) => !names.includes(name))
  }

  const finish = (removed: string[] = []): void => {
    for (const name of names) if (!existsLink(join(dir, name))) symlinkSync(join('..data', name), join(dir, name))
    for (const name of removed) rmSync(join(dir, name), { force: true })
    if (previous !== undefined) rmSync(join(dir, previous), { recursive: true })
    previous = undefined
  }

  return {
    dir,
    swap: (files: Record<string, string>) => {
      const removed = swap(files)
      return { finish: () => finish(removed) }
    },
    update: (files: Record<string, string>) => finish(swap(files)),
    /** The top-level link of `name`, as a test takes it away and gives it back. */
    unlink: (name: string) => unlinkSync(join(dir, name)),
    relink: (name: string) => symlinkSync(join('..data', name), join(dir, name)),
  }
}

function existsLink(path: string): boolean {
  try {
    readlinkSync(path)
    return true
  } catch {
    return false
  }
}
