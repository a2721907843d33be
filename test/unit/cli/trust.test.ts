import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { SignJWT, exportJWK, generateKeyPair } from 'jose'
import { describe, expect, it } from 'vitest'
import type { CliIo } from '../../../src/cli/cli.js'
import { run } from '../../../src/cli/trust.js'
import { readTrustFile } from '../../../src/federation/trust-file.js'
import { runCli, tempDir } from '../../helpers/cli.js'
import { T0, clientEntry, fixedClock } from '../../helpers/make-deps.js'

const GITHUB = 'https://token.actions.githubusercontent.com'

const setup = () => {
  const dir = tempDir()
  const file = join(dir, 'trust.json')
  const clientsFile = join(dir, 'clients.json')
  writeFileSync(clientsFile, JSON.stringify({ clients: [clientEntry({ id: 'deployer', secret: 'tks_x' })] }))
  return { dir, file, env: { TRUST_FILE: file, CLIENTS_FILE: clientsFile } }
}

const ADD_GITHUB = [
  'add',
  '--id',
  'gha-deploy',
  '--issuer',
  GITHUB,
  '--subject',
  'repo:acme/app:ref:refs/heads/main',
  '--client',
  'deployer',
]

const GITHUB_ENTRY = {
  id: 'gha-deploy',
  issuer: GITHUB,
  allow_private_network: false,
  subject: 'repo:acme/app:ref:refs/heads/main',
  claims: {},
  clients: ['deployer'],
  single_use_jti: true,
  max_token_age: 3600,
}

describe('trust CLI', () => {
  it('add prints the entry as stored, and the file is 0600', async () => {
    const { dir, file, env } = setup()
    const out = await runCli(run, ADD_GITHUB, env)
    expect(out.code).toBe(0)
    expect(out.json()).toEqual(GITHUB_ENTRY)
    expect(out.stderr).toBe('added trust entry gha-deploy\n')
    expect(statSync(file).mode & 0o777).toBe(0o600)
    expect(await readTrustFile(file)).toEqual({ trust: [GITHUB_ENTRY] })
    expect(readdirSync(dir).sort()).toEqual(['clients.json', 'trust.json'])
  })

  it('add takes every option', async () => {
    const { dir, env } = setup()
    writeFileSync(join(dir, 'cluster-jwks.json'), '{"keys":[]}')
    const out = await runCli(
      run,
      [
        'add',
        '--id',
        'k8s-prod',
        '--issuer',
        'https://kubernetes.default.svc.cluster.local',
        '--audience',
        'tokensmith',
        '--subject',
        'system:serviceaccount:billing:*',
        '--client',
        'deployer',
        '--client',
        'billing-sync',
        '--claim',
        'kubernetes.io/namespace=billing',
        '--claim',
        'kubernetes.io~1x=a=b',
        '--jwks-file',
        join(dir, 'cluster-jwks.json'),
        '--ca-file',
        '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt',
        '--bearer-token-file',
        '/var/run/secrets/kubernetes.io/serviceaccount/token',
        '--allow-private-network',
        '--no-single-use-jti',
        '--max-token-age',
        '86400',
      ],
      env,
    )
    expect(out.code).toBe(0)
    expect(out.json()).toEqual({
      id: 'k8s-prod',
      issuer: 'https://kubernetes.default.svc.cluster.local',
      jwks_file: join(dir, 'cluster-jwks.json'),
      ca_file: '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt',
      bearer_token_file: '/var/run/secrets/kubernetes.io/serviceaccount/token',
      allow_private_network: true,
      audience: 'tokensmith',
      subject: 'system:serviceaccount:billing:*',
      claims: { 'kubernetes.io/namespace': 'billing', 'kubernetes.io~1x': 'a=b' },
      clients: ['deployer', 'billing-sync'],
      single_use_jti: false,
      max_token_age: 86400,
    })
    // billing-sync is not in CLIENTS_FILE: a warning, and the entry is added all the same.
    expect(out.stderr).toContain(
      `warning: client billing-sync is not in ${env.CLIENTS_FILE}; the entry is added anyway`,
    )
    expect(out.stderr).not.toContain('client deployer')
    // The ca and token files do not exist here: a warning each, nothing more.
    expect(out.stderr).toContain('warning: --ca-file')
  })

  it('add writes a relative --jwks-file relative to the trust file, so the server finds the same file', async () => {
    const { dir, env } = setup()
    const cwd = process.cwd()
    const out = await runCli(
      run,
      ['add', '--issuer', 'http://issuer.internal', '--subject', 's', '--client', 'deployer', '--jwks-file', 'k.json'],
      { ...env, TRUST_FILE: join(dir, 'trust.json') },
    )
    expect(out.code).toBe(0)
    const stored = out.json().jwks_file as string
    expect(join(dir, stored)).toBe(join(cwd, 'k.json'))
  })

  it('add without --id names the entry after the issuer host with a random suffix', async () => {
    const { env } = setup()
    const args = ['add', '--issuer', GITHUB, '--subject', 'repo:acme/*', '--client', 'deployer']
    const first = (await runCli(run, args, env)).json().id as string
    const second = (await runCli(run, args, env)).json().id as string
    expect(first).toMatch(/^token\.actions\.githubusercontent\.com-[0-9a-f]{6}$/)
    expect(second).not.toBe(first)
    const listed = (await runCli(run, ['list'], env)).json()
    expect(listed.trust.map((e: { id: string }) => e.id)).toEqual([first, second])
  })

  it('add leaves audience unset unless given, so the server issuer identifier applies', async () => {
    const { file, env } = setup()
    await runCli(run, ADD_GITHUB, env)
    expect(JSON.parse(readFileSync(file, 'utf8')).trust[0]).not.toHaveProperty('audience')
  })

  it('refuses a duplicate --id with exit 1 and leaves the file as it was', async () => {
    const { file, env } = setup()
    await runCli(run, ADD_GITHUB, env)
    const before = readFileSync(file, 'utf8')
    const again = await runCli(run, [...ADD_GITHUB.slice(0, -2), '--client', 'other-client'], env)
    expect(again.code).toBe(1)
    expect(again.stdout).toBe('')
    expect(again.stderr).toBe('error: trust entry gha-deploy already exists\n')
    expect(readFileSync(file, 'utf8')).toBe(before)
  })

  it('of concurrent adds with one --id, exactly one wins; the others fail saying so', async () => {
    const { file, env } = setup()
    const runs = await Promise.all(Array.from({ length: 8 }, () => runCli(run, ADD_GITHUB, env)))
    expect(runs.filter((r) => r.code === 0)).toHaveLength(1)
    for (const lost of runs.filter((r) => r.code !== 0)) {
      expect(lost.code).toBe(1)
      expect(lost.stderr).toBe('error: trust entry gha-deploy already exists\n')
    }
    expect((await readTrustFile(file)).trust).toEqual([GITHUB_ENTRY])
  })

  it('list prints every entry as stored; an absent file is an empty list', async () => {
    const { env } = setup()
    expect((await runCli(run, ['list'], env)).json()).toEqual({ trust: [] })
    await runCli(run, ADD_GITHUB, env)
    const listed = await runCli(run, ['list'], env)
    expect(listed.code).toBe(0)
    expect(listed.json()).toEqual({ trust: [GITHUB_ENTRY] })
  })

  it('remove prints the removed entry; removing an unknown one fails with exit 1', async () => {
    const { env } = setup()
    await runCli(run, ADD_GITHUB, env)
    await runCli(run, [...ADD_GITHUB.slice(0, 2), 'other', ...ADD_GITHUB.slice(3)], env)
    const removed = await runCli(run, ['remove', '--id', 'gha-deploy'], env)
    expect(removed.code).toBe(0)
    expect(removed.json()).toEqual(GITHUB_ENTRY)
    expect((await runCli(run, ['list'], env)).json().trust.map((e: { id: string }) => e.id)).toEqual(['other'])

    const again = await runCli(run, ['remove', '--id', 'gha-deploy'], env)
    expect(again.code).toBe(1)
    expect(again.stdout).toBe('')
    expect(again.stderr).toBe('error: no trust entry gha-deploy\n')
  })

  it.each([
    [[], 'missing command'],
    [['frobnicate'], 'unknown command frobnicate'],
    [['add', '--subject', 's', '--client', 'deployer'], '--issuer is required'],
    [['add', '--issuer', GITHUB, '--client', 'deployer'], '--subject is required'],
    [['add', '--issuer', GITHUB, '--subject', 's'], '--client is required'],
    [[...ADD_GITHUB, '--claim', 'novalue'], '--claim must be NAME=PATTERN'],
    [[...ADD_GITHUB, '--claim', '=x'], '--claim must be NAME=PATTERN'],
    [[...ADD_GITHUB, '--claim', 'a=1', '--claim', 'a=2'], '--claim a is given twice'],
    [[...ADD_GITHUB, '--max-token-age', '30'], '--max-token-age must be an integer from 60 to 86400'],
    [[...ADD_GITHUB, '--max-token-age', '1e3'], '--max-token-age must be an integer from 60 to 86400'],
    [
      [...ADD_GITHUB, '--jwks-uri', `${GITHUB}/keys`, '--jwks-file', 'k.json'],
      '--jwks-uri and --jwks-file exclude each other',
    ],
    [['add', '--id', 'has space', ...ADD_GITHUB.slice(3)], '--id must match ^[A-Za-z0-9._-]{1,64}$'],
    [
      ['add', '--issuer', 'http://10.0.0.5', '--subject', 's', '--client', 'deployer'],
      '--issuer plain http only with allow_private_network',
    ],
    [['add', '--issuer', 'not a url', '--subject', 's', '--client', 'deployer'], '--issuer must be an absolute URL'],
    [[...ADD_GITHUB, '--client', 'x'], '--client each must match'],
    [[...ADD_GITHUB, '--client', 'deployer'], '--client lists a client twice'],
    [
      [...ADD_GITHUB, '--jwks-uri', 'http://issuer.example/keys'],
      '--jwks-uri plain http only with allow_private_network',
    ],
    [[...ADD_GITHUB, '--bogus'], "Unknown option '--bogus'"],
    [['list', '--id', 'x'], "Unknown option '--id'"],
    [['remove'], '--id is required'],
    [['test'], '--assertion is required'],
  ])('usage error %j exits 2 with a clear message on stderr and nothing on stdout', async (argv, message) => {
    const { file, env } = setup()
    const out = await runCli(run, argv, env)
    expect(out.code).toBe(2)
    expect(out.stdout).toBe('')
    expect(out.stderr).toMatch(/^error: .+\nusage:\n/)
    expect(out.stderr.split('\n')[0]).toContain(message)
    expect(out.stderr).not.toMatch(/\n\s+at /) // no stack trace
    expect(() => statSync(file)).toThrow() // nothing written
  })

  it('a broken TRUST_FILE fails with exit 1, naming the file and the problem, and is not rewritten', async () => {
    const { file, env } = setup()
    writeFileSync(file, '{"trust": [{"id": "x"}]}')
    for (const argv of [['list'], ADD_GITHUB, ['remove', '--id', 'x']]) {
      const out = await runCli(run, argv, env)
      expect(out.code).toBe(1)
      expect(out.stdout).toBe('')
      expect(out.stderr).toMatch(new RegExp(`^error: ${file}: entry "x" \\(#0\\) field issuer: `))
      expect(out.stderr).not.toMatch(/\n\s+at /)
    }
    expect(readFileSync(file, 'utf8')).toBe('{"trust": [{"id": "x"}]}')
  })

  it('a bad setting fails with exit 1 and names the variable', async () => {
    const { env } = setup()
    const out = await runCli(run, ['list'], { ...env, TRUST_FILE: '', PORT: 'x' })
    expect(out.code).toBe(1)
    expect(out.stderr).toMatch(/^error: configuration: PORT="x" is not valid/)
  })

  it('add warns, and still adds, when CLIENTS_FILE is absent', async () => {
    const { dir, env } = setup()
    const out = await runCli(run, ADD_GITHUB, { ...env, CLIENTS_FILE: join(dir, 'none.json') })
    expect(out.code).toBe(0)
    expect(out.stderr).toContain('warning: client deployer is not in')
  })
})

describe('trust CLI: test', () => {
  const ISSUER = 'https://workloads.example'
  const clock = fixedClock()
  const cli = (argv: string[], io: CliIo) => run(argv, io, clock)

  /** A trust entry with a pinned key, and a way to sign platform tokens with that key. */
  async function pinned() {
    const { dir, env } = setup()
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true })
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }
    writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [jwk] }))
    const added = await runCli(
      cli,
      [
        'add',
        '--id',
        'pinned',
        '--issuer',
        ISSUER,
        '--subject',
        'system:serviceaccount:billing:*',
        '--client',
        'deployer',
        '--jwks-file',
        join(dir, 'jwks.json'),
      ],
      env,
    )
    expect(added.code).toBe(0)
    const sign = (claims: Record<string, unknown> = {}) =>
      new SignJWT({ jti: 'j-1', sub: 'system:serviceaccount:billing:sync', ...claims })
        .setProtectedHeader({ alg: 'ES256', kid: 'k1', typ: 'JWT' })
        .setIssuer(ISSUER)
        .setAudience('http://localhost:3000') // tokensmith's issuer identifier: the entry sets no audience
        .setIssuedAt(T0 - 10)
        .setExpirationTime(T0 + 600)
        .sign(privateKey)
    const assertion = async (token: string) => {
      const path = join(dir, `token-${Math.random().toString(36).slice(2)}.jwt`)
      writeFileSync(path, `\n  ${token}\n`) // white space around it, as a copied token has
      return path
    }
    return { dir, env, sign, assertion }
  }

  it('explains an accepted token check by check and exits 0, without using up its jti', async () => {
    const { env, sign, assertion } = await pinned()
    const file = await assertion(await sign())
    for (let i = 0; i < 2; i++) {
      const out = await runCli(cli, ['test', '--assertion', file, '--client', 'deployer'], env)
      expect(out.code).toBe(0)
      const verdict = out.json()
      expect(Object.keys(verdict)).toEqual(['ok', 'entry', 'checks'])
      expect(verdict).toMatchObject({ ok: true, entry: 'pinned' })
      expect(verdict.checks).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ entry: 'pinned', check: 'signature', ok: true }),
          expect.objectContaining({ entry: 'pinned', check: 'subject', ok: true }),
          expect.objectContaining({ entry: 'pinned', check: 'jti', ok: true }),
        ]),
      )
      for (const check of verdict.checks)
        expect(Object.keys(check)).toEqual(expect.arrayContaining(['entry', 'check', 'ok']))
      expect(verdict.checks.every((c: { ok: boolean }) => c.ok)).toBe(true)
    }
  })

  it('a refused token prints the failing check and exits 1', async () => {
    const { env, sign, assertion } = await pinned()
    const file = await assertion(await sign({ sub: 'system:serviceaccount:payments:sync' }))
    const out = await runCli(cli, ['test', '--assertion', file], env)
    expect(out.code).toBe(1)
    const verdict = out.json()
    expect(verdict).toMatchObject({ ok: false, entry: null })
    expect(verdict.checks).toContainEqual(expect.objectContaining({ entry: 'pinned', check: 'subject', ok: false }))
  })

  it('a token for a client the entry does not map exits 1', async () => {
    const { env, sign, assertion } = await pinned()
    const out = await runCli(
      cli,
      ['test', '--assertion', await assertion(await sign()), '--client', 'someone-else'],
      env,
    )
    expect(out.code).toBe(1)
    expect(out.json()).toMatchObject({ ok: false, entry: null })
    expect(out.json().checks).toContainEqual(expect.objectContaining({ entry: 'pinned', check: 'client', ok: false }))
  })

  it('a token signed by another key exits 1', async () => {
    const { env, assertion } = await pinned()
    const other = await generateKeyPair('ES256')
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setIssuer(ISSUER)
      .setSubject('system:serviceaccount:billing:sync')
      .setAudience('http://localhost:3000')
      .setIssuedAt(T0 - 10)
      .setExpirationTime(T0 + 600)
      .sign(other.privateKey)
    const out = await runCli(cli, ['test', '--assertion', await assertion(token)], env)
    expect(out.code).toBe(1)
    expect(out.json().checks).toContainEqual(
      expect.objectContaining({ entry: 'pinned', check: 'signature', ok: false }),
    )
  })

  it('an unreadable or empty assertion file fails with exit 1 and a message', async () => {
    const { dir, env } = await pinned()
    const missing = await runCli(cli, ['test', '--assertion', join(dir, 'nope.jwt')], env)
    expect(missing.code).toBe(1)
    expect(missing.stdout).toBe('')
    expect(missing.stderr).toMatch(/^error: cannot read the assertion: /)
    writeFileSync(join(dir, 'empty.jwt'), ' \n')
    const empty = await runCli(cli, ['test', '--assertion', join(dir, 'empty.jwt')], env)
    expect(empty.code).toBe(1)
    expect(empty.stderr).toBe('error: the assertion file is empty\n')
  })
})
