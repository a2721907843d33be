import { execFile } from 'node:child_process'
import { readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { run } from '../../../src/cli/client.js'
import { readClientsFile } from '../../../src/clients/clients-file.js'
import { createClientRegistry, verifyClientSecret } from '../../../src/clients/registry.js'
import { runCli, tempDir } from '../../helpers/cli.js'

const setup = () => {
  const dir = tempDir()
  return { dir, file: join(dir, 'clients.json'), env: { CLIENTS_FILE: join(dir, 'clients.json') } }
}

describe('client CLI', () => {
  it('create prints the secret once and stores only its SHA-256 digest', async () => {
    const { file, env } = setup()
    const out = await runCli(
      run,
      [
        'create',
        '--id',
        'billing',
        '--scope',
        'invoices:read invoices:write',
        '--audience',
        'https://api.example.com',
        '--audience',
        'urn:b',
        '--ttl',
        '120',
      ],
      env,
    )
    expect(out.code).toBe(0)
    const { client_id, client_secret } = out.json()
    expect(client_id).toBe('billing')
    expect(client_secret).toMatch(/^tks_[A-Za-z0-9_-]{43}$/)
    expect(Object.keys(out.json())).toEqual(['client_id', 'client_secret'])

    const text = readFileSync(file, 'utf8')
    expect(text).not.toContain(client_secret)
    expect(text).not.toContain(client_secret.slice(4))
    expect(statSync(file).mode & 0o777).toBe(0o600)
    const registry = createClientRegistry(await readClientsFile(file))
    expect(registry.get('billing')).toMatchObject({
      scopes: ['invoices:read', 'invoices:write'],
      audiences: ['https://api.example.com', 'urn:b'],
      accessTokenTtl: 120,
    })
    expect(verifyClientSecret(registry, 'billing', client_secret, () => 0)).toBeDefined()
    expect(verifyClientSecret(registry, 'billing', `${client_secret}x`, () => 0)).toBeUndefined()
  })

  it('list shows clients without secrets or digests', async () => {
    const { env } = setup()
    const created = await runCli(run, ['create', '--id', 'svc-1', '--scope', 'a', '--audience', 'aud'], env)
    const listed = await runCli(run, ['list'], env)
    expect(listed.code).toBe(0)
    expect(listed.json().clients).toEqual([
      {
        client_id: 'svc-1',
        token_endpoint_auth_method: 'client_secret_basic',
        scopes: ['a'],
        audiences: ['aud'],
        access_token_ttl: null,
        grant_types: ['client_credentials'],
        resource_server: false,
        quota: null,
        require_dpop: false,
        secrets: [{ created: expect.any(Number), expires: null }],
      },
    ])
    expect(listed.stdout).not.toContain(created.json().client_secret)
    expect(listed.stdout).not.toContain('sha256')
  })

  it('delete removes a client; deleting an unknown one fails with exit 1', async () => {
    const { env } = setup()
    await runCli(run, ['create', '--id', 'svc-1', '--scope', 'a', '--audience', 'aud'], env)
    expect((await runCli(run, ['delete', '--id', 'svc-1'], env)).json()).toMatchObject({ deleted: 'svc-1' })
    expect((await runCli(run, ['list'], env)).json().clients).toEqual([])
    const again = await runCli(run, ['delete', '--id', 'svc-1'], env)
    expect(again.code).toBe(1)
    expect(again.stdout).toBe('')
    expect(again.stderr).toMatch(/no client svc-1/)
  })

  it('takes an id that starts with a dash as a value, not as a flag', async () => {
    const { env } = setup()
    const created = await runCli(run, ['create', '--id', '-svc', '--scope', 'a', '--audience', 'aud'], env)
    expect(created.code).toBe(0)
    expect(created.json().client_id).toBe('-svc')
    expect((await runCli(run, ['delete', '--id', '-svc'], env)).json()).toMatchObject({ deleted: '-svc' })
  })

  it('refuses a duplicate id with exit 1 and leaves the file unchanged', async () => {
    const { file, env } = setup()
    await runCli(run, ['create', '--id', 'svc-1', '--scope', 'a', '--audience', 'aud'], env)
    const before = readFileSync(file, 'utf8')
    const dup = await runCli(run, ['create', '--id', 'svc-1', '--scope', 'b', '--audience', 'aud'], env)
    expect(dup.code).toBe(1)
    expect(readFileSync(file, 'utf8')).toBe(before)
  })

  it.each([
    [[]],
    [['frobnicate']],
    [['create', '--scope', 'a', '--audience', 'x']],
    [['create', '--id', 'a b', '--scope', 'a', '--audience', 'x']],
    [['create', '--id', 'x\n{"level":50}', '--scope', 'a', '--audience', 'x']],
    [['create', '--id', 'ok-id', '--audience', 'x']],
    [['create', '--id', 'ok-id', '--scope', 'a"b', '--audience', 'x']],
    [['create', '--id', 'ok-id', '--scope', 'a']],
    [['create', '--id', 'ok-id', '--scope', 'a', '--audience', 'x', '--ttl', '5']],
    [['create', '--id', 'ok-id', '--scope', 'a', '--audience', 'x', '--ttl', '3e2']],
    [['create', '--id', 'ok-id', '--scope', 'a', '--audience', 'x', '--ttl', '0x3C']],
    [['create', '--id', 'ok-id', '--scope', 'a', '--audience', 'x', '--ttl', ' 120']],
    [['create', '--id', 'ok-id', '--scope', 'a', '--audience', 'x', '--bogus']],
    [['delete']],
  ])('usage error %j exits 2 with a message on stderr and nothing on stdout', async (argv) => {
    const { env } = setup()
    const out = await runCli(run, argv, env)
    expect(out.code).toBe(2)
    expect(out.stdout).toBe('')
    expect(out.stderr).toMatch(/^error: .+\nusage:/)
  })

  it('fails with exit 1 on a broken clients file and does not overwrite it', async () => {
    const { file, env } = setup()
    writeFileSync(file, '{"clients": [')
    const out = await runCli(run, ['create', '--id', 'svc-1', '--scope', 'a', '--audience', 'aud'], env)
    expect(out.code).toBe(1)
    expect(out.stderr).toMatch(/not valid JSON/)
    expect(readFileSync(file, 'utf8')).toBe('{"clients": [')
  })

  it('keeps every one of 20 concurrent creates (lock + atomic rename)', async () => {
    const { file, env } = setup()
    const ids = Array.from({ length: 20 }, (_, i) => `svc-${i}`)
    const results = await Promise.all(
      ids.map((id) => runCli(run, ['create', '--id', id, '--scope', 'a', '--audience', 'aud'], env)),
    )
    expect(results.map((r) => r.code)).toEqual(ids.map(() => 0))
    const stored = (await readClientsFile(file)).clients.map((c) => c.client_id).sort()
    expect(stored).toEqual([...ids].sort())
  })

  it('keeps every create from 4 separate processes running at once', async () => {
    const { file, env } = setup()
    const exec = promisify(execFile)
    const ids = ['p-1', 'p-2', 'p-3', 'p-4']
    await Promise.all(
      ids.map((id) =>
        exec(
          'node_modules/.bin/tsx',
          ['src/cli/client.ts', 'create', '--id', id, '--scope', 'a', '--audience', 'aud'],
          { env: { ...process.env, ...env } },
        ),
      ),
    )
    expect((await readClientsFile(file)).clients.map((c) => c.client_id).sort()).toEqual(ids)
  }, 30_000)
})
