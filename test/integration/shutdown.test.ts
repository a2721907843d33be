import { request as httpRequest } from 'node:http'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { run as clientCli } from '../../src/cli/client.js'
import { runCli, tempDir } from '../helpers/cli.js'
import { spawnServer, type SpawnedServer } from '../helpers/spawn-server.js'

let server: SpawnedServer | undefined
afterEach(() => server?.kill('SIGKILL'))

async function setupDir() {
  const dir = tempDir()
  const env = { KEYS_DIR: join(dir, 'keys'), CLIENTS_FILE: join(dir, 'clients.json'), LOG_LEVEL: 'info' }
  const created = await runCli(
    clientCli,
    ['create', '--id', 'svc-a', '--scope', 'read', '--audience', 'https://api.example.com'],
    env,
  )
  return { env, secret: created.json().client_secret as string }
}

describe('the server process', () => {
  it('starts on an empty KEYS_DIR, serves a token, and exits 0 on SIGTERM after finishing in-flight requests', async () => {
    const { env, secret } = await setupDir()
    server = await spawnServer(env)
    expect(server.output.some((line) => line.includes('generated a signing key'))).toBe(true)

    // Start a request and hold its body back, so it is in flight when SIGTERM arrives.
    const body = 'grant_type=client_credentials'
    const response = new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = httpRequest(`${server!.url}/oauth/token`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'content-length': String(body.length),
          authorization: `Basic ${Buffer.from(`svc-a:${secret}`).toString('base64')}`,
        },
      })
      req.on('response', (res) => {
        let text = ''
        res.on('data', (c) => (text += c))
        res.on('end', () => resolve({ status: res.statusCode!, text }))
      })
      req.on('error', reject)
      req.write(body.slice(0, 5))
      setTimeout(() => {
        server!.kill('SIGTERM')
        setTimeout(() => req.end(body.slice(5)), 300)
      }, 200)
    })
    const { status, text } = await response
    expect(status).toBe(200)
    expect(JSON.parse(text)).toMatchObject({ token_type: 'Bearer' })
    expect(await server.exited).toBe(0)
    expect(server.output.some((line) => line.includes('"shutting down"'))).toBe(true)
    // No secret reaches the logs.
    expect(server.output.join('\n')).not.toContain(secret)
  })

  it('refuses to start on a bad variable, with one line naming it', async () => {
    const { env } = await setupDir()
    await expect(spawnServer({ ...env, ACCESS_TOKEN_TTL: '5' })).rejects.toThrow(
      /exited with 1:\ntokensmith: configuration: ACCESS_TOKEN_TTL="5" is not valid: allowed is an integer number of seconds from 60 to 3600$/,
    )
  })

  it('refuses to start on a broken clients file, naming the client and field', async () => {
    const { env } = await setupDir()
    const { writeFileSync } = await import('node:fs')
    writeFileSync(
      env.CLIENTS_FILE,
      JSON.stringify({ clients: [{ client_id: 'svc-x', secrets: [], scopes: ['a'], audiences: ['b'] }] }),
    )
    await expect(spawnServer(env)).rejects.toThrow(/client "svc-x" field secrets: needs at least one secret digest/)
  })
})
