import { join } from 'node:path'
import { Hono } from 'hono'
import { decodeProtectedHeader } from 'jose'
import { afterEach, describe, expect, it } from 'vitest'
import { run as clientCli } from '../../src/cli/client.js'
import { run as keysCli } from '../../src/cli/keys.js'
import { bearerAuth } from '../../src/verifier/index.js'
import { runCli, tempDir } from '../helpers/cli.js'
import { spawnServer, type SpawnedServer } from '../helpers/spawn-server.js'

// Zero-downtime rotation (README, routine signing-key rotation): tokens are requested and verified
// without pause, through the middleware with a remote JWKS and through introspection, while
// `keys rotate` and `keys rotate --now` run against a real server process. Time is compressed: the
// verifier caches the JWKS for 1 s and the activation delay is 3 s, keeping the rule the README
// states (the delay outlasts the verifiers' cache) at a scale a test can wait for; so is
// KEY_PUBLISH_MIN (a key signs only once a server has published it that long: 2 s).
const ACTIVATION_DELAY = '3'
const PUBLISH_MIN = '2'

let servers: SpawnedServer[] = []
afterEach(() => {
  for (const server of servers) server.kill('SIGKILL')
  servers = []
})

async function setup() {
  const dir = tempDir()
  const env = {
    KEYS_DIR: join(dir, 'keys'),
    CLIENTS_FILE: join(dir, 'clients.json'),
    KEY_ACTIVATION_DELAY: ACTIVATION_DELAY,
    KEY_PUBLISH_MIN: PUBLISH_MIN,
    LOG_LEVEL: 'warn',
  }
  const app = await runCli(
    clientCli,
    ['create', '--id', 'svc-a', '--scope', 'read', '--audience', 'https://api.example.com'],
    env,
  )
  const rs = await runCli(
    clientCli,
    ['create', '--id', 'rs-api', '--scope', 'none', '--audience', 'https://api.example.com', '--resource-server'],
    env,
  )
  return {
    env,
    auth: `Basic ${Buffer.from(`svc-a:${app.json().client_secret}`).toString('base64')}`,
    rsAuth: `Basic ${Buffer.from(`rs-api:${rs.json().client_secret}`).toString('base64')}`,
  }
}

const form = { 'content-type': 'application/x-www-form-urlencoded' }

describe('signing-key rotation under load', () => {
  it('fails no request while keys rotate and keys rotate --now run, and tokens of retired keys keep verifying', async () => {
    const { env, auth, rsAuth } = await setup()
    const server = await spawnServer(env)
    servers.push(server)

    const rs = new Hono()
    rs.use(
      bearerAuth({
        issuer: server.url,
        audience: 'https://api.example.com',
        jwks: { uri: `${server.url}/.well-known/jwks.json`, cacheMaxAge: 1, cooldown: 1 },
      }),
    )
    rs.get('/api', (c) => c.text('ok'))

    const failures: string[] = []
    const issued: string[] = []
    const kids = new Set<string>()
    let requests = 0
    let stop = false

    const worker = async () => {
      while (!stop) {
        const res = await fetch(`${server.url}/oauth/token`, {
          method: 'POST',
          headers: { ...form, authorization: auth },
          body: 'grant_type=client_credentials',
        })
        requests++
        if (res.status !== 200) {
          failures.push(`token ${res.status}`)
          continue
        }
        const { access_token: token } = (await res.json()) as { access_token: string }
        issued.push(token)
        kids.add(decodeProtectedHeader(token).kid!)
        // Verify this one and one issued a while ago (possibly by a key that has since retired).
        for (const t of [token, issued[Math.floor(Math.random() * issued.length)]!]) {
          const verified = await rs.request('/api', { headers: { authorization: `Bearer ${t}` } })
          requests++
          if (verified.status !== 200)
            failures.push(`middleware ${verified.status} ${verified.headers.get('www-authenticate')}`)
          const introspection = await fetch(`${server.url}/oauth/introspect`, {
            method: 'POST',
            headers: { ...form, authorization: rsAuth },
            body: `token=${t}`,
          })
          requests++
          const body = (await introspection.json()) as { active: boolean }
          if (!body.active) failures.push(`introspection ${introspection.status} ${JSON.stringify(body)}`)
        }
      }
    }
    const load = Promise.all(Array.from({ length: 4 }, worker))
    const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

    await pause(1500)
    const routine = await runCli(keysCli, ['rotate'], env)
    expect(routine.code).toBe(0)
    await pause(Number(ACTIVATION_DELAY) * 1000 + 2000) // past the activation, plus a reload
    const emergency = await runCli(keysCli, ['rotate', '--now'], env)
    expect(emergency.code).toBe(0)
    expect(emergency.stderr).toBe('') // a published key was waiting: no warning
    await pause(3000)
    stop = true
    await load

    console.info(
      `rotation under load: ${requests} requests, ${kids.size} signing keys seen, ${failures.length} failures`,
    )
    expect(failures).toEqual([])
    expect(kids.size).toBe(3) // the first key, the routinely rotated one, the emergency one
    expect(requests).toBeGreaterThan(200)
  }, 60_000)

  it('two instances sharing KEYS_DIR switch signing key within 5 s of each other', async () => {
    const { env, auth } = await setup()
    servers.push(await spawnServer(env))
    servers.push(await spawnServer(env))
    const kidFrom = async (server: SpawnedServer) => {
      const res = await fetch(`${server.url}/oauth/token`, {
        method: 'POST',
        headers: { ...form, authorization: auth },
        body: 'grant_type=client_credentials',
      })
      return decodeProtectedHeader(((await res.json()) as { access_token: string }).access_token).kid
    }
    const before = await Promise.all(servers.map(kidFrom))
    expect(before[0]).toBe(before[1])

    const rotated = await runCli(keysCli, ['rotate', '--now'], env)
    const newKid = rotated.json().rotated.kid as string
    expect(newKid).not.toBe(before[0])
    const started = Date.now()
    const switched = await Promise.all(
      servers.map(async (server) => {
        while ((await kidFrom(server)) !== newKid) {
          if (Date.now() - started > 5000) throw new Error('did not switch within 5 s')
          await new Promise((resolve) => setTimeout(resolve, 50))
        }
        return Date.now() - started
      }),
    )
    console.info(`instances switched signing key after ${switched.join(' ms, ')} ms`)
    expect(Math.max(...switched)).toBeLessThan(5000)
    // Both serve the same JWKS within 5 s too (the new standby key is a second file, maybe a second reload).
    const etags = () =>
      Promise.all(servers.map(async (s) => (await fetch(`${s.url}/.well-known/jwks.json`)).headers.get('etag')))
    await expect
      .poll(async () => new Set(await etags()).size, { timeout: 5000 - (Date.now() - started), interval: 50 })
      .toBe(1)
  }, 30_000)
})
