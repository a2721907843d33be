import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { run } from '../../../src/cli/client.js'
import { readClientsFile } from '../../../src/clients/clients-file.js'
import { createClientRegistry } from '../../../src/clients/registry.js'
import { runCli, tempDir } from '../../helpers/cli.js'

// The `client` command's per-client limits: `--quota N` (tokens per minute, src/limits/quota.ts) and
// `--require-dpop` (RFC 9449 §5), on create and update, removed by `--no-quota` / `--no-require-dpop`,
// shown by list as `quota` (null: none) and `require_dpop`.

const setup = () => {
  const dir = tempDir()
  const file = join(dir, 'clients.json')
  return { file, env: { CLIENTS_FILE: file } }
}
type Env = ReturnType<typeof setup>['env']

const BASE = ['--scope', 'a', '--audience', 'https://api.example.com']
const create = (env: Env, id: string, ...extra: string[]) => runCli(run, ['create', '--id', id, ...BASE, ...extra], env)
const update = (env: Env, id: string, ...extra: string[]) => runCli(run, ['update', '--id', id, ...extra], env)
const listed = async (env: Env, id: string) =>
  (await runCli(run, ['list'], env)).json().clients.find((c: { client_id: string }) => c.client_id === id)

/** The stored entry, as written in CLIENTS_FILE. */
const stored = async (file: string, id: string) => (await readClientsFile(file)).clients.find((c) => c.client_id === id)
/** The client as the server builds it from the file. */
const registered = async (file: string, id: string) => createClientRegistry(await readClientsFile(file)).get(id)

describe('client create --quota, --require-dpop', () => {
  it('a secret client with both: stored, listed, and read by the server', async () => {
    const { file, env } = setup()
    const out = await create(env, 'svc-q', '--quota', '120', '--require-dpop')
    expect(out.code).toBe(0)
    expect(Object.keys(out.json())).toEqual(['client_id', 'client_secret']) // create's output is unchanged
    expect(await stored(file, 'svc-q')).toMatchObject({ quota: 120, require_dpop: true })
    expect(await registered(file, 'svc-q')).toMatchObject({ quota: 120, requireDpop: true })
    expect(await listed(env, 'svc-q')).toMatchObject({ quota: 120, require_dpop: true })
  })

  it('without them: nothing written, listed as quota null and require_dpop false', async () => {
    const { file, env } = setup()
    expect((await create(env, 'svc-plain')).code).toBe(0)
    const entry = await stored(file, 'svc-plain')
    expect(entry).not.toHaveProperty('quota')
    expect(entry).not.toHaveProperty('require_dpop')
    expect(await registered(file, 'svc-plain')).toMatchObject({ quota: undefined, requireDpop: false })
    expect(await listed(env, 'svc-plain')).toMatchObject({ quota: null, require_dpop: false })
  })

  it('a private_key_jwt client takes them too, and prints them', async () => {
    const { file, env } = setup()
    const out = await create(env, 'wl-q', '--federated', '--quota', '1', '--require-dpop')
    expect(out.code).toBe(0)
    expect(out.json()).toMatchObject({
      client_id: 'wl-q',
      token_endpoint_auth_method: 'private_key_jwt',
      quota: 1,
      require_dpop: true,
    })
    expect(await registered(file, 'wl-q')).toMatchObject({ quota: 1, requireDpop: true })
  })

  it('the largest quota is 1000000', async () => {
    const { file, env } = setup()
    expect((await create(env, 'svc-max', '--quota', '1000000')).code).toBe(0)
    expect((await stored(file, 'svc-max'))?.quota).toBe(1_000_000)
  })

  it.each(['0', '1000001', '-1', '1.5', '1e3', '0x10', ' 5', '', 'ten', '00000000'])(
    '--quota %j is a usage error (exit 2) and writes nothing',
    async (value) => {
      const { file, env } = setup()
      const out = await create(env, 'svc-bad', '--quota', value)
      expect(out.code).toBe(2)
      expect(out.stdout).toBe('')
      expect(out.stderr).toContain('--quota must be an integer number of tokens per minute from 1 to 1000000')
      expect(() => readFileSync(file)).toThrow()
    },
  )

  it('--no-quota and --no-require-dpop are for update only', async () => {
    const { env } = setup()
    expect((await create(env, 'svc-x', '--no-quota')).code).toBe(2)
    expect((await create(env, 'svc-x', '--no-require-dpop')).code).toBe(2)
  })
})

describe('client update --quota, --no-quota, --require-dpop, --no-require-dpop', () => {
  it('sets, changes and removes the quota, leaving the rest (the secret included) as it was', async () => {
    const { file, env } = setup()
    const secret = (await create(env, 'svc-u', '--ttl', '120')).json().client_secret as string
    const before = await stored(file, 'svc-u')

    const set = await update(env, 'svc-u', '--quota', '30')
    expect(set.code).toBe(0)
    expect(set.json()).toMatchObject({ client_id: 'svc-u', quota: 30, require_dpop: false, access_token_ttl: 120 })
    expect(await stored(file, 'svc-u')).toEqual({ ...before, quota: 30 })

    expect((await update(env, 'svc-u', '--quota', '45')).json().quota).toBe(45)
    expect((await stored(file, 'svc-u'))?.quota).toBe(45)

    const removed = await update(env, 'svc-u', '--no-quota')
    expect(removed.code).toBe(0)
    expect(removed.json().quota).toBeNull()
    expect(await stored(file, 'svc-u')).toEqual(before)
    expect(await registered(file, 'svc-u')).toMatchObject({ quota: undefined })
    expect(readFileSync(file, 'utf8')).not.toContain(secret)
  })

  it('sets and removes require_dpop', async () => {
    const { file, env } = setup()
    await create(env, 'svc-d')
    const before = await stored(file, 'svc-d')
    const on = await update(env, 'svc-d', '--require-dpop')
    expect(on.json()).toMatchObject({ require_dpop: true, quota: null })
    expect(await registered(file, 'svc-d')).toMatchObject({ requireDpop: true })
    const off = await update(env, 'svc-d', '--no-require-dpop')
    expect(off.json()).toMatchObject({ require_dpop: false })
    expect(await stored(file, 'svc-d')).toEqual(before)
  })

  it('changes a private_key_jwt client too', async () => {
    const { file, env } = setup()
    await create(env, 'wl-u', '--federated')
    expect((await update(env, 'wl-u', '--quota', '7', '--require-dpop')).code).toBe(0)
    expect(await registered(file, 'wl-u')).toMatchObject({ quota: 7, requireDpop: true, assertion: {} })
  })

  it.each([
    [['--quota', '5', '--no-quota'], '--quota and --no-quota exclude each other'],
    [['--require-dpop', '--no-require-dpop'], '--require-dpop and --no-require-dpop exclude each other'],
    [['--quota', '0'], '--quota must be an integer'],
    [[], 'nothing to update'],
  ])('update %j is a usage error and changes nothing', async (flags, message) => {
    const { file, env } = setup()
    await create(env, 'svc-e', '--quota', '9')
    const text = readFileSync(file, 'utf8')
    const out = await update(env, 'svc-e', ...flags)
    expect(out.code).toBe(2)
    expect(out.stderr).toContain(message)
    expect(readFileSync(file, 'utf8')).toBe(text)
  })

  it('the usage text names the flags', async () => {
    const { env } = setup()
    const out = await runCli(run, ['frobnicate'], env)
    expect(out.code).toBe(2)
    for (const flag of ['--quota N', '--no-quota', '--require-dpop', '--no-require-dpop']) {
      expect(out.stderr).toContain(flag)
    }
  })
})
