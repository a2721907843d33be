import {
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
import { run } from '../../../src/cli/client.js'
import { runCli, tempDir } from '../../helpers/cli.js'

/** CLIENTS_FILE as a link into another directory, the way mounted configuration is laid out. */
function linkedClientsFile() {
  const root = tempDir()
  mkdirSync(join(root, 'data'), { mode: 0o700 })
  mkdirSync(join(root, 'conf'), { mode: 0o700 })
  const target = join(root, 'data', 'clients.json')
  const link = join(root, 'conf', 'clients.json')
  writeFileSync(target, '{"clients": []}\n', { mode: 0o600 })
  symlinkSync('../data/clients.json', link)
  return { root, target, link, env: { CLIENTS_FILE: link } }
}

const ids = (path: string) =>
  (JSON.parse(readFileSync(path, 'utf8')) as { clients: { client_id: string }[] }).clients.map((c) => c.client_id)

describe('client CLI with CLIENTS_FILE a symlink', () => {
  it('create and delete change the file the link leads to, and the link stays a link', async () => {
    const { root, target, link, env } = linkedClientsFile()
    const created = await runCli(run, ['create', '--id', 'svc-1', '--scope', 'a', '--audience', 'aud'], env)
    expect(created.code).toBe(0)
    expect(lstatSync(link).isSymbolicLink()).toBe(true)
    expect(readlinkSync(link)).toBe('../data/clients.json')
    expect(ids(target)).toEqual(['svc-1'])
    expect(statSync(target).mode & 0o777).toBe(0o600)

    // The delete of a compromised client must reach whoever reads the target.
    const deleted = await runCli(run, ['delete', '--id', 'svc-1'], env)
    expect(deleted.code).toBe(0)
    expect(lstatSync(link).isSymbolicLink()).toBe(true)
    expect(ids(target)).toEqual([])
    for (const dir of ['data', 'conf'])
      expect(readdirSync(join(root, dir)).filter((name) => name.startsWith('.'))).toEqual([])
  })
})
