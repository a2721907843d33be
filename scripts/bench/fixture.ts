import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { decodeProtectedHeader } from 'jose'
import { CONFIG_VARIABLES } from '../../src/config.js'
import type { KeyRecord } from '../../src/keys/key-file.js'
import { readKeysDir } from '../../src/keys/keys-dir.js'
import { run as runClientCli } from '../client.js'
import { systemClock } from '../../src/clock.js'
import { createRedisDenylist } from '../../src/denylist/redis.js'
import { createLogger } from '../../src/observability/logger.js'
import { startBenchRedis } from './redis.js'
import type { BenchOptions } from './options.js'
import { findFreePort, spawnServer, type ServerProcess } from './server-process.js'

/** Everything a measurement may use: a ready server, a client that can get tokens, the key it signs with. */
export interface BenchContext {
  options: BenchOptions
  server: ServerProcess
  client: { id: string; secret: string }
  /** What POST /oauth/token takes from the client: RFC 6749 §2.3.1 Basic credentials, form body. */
  tokenRequest: { headers: Record<string, string>; body: string }
  /** One token the server issued before the load: the template for in-process measurements. */
  sampleToken: string
  /** The key the server signed `sampleToken` with, read back from KEYS_DIR. */
  signingKey: KeyRecord
  /** A resource server process: one route behind bearerAuth with the Redis revocation feed on. */
  resourceServer: ServerProcess
  audience: string
}

/** Things to undo, last first; `run` is idempotent so a signal during cleanup does no harm. */
export interface Cleanup {
  add(step: () => Promise<void>): void
  run(): Promise<void>
}

export function createCleanup(report: (message: string) => void): Cleanup {
  const steps: (() => Promise<void>)[] = []
  let running: Promise<void> | undefined
  return {
    add: (step) => void steps.push(step),
    run: () =>
      (running ??= (async () => {
        for (const step of steps.reverse()) {
          await step().catch((error: unknown) => report(`cleanup: ${(error as Error).message}`))
        }
      })()),
  }
}

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const CLIENT_ID = 'bench-client'
const SCOPE = 'orders:read orders:write'
const AUDIENCE = 'https://api.bench.example'

/**
 * The server's environment. Every tokensmith variable is set, most to '' (= the default), so
 * neither the shell nor a .env in the repository changes the figures; REDIS_URL stays unset.
 */
function serverEnv(options: BenchOptions, paths: { keysDir: string; clientsFile: string }, port: number): NodeJS.ProcessEnv {
  const blank = Object.fromEntries(CONFIG_VARIABLES.map((name) => [name, '']))
  return {
    ...process.env,
    ...blank,
    PORT: String(port),
    HOST: '127.0.0.1',
    ISSUER: `http://127.0.0.1:${port}`,
    KEYS_DIR: paths.keysDir,
    CLIENTS_FILE: paths.clientsFile,
    SIGNING_ALG: options.alg,
    // Per-request logs are info: off, so the load measures the endpoint rather than pino.
    LOG_LEVEL: 'warn',
  }
}

/** Registers the bench client through the client CLI, in-process, as an operator would. */
async function createClient(env: NodeJS.ProcessEnv): Promise<{ id: string; secret: string }> {
  let stdout = ''
  let stderr = ''
  const io = { stdout: (text: string) => void (stdout += text), stderr: (text: string) => void (stderr += text), env }
  const code = await runClientCli(['create', '--id', CLIENT_ID, '--scope', SCOPE, '--audience', AUDIENCE], io)
  if (code !== 0) throw new Error(`client create exited ${code}: ${stderr.trim()}`)
  const created = JSON.parse(stdout) as { client_id: string; client_secret: string }
  return { id: created.client_id, secret: created.client_secret }
}

/** One request before the load, so a broken set-up fails here with the server's answer, not as N errors. */
async function requestSampleToken(url: string, request: BenchContext['tokenRequest']): Promise<string> {
  const response = await fetch(`${url}/oauth/token`, { method: 'POST', headers: request.headers, body: request.body })
  const text = await response.text()
  if (response.status !== 200) throw new Error(`POST /oauth/token answered ${response.status}: ${text}`)
  return (JSON.parse(text) as { access_token: string }).access_token
}

async function findSigningKey(keysDir: string, kid: string): Promise<KeyRecord> {
  const record = (await readKeysDir(keysDir)).records.find((key) => key.kid === kid)
  if (!record) throw new Error(`the server signed with kid ${kid}, which is not in ${keysDir}`)
  return record
}

export async function setUpBench(options: BenchOptions, cleanup: Cleanup, report: (message: string) => void): Promise<BenchContext> {
  const dir = await mkdtemp(join(tmpdir(), 'tokensmith-bench-'))
  cleanup.add(() => rm(dir, { recursive: true, force: true }))
  const paths = { keysDir: join(dir, 'keys'), clientsFile: join(dir, 'clients.json') }
  const port = await findFreePort()
  const env = serverEnv(options, paths, port)

  const client = await createClient(env)
  report(`starting the server on port ${port} (${options.alg}, LOG_LEVEL=warn)`)
  const server = spawnServer({ root: ROOT, env, port })
  cleanup.add(() => server.stop())
  await server.ready()

  const credentials = `${encodeURIComponent(client.id)}:${encodeURIComponent(client.secret)}`
  const tokenRequest = {
    headers: {
      authorization: `Basic ${Buffer.from(credentials).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: 'grant_type=client_credentials',
  }
  const sampleToken = await requestSampleToken(server.url, tokenRequest)
  const { kid } = decodeProtectedHeader(sampleToken)
  const signingKey = await findSigningKey(paths.keysDir, kid ?? '')
  const resourceServer = await startResourceServer(server.url, cleanup, report)
  return { options, server, client, tokenRequest, sampleToken, signingKey, resourceServer, audience: AUDIENCE }
}

const REVOKED_ENTRIES = 1000

/**
 * A throwaway Redis holding 1,000 revoked token ids, and a resource server fed from it: the
 * middleware then answers revocation from its local set, as in production.
 */
async function startResourceServer(issuer: string, cleanup: Cleanup, report: (message: string) => void): Promise<ServerProcess> {
  const redis = await startBenchRedis()
  cleanup.add(() => redis.stop())
  const keyPrefix = 'bench:'
  const denylist = createRedisDenylist({ url: redis.url, keyPrefix, clock: systemClock, log: createLogger('warn') })
  try {
    for (let deadline = Date.now() + 5000; ; ) {
      try {
        await denylist.ping()
        break
      } catch (error) {
        if (Date.now() > deadline) throw error
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    }
    const until = systemClock() + 3600
    for (let i = 0; i < REVOKED_ENTRIES; i++) await denylist.revokeToken(`bench-revoked-${i}`, until)
  } finally {
    await denylist.close()
  }
  const port = await findFreePort()
  report(`starting the resource server on port ${port} (bearerAuth, Redis revocation feed with ${REVOKED_ENTRIES} entries)`)
  const rs = spawnServer({
    root: ROOT,
    entry: 'scripts/bench/resource-server.ts',
    port,
    env: { ...process.env, PORT: String(port), ISSUER: issuer, AUDIENCE, REDIS_URL: redis.url, REDIS_KEY_PREFIX: keyPrefix },
  })
  cleanup.add(() => rs.stop())
  await rs.ready()
  return rs
}
