import { chmodSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { run as clientCli } from '../../../src/cli/client.js'
import { clientsFileWritableByOthers, readClientsFile } from '../../../src/clients/clients-file.js'
import { runCli, tempDir } from '../../helpers/cli.js'
import { clientEntry } from '../../helpers/make-deps.js'

const entry = JSON.stringify(clientEntry({ id: 'svc-a', secret: 'tks_a' }))
/** One client whose JSON text has `member` added right after its client_id. */
const withMember = (member: string) =>
  `{"clients": [${entry.replace('"client_id":"svc-a",', `"client_id":"svc-a",${member},`)}]}`

describe('CLIENTS_FILE with duplicate member names', () => {
  it.each([
    [
      'two "scopes" in one client',
      withMember('"scopes":["admin"]'),
      'member name "scopes" appears twice in clients[0]',
    ],
    [
      'two "clients" at the top level',
      `{"clients": [${entry}], "clients": []}`,
      'member name "clients" appears twice in the top-level object',
    ],
    [
      'two "sha256" in one secret',
      `{"clients": [${entry.replace('"sha256":', '"sha256":"x","sha256":')}]}`,
      'member name "sha256" appears twice in clients[0].secrets[0]',
    ],
  ])('refuses %s as a broken file, naming the name and where', async (_, text, problem) => {
    const path = join(tempDir(), 'clients.json')
    writeFileSync(path, text)
    JSON.parse(text) // valid JSON: JSON.parse alone would keep the last one silently
    await expect(readClientsFile(path)).rejects.toThrow(`${path}: ${problem}; names in an object must be unique`)
  })

  it('the client CLI refuses to rewrite such a file: exit 1, file unchanged', async () => {
    const path = join(tempDir(), 'clients.json')
    const text = withMember('"scopes":["admin"]')
    writeFileSync(path, text, { mode: 0o600 })
    const out = await runCli(clientCli, ['create', '--id', 'svc-b', '--scope', 'a', '--audience', 'aud'], {
      CLIENTS_FILE: path,
    })
    expect(out.code).toBe(1)
    expect(out.stderr).toMatch(/member name "scopes" appears twice in clients\[0\]/)
    expect(readFileSync(path, 'utf8')).toBe(text)
  })
})

describe('CLIENTS_FILE writable by others', () => {
  it('names the file and the directories others can write, with their modes', async () => {
    const dir = tempDir()
    const path = join(dir, 'clients.json')
    writeFileSync(path, '{"clients": []}', { mode: 0o600 })
    expect(await clientsFileWritableByOthers(path)).toEqual([])
    chmodSync(path, 0o640) // group-readable is fine
    chmodSync(dir, 0o750)
    expect(await clientsFileWritableByOthers(path)).toEqual([])
    chmodSync(path, 0o646)
    chmodSync(dir, 0o1777)
    expect(await clientsFileWritableByOthers(path)).toEqual([
      { path, mode: '0646' },
      { path: dir, mode: '01777' },
    ])
  })

  it('a missing file in a directory others can write is reported too (anyone could create it)', async () => {
    const dir = tempDir()
    chmodSync(dir, 0o777)
    expect(await clientsFileWritableByOthers(join(dir, 'clients.json'))).toEqual([{ path: dir, mode: '0777' }])
  })
})
