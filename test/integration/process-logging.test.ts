import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { run as clientCli } from '../../src/cli/client.js'
import { runCli, tempDir } from '../helpers/cli.js'
import { requestOnNewConnection } from '../helpers/fresh-connection.js'
import { basic } from '../helpers/make-deps.js'
import { spawnServer, type SpawnedServer } from '../helpers/spawn-server.js'

// The server writes its log in batches (src/observability/logger.ts); none of it may be lost when
// the process ends, whether it stops or fails.
const CRASH_HOOK = fileURLToPath(new URL('../helpers/crash-on-signal.mjs', import.meta.url))
const N = 40

let server: SpawnedServer | undefined
afterEach(() => server?.kill('SIGKILL'))

async function startServer(extra: Record<string, string> = {}) {
  const dir = tempDir()
  const env = {
    KEYS_DIR: join(dir, 'keys'),
    CLIENTS_FILE: join(dir, 'clients.json'),
    LOG_LEVEL: 'info',
    REDIS_URL: '',
    ...extra,
  }
  const created = await runCli(
    clientCli,
    ['create', '--id', 'svc-a', '--scope', 'read', '--audience', 'https://api.example.com'],
    env,
  )
  server = await spawnServer(env, { nodeArgs: ['--import', CRASH_HOOK] })
  const authorization = basic('svc-a', created.json().client_secret as string)
  for (let i = 0; i < N; i++) {
    const response = await requestOnNewConnection(`${server.url}/oauth/token`, {
      authorization,
      form: 'grant_type=client_credentials',
    })
    expect(response.status).toBe(200)
  }
  return server
}

const records = (output: string[]) =>
  output.filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, unknown>)

describe('the server log', () => {
  it('holds every line a server logged when it stops on SIGTERM, the shutdown lines last', async () => {
    const server = await startServer()
    server.kill('SIGTERM')
    expect(await server.closed).toBe(0)
    const logged = records(server.output)
    expect(logged.filter((r) => r.msg === 'request' && r.path === '/oauth/token')).toHaveLength(N)
    expect(logged.slice(-2).map((r) => r.msg)).toEqual(['shutting down', 'stopped'])
  })

  it.each([
    ['an uncaught exception', 'exception', 'uncaughtException', 'test: an uncaught exception'],
    ['an unhandled rejection', 'rejection', 'unhandledRejection', 'test: an unhandled rejection'],
  ])('logs %s at fatal after every earlier line, and exits 1', async (_name, kind, origin, message) => {
    const server = await startServer({ TOKENSMITH_TEST_CRASH: kind })
    server.kill('SIGUSR2')
    expect(await server.closed).toBe(1)
    const logged = records(server.output)
    expect(logged.filter((r) => r.msg === 'request' && r.path === '/oauth/token')).toHaveLength(N)
    expect(logged.at(-1)).toMatchObject({
      level: 60,
      msg: 'fatal error, exiting',
      origin,
      err: { type: 'Error', message },
    })
    expect((logged.at(-1)!.err as { stack: string }).stack).toContain('crash-on-signal.mjs')
  })
})
