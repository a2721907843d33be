import { chmodSync, chownSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { run as clientCli } from '../../src/cli/client.js'
import { ensureKeys } from '../../src/keys/keys-dir.js'
import { runCli, tempDir } from '../helpers/cli.js'
import { captureLog, fixedClock } from '../helpers/make-deps.js'
import { spawnServer, type SpawnedServer } from '../helpers/spawn-server.js'

// Start-up refuses files that would let someone else mint tokens or would be read two ways, with
// one line saying what to do.
let servers: SpawnedServer[] = []
afterEach(async () => {
  for (const server of servers) server.kill('SIGTERM')
  await Promise.all(
    servers.map((server) => Promise.race([server.exited, new Promise((resolve) => setTimeout(resolve, 5000))])),
  )
  servers = []
})

async function setup(options: { keys?: boolean } = {}) {
  const root = tempDir()
  const keysDir = join(root, 'keys')
  const clientsFile = join(root, 'clients.json')
  if (options.keys !== false) await ensureKeys(keysDir, 'ES256', { clock: fixedClock(), log: captureLog().log })
  const created = await runCli(
    clientCli,
    ['create', '--id', 'svc-a', '--scope', 'read', '--audience', 'https://api.example.com'],
    { CLIENTS_FILE: clientsFile },
  )
  expect(created.code).toBe(0)
  return {
    root,
    keysDir,
    clientsFile,
    env: { KEYS_DIR: keysDir, CLIENTS_FILE: clientsFile, REDIS_URL: '', LOG_LEVEL: 'info' },
  }
}

/** The server's start-up failure: its exit code and the one line it printed. */
async function startFailure(env: Record<string, string>) {
  const failure = (await spawnServer(env).catch((error: unknown) => error)) as Error
  expect(failure).toBeInstanceOf(Error)
  const [first, ...output] = failure.message.split('\n')
  return { first, failed: output.filter((line) => line.startsWith('tokensmith: failed to start:')) }
}

describe('start-up', () => {
  it.each(['0777', '0770', '0707', '01777'])(
    'stops when KEYS_DIR has mode %s (writable by group or others), with one line saying to chmod 700',
    async (mode) => {
      const { keysDir, env } = await setup()
      chmodSync(keysDir, Number.parseInt(mode, 8))
      const { first, failed } = await startFailure(env)
      expect(first).toBe('server exited with 1:')
      expect(failed).toEqual([
        `tokensmith: failed to start: KEYS_DIR is writable by group or others: ${keysDir} has mode ${mode}, and whoever can write it can add a signing key; run chmod 700 ${keysDir}`,
      ])
    },
  )

  it('generates no key in an empty KEYS_DIR others can write', async () => {
    const { keysDir, env } = await setup({ keys: false })
    mkdirSync(keysDir, { mode: 0o700 })
    chmodSync(keysDir, 0o777)
    const { failed } = await startFailure(env)
    expect(failed).toHaveLength(1)
    expect(readdirSync(keysDir)).toEqual([])
  })

  it('stops when KEYS_DIR is not owned by the user running it, with one line saying to chown', async () => {
    const { keysDir, env } = await setup()
    chownSync(keysDir, 65534, 65534) // tests run as root: give it to nobody
    const { first, failed } = await startFailure(env)
    expect(first).toBe('server exited with 1:')
    expect(failed).toEqual([
      `tokensmith: failed to start: KEYS_DIR is not owned by the user running tokensmith: ${keysDir} belongs to uid 65534, this process runs as uid ${process.getuid!()}; run chown ${process.getuid!()} ${keysDir} (or run tokensmith as its owner)`,
    ])
  })

  it('stops on a CLIENTS_FILE with a duplicate member name, naming it', async () => {
    const { clientsFile, env } = await setup()
    writeFileSync(
      clientsFile,
      `{"clients": [{"client_id": "svc-a", "secrets": [{"sha256": "${'A'.repeat(43)}", "created": 1}], "scopes": ["admin"], "scopes": ["read"], "audiences": ["aud"]}]}`,
    )
    const { first, failed } = await startFailure(env)
    expect(first).toBe('server exited with 1:')
    expect(failed).toEqual([
      `tokensmith: failed to start: ${clientsFile}: member name "scopes" appears twice in clients[0]; names in an object must be unique`,
    ])
  })

  it('starts, and warns, when CLIENTS_FILE or its directory is writable by others', async () => {
    const { root, clientsFile, env } = await setup()
    chmodSync(clientsFile, 0o666)
    chmodSync(root, 0o777)
    const server = await spawnServer(env)
    servers.push(server)
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200)
    const warnings = server.output
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { level: number; msg: string; path?: string; mode?: string })
      .filter(
        (record) =>
          record.msg ===
          'CLIENTS_FILE or its directory is writable by others, who could register clients; run chmod o-w on it',
      )
    expect(warnings).toEqual([
      expect.objectContaining({ level: 40, path: clientsFile, mode: '0666' }),
      expect.objectContaining({ level: 40, path: root, mode: '0777' }),
    ])
  })
})
