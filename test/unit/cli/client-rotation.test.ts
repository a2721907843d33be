import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { run } from '../../../src/cli/client.js'
import { createApp } from '../../../src/app.js'
import { readClientsFile } from '../../../src/clients/clients-file.js'
import { createClientRegistry, verifyClientSecret } from '../../../src/clients/registry.js'
import { DEFAULT_GRACE } from '../../../src/clients/rotation.js'
import type { Clock } from '../../../src/clock.js'
import { runCli, tempDir } from '../../helpers/cli.js'
import { FORM, T0, basic, fixedClock, makeDeps } from '../../helpers/make-deps.js'

// `client rotate-secret --grace 60` on a fake clock: both secrets work for 60 s, then only
// the new one; at most two secrets are ever stored.
function setup() {
  const dir = tempDir()
  const file = join(dir, 'clients.json')
  return { file, env: { CLIENTS_FILE: file } }
}

const client = (argv: string[], env: Record<string, string>, at: number) =>
  runCli((args, io) => run(args, io, () => at), argv, env)

async function createBilling(env: Record<string, string>, at = T0) {
  const out = await client(
    ['create', '--id', 'billing', '--scope', 'invoices:read', '--audience', 'https://api.example.com'],
    env,
    at,
  )
  expect(out.code).toBe(0)
  return out.json().client_secret as string
}

async function rotate(env: Record<string, string>, at: number, grace?: number) {
  const out = await client(
    ['rotate-secret', '--id', 'billing', ...(grace === undefined ? [] : ['--grace', String(grace)])],
    env,
    at,
  )
  expect(out.code).toBe(0)
  return out
}

/** Which of the secrets the registry, as loaded from the file, accepts at `now`. */
async function accepted(file: string, secrets: string[], now: number) {
  const registry = createClientRegistry(await readClientsFile(file))
  return secrets.map((secret) => verifyClientSecret(registry, 'billing', secret, () => now) !== undefined)
}

describe('client secret rotation', () => {
  it('rotate-secret --grace 60: both secrets work for 60 s, then only the new one', async () => {
    const { file, env } = setup()
    const old = await createBilling(env)
    const out = await rotate(env, T0 + 100, 60)
    const fresh = out.json().client_secret as string
    expect(out.json()).toEqual({ client_id: 'billing', client_secret: fresh, previous_secret_expires: T0 + 160 })
    expect(fresh).toMatch(/^tks_[A-Za-z0-9_-]{43}$/)
    expect(fresh).not.toBe(old)
    expect(out.stderr).toBe(
      `new secret for billing; the previous one works until ${new Date((T0 + 160) * 1000).toISOString()}\n`,
    )
    expect(readFileSync(file, 'utf8')).not.toContain(fresh)

    expect(await accepted(file, [old, fresh], T0 + 100)).toEqual([true, true])
    expect(await accepted(file, [old, fresh], T0 + 159)).toEqual([true, true])
    // `expires` is the first second the old secret no longer works, like a JWT exp.
    expect(await accepted(file, [old, fresh], T0 + 160)).toEqual([false, true])
    expect(await accepted(file, [old, fresh], T0 + 161)).toEqual([false, true])
    expect(await accepted(file, [old, fresh], T0 + 10 ** 6)).toEqual([false, true])
  })

  it('keeps at most two secrets, however often the secret is rotated; an older one ends at once', async () => {
    const { file, env } = setup()
    const s0 = await createBilling(env)
    const s1 = (await rotate(env, T0 + 10, 60)).json().client_secret as string
    const s2 = (await rotate(env, T0 + 20, 60)).json().client_secret as string
    const third = await rotate(env, T0 + 30, 60)
    const s3 = third.json().client_secret as string
    expect(third.json().previous_secret_expires).toBe(T0 + 90)
    const stored = (await readClientsFile(file)).clients[0]!.secrets
    expect(stored.map(({ created, expires }) => ({ created, expires }))).toEqual([
      { created: T0 + 20, expires: T0 + 90 },
      { created: T0 + 30, expires: null },
    ])
    expect(await accepted(file, [s0, s1, s2, s3], T0 + 30)).toEqual([false, false, true, true])
    expect(await accepted(file, [s0, s1, s2, s3], T0 + 90)).toEqual([false, false, false, true])
  })

  it('gives the previous secret 24 hours by default', async () => {
    const { file, env } = setup()
    const old = await createBilling(env)
    const out = await rotate(env, T0 + 100)
    expect(DEFAULT_GRACE).toBe(86_400)
    expect(out.json().previous_secret_expires).toBe(T0 + 100 + 86_400)
    expect(await accepted(file, [old], T0 + 100 + 86_399)).toEqual([true])
    expect(await accepted(file, [old], T0 + 100 + 86_400)).toEqual([false])
  })

  it('--grace 0 ends the previous secret at once', async () => {
    const { file, env } = setup()
    const old = await createBilling(env)
    const fresh = (await rotate(env, T0 + 100, 0)).json().client_secret as string
    expect(await accepted(file, [old, fresh], T0 + 100)).toEqual([false, true])
  })

  it.each([['-1'], ['1.5'], ['soon'], ['2592001'], [''], ['1e3']])(
    'refuses --grace %s with exit 2 and leaves the file unchanged',
    async (grace) => {
      const { file, env } = setup()
      await createBilling(env)
      const before = readFileSync(file, 'utf8')
      const out = await client(['rotate-secret', '--id', 'billing', '--grace', grace], env, T0 + 100)
      expect(out.code).toBe(2)
      expect(out.stdout).toBe('')
      expect(readFileSync(file, 'utf8')).toBe(before)
    },
  )

  it('rotate-secret of an unknown client fails with exit 1', async () => {
    const { env } = setup()
    await createBilling(env)
    const out = await client(['rotate-secret', '--id', 'nobody', '--grace', '60'], env, T0 + 100)
    expect(out.code).toBe(1)
    expect(out.stdout).toBe('')
    expect(out.stderr).toBe('error: no client nobody\n')
  })

  it('through the HTTP app: the old secret gets 200 during the grace period and 401 invalid_client after', async () => {
    const { file, env } = setup()
    const old = await createBilling(env)
    const fresh = (await rotate(env, T0 + 100, 60)).json().client_secret as string
    const clock = fixedClock(T0 + 100)
    const deps = await makeDeps({ clock: clock as Clock })
    deps.clients = createClientRegistry(await readClientsFile(file))
    const app = createApp(deps)
    const token = (secret: string) =>
      app.request('/oauth/token', {
        method: 'POST',
        headers: { 'content-type': FORM, authorization: basic('billing', secret) },
        body: 'grant_type=client_credentials',
      })

    for (const secret of [old, fresh]) {
      const res = await token(secret)
      expect(res.status).toBe(200)
      expect(await res.json()).toMatchObject({ token_type: 'Bearer', scope: 'invoices:read' })
    }
    clock.set(T0 + 159)
    expect((await token(old)).status).toBe(200)

    clock.set(T0 + 161)
    const refused = await token(old)
    expect(refused.status).toBe(401)
    expect(refused.headers.get('cache-control')).toBe('no-store')
    expect(refused.headers.get('www-authenticate')).toBe('Basic realm="tokensmith", charset="UTF-8"')
    expect(await refused.json()).toEqual({ error: 'invalid_client', error_description: 'client authentication failed' })
    expect((await token(fresh)).status).toBe(200)
  })
})

describe('client update', () => {
  it('changes scopes, audiences, ttl and the resource-server flag without touching the secret', async () => {
    const { file, env } = setup()
    const secret = await createBilling(env)
    const secretsBefore = (await readClientsFile(file)).clients[0]!.secrets

    const out = await client(
      [
        'update',
        '--id',
        'billing',
        '--scope',
        'invoices:read invoices:write',
        '--audience',
        'urn:a',
        '--audience',
        'urn:b',
        '--ttl',
        '120',
        '--resource-server',
      ],
      env,
      T0 + 100,
    )
    expect(out.code).toBe(0)
    expect(out.json()).toEqual({
      client_id: 'billing',
      token_endpoint_auth_method: 'client_secret_basic',
      scopes: ['invoices:read', 'invoices:write'],
      audiences: ['urn:a', 'urn:b'],
      access_token_ttl: 120,
      grant_types: ['client_credentials'],
      resource_server: true,
      quota: null,
      require_dpop: false,
      secrets: [{ created: T0, expires: null }],
    })
    const stored = (await readClientsFile(file)).clients[0]!
    expect(stored).toMatchObject({
      scopes: ['invoices:read', 'invoices:write'],
      audiences: ['urn:a', 'urn:b'],
      access_token_ttl: 120,
      resource_server: true,
    })
    expect(stored.secrets).toEqual(secretsBefore)
    expect(await accepted(file, [secret], T0 + 100)).toEqual([true])

    const back = await client(['update', '--id', 'billing', '--no-resource-server'], env, T0 + 200)
    expect(back.json()).toMatchObject({
      scopes: ['invoices:read', 'invoices:write'],
      access_token_ttl: 120,
      resource_server: false,
    })
  })

  it('refuses an update that changes nothing with exit 2', async () => {
    const { file, env } = setup()
    await createBilling(env)
    const before = readFileSync(file, 'utf8')
    const out = await client(['update', '--id', 'billing'], env, T0 + 100)
    expect(out.code).toBe(2)
    expect(out.stdout).toBe('')
    expect(out.stderr).toMatch(/^error: nothing to update\nusage:/)
    expect(readFileSync(file, 'utf8')).toBe(before)
  })

  it.each([
    [['update', '--scope', 'a']],
    [['update', '--id', 'billing', '--ttl', '59']],
    [['update', '--id', 'billing', '--resource-server', '--no-resource-server']],
    [['update', '--id', 'billing', '--scope', '']],
  ])('refuses %j with exit 2', async (argv) => {
    const { env } = setup()
    await createBilling(env)
    const out = await client(argv, env, T0 + 100)
    expect(out.code).toBe(2)
    expect(out.stdout).toBe('')
  })

  it('update of an unknown client fails with exit 1 and leaves the file unchanged', async () => {
    const { file, env } = setup()
    await createBilling(env)
    const before = readFileSync(file, 'utf8')
    const out = await client(['update', '--id', 'nobody', '--ttl', '120'], env, T0 + 100)
    expect(out.code).toBe(1)
    expect(out.stderr).toBe('error: no client nobody\n')
    expect(readFileSync(file, 'utf8')).toBe(before)
  })
})
