import { chmodSync, linkSync, mkdirSync, readlinkSync, renameSync, rmSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { fileSignature, MISSING } from '../../../src/storage/json-file.js'
import { readOneVersion, versionDir } from '../../../src/storage/mounted-files.js'
import { keysDirAccessProblem, keysDirSignature } from '../../../src/keys/keys-dir.js'
import { tempDir } from '../../helpers/cli.js'
import { kubeletVolume } from '../../helpers/kubelet-volume.js'

// Kubernetes Secret and ConfigMap volumes: the kubelet's atomic writer swaps `..data` to a new
// version directory (https://kubernetes.io/docs/concepts/configuration/secret/#mounted-secrets-are-updated-automatically).

describe('Kubernetes volume layout', () => {
  it('reads from the version ..data points to, and from the directory itself otherwise', async () => {
    const volume = kubeletVolume(tempDir())
    volume.update({ 'a.json': '{}' })
    const version = await versionDir(volume.dir)
    expect(version).toBe(join(volume.dir, readlinkSync(join(volume.dir, '..data'))))
    const plain = tempDir()
    expect(await versionDir(plain)).toBe(plain)
  })

  it('reads again when the version changed during a read, or was deleted under it', async () => {
    const volume = kubeletVolume(tempDir())
    volume.update({ 'a.json': 'one' })
    let reads = 0
    const seen = await readOneVersion(volume.dir, async (version) => {
      reads += 1
      if (reads === 1) {
        volume.update({ 'a.json': 'two' }) // the old version is gone now
        throw Object.assign(new Error(`ENOENT: ${version}`), { code: 'ENOENT' })
      }
      return version
    })
    expect(reads).toBe(2)
    expect(seen).toBe(await versionDir(volume.dir))

    reads = 0
    await readOneVersion(volume.dir, async () => {
      reads += 1
      if (reads === 1) volume.update({ 'a.json': 'three' }) // swapped after the read: its result is not used
    })
    expect(reads).toBe(2)
  })

  it("a file's signature changes at a swap that keeps inode, size and mtime (the version's path differs)", async () => {
    const dir = tempDir()
    const volume = kubeletVolume(dir)
    volume.update({ 'clients.json': '{"clients": []}' })
    const before = await fileSignature(join(dir, 'clients.json'))
    // A new version holding the very same file (a hard link): only the path it is read through changes.
    const old = readlinkSync(join(dir, '..data'))
    mkdirSync(join(dir, '..2027_01_01_00_00_00.000000001'))
    linkSync(join(dir, old, 'clients.json'), join(dir, '..2027_01_01_00_00_00.000000001', 'clients.json'))
    symlinkSync('..2027_01_01_00_00_00.000000001', join(dir, '..data_tmp'))
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'))
    rmSync(join(dir, old), { recursive: true })
    const after = await fileSignature(join(dir, 'clients.json'))
    expect(after).not.toBe(MISSING)
    expect(after).not.toBe(before)
  })

  it('a dangling link is MISSING, like no file', async () => {
    const volume = kubeletVolume(tempDir())
    volume.update({ 'clients.json': '{}' })
    volume.swap({ 'other.json': '{}' }) // clients.json removed: its link dangles until `finish`
    expect(await fileSignature(join(volume.dir, 'clients.json'))).toBe(MISSING)
  })

  it("KEYS_DIR's signature changes at a swap that keeps every key file's inode, size and mtime", async () => {
    const dir = tempDir()
    const volume = kubeletVolume(dir)
    const name = `${'k'.repeat(43)}.json`
    volume.update({ [name]: '{}' })
    const before = await keysDirSignature(dir)
    const old = readlinkSync(join(dir, '..data'))
    mkdirSync(join(dir, '..2027_01_01_00_00_00.000000002'))
    linkSync(join(dir, old, name), join(dir, '..2027_01_01_00_00_00.000000002', name))
    symlinkSync('..2027_01_01_00_00_00.000000002', join(dir, '..data_tmp'))
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'))
    rmSync(join(dir, old), { recursive: true })
    expect(await keysDirSignature(dir)).not.toBe(before)
    // The kubelet's entries are never taken for key files.
    expect(await keysDirSignature(dir)).not.toMatch(/\|\.\.data/)
  })
})

describe('KEYS_DIR on a read-only mount', () => {
  it('accepts a directory nobody here can write (EROFS) whatever its owner and mode, as a Secret volume is', async () => {
    const dir = tempDir()
    chmodSync(dir, 0o1777) // a Secret volume's top: root-owned tmpfs, mode 1777
    const readOnly = async () => 'EROFS'
    const writable = async () => undefined
    expect(await keysDirAccessProblem(dir, 12345, readOnly)).toBeUndefined()
    expect((await keysDirAccessProblem(dir, 12345, writable))?.summary).toBe(
      'KEYS_DIR is not owned by the user running tokensmith',
    )
    const uid = process.getuid?.()
    expect((await keysDirAccessProblem(dir, uid, writable))?.summary).toBe('KEYS_DIR is writable by group or others')
    // Not writable for permissions only (EACCES): the owner still can, so the rules still apply.
    expect((await keysDirAccessProblem(dir, uid, async () => 'EACCES'))?.summary).toBe(
      'KEYS_DIR is writable by group or others',
    )
  })
})
