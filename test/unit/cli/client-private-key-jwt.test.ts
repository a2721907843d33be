import { generateKeyPairSync } from 'node:crypto'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, jwtVerify, type JWK } from 'jose'
import { describe, expect, it } from 'vitest'
import { run } from '../../../src/cli/client.js'
import { readClientsFile } from '../../../src/clients/clients-file.js'
import { createClientRegistry } from '../../../src/clients/registry.js'
import { parseJwkSet } from '../../../src/verifier/jwk-set.js'
import { runCli, tempDir } from '../../helpers/cli.js'

// The `client` command for private_key_jwt clients (RFC 7523 §2.2): public keys in, never a secret or a
// private key stored; a generated private key shown once.

const setup = () => {
  const dir = tempDir()
  const file = join(dir, 'clients.json')
  return { dir, file, env: { CLIENTS_FILE: file } }
}
type Env = ReturnType<typeof setup>['env']

const BASE = ['--scope', 'a b', '--audience', 'https://api.example.com']
const create = (env: Env, id: string, ...extra: string[]) => runCli(run, ['create', '--id', id, ...BASE, ...extra], env)

/** JWK members of private or symmetric keys (RFC 7518 §6.2.2, §6.3.2, §6.4.1). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']

/** No private member anywhere in the file's text. */
function expectNoPrivateMaterial(text: string) {
  for (const member of PRIVATE_MEMBERS) expect(text).not.toContain(`"${member}":`)
  expect(text).not.toMatch(/tks_/)
}

/** The client's registry entry, as the server builds it from the file. */
async function registered(file: string, id: string) {
  return createClientRegistry(await readClientsFile(file)).get(id)
}

/** A client assertion (RFC 7523 §3) signed with `privateJwk`. */
async function assertion(privateJwk: JWK, clientId: string) {
  const alg = privateJwk.alg as string
  return new SignJWT({})
    .setProtectedHeader({ alg, kid: privateJwk.kid as string, typ: 'client-authentication+jwt' })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience('https://issuer.example.com')
    .setIssuedAt()
    .setExpirationTime('1m')
    .setJti(crypto.randomUUID())
    .sign(await importJWK(privateJwk, alg))
}

/** Whether the client's keys, as registered in `file`, verify `jwt`. */
async function verifiesWithRegistered(file: string, id: string, jwt: string) {
  const keys = (await registered(file, id))?.assertion?.jwks
  if (!keys) return false
  return jwtVerify(jwt, keys.key).then(
    () => true,
    () => false,
  )
}

/** A public JWK of a new key pair, and its private JWK; `kid` null: none. */
async function keyPair(alg = 'ES256', kid: string | null = 'k-1') {
  const pair = await generateKeyPair(alg, { extractable: true })
  const publicJwk = { ...(await exportJWK(pair.publicKey)), ...(kid !== null && { kid }), alg }
  const privateJwk = { ...(await exportJWK(pair.privateKey)), ...(kid !== null && { kid }), alg }
  return { publicJwk, privateJwk }
}

function writeJson(dir: string, name: string, value: unknown) {
  const path = join(dir, name)
  writeFileSync(path, JSON.stringify(value))
  return path
}

describe('client create --generate-key', () => {
  it('registers the public key under its RFC 7638 thumbprint and prints the private JWK once', async () => {
    const { file, env } = setup()
    const out = await create(env, 'pk-1', '--generate-key')
    expect(out.code).toBe(0)
    expect(out.stderr).toBe('created client pk-1; the private key (private_jwk) is shown only now, store it safely\n')
    const printed = out.json()
    expect(Object.keys(printed)).toEqual([
      'client_id',
      'token_endpoint_auth_method',
      'scopes',
      'audiences',
      'access_token_ttl',
      'grant_types',
      'resource_server',
      'quota',
      'require_dpop',
      'jwks',
      'require_typ',
      'private_jwk',
    ])
    expect(printed).toMatchObject({
      client_id: 'pk-1',
      token_endpoint_auth_method: 'private_key_jwt',
      scopes: ['a', 'b'],
      audiences: ['https://api.example.com'],
      require_typ: false,
    })
    const [publicJwk] = printed.jwks.keys
    const privateJwk: JWK = printed.private_jwk
    expect(printed.jwks.keys).toHaveLength(1)
    expect(publicJwk).toEqual({
      kty: 'EC',
      crv: 'P-256',
      x: expect.any(String),
      y: expect.any(String),
      kid: await calculateJwkThumbprint(publicJwk, 'sha256'),
      alg: 'ES256',
      use: 'sig',
    })
    expect(privateJwk).toEqual({ ...publicJwk, use: undefined, d: expect.any(String) })
    expect(privateJwk).not.toHaveProperty('use')

    const text = readFileSync(file, 'utf8')
    expectNoPrivateMaterial(text)
    expect(text).not.toContain(privateJwk.d)
    const [entry] = (await readClientsFile(file)).clients
    expect(entry).toMatchObject({ token_endpoint_auth_method: 'private_key_jwt', secrets: [], jwks: printed.jwks })
    const client = await registered(file, 'pk-1')
    expect(client?.assertion?.requireTyp).toBe(false)
    expect([...(client?.assertion?.jwks?.kids ?? [])]).toEqual([publicJwk.kid])

    const jwt = await assertion(privateJwk, 'pk-1')
    expect(await verifiesWithRegistered(file, 'pk-1', jwt)).toBe(true)
    const { payload } = await jwtVerify(jwt, parseJwkSet(printed.jwks).key)
    expect(payload.sub).toBe('pk-1')
  })

  it.each(['ES384', 'ES512', 'EdDSA', 'Ed25519', 'RS256', 'PS256'])(
    '--alg %s makes a key whose assertions verify with the stored public key',
    async (alg) => {
      const { file, env } = setup()
      const out = await create(env, 'pk-1', '--generate-key', '--alg', alg)
      expect(out.code).toBe(0)
      const { jwks, private_jwk: privateJwk } = out.json()
      expect(jwks.keys[0]).toMatchObject({ alg, use: 'sig', kid: privateJwk.kid })
      expect(privateJwk.alg).toBe(alg)
      if (jwks.keys[0].kty === 'RSA') expect(Buffer.from(jwks.keys[0].n, 'base64url').length * 8).toBe(3072)
      expectNoPrivateMaterial(readFileSync(file, 'utf8'))
      expect(await verifiesWithRegistered(file, 'pk-1', await assertion(privateJwk, 'pk-1'))).toBe(true)
    },
    20_000,
  )

  it('another key, even under the registered kid, does not verify', async () => {
    const { file, env } = setup()
    const { kid } = (await create(env, 'pk-1', '--generate-key')).json().private_jwk
    const { privateJwk } = await keyPair('ES256', kid)
    expect(await verifiesWithRegistered(file, 'pk-1', await assertion(privateJwk, 'pk-1'))).toBe(false)
  })
})

describe('client create --jwks, --jwks-uri, --federated', () => {
  it('--jwks FILE registers the public keys of a JWK Set as given', async () => {
    const { dir, file, env } = setup()
    const one = await keyPair('ES256', 'k-1')
    const two = await keyPair('EdDSA', 'k-2')
    const path = writeJson(dir, 'jwks.json', { keys: [one.publicJwk, two.publicJwk] })
    const out = await create(env, 'pk-1', '--jwks', path, '--require-typ')
    expect(out.code).toBe(0)
    expect(out.stderr).toBe('')
    expect(out.json()).toEqual({
      client_id: 'pk-1',
      token_endpoint_auth_method: 'private_key_jwt',
      scopes: ['a', 'b'],
      audiences: ['https://api.example.com'],
      access_token_ttl: null,
      grant_types: ['client_credentials'],
      resource_server: false,
      quota: null,
      require_dpop: false,
      jwks: { keys: [one.publicJwk, two.publicJwk] },
      require_typ: true,
    })
    expect(readFileSync(file, 'utf8')).not.toMatch(/"secrets": \[\s*\{/)
    expect((await registered(file, 'pk-1'))?.assertion?.requireTyp).toBe(true)
    expect(await verifiesWithRegistered(file, 'pk-1', await assertion(one.privateJwk, 'pk-1'))).toBe(true)
    expect(await verifiesWithRegistered(file, 'pk-1', await assertion(two.privateJwk, 'pk-1'))).toBe(true)
  })

  it('--jwks FILE with one JWK and no kid wraps it and names it by its thumbprint, saying so', async () => {
    const { dir, file, env } = setup()
    const { publicJwk, privateJwk } = await keyPair('ES256', null)
    const out = await create(env, 'pk-1', '--jwks', writeJson(dir, 'key.json', publicJwk))
    expect(out.code).toBe(0)
    const kid = await calculateJwkThumbprint(publicJwk, 'sha256')
    expect(out.json().jwks).toEqual({ keys: [{ ...publicJwk, kid }] })
    expect(out.stderr).toContain(`kid ${kid} (its RFC 7638 thumbprint)`)
    expect(await verifiesWithRegistered(file, 'pk-1', await assertion({ ...privateJwk, kid }, 'pk-1'))).toBe(true)
  })

  it('--jwks-uri URL registers the URL and no keys', async () => {
    const { file, env } = setup()
    const out = await create(env, 'pk-1', '--jwks-uri', 'https://workload.example.com/jwks.json')
    expect(out.code).toBe(0)
    const printed = out.json()
    expect(printed).toMatchObject({
      token_endpoint_auth_method: 'private_key_jwt',
      jwks_uri: 'https://workload.example.com/jwks.json',
      require_typ: false,
    })
    expect(printed).not.toHaveProperty('jwks')
    expect((await registered(file, 'pk-1'))?.assertion).toEqual({
      jwksUri: 'https://workload.example.com/jwks.json',
      requireTyp: false,
    })
    expect((await create(env, 'pk-2', '--jwks-uri', 'http://127.0.0.1:8080/jwks')).code).toBe(0)
  })

  it.each([
    ['http://keys.example.com/jwks', /--jwks-uri must be an https URL/],
    ['https://keys.example.com/jwks#k', /--jwks-uri must not have a fragment/],
    ['keys.example.com', /--jwks-uri must be an absolute URL/],
  ])('--jwks-uri %s is a usage error', async (uri, message) => {
    const { file, env } = setup()
    const out = await create(env, 'pk-1', '--jwks-uri', uri)
    expect(out.code).toBe(2)
    expect(out.stderr).toMatch(message)
    expect(existsSync(file)).toBe(false)
  })

  it('--federated registers a client without keys, for trust entries', async () => {
    const { file, env } = setup()
    const out = await create(env, 'wl-1', '--federated', '--require-typ')
    expect(out.code).toBe(0)
    expect(out.json()).toEqual({
      client_id: 'wl-1',
      token_endpoint_auth_method: 'private_key_jwt',
      scopes: ['a', 'b'],
      audiences: ['https://api.example.com'],
      access_token_ttl: null,
      grant_types: ['client_credentials'],
      resource_server: false,
      quota: null,
      require_dpop: false,
      require_typ: true,
    })
    expect(out.stderr).toContain('trust -- add ... --client wl-1')
    expect((await registered(file, 'wl-1'))?.assertion).toEqual({ requireTyp: true })
  })
})

describe('client create: refusals', () => {
  it.each([
    [['--jwks', 'x.json', '--jwks-uri', 'https://k.example.com/jwks'], '--jwks and --jwks-uri exclude each other'],
    [['--jwks', 'x.json', '--generate-key'], '--jwks and --generate-key exclude each other'],
    [['--jwks-uri', 'https://k.example.com/jwks', '--federated'], '--jwks-uri and --federated exclude each other'],
    [['--generate-key', '--federated'], '--generate-key and --federated exclude each other'],
    [['--alg', 'ES256'], '--alg goes with --generate-key'],
    [['--jwks-uri', 'https://k.example.com/jwks', '--alg', 'ES256'], '--alg goes with --generate-key'],
    [['--generate-key', '--alg', 'HS256'], '--alg must be one of ES256, ES384, ES512, EdDSA, Ed25519, RS256, PS256'],
    [['--generate-key', '--alg', 'none'], '--alg must be one of'],
    [['--require-typ'], '--require-typ is for private_key_jwt clients'],
  ])('%j is a usage error', async (extra, message) => {
    const { file, env } = setup()
    const out = await create(env, 'pk-1', ...extra)
    expect(out.code).toBe(2)
    expect(out.stdout).toBe('')
    expect(out.stderr).toMatch(/^error: .+\nusage:/)
    expect(out.stderr).toContain(message)
    expect(existsSync(file)).toBe(false)
  })

  it('refuses a private key in --jwks, never storing it, and leaves the file as it was', async () => {
    const { dir, file, env } = setup()
    expect((await runCli(run, ['create', '--id', 'svc-1', ...BASE], env)).code).toBe(0)
    const before = readFileSync(file, 'utf8')
    const { privateJwk } = await keyPair('ES256', 'k-1')
    for (const value of [privateJwk, { keys: [privateJwk] }]) {
      const out = await create(env, 'pk-1', '--jwks', writeJson(dir, 'private.json', value))
      expect(out.code).toBe(1)
      expect(out.stdout).toBe('')
      expect(out.stderr).toContain('holds private key material (d); give the public key only')
      expect(out.stderr).not.toContain(privateJwk.d)
      expect(readFileSync(file, 'utf8')).toBe(before)
    }
  })

  it.each([
    [
      'an RSA private key',
      async () => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }),
      'private key material (d, p, q, dp, dq, qi)',
    ],
    [
      'a symmetric key',
      async () => ({ kty: 'oct', k: 'c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA', kid: 's' }),
      'is a symmetric key',
    ],
    ['an encryption key', async () => ({ ...(await keyPair()).publicJwk, use: 'enc' }), '"use" other than "sig"'],
    [
      'an alg that does not fit the key',
      async () => ({ ...(await keyPair()).publicJwk, alg: 'RS256' }),
      '"alg" "RS256" does not fit a EC key',
    ],
    ['an HMAC alg', async () => ({ ...(await keyPair()).publicJwk, alg: 'HS256' }), '"alg" "HS256" does not fit'],
    [
      'a 1024-bit RSA key',
      async () => generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' }),
      'RSA keys need 2048 bits or more',
    ],
    [
      'an unsupported curve',
      async () => ({ kty: 'OKP', crv: 'X25519', x: 'AAAA', kid: 'x' }),
      'is no EC (P-256, P-384, P-521), OKP (Ed25519) or RSA key',
    ],
    ['a broken EC key', async () => ({ ...(await keyPair()).publicJwk, x: 'AAAA' }), 'is not a valid public key'],
    [
      'a kid with a space',
      async () => ({ ...(await keyPair()).publicJwk, kid: 'a b' }),
      '"kid" must be 1 to 256 visible ASCII characters',
    ],
    ['no key', async () => ({ keys: [] }), 'the JWK Set holds no key'],
    ['no JWK at all', async () => ({ hello: 'world' }), 'must be a JWK Set ({"keys": [...]}) or a single public JWK'],
  ])('refuses --jwks with %s (exit 1, nothing written)', async (_name, value, message) => {
    const { dir, file, env } = setup()
    const out = await create(env, 'pk-1', '--jwks', writeJson(dir, 'jwks.json', await value()))
    expect(out.code).toBe(1)
    expect(out.stdout).toBe('')
    expect(out.stderr).toContain(message)
    expect(existsSync(file)).toBe(false)
  })

  it('refuses --jwks with two keys of one kid, a missing file, and a file that is not JSON', async () => {
    const { dir, file, env } = setup()
    const { publicJwk } = await keyPair('ES256', 'same')
    const other = (await keyPair('ES256', 'same')).publicJwk
    const twice = await create(env, 'pk-1', '--jwks', writeJson(dir, 'jwks.json', { keys: [publicJwk, other] }))
    expect(twice.stderr).toContain('key 2 (kid "same"): "kid" "same" is used by another key')
    const missing = await create(env, 'pk-1', '--jwks', join(dir, 'nope.json'))
    expect(missing.stderr).toMatch(/--jwks .*nope\.json: ENOENT/)
    writeFileSync(join(dir, 'bad.json'), '{"keys": [')
    const bad = await create(env, 'pk-1', '--jwks', join(dir, 'bad.json'))
    expect(bad.stderr).toMatch(/--jwks .*bad\.json: .*JSON/)
    expect([twice.code, missing.code, bad.code]).toEqual([1, 1, 1])
    expect(existsSync(file)).toBe(false)
  })
})

describe('client update: keys of a private_key_jwt client', () => {
  it('--generate-key replaces the keys; the old key no longer verifies', async () => {
    const { file, env } = setup()
    const first = (await create(env, 'pk-1', '--generate-key')).json()
    const out = await runCli(run, ['update', '--id', 'pk-1', '--generate-key', '--alg', 'EdDSA'], env)
    expect(out.code).toBe(0)
    expect(out.stderr).toBe(
      'new key for pk-1 replaces its keys; the private key (private_jwk) is shown only now, store it safely\n',
    )
    const printed = out.json()
    expect(printed).toMatchObject({ client_id: 'pk-1', token_endpoint_auth_method: 'private_key_jwt' })
    expect(printed.jwks.keys).toHaveLength(1)
    expect(printed.jwks.keys[0]).toMatchObject({ kty: 'OKP', alg: 'EdDSA', kid: printed.private_jwk.kid })
    expect(printed.private_jwk.kid).not.toBe(first.private_jwk.kid)
    expectNoPrivateMaterial(readFileSync(file, 'utf8'))
    expect(await verifiesWithRegistered(file, 'pk-1', await assertion(printed.private_jwk, 'pk-1'))).toBe(true)
    expect(await verifiesWithRegistered(file, 'pk-1', await assertion(first.private_jwk, 'pk-1'))).toBe(false)
  })

  it('--jwks with the old and the new key rolls over; --jwks-uri then replaces the inline keys', async () => {
    const { dir, file, env } = setup()
    const first = (await create(env, 'pk-1', '--generate-key')).json()
    const next = await keyPair('ES256', 'k-2')
    const both = writeJson(dir, 'both.json', { keys: [first.jwks.keys[0], next.publicJwk] })
    expect((await runCli(run, ['update', '--id', 'pk-1', '--jwks', both], env)).json().jwks.keys).toHaveLength(2)
    expect(await verifiesWithRegistered(file, 'pk-1', await assertion(first.private_jwk, 'pk-1'))).toBe(true)
    expect(await verifiesWithRegistered(file, 'pk-1', await assertion(next.privateJwk, 'pk-1'))).toBe(true)

    const moved = await runCli(run, ['update', '--id', 'pk-1', '--jwks-uri', 'https://k.example.com/jwks'], env)
    expect(moved.code).toBe(0)
    expect(moved.json()).not.toHaveProperty('jwks')
    expect(moved.json().jwks_uri).toBe('https://k.example.com/jwks')
    const [entry] = (await readClientsFile(file)).clients
    expect(entry).not.toHaveProperty('jwks')
    expect(entry?.jwks_uri).toBe('https://k.example.com/jwks')
  })

  it('--require-typ and --no-require-typ set require_typ; other settings change as before', async () => {
    const { file, env } = setup()
    await create(env, 'wl-1', '--federated')
    const on = await runCli(run, ['update', '--id', 'wl-1', '--require-typ', '--ttl', '120'], env)
    expect(on.json()).toMatchObject({ require_typ: true, access_token_ttl: 120 })
    expect((await registered(file, 'wl-1'))?.assertion?.requireTyp).toBe(true)
    const off = await runCli(run, ['update', '--id', 'wl-1', '--no-require-typ'], env)
    expect(off.json()).toMatchObject({ require_typ: false, access_token_ttl: 120 })
    expect((await registered(file, 'wl-1'))?.assertion?.requireTyp).toBe(false)
  })

  it.each([
    [['--jwks', 'x.json', '--generate-key'], '--jwks and --generate-key exclude each other'],
    [['--require-typ', '--no-require-typ'], '--require-typ and --no-require-typ exclude each other'],
    [['--federated'], "Unknown option '--federated'"],
    [['--alg', 'ES256'], '--alg goes with --generate-key'],
  ])('update %j is a usage error', async (extra, message) => {
    const { file, env } = setup()
    await create(env, 'pk-1', '--generate-key')
    const before = readFileSync(file, 'utf8')
    const out = await runCli(run, ['update', '--id', 'pk-1', ...extra], env)
    expect(out.code).toBe(2)
    expect(out.stderr).toContain(message)
    expect(readFileSync(file, 'utf8')).toBe(before)
  })

  it.each([[['--generate-key']], [['--jwks-uri', 'https://k.example.com/jwks']], [['--require-typ']]])(
    'refuses %j on a secret client (exit 1, file unchanged)',
    async (extra) => {
      const { file, env } = setup()
      await runCli(run, ['create', '--id', 'svc-1', ...BASE], env)
      const before = readFileSync(file, 'utf8')
      const out = await runCli(run, ['update', '--id', 'svc-1', ...extra], env)
      expect(out.code).toBe(1)
      expect(out.stdout).toBe('')
      expect(out.stderr).toBe(
        'error: client svc-1 authenticates with a secret; keys and require_typ are for private_key_jwt clients (to switch, delete the client and create it again)\n',
      )
      expect(readFileSync(file, 'utf8')).toBe(before)
    },
  )
})

describe('client rotate-secret and list with private_key_jwt clients', () => {
  it.each([[[]], [['--revoke-tokens']], [['--grace', '60']]])(
    'rotate-secret %j refuses a private_key_jwt client: it has no secret',
    async (extra) => {
      const { file, env } = setup()
      await create(env, 'pk-1', '--generate-key')
      const before = readFileSync(file, 'utf8')
      const out = await runCli(run, ['rotate-secret', '--id', 'pk-1', ...extra], env)
      expect(out.code).toBe(1)
      expect(out.stdout).toBe('')
      expect(out.stderr).toBe(
        'error: client pk-1 uses private_key_jwt and has no secret; rotate its keys with update --jwks FILE or --generate-key\n',
      )
      expect(readFileSync(file, 'utf8')).toBe(before)
    },
  )

  it('list shows each client with its authentication method: secret times, or public keys, URL or neither', async () => {
    const { env } = setup()
    await runCli(run, ['create', '--id', 'svc-1', ...BASE], env)
    const generated = (await create(env, 'pk-1', '--generate-key', '--require-typ')).json()
    await create(env, 'pk-2', '--jwks-uri', 'https://k.example.com/jwks')
    await create(env, 'wl-1', '--federated')
    const listed = await runCli(run, ['list'], env)
    expect(listed.code).toBe(0)
    const common = {
      scopes: ['a', 'b'],
      audiences: ['https://api.example.com'],
      access_token_ttl: null,
      grant_types: ['client_credentials'],
      resource_server: false,
      quota: null,
      require_dpop: false,
    }
    const pkjwt = 'private_key_jwt'
    expect(listed.json()).toEqual({
      clients: [
        {
          client_id: 'svc-1',
          token_endpoint_auth_method: 'client_secret_basic',
          ...common,
          secrets: [{ created: expect.any(Number), expires: null }],
        },
        { client_id: 'pk-1', token_endpoint_auth_method: pkjwt, ...common, jwks: generated.jwks, require_typ: true },
        {
          client_id: 'pk-2',
          token_endpoint_auth_method: pkjwt,
          ...common,
          jwks_uri: 'https://k.example.com/jwks',
          require_typ: false,
        },
        { client_id: 'wl-1', token_endpoint_auth_method: pkjwt, ...common, require_typ: false },
      ],
    })
    expect(listed.stdout).not.toContain(generated.private_jwk.d)
    expect(listed.stdout).not.toContain('sha256')
  })
})
