import { chmodSync, renameSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { createApp } from '../../../src/app.js'
import { watchClients } from '../../../src/clients/reload.js'
import type { Deps } from '../../../src/deps.js'
import type { Watcher } from '../../../src/storage/watch.js'
import { tempDir } from '../../helpers/cli.js'
import { clientEntry, makeDeps } from '../../helpers/make-deps.js'

const REFUSED = 'reload failed; keeping the last good state'
const write = (path: string, ids: string[]) =>
  writeFileSync(path, JSON.stringify({ clients: ids.map((id) => clientEntry({ id, secret: `tks_${id}` })) }), {
    mode: 0o600,
  })

let watchers: Watcher[] = []
afterEach(() => {
  for (const watcher of watchers) watcher.stop()
  watchers = []
})

async function watched(write?: (path: string) => void) {
  const path = join(tempDir(), 'clients.json')
  write?.(path)
  const deps = await makeDeps({ clients: [], config: { clientsFile: path } })
  const watcher = await watchClients(deps, 60_000)
  watchers.push(watcher)
  const logged = (msg: string) =>
    deps.logLines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((r) => r.msg === msg)
  return { path, deps, watcher, logged }
}

const ready = async (deps: Deps) => {
  const res = await createApp(deps).request('/readyz')
  return { status: res.status, body: (await res.json()) as unknown }
}

describe('CLIENTS_FILE that vanishes', () => {
  it('keeps the last good registry, logs one error and answers /readyz 503 until the file is back', async () => {
    const { path, deps, watcher, logged } = await watched((p) => write(p, ['svc-a']))
    write(path, ['svc-a', 'svc-b'])
    await watcher.check()
    const good = deps.clients
    expect(good.get('svc-b')).toBeDefined()

    renameSync(path, `${path}.moved`)
    await watcher.check()
    await watcher.check()
    expect(deps.clients).toBe(good)
    expect(logged(REFUSED)).toEqual([
      expect.objectContaining({
        level: 50,
        source: path,
        problem: `${path} was loaded and is gone; the clients loaded last stay in force until it is back (to remove every client, write {"clients": []})`,
      }),
    ])
    expect(await ready(deps)).toEqual({
      status: 503,
      body: { status: 'not ready', missing: ['CLIENTS_FILE is missing'] },
    })

    renameSync(`${path}.moved`, path)
    await watcher.check()
    expect(await ready(deps)).toEqual({ status: 200, body: { status: 'ready' } })
    expect(deps.clients.get('svc-b')).toBeDefined()
    expect(logged(REFUSED)).toHaveLength(1)
  })

  it('an explicit empty list removes every client on purpose, and stays ready', async () => {
    const { path, deps, watcher, logged } = await watched((p) => write(p, ['svc-a']))
    writeFileSync(path, '{"clients": []}', { mode: 0o600 })
    await watcher.check()
    expect(deps.clients.size).toBe(0)
    expect(logged(REFUSED)).toEqual([])
    expect(await ready(deps)).toEqual({ status: 200, body: { status: 'ready' } })
  })

  it('a file missing from the start is no clients yet, not an error; once created and loaded, its deletion is one', async () => {
    const { path, deps, watcher, logged } = await watched()
    await watcher.check()
    expect(logged(REFUSED)).toEqual([])
    expect(await ready(deps)).toEqual({ status: 200, body: { status: 'ready' } })

    write(path, ['svc-new'])
    await watcher.check()
    expect(deps.clients.get('svc-new')).toBeDefined()
    unlinkSync(path)
    await watcher.check() // missing at one check only may be a Kubernetes volume update: nothing yet
    expect(logged(REFUSED)).toEqual([])
    await watcher.check()
    expect(deps.clients.get('svc-new')).toBeDefined()
    expect(logged(REFUSED)).toHaveLength(1)
    expect((await ready(deps)).status).toBe(503)
  })
})

describe('CLIENTS_FILE reload guards', () => {
  it('refuses a file with a duplicate member name and keeps the last good registry', async () => {
    const { path, deps, watcher, logged } = await watched((p) => write(p, ['svc-a']))
    write(path, ['svc-a', 'svc-b'])
    await watcher.check()
    const good = deps.clients
    const entry = JSON.stringify(clientEntry({ id: 'svc-a', secret: 'tks_svc-a', scopes: ['read'] }))
    writeFileSync(path, `{"clients": [${entry.replace('"scopes":', '"scopes":["admin"],"scopes":')}]}`)
    await watcher.check()
    expect(deps.clients).toBe(good)
    expect(logged(REFUSED)).toEqual([
      expect.objectContaining({
        level: 50,
        problem: `${path}: member name "scopes" appears twice in clients[0]; names in an object must be unique`,
      }),
    ])
    expect(await ready(deps)).toEqual({ status: 200, body: { status: 'ready' } }) // like any broken file
  })

  it('warns when a reloaded CLIENTS_FILE is writable by others, and still loads it', async () => {
    const { path, deps, watcher, logged } = await watched((p) => write(p, ['svc-a']))
    write(path, ['svc-b'])
    chmodSync(path, 0o666)
    await watcher.check()
    expect(deps.clients.get('svc-b')).toBeDefined()
    expect(
      logged('CLIENTS_FILE or its directory is writable by others, who could register clients; run chmod o-w on it'),
    ).toEqual([expect.objectContaining({ level: 40, file: path, path, mode: '0666' })])
  })
})
