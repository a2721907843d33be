import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { run } from '../../../src/cli/client.js'
import { readClientsFile } from '../../../src/clients/clients-file.js'
import { entryKey } from '../../../src/denylist/protocol.js'
import { runCli, tempDir } from '../../helpers/cli.js'
import { freePort } from '../../helpers/free-port.js'
import { T0 } from '../../helpers/make-deps.js'
import { keysUnder } from '../../helpers/redis-keys.js'

// `client delete` and `client rotate-secret --revoke-tokens` denylist the client's tokens: in Redis
// when REDIS_URL is set, and through CLIENTS_FILE for every server.

const redisUrl = inject('redisUrl')
const T = 30
let admin: Redis
const prefixes: string[] = []
beforeAll(() => {
  admin = new Redis(redisUrl, { maxRetriesPerRequest: 1 })
})
afterAll(async () => {
  for (const prefix of prefixes) {
    const keys = await keysUnder(admin, prefix)
    if (keys.length > 0) await admin.del(...keys)
  }
  await admin.quit()
})

function setup(redis: string | null = redisUrl) {
  const file = join(tempDir(), 'clients.json')
  const prefix = `test:${randomBytes(6).toString('hex')}:`
  prefixes.push(prefix)
  const env: Record<string, string> = {
    CLIENTS_FILE: file,
    REDIS_KEY_PREFIX: prefix,
    CLOCK_TOLERANCE: String(T),
    ...(redis && { REDIS_URL: redis }),
  }
  const client = (argv: string[], at = T0) => runCli((args, io) => run(args, io, () => at), argv, env)
  return { file, prefix, env, client }
}

async function createBilling(client: ReturnType<typeof setup>['client']) {
  const out = await client(['create', '--id', 'billing', '--scope', 'read', '--audience', 'https://api.example.com'])
  expect(out.code).toBe(0)
}

describe('client delete', () => {
  it('with REDIS_URL writes a client entry holding the deletion instant, for 3600 s + T', async () => {
    const { prefix, client } = setup()
    await createBilling(client)
    const out = await client(['delete', '--id', 'billing'], T0 + 5)
    expect(out.code).toBe(0)
    expect(out.json()).toEqual({
      deleted: 'billing',
      tokens_revoked: { revoked_at: T0 + 5, until: T0 + 5 + 3600 + T, denylisted: 'redis' },
    })
    expect(await keysUnder(admin, prefix)).toEqual([entryKey(prefix, 'client', 'billing')])
    expect(await admin.get(entryKey(prefix, 'client', 'billing'))).toBe(String(T0 + 5))
    // The TTL counts from the command's clock (T0 + 5), as every revocation does.
    expect(Math.abs((await admin.pttl(entryKey(prefix, 'client', 'billing'))) - (3600 + T) * 1000)).toBeLessThanOrEqual(
      1_000,
    )
  })

  it('without REDIS_URL says each server denylists the client when it loads the file', async () => {
    const { client } = setup(null)
    await createBilling(client)
    const out = await client(['delete', '--id', 'billing'])
    expect(out.code).toBe(0)
    expect(out.json().tokens_revoked.denylisted).toMatch(
      /each server.*no Redis is configured \(REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES\)/,
    )
  })

  it('with Redis unreachable still deletes the client, and exits 1 saying the servers write the entry', async () => {
    const { file, client } = setup(`redis://127.0.0.1:${await freePort()}`)
    await createBilling(client)
    const out = await client(['delete', '--id', 'billing'])
    expect(out.code).toBe(1)
    expect(out.stdout).toBe('')
    expect(out.stderr).toMatch(
      /error: client billing is deleted, but the denylist write failed .*each server writes it/,
    )
    expect((await readClientsFile(file)).clients).toEqual([])
  }, 15_000)
})

describe('client rotate-secret --revoke-tokens', () => {
  it('ends the previous secret now, records tokens_revoked_at in the file and writes the client entry', async () => {
    const { file, prefix, client } = setup()
    await createBilling(client)
    const out = await client(['rotate-secret', '--id', 'billing', '--revoke-tokens'], T0 + 100)
    expect(out.code).toBe(0)
    expect(out.json()).toEqual({
      client_id: 'billing',
      client_secret: expect.stringMatching(/^tks_/),
      previous_secret_expires: T0 + 100,
      tokens_revoked: { revoked_at: T0 + 100, until: T0 + 100 + 3600 + T, denylisted: 'redis' },
    })
    expect(out.stderr).toContain('every token issued to billing up to')
    const stored = (await readClientsFile(file)).clients[0]!
    expect(stored.tokens_revoked_at).toBe(T0 + 100)
    expect(stored.secrets.map((s) => s.expires)).toEqual([T0 + 100, null])
    expect(await admin.get(entryKey(prefix, 'client', 'billing'))).toBe(String(T0 + 100))

    const listed = await client(['list'])
    expect(listed.json().clients[0]).toMatchObject({ client_id: 'billing', tokens_revoked_at: T0 + 100 })
    // A later plain rotation keeps the record; it still tells restarted servers what was revoked.
    expect((await client(['rotate-secret', '--id', 'billing', '--grace', '60'], T0 + 200)).code).toBe(0)
    expect((await readClientsFile(file)).clients[0]!.tokens_revoked_at).toBe(T0 + 100)
  })

  it('refuses --grace with --revoke-tokens with exit 2 and changes nothing', async () => {
    const { file, prefix, client } = setup()
    await createBilling(client)
    const before = readFileSync(file, 'utf8')
    const out = await client(['rotate-secret', '--id', 'billing', '--revoke-tokens', '--grace', '60'])
    expect(out.code).toBe(2)
    expect(out.stdout).toBe('')
    expect(out.stderr).toMatch(/^error: --revoke-tokens ends the previous secret at once; it takes no --grace\n/)
    expect(readFileSync(file, 'utf8')).toBe(before)
    expect(await keysUnder(admin, prefix)).toEqual([])
  })

  it('of an unknown client exits 1 and writes nothing to Redis', async () => {
    const { prefix, client } = setup()
    await createBilling(client)
    const out = await client(['rotate-secret', '--id', 'nobody', '--revoke-tokens'])
    expect(out.code).toBe(1)
    expect(out.stderr).toBe('error: no client nobody\n')
    expect(await keysUnder(admin, prefix)).toEqual([])
  })

  it('with Redis unreachable exits 1 and leaves the file as it was, so it can simply be run again', async () => {
    const { file, client } = setup(`redis://127.0.0.1:${await freePort()}`)
    await createBilling(client)
    const before = readFileSync(file, 'utf8')
    const out = await client(['rotate-secret', '--id', 'billing', '--revoke-tokens'])
    expect(out.code).toBe(1)
    expect(out.stdout).toBe('')
    expect(out.stderr).toMatch(/error: nothing changed: the denylist write failed/)
    expect(readFileSync(file, 'utf8')).toBe(before)
  }, 15_000)
})
