import { chmodSync, renameSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { createApp } from '../../../src/app.js'
import type { Deps } from '../../../src/deps.js'
import { watchTrust } from '../../../src/federation/reload.js'
import { loadTrustStore } from '../../../src/federation/trust-file.js'
import type { Watcher } from '../../../src/storage/watch.js'
import { tempDir } from '../../helpers/cli.js'
import { makeDeps } from '../../helpers/make-deps.js'

const REFUSED = 'reload failed; keeping the last good state'
const RELOADED = 'trust entries reloaded'

const write = (path: string, ids: string[]) =>
  writeFileSync(
    path,
    JSON.stringify({
      trust: ids.map((id) => ({ id, issuer: 'https://issuer.example', subject: `sub-${id}`, clients: ['svc-a'] })),
    }),
    { mode: 0o600 },
  )
const ids = (deps: Deps) => deps.trust?.entries.map((e) => e.id)

let watchers: Watcher[] = []
afterEach(() => {
  for (const watcher of watchers) watcher.stop()
  watchers = []
})

async function watched(write?: (path: string) => void, options: { preload?: boolean; intervalMs?: number } = {}) {
  const path = join(tempDir(), 'trust.json')
  write?.(path)
  const deps = await makeDeps({ config: { trustFile: path } })
  if (options.preload) deps.trust = await loadTrustStore(path)
  const watcher = await watchTrust(deps, options.intervalMs ?? 60_000)
  watchers.push(watcher)
  const logged = (msg: string) =>
    deps.logLines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((r) => r.msg === msg)
  return { path, deps, watcher, logged }
}

const ready = async (deps: Deps) => {
  const res = await createApp(deps).request('/readyz')
  return { status: res.status, body: (await res.json()) as unknown }
}

describe('TRUST_FILE hot reload', () => {
  it('reads the file before it resolves when start-up loaded none, and logs the count', async () => {
    const { deps, logged } = await watched((p) => write(p, ['a', 'b']))
    expect(ids(deps)).toEqual(['a', 'b'])
    expect(logged(RELOADED)).toEqual([expect.objectContaining({ level: 30, trust: 2 })])
  })

  it('starts from the store read at start-up without reading it again', async () => {
    const { deps, watcher, logged } = await watched((p) => write(p, ['a']), { preload: true })
    const loaded = deps.trust
    await watcher.check()
    expect(deps.trust).toBe(loaded)
    expect(logged(RELOADED)).toEqual([])
  })

  it('applies a changed file, and keeps the last good entries when the file breaks', async () => {
    const { path, deps, watcher, logged } = await watched((p) => write(p, ['a']))
    write(path, ['a', 'new'])
    await watcher.check()
    expect(ids(deps)).toEqual(['a', 'new'])
    const good = deps.trust

    for (const broken of ['{"trust": [', '{"trust":[{"id":"a"}]}', '']) {
      writeFileSync(path, broken)
      await watcher.check()
      expect(deps.trust).toBe(good)
    }
    const problems = logged(REFUSED)
    expect(problems).toHaveLength(3)
    expect(problems[0]).toMatchObject({ level: 50, source: path, problem: expect.stringContaining('not valid JSON') })
    expect(problems[1]!.problem).toMatch(new RegExp(`^${path}: entry "a" \\(#0\\) field issuer: `))
    expect(await ready(deps)).toEqual({ status: 200, body: { status: 'ready' } }) // a broken file is no vanished one

    write(path, ['b'])
    await watcher.check()
    expect(ids(deps)).toEqual(['b'])
    expect(logged(RELOADED).at(-1)).toMatchObject({ trust: 1 })
  })

  it('picks up a change by itself within the poll interval', async () => {
    const { path, deps } = await watched((p) => write(p, ['a']), { intervalMs: 50 })
    write(path, ['late'])
    await expect.poll(() => ids(deps), { timeout: 2000, interval: 20 }).toEqual(['late'])
  })

  it('a broken file at start leaves the store unset and logs why; a fixed one loads', async () => {
    const { path, deps, watcher, logged } = await watched((p) => writeFileSync(p, '{"trust": ['))
    expect(deps.trust).toBeUndefined()
    expect(logged(REFUSED)).toHaveLength(1)
    write(path, ['a'])
    await watcher.check()
    expect(ids(deps)).toEqual(['a'])
  })
})

describe('TRUST_FILE that vanishes', () => {
  it('keeps the last entries, logs one error and answers /readyz 503 until the file is back', async () => {
    const { path, deps, watcher, logged } = await watched((p) => write(p, ['a', 'b']))
    const good = deps.trust

    renameSync(path, `${path}.moved`)
    await watcher.check()
    await watcher.check()
    expect(deps.trust).toBe(good)
    expect(logged(REFUSED)).toEqual([
      expect.objectContaining({
        level: 50,
        source: path,
        problem: `${path} was loaded and is gone; the trust entries loaded last stay in force until it is back (to remove every entry, write {"trust": []})`,
      }),
    ])
    expect(await ready(deps)).toEqual({
      status: 503,
      body: { status: 'not ready', missing: ['TRUST_FILE is missing'] },
    })

    renameSync(`${path}.moved`, path)
    await watcher.check()
    expect(await ready(deps)).toEqual({ status: 200, body: { status: 'ready' } })
    expect(ids(deps)).toEqual(['a', 'b'])
    expect(logged(REFUSED)).toHaveLength(1)
  })

  it('a file loaded at start-up that vanishes counts as loaded', async () => {
    const { path, deps, watcher } = await watched((p) => write(p, ['a']), { preload: true })
    unlinkSync(path)
    await watcher.check() // missing at one check only may be a Kubernetes volume update: nothing yet
    expect((await ready(deps)).status).toBe(200)
    await watcher.check()
    expect(ids(deps)).toEqual(['a'])
    expect((await ready(deps)).status).toBe(503)
  })

  it('an explicit empty list removes every entry on purpose, and stays ready', async () => {
    const { path, deps, watcher, logged } = await watched((p) => write(p, ['a']))
    writeFileSync(path, '{"trust": []}', { mode: 0o600 })
    await watcher.check()
    expect(deps.trust?.entries).toEqual([])
    expect(logged(REFUSED)).toEqual([])
    expect(await ready(deps)).toEqual({ status: 200, body: { status: 'ready' } })
  })

  it('a file missing from the start is no entries, not an error; once created and loaded, its deletion is one', async () => {
    const { path, deps, watcher, logged } = await watched()
    expect(deps.trust).toEqual({ entries: [], source: 'missing' })
    await watcher.check()
    expect(logged(REFUSED)).toEqual([])
    expect(await ready(deps)).toEqual({ status: 200, body: { status: 'ready' } })

    write(path, ['new'])
    await watcher.check()
    expect(ids(deps)).toEqual(['new'])
    unlinkSync(path)
    await watcher.check()
    await watcher.check() // still missing at the next check
    expect(ids(deps)).toEqual(['new'])
    expect(logged(REFUSED)).toHaveLength(1)
    expect((await ready(deps)).status).toBe(503)
  })
})

describe('TRUST_FILE permissions', () => {
  it('warns when the file is writable by others, and still loads it', async () => {
    const { path, deps, watcher, logged } = await watched((p) => write(p, ['a']))
    const warning =
      'TRUST_FILE or its directory is writable by others, who could let their own tokens authenticate as any client; run chmod o-w on it'
    expect(logged(warning)).toEqual([])
    write(path, ['b'])
    chmodSync(path, 0o666)
    await watcher.check()
    expect(ids(deps)).toEqual(['b'])
    expect(logged(warning)).toEqual([expect.objectContaining({ level: 40, file: path, path, mode: '0666' })])
  })
})
