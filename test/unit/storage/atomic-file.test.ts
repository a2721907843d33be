import {
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import {
  createFileAtomic,
  removeFile,
  resolveTarget,
  withFileLock,
  writeFileAtomic,
} from '../../../src/storage/atomic-file.js'
import { tempDir } from '../../helpers/cli.js'

/** A file in one directory and a symlink to it (relative, as mounted volumes make them) in another. */
function linked() {
  const root = tempDir()
  mkdirSync(join(root, 'data'))
  mkdirSync(join(root, 'conf'))
  const target = join(root, 'data', 'file.json')
  const link = join(root, 'conf', 'file.json')
  writeFileSync(target, 'old\n', { mode: 0o600 })
  symlinkSync('../data/file.json', link)
  return { root, target, link }
}

const leftovers = (dir: string) => readdirSync(dir).filter((name) => name.startsWith('.'))

describe('writeFileAtomic through a symlink', () => {
  it('replaces the file the link leads to, keeps the link, and leaves no temp file', async () => {
    const { root, target, link } = linked()
    await writeFileAtomic(link, 'new\n')
    expect(lstatSync(link).isSymbolicLink()).toBe(true)
    expect(readlinkSync(link)).toBe('../data/file.json')
    expect(readFileSync(target, 'utf8')).toBe('new\n')
    expect(statSync(target).mode & 0o777).toBe(0o600)
    expect(leftovers(join(root, 'data'))).toEqual([])
    expect(leftovers(join(root, 'conf'))).toEqual([])
  })

  it('follows a chain of links, as a mounted volume has (file -> ..data/file, ..data -> a dated directory)', async () => {
    const root = tempDir()
    mkdirSync(join(root, '..2030_01_01'))
    writeFileSync(join(root, '..2030_01_01', 'file.json'), 'old\n', { mode: 0o600 })
    symlinkSync('..2030_01_01', join(root, '..data'))
    symlinkSync('..data/file.json', join(root, 'file.json'))
    await writeFileAtomic(join(root, 'file.json'), 'new\n')
    expect(lstatSync(join(root, 'file.json')).isSymbolicLink()).toBe(true)
    expect(lstatSync(join(root, '..data')).isSymbolicLink()).toBe(true)
    expect(readFileSync(join(root, '..2030_01_01', 'file.json'), 'utf8')).toBe('new\n')
  })

  it('creates the missing file a dangling link names, and the link stays', async () => {
    const { target, link } = linked()
    await removeFile(target)
    await writeFileAtomic(link, 'new\n')
    expect(lstatSync(link).isSymbolicLink()).toBe(true)
    expect(readFileSync(target, 'utf8')).toBe('new\n')
  })

  it('leaves a path that is no link as it is', async () => {
    const dir = tempDir()
    expect(await resolveTarget(join(dir, 'missing.json'))).toBe(join(dir, 'missing.json'))
    await writeFileAtomic(join(dir, 'plain.json'), 'x\n')
    expect(lstatSync(join(dir, 'plain.json')).isFile()).toBe(true)
  })

  it('refuses a loop of links', async () => {
    const dir = tempDir()
    symlinkSync('b', join(dir, 'a'))
    symlinkSync('a', join(dir, 'b'))
    await expect(writeFileAtomic(join(dir, 'a'), 'x\n')).rejects.toThrow()
    expect(lstatSync(join(dir, 'a')).isSymbolicLink()).toBe(true)
  })
})

describe('createFileAtomic', () => {
  it('never writes through an existing link (EEXIST), so a new key never overwrites a file elsewhere', async () => {
    const { target, link } = linked()
    await expect(createFileAtomic(link, 'new\n')).rejects.toMatchObject({ code: 'EEXIST' })
    expect(readFileSync(target, 'utf8')).toBe('old\n')
  })
})

describe('removeFile', () => {
  it('deletes a link and the file it leads to', async () => {
    const { target, link } = linked()
    await removeFile(link)
    expect(existsSync(target)).toBe(false)
    expect(() => lstatSync(link)).toThrow()
  })
})

describe('withFileLock', () => {
  it('takes the lock beside the file a link leads to, so two links to one file exclude each other', async () => {
    const { root, target, link } = linked()
    const order: string[] = []
    let release!: () => void
    const held = withFileLock(link, async () => {
      order.push('first in')
      expect(existsSync(`${target}.lock`)).toBe(true)
      await new Promise<void>((resolve) => (release = resolve))
      order.push('first out')
    })
    await new Promise((resolve) => setTimeout(resolve, 20))
    const second = withFileLock(target, async () => void order.push('second in'), 2000)
    await new Promise((resolve) => setTimeout(resolve, 100))
    release()
    await Promise.all([held, second])
    expect(order).toEqual(['first in', 'first out', 'second in'])
    expect(leftovers(join(root, 'conf'))).toEqual([])
  })
})
