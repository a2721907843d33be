import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { watchClients } from '../../../src/clients/reload.js'
import { loadClientRegistry } from '../../../src/clients/clients-file.js'
import { tempDir } from '../../helpers/cli.js'
import { clientEntry, makeDeps } from '../../helpers/make-deps.js'

const write = (path: string, ids: string[]) =>
  writeFileSync(path, JSON.stringify({ clients: ids.map((id) => clientEntry({ id, secret: `tks_${id}` })) }))

describe('client registry hot reload', () => {
  it('applies a changed file, and keeps the last good registry when the file breaks', async () => {
    const path = join(tempDir(), 'clients.json')
    write(path, ['svc-a'])
    const deps = await makeDeps({ clients: [], config: { clientsFile: path } })
    const watcher = await watchClients(deps, 60_000)
    try {
      await watcher.check()
      expect(deps.clients.get('svc-a')).toBeUndefined() // makeDeps' own registry: nothing changed on disk yet

      write(path, ['svc-a', 'svc-new'])
      await watcher.check()
      expect(deps.clients.get('svc-new')).toBeDefined()
      const good = deps.clients

      for (const broken of ['{"clients": [', '{"clients":[{"client_id":"svc-a"}]}', '']) {
        writeFileSync(path, broken)
        await watcher.check()
        expect(deps.clients).toBe(good)
      }
      const problems = deps.logLines
        .map((line) => JSON.parse(line))
        .filter((r) => r.msg === 'reload failed; keeping the last good state')
      expect(problems).toHaveLength(3)
      expect(problems[1].problem).toMatch(/client "svc-a" field scopes/)

      write(path, ['svc-b'])
      await watcher.check()
      expect(deps.clients.get('svc-b')).toBeDefined()
      expect(deps.clients.get('svc-new')).toBeUndefined()
    } finally {
      watcher.stop()
    }
  })

  it('picks up a change by itself within the poll interval', async () => {
    const path = join(tempDir(), 'clients.json')
    write(path, ['svc-a'])
    const deps = await makeDeps({ config: { clientsFile: path } })
    const watcher = await watchClients(deps, 50)
    try {
      write(path, ['svc-late'])
      await expect.poll(() => deps.clients.get('svc-late'), { timeout: 2000, interval: 20 }).toBeDefined()
    } finally {
      watcher.stop()
    }
  })

  it('starts from the registry read at start-up, and reloads a file replaced since that read', async () => {
    const path = join(tempDir(), 'clients.json')
    write(path, ['svc-a'])
    const deps = await makeDeps({ config: { clientsFile: path } })
    deps.clients = await loadClientRegistry(path)
    const loaded = deps.clients
    write(path, ['svc-a', 'svc-late']) // between the read at start-up and the watcher
    const watcher = await watchClients(deps, 60_000)
    try {
      expect(deps.clients).toBe(loaded)
      await watcher.check()
      expect(deps.clients.get('svc-late')).toBeDefined()
      const reloaded = deps.clients
      await watcher.check()
      expect(deps.clients).toBe(reloaded) // nothing changed since: no second read
    } finally {
      watcher.stop()
    }
  })
})
