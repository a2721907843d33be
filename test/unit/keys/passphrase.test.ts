import { chmodSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { run as clientCli } from '../../../src/cli/client.js'
import { generateKeyRecord, parseKeyFile, serializeKeyRecord, type KeyRecord } from '../../../src/keys/key-file.js'
import { ensureKeys, readKeysDir } from '../../../src/keys/keys-dir.js'
import { runCli, tempDir } from '../../helpers/cli.js'
import { T0, captureLog, fixedClock } from '../../helpers/make-deps.js'
import { spawnServer, type SpawnedServer } from '../../helpers/spawn-server.js'

// With KEYS_PASSPHRASE, private keys are encrypted PKCS#8 at rest, and a wrong or missing
// passphrase stops the server without generating a key or touching the files.
// A key file readable by others is loaded and logged as an error; readable by its group only, it is fine.
const PASSPHRASE = 'correct horse battery staple'
const WRONG = 'wrong passphrase, not the one'

const snapshot = (dir: string) =>
  Object.fromEntries(readdirSync(dir).map((name) => [name, readFileSync(join(dir, name))]))

let servers: SpawnedServer[] = []
afterEach(async () => {
  // SIGTERM, which tsx relays to the server process (a SIGKILL would only reach tsx).
  for (const server of servers) server.kill('SIGTERM')
  await Promise.all(
    servers.map((server) => Promise.race([server.exited, new Promise((resolve) => setTimeout(resolve, 5000))])),
  )
  servers = []
})

describe('encrypted key files', () => {
  it('ensureKeys writes encrypted PKCS#8 and no plain private key', async () => {
    const dir = join(tempDir(), 'keys')
    const { records } = await ensureKeys(dir, 'ES256', {
      clock: fixedClock(),
      log: captureLog().log,
      passphrase: PASSPHRASE,
    })
    const names = readdirSync(dir).sort()
    expect(names).toEqual(records.map((r) => `${r.kid}.json`).sort())
    for (const name of names) {
      const text = readFileSync(join(dir, name), 'utf8')
      const { privateKey } = JSON.parse(text) as { privateKey: string }
      expect(privateKey.startsWith('-----BEGIN ENCRYPTED PRIVATE KEY-----\n')).toBe(true)
      expect(text).not.toContain('BEGIN PRIVATE KEY')
      expect(text).not.toContain(PASSPHRASE)
    }
  })

  it.each(['ES256', 'EdDSA', 'RS256'] as const)(
    'parses a %s key with the right passphrase to the same key',
    async (alg) => {
      const record = await generateKeyRecord(alg, T0, T0, PASSPHRASE)
      const parsed = (await parseKeyFile(serializeKeyRecord(record), PASSPHRASE)) as KeyRecord
      expect(parsed.kid).toBe(record.kid)
      expect(parsed.publicJwk).toEqual(record.publicJwk)
      expect(parsed.privateKey.export({ format: 'jwk' })).toEqual(record.privateKey.export({ format: 'jwk' }))
      expect(parsed.stored.privateKey).toBe(record.stored.privateKey) // kept encrypted in memory as stored
    },
  )

  it('refuses a wrong passphrase with a clear message that does not contain it', async () => {
    const record = await generateKeyRecord('ES256', T0, T0, PASSPHRASE)
    const error = (await parseKeyFile(serializeKeyRecord(record), WRONG).catch((e: unknown) => e)) as Error
    expect(error).toBeInstanceOf(Error)
    expect(error.message).toBe('KEYS_PASSPHRASE does not decrypt the private key')
    expect(String(error)).not.toContain(WRONG)
    expect(String(error)).not.toContain(PASSPHRASE)
  })

  it('refuses an encrypted key without a passphrase, saying to set KEYS_PASSPHRASE', async () => {
    const record = await generateKeyRecord('ES256', T0, T0, PASSPHRASE)
    await expect(parseKeyFile(serializeKeyRecord(record))).rejects.toThrow(
      /^the private key is encrypted: set KEYS_PASSPHRASE$/,
    )
  })

  it('restarts on an encrypted directory with the same kids and no new key', async () => {
    const dir = join(tempDir(), 'keys')
    const first = await ensureKeys(dir, 'ES256', { clock: fixedClock(), log: captureLog().log, passphrase: PASSPHRASE })
    const before = snapshot(dir)
    const again = await ensureKeys(dir, 'ES256', {
      clock: fixedClock(T0 + 60),
      log: captureLog().log,
      passphrase: PASSPHRASE,
    })
    expect(again.problems).toEqual([])
    expect(again.records.map((r) => r.kid).sort()).toEqual(first.records.map((r) => r.kid).sort())
    expect(snapshot(dir)).toEqual(before)
  })

  it('reports the file with the wrong passphrase in readKeysDir, and ensureKeys generates nothing over it', async () => {
    const dir = join(tempDir(), 'keys')
    const { records } = await ensureKeys(dir, 'ES256', {
      clock: fixedClock(),
      log: captureLog().log,
      passphrase: PASSPHRASE,
    })
    const before = snapshot(dir)
    const contents = await ensureKeys(dir, 'ES256', { clock: fixedClock(), log: captureLog().log, passphrase: WRONG })
    expect(contents.records).toEqual([])
    expect(contents.problems).toEqual(
      records
        .map((r) => ({ file: `${r.kid}.json`, problem: 'KEYS_PASSPHRASE does not decrypt the private key' }))
        .sort((a, b) => (a.file < b.file ? -1 : 1)),
    )
    expect(snapshot(dir)).toEqual(before)
  })
})

describe('plain key files with KEYS_PASSPHRASE set', () => {
  it('are loaded, listed as unencrypted, and reported by the server as a warning naming the file', async () => {
    const dir = tempDir()
    const keysDir = join(dir, 'keys')
    const plain = await ensureKeys(keysDir, 'ES256', { clock: fixedClock(), log: captureLog().log })
    const contents = await readKeysDir(keysDir, 'a long enough passphrase')
    expect(contents.records.map((r) => r.kid).sort()).toEqual(plain.records.map((r) => r.kid).sort())
    expect(contents.unencrypted.sort()).toEqual(plain.records.map((r) => `${r.kid}.json`).sort())
    expect((await readKeysDir(keysDir)).unencrypted).toEqual([])

    const { buildDeps } = await import('../../../src/bootstrap.js')
    const { watchKeys } = await import('../../../src/keys/reload.js')
    const { loadConfig } = await import('../../../src/config.js')
    const captured = captureLog()
    const deps = await buildDeps(
      loadConfig({
        KEYS_DIR: keysDir,
        CLIENTS_FILE: join(dir, 'clients.json'),
        KEYS_PASSPHRASE: 'a long enough passphrase',
      }),
      captured.log,
      fixedClock(),
    )
    const watcher = await watchKeys(deps, 60_000) // the first check reports the key files
    watcher.stop()
    await deps.denylist.close()
    const warnings = captured
      .records()
      .filter((r) => r.msg === 'private key is stored unencrypted although KEYS_PASSPHRASE is set; rotate it out')
    expect(warnings.map((r) => r.file).sort()).toEqual(contents.unencrypted.sort())
    expect(captured.lines.join('\n')).not.toContain('a long enough passphrase')
  })
})

describe('server start-up with key file problems', () => {
  async function encryptedDir() {
    const root = tempDir()
    const keysDir = join(root, 'keys')
    await ensureKeys(keysDir, 'ES256', { clock: fixedClock(), log: captureLog().log, passphrase: PASSPHRASE })
    return { keysDir, clientsFile: join(root, 'clients.json') }
  }

  it.each([
    ['a wrong', WRONG, 'KEYS_PASSPHRASE does not decrypt the private key'],
    ['a missing', '', 'the private key is encrypted: set KEYS_PASSPHRASE'],
  ])(
    'exits non-zero with %s KEYS_PASSPHRASE, naming the problem, with no new key and the files byte-unchanged',
    async (_, passphrase, problem) => {
      const { keysDir, clientsFile } = await encryptedDir()
      const before = snapshot(keysDir)
      const failure = (await spawnServer({
        KEYS_DIR: keysDir,
        CLIENTS_FILE: clientsFile,
        KEYS_PASSPHRASE: passphrase,
        REDIS_URL: '',
      }).catch((e: unknown) => e)) as Error
      expect(failure).toBeInstanceOf(Error)
      const [first, ...output] = failure.message.split('\n')
      expect(first).toBe('server exited with 1:')
      const line = output.find((l) => l.startsWith('tokensmith: failed to start:'))
      expect(line).toMatch(
        new RegExp(
          `^tokensmith: failed to start: cannot use KEYS_DIR ${keysDir}: [A-Za-z0-9_-]{43}\\.json: ${problem}`,
        ),
      )
      expect(failure.message).not.toContain(WRONG)
      expect(failure.message).not.toContain(PASSPHRASE)
      expect(snapshot(keysDir)).toEqual(before)
    },
  )

  it('starts with a world-readable key file and logs an error naming it', async () => {
    const { keysDir, clientsFile } = await encryptedDir()
    const { records } = await readKeysDir(keysDir, PASSPHRASE)
    const exposed = records.find((r) => r.activates !== null)!
    chmodSync(join(keysDir, `${exposed.kid}.json`), 0o644)
    await runCli(clientCli, ['create', '--id', 'svc-a', '--scope', 'read', '--audience', 'https://api.example.com'], {
      CLIENTS_FILE: clientsFile,
    })
    const server = await spawnServer({
      KEYS_DIR: keysDir,
      CLIENTS_FILE: clientsFile,
      KEYS_PASSPHRASE: PASSPHRASE,
      REDIS_URL: '',
      LOG_LEVEL: 'info',
    })
    servers.push(server)
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200)
    const errors = server.output
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { level: number; msg: string; file?: string })
      .filter((record) => record.level === 50)
    expect(errors).toEqual([
      expect.objectContaining({
        file: `${exposed.kid}.json`,
        msg: 'key file is readable by others; run chmod 600 on it (for a Kubernetes Secret volume, set defaultMode: 0440 on the volume and fsGroup in the pod securityContext)',
      }),
    ])
    expect(server.output.join('\n')).not.toContain(PASSPHRASE)
  })
})
