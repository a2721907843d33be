import { spawnSync } from 'node:child_process'
import { chmodSync, chownSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createApp } from '../../src/app.js'
import { run as clientCli } from '../../src/cli/client.js'
import { run as keysCli } from '../../src/cli/keys.js'
import { loadClientRegistry } from '../../src/clients/clients-file.js'
import { watchClients } from '../../src/clients/reload.js'
import type { Deps } from '../../src/deps.js'
import { watchTrust } from '../../src/federation/reload.js'
import { loadTrustStore } from '../../src/federation/trust-file.js'
import { generateKeyRecord, serializeKeyRecord, type KeyRecord } from '../../src/keys/key-file.js'
import { watchKeys } from '../../src/keys/reload.js'
import type { Watcher } from '../../src/storage/watch.js'
import { runCli, tempDir } from '../helpers/cli.js'
import { kubeletVolume } from '../helpers/kubelet-volume.js'
import { T0, clientEntry, fixedClock, makeDeps } from '../helpers/make-deps.js'
import { freePort } from '../helpers/free-port.js'
import { buildIfStale } from '../helpers/spawn-server.js'

// KEYS_DIR, CLIENTS_FILE and TRUST_FILE mounted from Kubernetes Secrets: the kubelet's atomic writer
// swaps `..data` to a new version directory, files keep mtime and size, links dangle for a moment
// (https://kubernetes.io/docs/concepts/configuration/secret/#mounted-secrets-are-updated-automatically).
const REFUSED = 'reload failed; keeping the last good state'

let watchers: Watcher[] = []
afterEach(() => {
  for (const watcher of watchers) watcher.stop()
  watchers = []
})

type Logged = { level: number; msg: string; problem?: string }
const records = (deps: { logLines: string[] }) => deps.logLines.map((line) => JSON.parse(line) as Logged)
const count = (deps: { logLines: string[] }, msg: string) => records(deps).filter((r) => r.msg === msg).length
const warnings = (deps: { logLines: string[] }) => records(deps).filter((r) => r.level >= 40)
/** Warnings and errors other than a refused reload (an error) and its audit event (a warning). */
const otherWarnings = (deps: { logLines: string[] }) =>
  warnings(deps).filter((r) => r.msg !== REFUSED && !r.msg.endsWith('.reload_rejected'))
const readyz = async (deps: Deps) => (await createApp(deps).request('/readyz')).status

const keyFiles = (...keys: KeyRecord[]) =>
  Object.fromEntries(keys.map((key) => [`${key.kid}.json`, serializeKeyRecord(key)]))

describe('KEYS_DIR mounted from a Secret', () => {
  it('loads 0440 keys quietly, follows updates that keep mtime and size, and keeps the last good keys', async () => {
    const volume = kubeletVolume(join(tempDir(), 'keys'))
    const current = await generateKeyRecord('ES256', T0, T0)
    const standby = await generateKeyRecord('ES256', T0, null)
    volume.update(keyFiles(current, standby))
    const deps = await makeDeps({ clock: fixedClock(T0), keys: [current, standby], config: { keysDir: volume.dir } })
    const watcher = await watchKeys(deps, 60_000)
    watchers.push(watcher)
    expect(count(deps, 'signing keys reloaded')).toBe(1)
    expect(warnings(deps)).toEqual([]) // group-readable, root-owned in a real Secret: no warning
    expect(deps.keys.size).toBe(2)

    // The same names, sizes and mtimes, other content (a new version directory: new inodes and path).
    const touched = { ...current, stored: { ...current.stored, created: T0 - 1 } }
    volume.update(keyFiles(touched, standby))
    const before = deps.keys
    await watcher.check()
    expect(deps.keys).not.toBe(before)
    expect(count(deps, 'signing keys reloaded')).toBe(2)

    // A new standby key replaces the old one (same size): loaded.
    const next = await generateKeyRecord('ES256', T0, null)
    expect(serializeKeyRecord(next).length).toBe(serializeKeyRecord(standby).length)
    volume.update(keyFiles(touched, next))
    await watcher.check()
    expect(deps.keys.verificationKey(next.kid)).toBeDefined()
    expect(deps.keys.verificationKey(standby.kid)).toBeUndefined()

    // Broken content of the same size: refused and logged once; the last good keys stay.
    const good = deps.keys
    const broken = serializeKeyRecord(touched).replace('"alg": "ES256"', '"alg": "XX256"')
    expect(broken.length).toBe(serializeKeyRecord(touched).length)
    volume.update({ ...keyFiles(next), [`${touched.kid}.json`]: broken })
    await watcher.check()
    await watcher.check()
    expect(deps.keys).toBe(good)
    expect(count(deps, REFUSED)).toBe(1)
    expect(records(deps).find((r) => r.msg === REFUSED)?.problem).toMatch(/field alg/)
    volume.update(keyFiles(touched, next))
    await watcher.check()
    expect(count(deps, REFUSED)).toBe(1)
    expect(deps.keys.verificationKey(touched.kid)).toBeDefined()

    // Mid-update: `..data` swapped, the added key's link not made yet, then the removed key's link
    // dangling: read from the version, nothing is missed, nothing is logged.
    const added = await generateKeyRecord('ES256', T0, null)
    const adding = volume.swap(keyFiles(touched, next, added))
    await watcher.check()
    expect(deps.keys.verificationKey(added.kid)).toBeDefined()
    adding.finish()
    const reloads = count(deps, 'signing keys reloaded')
    await watcher.check()
    expect(count(deps, 'signing keys reloaded')).toBe(reloads) // the links alone are no change
    const removing = volume.swap(keyFiles(touched, added))
    await watcher.check()
    removing.finish()
    await watcher.check()
    expect(deps.keys.verificationKey(touched.kid)).toBeDefined()
    expect(deps.keys.verificationKey(next.kid)).toBeUndefined() // a standby key may go

    // The signing key's link missing for a check: no loss, no log.
    volume.unlink(`${touched.kid}.json`)
    await watcher.check()
    volume.relink(`${touched.kid}.json`)
    await watcher.check()
    expect(deps.keys.signingKey().kid).toBe(touched.kid)
    expect(count(deps, REFUSED)).toBe(1)
    expect(otherWarnings(deps)).toEqual([])
    expect(await readyz(deps)).toBe(200)
    // The kubelet's entries were never taken for files.
    expect(
      readdirSync(volume.dir)
        .filter((name) => name.startsWith('..'))
        .sort(),
    ).toEqual([expect.stringMatching(/^\.\.2026_/), '..data'])
  })
})

describe('CLIENTS_FILE mounted from a Secret', () => {
  const text = (...ids: string[]) =>
    JSON.stringify({ clients: ids.map((id) => clientEntry({ id, secret: `tks_${id}` })) }, null, 2)

  it('follows updates that keep mtime and size, keeps the last good registry, and rides out a missing link', async () => {
    const volume = kubeletVolume(join(tempDir(), 'clients'))
    const path = join(volume.dir, 'clients.json')
    volume.update({ 'clients.json': text('svc-a') })
    const deps = await makeDeps({ clients: [], config: { clientsFile: path } })
    deps.clients = await loadClientRegistry(path) // as start-up reads it
    const watcher = await watchClients(deps, 60_000)
    watchers.push(watcher)
    await watcher.check()
    expect(count(deps, 'clients reloaded')).toBe(0) // what start-up read: nothing to do

    const size = statSync(path).size
    volume.update({ 'clients.json': text('svc-b') })
    expect(statSync(path).size).toBe(size)
    await watcher.check()
    expect(deps.clients.get('svc-b')).toBeDefined()
    expect(deps.clients.get('svc-a')).toBeUndefined()

    // Broken, same size: refused once; the last good registry stays.
    const good = deps.clients
    volume.update({ 'clients.json': text('svc-c').replace('"clients"', '"clientz"') })
    await watcher.check()
    await watcher.check()
    expect(deps.clients).toBe(good)
    expect(count(deps, REFUSED)).toBe(1)
    volume.update({ 'clients.json': text('svc-c') })
    await watcher.check()
    expect(deps.clients.get('svc-c')).toBeDefined()

    // The link missing for one check, then dangling for one check (the key renamed and back): nothing happens.
    const reloads = count(deps, 'clients reloaded')
    volume.unlink('clients.json')
    await watcher.check()
    expect(await readyz(deps)).toBe(200)
    volume.relink('clients.json')
    await watcher.check()
    volume.swap({ 'renamed.json': text('svc-c') })
    await watcher.check()
    expect(await readyz(deps)).toBe(200)
    volume.update({ 'clients.json': text('svc-d') })
    await watcher.check()
    expect(deps.clients.get('svc-d')).toBeDefined()
    expect(count(deps, 'clients reloaded')).toBe(reloads + 1)
    expect(count(deps, REFUSED)).toBe(1)
    expect(otherWarnings(deps)).toEqual([])

    // Missing at two checks in a row: that is real, as for any file that vanished.
    volume.unlink('clients.json')
    await watcher.check()
    await watcher.check()
    expect(records(deps).filter((r) => r.msg === REFUSED)[1]?.problem).toMatch(/was loaded and is gone/)
    expect(await readyz(deps)).toBe(503)
    expect(deps.clients.get('svc-d')).toBeDefined()
    volume.relink('clients.json')
    await watcher.check()
    expect(await readyz(deps)).toBe(200)
  })
})

describe('TRUST_FILE mounted from a ConfigMap', () => {
  const text = (id: string) =>
    JSON.stringify({ trust: [{ id, issuer: 'https://issuer.example', subject: `sub-${id}`, clients: ['svc-a'] }] })

  it('follows an update that keeps mtime and size, and rides out a missing link', async () => {
    const volume = kubeletVolume(join(tempDir(), 'trust'), { mode: 0o444 })
    const path = join(volume.dir, 'trust.json')
    volume.update({ 'trust.json': text('a') })
    const deps = await makeDeps({ config: { trustFile: path } })
    deps.trust = await loadTrustStore(path)
    const watcher = await watchTrust(deps, 60_000)
    watchers.push(watcher)
    volume.update({ 'trust.json': text('b') })
    await watcher.check()
    expect(deps.trust?.entries.map((e) => e.id)).toEqual(['b'])
    volume.unlink('trust.json')
    await watcher.check()
    expect(await readyz(deps)).toBe(200)
    volume.relink('trust.json')
    await watcher.check()
    expect(deps.trust?.entries.map((e) => e.id)).toEqual(['b'])
    expect(count(deps, 'trust entries reloaded')).toBe(1)
    expect(warnings(deps)).toEqual([])
  })
})

describe('the CLIs and a Secret volume', () => {
  const noStack = (stderr: string) => expect(stderr).not.toMatch(/\n\s+at /)

  it('keys and client refuse to change a mounted volume, and say to work on a checkout; keys list still reads it', async () => {
    const keys = kubeletVolume(join(tempDir(), 'keys'))
    const current = await generateKeyRecord('ES256', T0, T0)
    const standby = await generateKeyRecord('ES256', T0, null)
    keys.update(keyFiles(current, standby))
    const env = { KEYS_DIR: keys.dir }
    const before = readdirSync(keys.dir).sort()

    const rotate = await runCli((args, io) => keysCli(args, io, fixedClock(T0 + 10)), ['rotate', '--now'], env)
    expect(rotate.code).toBe(1)
    expect(rotate.stderr).toMatch(/is a Kubernetes Secret or ConfigMap volume/)
    expect(rotate.stderr).toMatch(/run this command on a checkout.*re-create the Secret/)
    noStack(rotate.stderr)
    expect(readdirSync(keys.dir).sort()).toEqual(before)
    const list = await runCli((args, io) => keysCli(args, io, fixedClock(T0 + 10)), ['list'], env)
    expect(list.code).toBe(0)

    const clients = kubeletVolume(join(tempDir(), 'clients'))
    clients.update({ 'clients.json': JSON.stringify({ clients: [] }) })
    const file = join(clients.dir, 'clients.json')
    const create = await runCli(clientCli, ['create', '--id', 'svc-x', '--scope', 'read', '--audience', 'api'], {
      CLIENTS_FILE: file,
    })
    expect(create.code).toBe(1)
    expect(create.stderr).toMatch(/is a Kubernetes Secret or ConfigMap volume.*run this command on a checkout/)
    noStack(create.stderr)
    expect(readFileSync(file, 'utf8')).toBe(JSON.stringify({ clients: [] }))
  })
})

/**
 * `node` arguments for the server as `npm start` runs it (dist/, built if stale). Should the build
 * fail (another change under way in this checkout), the source through tsx: start-up is the same.
 */
let serverScript: string[] = []
beforeAll(() => {
  try {
    buildIfStale()
    serverScript = [fileURLToPath(new URL('../../dist/main.js', import.meta.url))]
  } catch {
    serverScript = [
      '--import',
      import.meta.resolve('tsx'),
      fileURLToPath(new URL('../../src/main.ts', import.meta.url)),
    ]
  }
}, 180_000)

describe('an empty read-only KEYS_DIR at start-up', () => {
  it('stops the built server with how to create the keys and load them into the Secret', async () => {
    const root = tempDir()
    chmodSync(root, 0o755)
    const keysDir = join(root, 'keys')
    mkdirSync(keysDir)
    // Root writes whatever the mode says: run the server as nobody then, on a directory it owns
    // but may not write (0555); anyone else gets the mode alone.
    const asRoot = process.getuid?.() === 0
    if (asRoot) chownSync(keysDir, 65534, 65534)
    chmodSync(keysDir, 0o555)
    const result = spawnSync(process.execPath, serverScript, {
      cwd: root,
      env: {
        PATH: process.env.PATH ?? '',
        ISSUER: 'http://127.0.0.1',
        PORT: String(await freePort()),
        KEYS_DIR: keysDir,
        CLIENTS_FILE: join(root, 'clients.json'),
        LOG_LEVEL: 'warn',
      },
      encoding: 'utf8',
      timeout: 20_000,
      ...(asRoot && { uid: 65534, gid: 65534 }),
    })
    const output = `${result.stdout}${result.stderr}`
    expect(result.status).toBe(1)
    expect(output).toContain(`KEYS_DIR ${keysDir} is empty and read-only (EACCES)`)
    expect(output).toContain('`KEYS_DIR=./keys npm run --silent keys -- rotate --now`')
    expect(output).toContain('`kubectl create secret generic tokensmith-keys --from-file=./keys`')
    expect(output).not.toMatch(/\n\s+at /)
    expect(readdirSync(keysDir)).toEqual([])
  }, 30_000)
})
