import { spawn, type ChildProcess } from 'node:child_process'
import { cp, mkdtemp, readFile, rm, symlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { calculateJwkThumbprint, decodeJwt, type JWK } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CONFIG_VARIABLES } from '../../src/config.js'
import { freePort } from '../helpers/free-port.js'
import { spawnServer, type SpawnedServer } from '../helpers/spawn-server.js'
import { waitFor } from '../helpers/wait-for.js'

/**
 * The README's private_key_jwt, DPoP and local federation walkthroughs, run as written: the
 * ```sh blocks after a `<!-- readme-test: NAME -->` marker, joined in order, through `bash -e -o pipefail`.
 *
 * The one substitution: `localhost:3000` and `8088` become free ports (and the CLIs get that PORT, so
 * their issuer identifier is the server's), so that the test never collides with a server a developer
 * has running. Everything else is verbatim.
 *
 * Where: a temp directory holding a copy of package.json, src/ and scripts/ and a symlink to
 * node_modules, so that `npm run --silent client …` and `npx tsx scripts/dev-issuer.ts …` run as in the
 * project directory, while every file the walkthroughs write (clients.json, trust.json, keys/,
 * *.local.json) lands there and is deleted with it. A copy, not a symlink: the CLIs run only when
 * their own path is the one node was started with.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const MARKER = /<!-- readme-test: ([a-z0-9-]+) -->\s*\n```sh\n([\s\S]*?)\n```/g

/** The ```sh blocks marked `name`, joined in order. */
function readmeScript(readme: string, name: string): string {
  const blocks = [...readme.matchAll(MARKER)].filter((match) => match[1] === name).map((match) => match[2]!)
  if (blocks.length === 0) throw new Error(`README.md has no block marked readme-test: ${name}`)
  return blocks.join('\n')
}

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

let dir: string
let env: Record<string, string>
let server: SpawnedServer | undefined
let issuer: ChildProcess | undefined
let readme: string
let port: number
let issuerPort: number

/** The README's fixed ports swapped for this run's, after checking the block uses them. */
function localize(script: string): string {
  return script.replaceAll('localhost:3000', `localhost:${port}`).replaceAll('8088', String(issuerPort))
}

function bash(script: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-e', '-o', 'pipefail', '-c', script], {
      cwd: dir,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    child.once('error', reject)
    child.once('close', (code) => resolve({ code, stdout, stderr }))
  })
}

/** The access token of the last token response a walkthrough printed (jq pretty-prints it). */
function accessTokenIn(run: Run): string {
  const matches = [...run.stdout.matchAll(/"access_token": "([^"]+)"/g)]
  const token = matches.at(-1)?.[1]
  if (token === undefined) throw new Error(`no access_token in the output:\n${run.stdout}\n${run.stderr}`)
  return token
}

beforeAll(async () => {
  readme = await readFile(join(ROOT, 'README.md'), 'utf8')
  dir = await mkdtemp(join(tmpdir(), 'tokensmith-readme-'))
  await cp(join(ROOT, 'package.json'), join(dir, 'package.json'))
  await cp(join(ROOT, 'src'), join(dir, 'src'), { recursive: true })
  await cp(join(ROOT, 'scripts'), join(dir, 'scripts'), { recursive: true })
  await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir')
  ;[port, issuerPort] = [await freePort(), await freePort()]

  // The walkthroughs' shell: no tokensmith setting from this process, only the server's PORT (the
  // CLIs' issuer identifier is http://localhost:$PORT, as the server's is).
  env = Object.fromEntries(
    Object.entries(process.env).filter(
      (entry): entry is [string, string] =>
        entry[1] !== undefined && !(CONFIG_VARIABLES as readonly string[]).includes(entry[0]),
    ),
  )
  env.PORT = String(port)

  server = await spawnServer(
    {
      PORT: String(port),
      ISSUER: `http://localhost:${port}`,
      CLIENTS_FILE: join(dir, 'clients.json'),
      TRUST_FILE: join(dir, 'trust.json'),
      KEYS_DIR: join(dir, 'keys'),
      RELOAD_INTERVAL: '1',
    },
    { cwd: dir },
  )

  // The federation walkthrough's second terminal: the local issuer, in its own process group.
  issuer = spawn('bash', ['-c', localize(readmeScript(readme, 'federation-issuer'))], {
    cwd: dir,
    env,
    detached: true,
    stdio: 'ignore',
  })
  await waitFor(async () => {
    const response = await fetch(`http://127.0.0.1:${issuerPort}/.well-known/openid-configuration`)
    if (!response.ok) throw new Error(`the dev issuer answered ${response.status}`)
  }, 15_000)
}, 30_000)

afterAll(async () => {
  if (issuer?.pid !== undefined && issuer.exitCode === null) process.kill(-issuer.pid, 'SIGTERM')
  server?.kill()
  await server?.exited
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe('README walkthroughs, run as written', () => {
  it('the blocks use the ports the test swaps', () => {
    expect(readmeScript(readme, 'pkjwt')).toContain('http://localhost:3000')
    expect(readmeScript(readme, 'dpop')).toContain('http://localhost:3000/oauth/token')
    expect(readmeScript(readme, 'federation')).toContain('http://localhost:3000')
    expect(readmeScript(readme, 'federation')).toContain('127.0.0.1:8088')
    expect(readmeScript(readme, 'federation-issuer')).toContain('--port 8088')
  })

  it('private_key_jwt: a generated key pair, a jose-signed assertion, an access token', async () => {
    const run = await bash(localize(readmeScript(readme, 'pkjwt')))
    expect(run.code, run.stderr).toBe(0)
    expect(run.stdout).toContain('"token_endpoint_auth_method": "private_key_jwt"')
    expect(decodeJwt(accessTokenIn(run))).toMatchObject({
      iss: `http://localhost:${port}`,
      client_id: 'pkjwt-demo',
      sub: 'pkjwt-demo',
      aud: 'https://api.example.com',
      scope: 'invoices:read',
    })
  }, 30_000)

  it('DPoP: a client key pair, a jose-signed proof, a DPoP-bound access token', async () => {
    const run = await bash(localize(readmeScript(readme, 'dpop')))
    expect(run.code, run.stderr).toBe(0)
    // Without a proof, and with a replayed one: refused (RFC 9449 §5, §11.1).
    expect(run.stdout.match(/"error": "invalid_dpop_proof"/g)).toHaveLength(2)
    expect(run.stdout).toContain('"error_description": "DPoP proof was already used"')
    expect(run.stdout).toContain('"token_type": "DPoP"')
    const claims = decodeJwt(accessTokenIn(run))
    expect(claims).toMatchObject({
      iss: `http://localhost:${port}`,
      client_id: 'dpop-demo',
      aud: 'https://api.example.com',
      scope: 'invoices:read',
    })
    // Bound to the key the walkthrough saved (RFC 9449 §6.1, RFC 7638), and introspection agrees (§6.2).
    const key = JSON.parse(await readFile(join(dir, 'dpop-key.local.json'), 'utf8')) as { public: JWK }
    const jkt = await calculateJwkThumbprint(key.public, 'sha256')
    expect(claims.cnf).toEqual({ jkt })
    expect(run.stdout).toMatch(new RegExp(`"active": true,\\s*"token_type": "DPoP",\\s*"cnf": \\{\\s*"jkt": "${jkt}"`))
    expect(run.stdout).toContain(`"thumbprint": "${jkt}"`)
    // The resource-server proof carries the token's hash (RFC 9449 §4.2).
    expect(run.stdout).toMatch(/htm: 'GET',\s*htu: 'https:\/\/api\.example\.com\/invoices',\s*ath: '[A-Za-z0-9_-]{43}'/)
  }, 30_000)

  it('workload identity federation: a local issuer, a trust entry, a platform token, an access token', async () => {
    const run = await bash(localize(readmeScript(readme, 'federation')))
    expect(run.code, run.stderr).toBe(0)
    expect(run.stdout).toMatch(/"ok": true,\s*"entry": "dev-issuer"/)
    expect(decodeJwt(accessTokenIn(run))).toMatchObject({
      iss: `http://localhost:${port}`,
      client_id: 'deploy-bot',
      sub: 'deploy-bot',
      aud: 'https://api.example.com',
      scope: 'deploy:write',
    })
  }, 30_000)
})
