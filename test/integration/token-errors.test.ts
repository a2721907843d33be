import { createLocalJWKSet, jwtVerify } from 'jose'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { createApp } from '../../src/app.js'
import { digestSecret, digestsEqual } from '../../src/clients/secret.js'
import type { KeyStore } from '../../src/keys/key-store.js'
import { FORM, ISSUER, T0, basic, fixedClock, makeDeps, type MakeDepsOptions } from '../helpers/make-deps.js'
import { expectError } from '../helpers/oauth-error.js'

// Wrap the digest helpers so a test can count the hashing and comparing each request does: an unknown
// client costs what a known one does (README, client authentication).
vi.mock('../../src/clients/secret.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../src/clients/secret.js')>()
  return { ...original, digestSecret: vi.fn(original.digestSecret), digestsEqual: vi.fn(original.digestsEqual) }
})

const TOKEN = '/oauth/token'
const A = basic('svc-a', 'tks_secret-of-a')
const GRANT = 'grant_type=client_credentials'

type Deps = Awaited<ReturnType<typeof makeDeps>>
type Body = string | Uint8Array | FormData | ReadableStream<Uint8Array>

async function setup(options: MakeDepsOptions = {}) {
  const deps = await makeDeps(options)
  const app = createApp(deps)
  /** POST a form to the token endpoint; `headers` replace the defaults (content type, svc-a Basic). */
  const post = (body: Body, headers: Record<string, string | undefined> = {}, path = TOKEN) => {
    const merged = Object.fromEntries(
      Object.entries({ 'content-type': FORM, authorization: A, ...headers }).filter(
        (entry): entry is [string, string] => entry[1] !== undefined,
      ),
    )
    const init = { method: 'POST', headers: merged, body, duplex: 'half' } as RequestInit
    return app.request(path, init)
  }
  return { deps, app, post }
}

async function expectToken(res: Response, deps: Deps, audience = 'https://api.example.com') {
  expect(res.status).toBe(200)
  expect(res.headers.get('cache-control')).toBe('no-store')
  expect(res.headers.get('pragma')).toBe('no-cache')
  const body = (await res.json()) as { access_token: string; scope: string; expires_in: number; token_type: string }
  const { payload } = await jwtVerify(body.access_token, createLocalJWKSet(JSON.parse(deps.keys.jwks().body)), {
    issuer: ISSUER,
    audience,
    typ: 'at+jwt',
    currentDate: new Date(T0 * 1000),
  })
  return { body, payload }
}

beforeEach(() => {
  vi.mocked(digestSecret).mockClear()
  vi.mocked(digestsEqual).mockClear()
})

describe('token endpoint: methods and paths (RFC 6749 §3.2: POST only)', () => {
  for (const path of ['/oauth/token', '/oauth/revoke', '/oauth/introspect']) {
    for (const method of ['GET', 'PUT', 'DELETE', 'PATCH']) {
      it(`answers ${method} ${path} with 405 and Allow: POST`, async () => {
        const { app, deps } = await setup()
        const init: RequestInit = { method, headers: { authorization: A } }
        if (method !== 'GET') Object.assign(init, { headers: { authorization: A, 'content-type': FORM }, body: GRANT })
        await expectError(await app.request(path, init), 405, 'invalid_request', deps)
      })
    }
  }

  it('answers an unknown path with a 404 JSON error', async () => {
    const { app, post } = await setup()
    await expectError(await app.request('/nope'), 404, 'invalid_request')
    await expectError(await post(GRANT, {}, '/oauth/tokens'), 404, 'invalid_request')
  })
})

describe('token endpoint: content type (RFC 6749 §3.2 and Appendix B: a UTF-8 form)', () => {
  it('refuses a JSON body even from an authenticated client', async () => {
    const { post, deps } = await setup()
    const res = await post(JSON.stringify({ grant_type: 'client_credentials' }), { 'content-type': 'application/json' })
    await expectError(res, 400, 'invalid_request', deps)
  })

  it('refuses a multipart/form-data body', async () => {
    const { post, deps } = await setup()
    const form = new FormData()
    form.set('grant_type', 'client_credentials')
    // No explicit content type: the runtime sets multipart/form-data with its boundary.
    const res = await post(form, { 'content-type': undefined })
    await expectError(res, 400, 'invalid_request', deps)
  })

  it('refuses text/plain', async () => {
    const { post, deps } = await setup()
    await expectError(await post(GRANT, { 'content-type': 'text/plain' }), 400, 'invalid_request', deps)
  })

  it('refuses a body without Content-Type', async () => {
    const { post, deps } = await setup()
    const res = await post(new TextEncoder().encode(GRANT), { 'content-type': undefined })
    await expectError(res, 400, 'invalid_request', deps)
  })

  it('refuses a form declared in a charset other than UTF-8', async () => {
    const { post } = await setup()
    await expectError(await post(GRANT, { 'content-type': `${FORM}; charset=ISO-8859-1` }), 400, 'invalid_request')
  })

  it('accepts a charset=UTF-8 suffix and an upper-case media type', async () => {
    for (const contentType of [`${FORM}; charset=UTF-8`, FORM.toUpperCase(), `${FORM.toUpperCase()};charset="utf-8"`]) {
      const { post, deps } = await setup()
      await expectToken(await post(GRANT, { 'content-type': contentType }), deps)
    }
  })
})

describe('token endpoint: parameters (RFC 6749 §3.2: none more than once)', () => {
  it.each([
    ['grant_type', `${GRANT}&${GRANT}`],
    ['grant_type with different values', `${GRANT}&grant_type=password`],
    ['scope', `${GRANT}&scope=read&scope=read`],
    ['client_id', `${GRANT}&client_id=svc-a&client_id=svc-a`],
  ])('refuses a repeated %s with invalid_request', async (_name, body) => {
    const { post, deps } = await setup()
    await expectError(await post(body), 400, 'invalid_request', deps)
  })

  it('refuses a repeated client_id with client_secret_post', async () => {
    const { post, deps } = await setup()
    const res = await post(`${GRANT}&client_id=svc-a&client_id=svc-a&client_secret=tks_secret-of-a`, {
      authorization: undefined,
    })
    await expectError(res, 400, 'invalid_request', deps)
  })

  it.each([
    ['scope[]=a&scope[]=b', `${GRANT}&scope[]=a&scope[]=b`],
    ['scope%5B%5D twice', `${GRANT}&scope%5B%5D=read&scope%5B%5D=write`],
    ['grant_type[]=', 'grant_type[]='],
    ['grant_type[]=client_credentials', 'grant_type[]=client_credentials'],
  ])('refuses array-style parameters (%s) with invalid_request, never 500', async (_name, body) => {
    const { post, deps } = await setup()
    await expectError(await post(body), 400, 'invalid_request', deps)
  })

  it('treats scope= as absent and grants every client scope', async () => {
    const { post, deps } = await setup()
    const { body, payload } = await expectToken(await post(`${GRANT}&scope=`), deps)
    expect(body.scope).toBe('read write')
    expect(payload.scope).toBe('read write')
  })

  it.each([
    ['one encoded space', '%20'],
    ['two encoded spaces', '%20%20'],
    ['a plus (a space in a form)', '+'],
    ['spaces written both ways', '+%20+'],
  ])('refuses a scope of %s with invalid_scope and issues no token', async (_name, scope) => {
    const { post, deps } = await setup()
    await expectError(await post(`${GRANT}&scope=${scope}`), 400, 'invalid_scope', deps)
  })

  it('grants every client scope when scope is omitted', async () => {
    const { post, deps } = await setup()
    const { body } = await expectToken(await post(GRANT), deps)
    expect(body).toEqual({
      access_token: expect.any(String),
      token_type: 'Bearer',
      expires_in: 300,
      scope: 'read write',
    })
  })

  it('treats grant_type= as missing: invalid_request', async () => {
    const { post, deps } = await setup()
    await expectError(await post('grant_type=&scope=read'), 400, 'invalid_request', deps)
  })

  it('refuses a request without grant_type from an authenticated client', async () => {
    const { post, deps } = await setup()
    await expectError(await post('scope=read'), 400, 'invalid_request', deps)
  })

  it.each([
    'password',
    'authorization_code',
    'foo',
    'refresh_token',
    'CLIENT_CREDENTIALS',
    'urn:ietf:params:oauth:grant-type:jwt-bearer',
  ])('answers grant_type=%s from an authenticated client with unsupported_grant_type', async (grantType) => {
    const { post, deps } = await setup()
    await expectError(await post(`grant_type=${encodeURIComponent(grantType)}`), 400, 'unsupported_grant_type', deps)
  })

  it('answers a client not allowed the grant with unauthorized_client (RFC 6749 §5.2)', async () => {
    const { post, deps } = await setup()
    const res = await post(GRANT, { authorization: basic('no-grant', 'tks_secret-no-grant') })
    await expectError(res, 400, 'unauthorized_client', deps)
  })
})

describe('token endpoint: scope (RFC 6749 §3.3)', () => {
  it.each([
    ['a control character', 'read%01'],
    ['a TAB', 'read%09write'],
    ['a DEL', 'read%7F'],
    ['a double quote', 're%22ad'],
    ['a backslash', 're%5Cad'],
    ['a non-ASCII character', 'r%C3%A9ad'],
  ])('refuses a scope with %s with invalid_scope', async (_name, scope) => {
    const { post, deps } = await setup()
    await expectError(await post(`${GRANT}&scope=${scope}`), 400, 'invalid_scope', deps)
  })

  it('refuses a scope outside the allow-list and issues nothing for the allowed subset', async () => {
    const { post, deps } = await setup()
    await expectError(await post(`${GRANT}&scope=read+admin`), 400, 'invalid_scope', deps)
    await expectError(await post(`${GRANT}&scope=admin`), 400, 'invalid_scope', deps)
    // svc-b has only read; write belongs to svc-a
    const res = await post(`${GRANT}&scope=read%20write`, { authorization: basic('svc-b', 'tks_secret-of-b') })
    await expectError(res, 400, 'invalid_scope', deps)
  })

  it('grants exactly the requested subset, deduplicated', async () => {
    const { post, deps } = await setup()
    const { body, payload } = await expectToken(await post(`${GRANT}&scope=write+write`), deps)
    expect(body.scope).toBe('write')
    expect(payload.scope).toBe('write')
  })
})

describe('token endpoint: resource (RFC 8707 §2) and audience', () => {
  it.each([
    ['a relative resource', 'resource=%2Fapi'],
    ['a resource without a scheme', 'resource=api.example.com'],
    ['a resource with a #fragment', `resource=${encodeURIComponent('https://api.example.com#frag')}`],
    ['a resource with an empty #fragment', `resource=${encodeURIComponent('https://api.example.com#')}`],
    ['an unregistered resource', `resource=${encodeURIComponent('https://evil.example.com')}`],
    ["another client's resource", `resource=${encodeURIComponent('https://other.example.com')}`],
    ['a resource given twice', `resource=${encodeURIComponent('https://api.example.com')}&resource=urn%3Aapi%3Ab`],
    ['the same resource given twice', `resource=urn%3Aapi%3Ab&resource=urn%3Aapi%3Ab`],
    ['an unregistered audience', 'audience=https%3A%2F%2Fevil.example.com'],
    ['a relative audience', 'audience=%2Fapi'],
    ['an audience given twice', 'audience=urn%3Aapi%3Ab&audience=urn%3Aapi%3Ab'],
  ])('refuses %s with invalid_target', async (_name, param) => {
    const { post, deps } = await setup()
    await expectError(await post(`${GRANT}&${param}`), 400, 'invalid_target', deps)
  })

  it('refuses resource and audience together with invalid_request', async () => {
    const { post, deps } = await setup()
    await expectError(
      await post(`${GRANT}&resource=urn%3Aapi%3Ab&audience=urn%3Aapi%3Ab`),
      400,
      'invalid_request',
      deps,
    )
  })

  it("uses the client's first audience when neither is given", async () => {
    const { post, deps } = await setup()
    const { payload } = await expectToken(await post(GRANT), deps, 'https://api.example.com')
    expect(payload.aud).toBe('https://api.example.com')
  })

  it.each(['resource', 'audience'])('puts a chosen second audience into aud (%s)', async (param) => {
    const { post, deps } = await setup()
    const { payload } = await expectToken(await post(`${GRANT}&${param}=urn%3Aapi%3Ab`), deps, 'urn:api:b')
    expect(payload.aud).toBe('urn:api:b')
  })
})

describe('token endpoint: body size (16 KiB at most, README)', () => {
  const LIMIT = 16 * 1024
  const padded = (size: number) => {
    const head = `${GRANT}&scope=read&pad=`
    return head + 'x'.repeat(size - head.length)
  }

  it('processes a body of exactly 16 KiB', async () => {
    const { post, deps } = await setup()
    const body = padded(LIMIT)
    expect(Buffer.byteLength(body)).toBe(LIMIT)
    await expectToken(await post(body, { 'content-length': String(LIMIT) }), deps)
  })

  it('processes a streamed body of exactly 16 KiB without Content-Length', async () => {
    const { post, deps } = await setup()
    const bytes = new TextEncoder().encode(padded(LIMIT))
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < bytes.length; i += 1000) controller.enqueue(bytes.slice(i, i + 1000))
        controller.close()
      },
    })
    await expectToken(await post(stream), deps)
  })

  it('answers 16 KiB + 1 with Content-Length with 413 invalid_request', async () => {
    const { post, deps } = await setup()
    const body = padded(LIMIT + 1)
    const res = await post(body, { 'content-length': String(LIMIT + 1) })
    await expectError(res, 413, 'invalid_request', deps)
  })

  it('answers a declared 10 MiB with 413 before reading the body', async () => {
    const { post, deps } = await setup()
    await expectError(await post(GRANT, { 'content-length': String(10 * 1024 * 1024) }), 413, 'invalid_request', deps)
  })

  it('answers a streamed 10 MiB body without Content-Length with 413, having read at most 16 KiB plus one chunk', async () => {
    const { post, deps } = await setup()
    const CHUNK = 1024
    let produced = 0
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (produced >= 10 * 1024 * 1024) return controller.close()
        produced += CHUNK
        controller.enqueue(new Uint8Array(CHUNK).fill(0x78))
      },
    })
    const started = performance.now()
    const res = await post(stream)
    await expectError(res, 413, 'invalid_request', deps)
    expect(performance.now() - started).toBeLessThan(1000)
    // the stream's queue may hold one more chunk than the reader took
    expect(produced).toBeLessThanOrEqual(LIMIT + 2 * CHUNK)
  })
})

describe('token endpoint: encodings (broken percent-escapes and UTF-8)', () => {
  const rawInvalidUtf8 = new Uint8Array([...new TextEncoder().encode(`${GRANT}&scope=`), 0xff, 0xfe, 0x72])

  it.each([
    ['%ZZ in grant_type', 'grant_type=%ZZ'],
    ['%FF%FE in scope', `${GRANT}&scope=%FF%FE`],
    ['a lone surrogate in scope', `${GRANT}&scope=%ED%A0%80`],
    ['a lone surrogate in client_id', `${GRANT}&client_id=%ED%A0%80`],
    ['%ZZ in resource', `${GRANT}&resource=https%3A%2F%2Fapi.example.com%ZZ`],
    ['%ZZ in a parameter name', `${GRANT}&sc%ZZope=read`],
    ['a truncated escape', `${GRANT}&scope=read%2`],
    ['a truncated UTF-8 sequence', `${GRANT}&scope=%E2%82`],
  ])('refuses %s with invalid_request', async (_name, body) => {
    const { post, deps } = await setup()
    await expectError(await post(body), 400, 'invalid_request', deps)
  })

  it('refuses raw invalid UTF-8 bytes with invalid_request', async () => {
    const { post, deps } = await setup()
    await expectError(await post(rawInvalidUtf8), 400, 'invalid_request', deps)
  })
})

describe('token endpoint: client authentication (RFC 6749 §2.3)', () => {
  it.each([
    ['an empty Basic header', 'Basic'],
    ['Basic with only spaces', 'Basic    '],
    ['non-base64 Basic credentials', 'Basic !!!not-base64!!!'],
    ['unpadded base64', `Basic ${Buffer.from('svc-a:tks_x').toString('base64').replace(/=+$/, '')}`],
    ['base64 without a colon', `Basic ${Buffer.from('svc-a').toString('base64')}`],
    ['base64 of invalid UTF-8', `Basic ${Buffer.from([0xff, 0x3a, 0xfe]).toString('base64')}`],
  ])('refuses %s with 400 invalid_request', async (_name, authorization) => {
    const { post, deps } = await setup()
    await expectError(await post(GRANT, { authorization }), 400, 'invalid_request', deps)
  })

  it('accepts the Basic scheme name in any case', async () => {
    const { post, deps } = await setup()
    await expectToken(await post(GRANT, { authorization: A.replace('Basic', 'bASIC') }), deps)
  })

  it.each([
    ['Bearer x', 'Bearer x'],
    ['Digest', 'Digest username="svc-a"'],
    ['a bare token', 'c3ZjLWE6dGtzX3NlY3JldC1vZi1h'],
  ])('answers another scheme (%s) alone with 401 invalid_client', async (_name, authorization) => {
    const { post, deps } = await setup()
    await expectError(await post(GRANT, { authorization }), 401, 'invalid_client', deps)
  })

  describe('credentials with reserved characters (RFC 6749 §2.3.1: form-encoded, then Basic)', () => {
    const SECRET = 'tks_a:b%c+d&e f'
    const ID = 'svc.special'
    const special = () => setup({ clients: [{ id: ID, secret: SECRET, scopes: ['read'] }] })

    it('accepts a secret with : % + & and space, percent-encoded in Basic', async () => {
      const { post, deps } = await special()
      await expectToken(await post(GRANT, { authorization: basic(ID, SECRET) }), deps)
    })

    it('accepts + for a space, and an unencoded colon in the secret', async () => {
      const { post, deps } = await special()
      const encoded = `${ID}:tks_a:b%25c%2Bd%26e+f`
      await expectToken(await post(GRANT, { authorization: `Basic ${Buffer.from(encoded).toString('base64')}` }), deps)
    })

    it('accepts the same secret form-encoded with client_secret_post', async () => {
      const { post, deps } = await special()
      const body = `${GRANT}&client_id=${ID}&client_secret=${encodeURIComponent(SECRET)}`
      await expectToken(await post(body, { authorization: undefined }), deps)
    })

    it('decodes an unencoded + in the secret to a space, so the secret is wrong: 401', async () => {
      const { post, deps } = await special()
      const encoded = `${ID}:tks_a:b%25c+d%26e%20f`
      await expectError(
        await post(GRANT, { authorization: `Basic ${Buffer.from(encoded).toString('base64')}` }),
        401,
        'invalid_client',
        deps,
      )
    })

    it('looks up an id with reserved characters as that id (unknown here: 401, not 400)', async () => {
      const { post, deps } = await special()
      const res = await post(GRANT, { authorization: basic('a:b%c+d&e f', SECRET) })
      await expectError(res, 401, 'invalid_client', deps)
    })

    it.each([
      ['%ZZ in the id', 'svc%ZZ:secret'],
      ['a raw % in the secret', `${ID}:tks_a:b%c+d&e f`],
      ['a truncated escape in the secret', `${ID}:tks_%2`],
      ['%FF%FE in the id', '%FF%FE:secret'],
      ['a lone surrogate in the secret', `${ID}:%ED%A0%80`],
    ])('refuses a broken encoding (%s) with 400 invalid_request', async (_name, credentials) => {
      const { post, deps } = await special()
      const res = await post(GRANT, { authorization: `Basic ${Buffer.from(credentials).toString('base64')}` })
      await expectError(res, 400, 'invalid_request', deps)
    })
  })

  it.each([
    ['Basic and a body client_secret', `${GRANT}&client_secret=tks_secret-of-a`, A],
    ['Basic and a client_assertion', `${GRANT}&client_assertion=x.y.z`, A],
    [
      'Basic and a client_assertion_type',
      `${GRANT}&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer`,
      A,
    ],
    [
      'a body secret and a client_assertion',
      `${GRANT}&client_id=svc-a&client_secret=tks_secret-of-a&client_assertion=x.y.z`,
      undefined,
    ],
  ])(
    'refuses two authentication methods (%s) with 400 invalid_request (RFC 6749 §2.3: one method per request)',
    async (_name, body, authorization) => {
      const { post, deps } = await setup()
      await expectError(await post(body, { authorization }), 400, 'invalid_request', deps)
    },
  )

  it('refuses a body client_id that differs from the Basic one', async () => {
    const { post, deps } = await setup()
    await expectError(await post(`${GRANT}&client_id=svc-b`), 400, 'invalid_request', deps)
  })

  it('accepts a body client_id equal to the Basic one', async () => {
    const { post, deps } = await setup()
    await expectToken(await post(`${GRANT}&client_id=svc-a`), deps)
  })

  it('never reads a client_secret from the query string, and never logs the query (RFC 6749 §2.3.1)', async () => {
    const { post, deps } = await setup()
    const path = `${TOKEN}?client_id=svc-a&client_secret=tks_secret-of-a`
    await expectError(await post(GRANT, { authorization: undefined }, path), 401, 'invalid_client', deps)
    // with a body client_id too: the secret still counts as absent
    await expectError(
      await post(`${GRANT}&client_id=svc-a`, { authorization: undefined }, path),
      401,
      'invalid_client',
      deps,
    )
    expect(deps.logLines.length).toBeGreaterThan(0)
    for (const line of deps.logLines) {
      expect(line).not.toContain('tks_secret-of-a')
      expect(line).not.toContain('client_secret')
      expect(line).not.toContain('?')
    }
  })

  it.each(['/oauth/token', '/oauth/revoke', '/oauth/introspect'])(
    'answers %s without client authentication with 401 invalid_client and a Basic challenge (RFC 6749 §5.2)',
    async (path) => {
      const { post, deps } = await setup()
      await expectError(
        await post(`${GRANT}&token=abc`, { authorization: undefined }, path),
        401,
        'invalid_client',
        deps,
      )
    },
  )

  it('answers a body client_id without a secret with 401 invalid_client', async () => {
    const { post, deps } = await setup()
    await expectError(await post(`${GRANT}&client_id=svc-a`, { authorization: undefined }), 401, 'invalid_client', deps)
  })

  it('answers client_secret without client_id with 400 invalid_request', async () => {
    const { post, deps } = await setup()
    await expectError(
      await post(`${GRANT}&client_secret=tks_secret-of-a`, { authorization: undefined }),
      400,
      'invalid_request',
      deps,
    )
  })

  it.each([
    ['a wrong secret', basic('svc-a', 'tks_wrong')],
    ['an unknown client', basic('svc-zzz', 'tks_secret-of-a')],
    ['no credentials', undefined],
  ])('authenticates before looking at grant_type: unknown grant with %s is 401', async (_name, authorization) => {
    const { post, deps } = await setup()
    await expectError(await post('grant_type=foo', { authorization }), 401, 'invalid_client', deps)
  })

  it('issues a token to client_secret_post', async () => {
    const { post, deps } = await setup()
    const res = await post(`${GRANT}&client_id=svc-a&client_secret=tks_secret-of-a`, { authorization: undefined })
    const { payload } = await expectToken(res, deps)
    expect(payload.client_id).toBe('svc-a')
  })
})

describe('token endpoint: secrets (one answer and one cost for every authentication failure)', () => {
  const snapshot = async (res: Response) => ({
    status: res.status,
    // Each response carries its own request id (README, Request correlation).
    headers: [...res.headers].filter(([name]) => name !== 'date' && name !== 'x-request-id'),
    body: Buffer.from(await res.arrayBuffer()).toString('hex'),
  })

  it('answers a wrong secret, an unknown client, an expired secret and no credentials byte-identically', async () => {
    const { post } = await setup({
      clients: [
        { id: 'svc-a', secret: 'tks_secret-of-a', scopes: ['read'] },
        { id: 'svc-old', secret: 'tks_old', secrets: [{ secret: 'tks_old', expires: T0 - 1 }] },
      ],
    })
    const wrong = await snapshot(await post(GRANT, { authorization: basic('svc-a', 'tks_wrong') }))
    expect(wrong.status).toBe(401)
    const others = [
      await post(GRANT, { authorization: basic('svc-nobody', 'tks_wrong') }),
      await post(GRANT, { authorization: basic('svc-old', 'tks_old') }),
      await post(`${GRANT}&client_id=svc-nobody&client_secret=tks_wrong`, { authorization: undefined }),
      await post(GRANT, { authorization: undefined }),
      await post('grant_type=password', { authorization: basic('svc-nobody', 'x') }),
    ]
    for (const res of others) expect(await snapshot(res)).toEqual(wrong)
  })

  it('hashes and compares once for an unknown client, as for a known one', async () => {
    const { post } = await setup()
    const counts = async (authorization: string) => {
      vi.mocked(digestSecret).mockClear()
      vi.mocked(digestsEqual).mockClear()
      expect((await post(GRANT, { authorization })).status).toBe(401)
      return { hashes: vi.mocked(digestSecret).mock.calls.length, compares: vi.mocked(digestsEqual).mock.calls.length }
    }
    expect(await counts(basic('svc-a', 'tks_wrong'))).toEqual({ hashes: 1, compares: 1 })
    expect(await counts(basic('svc-unknown', 'tks_wrong'))).toEqual({ hashes: 1, compares: 1 })
  })

  it('compares every live secret, even after the first one matches', async () => {
    const { post, deps } = await setup({
      clients: [
        {
          id: 'svc-r',
          secret: 'tks_new',
          secrets: [
            { secret: 'tks_new', expires: null },
            { secret: 'tks_old', expires: T0 + 100 },
          ],
        },
      ],
    })
    await expectToken(await post(GRANT, { authorization: basic('svc-r', 'tks_new') }), deps)
    expect(vi.mocked(digestsEqual).mock.calls.length).toBe(2)
  })

  it('refuses an expired secret and accepts the second live secret during rotation', async () => {
    const { post, deps } = await setup({
      clients: [
        {
          id: 'svc-r',
          secret: 'tks_new',
          secrets: [
            { secret: 'tks_old', expires: T0 + 60 },
            { secret: 'tks_new', expires: null },
          ],
        },
        {
          id: 'svc-x',
          secret: 'tks_gone',
          secrets: [
            { secret: 'tks_gone', expires: T0 - 1 },
            { secret: 'tks_live', expires: null },
          ],
        },
      ],
    })
    await expectToken(await post(GRANT, { authorization: basic('svc-r', 'tks_old') }), deps)
    await expectToken(await post(GRANT, { authorization: basic('svc-r', 'tks_new') }), deps)
    await expectError(await post(GRANT, { authorization: basic('svc-x', 'tks_gone') }), 401, 'invalid_client', deps)
    await expectToken(await post(GRANT, { authorization: basic('svc-x', 'tks_live') }), deps)
  })

  it('stops accepting a rotated-out secret once the clock passes its expiry', async () => {
    const clock = fixedClock()
    const { post, deps } = await setup({
      clock,
      clients: [
        {
          id: 'svc-r',
          secret: 'tks_new',
          secrets: [
            { secret: 'tks_old', expires: T0 + 60 },
            { secret: 'tks_new', expires: null },
          ],
        },
      ],
    })
    clock.set(T0 + 59)
    expect((await post(GRANT, { authorization: basic('svc-r', 'tks_old') })).status).toBe(200)
    clock.set(T0 + 61)
    await expectError(await post(GRANT, { authorization: basic('svc-r', 'tks_old') }), 401, 'invalid_client', deps)
  })
})

describe('token endpoint: lifetime', () => {
  it('honours a per-client TTL in expires_in and exp - iat', async () => {
    const { post, deps } = await setup({ clients: [{ id: 'svc-long', secret: 'tks_long', ttl: 900 }] })
    const { body, payload } = await expectToken(
      await post(GRANT, { authorization: basic('svc-long', 'tks_long') }),
      deps,
    )
    expect(body.expires_in).toBe(900)
    expect(payload.exp! - payload.iat!).toBe(900)
    expect(payload.iat).toBe(T0)
  })

  it('uses the configured TTL for a client without its own', async () => {
    const { post, deps } = await setup({ config: { accessTokenTtl: 120 } })
    const { body, payload } = await expectToken(await post(GRANT), deps)
    expect(body.expires_in).toBe(120)
    expect(payload.exp! - payload.iat!).toBe(120)
  })
})

describe('token endpoint: faults (an unexpected error is a 500 that tells nothing)', () => {
  it('turns an unexpected error into 500 server_error with a fixed message and no stack', async () => {
    const deps = await makeDeps()
    const real = deps.keys
    const broken: KeyStore = {
      records: real.records,
      get size() {
        return real.size
      },
      signingKey: () => {
        throw new Error('boom: /etc/tokensmith/keys/secret.pem "quoted"\nline')
      },
      verificationKey: (kid) => real.verificationKey(kid),
      jwks: () => real.jwks(),
      publishedAlgorithms: () => real.publishedAlgorithms(),
      timelines: () => real.timelines(),
    }
    deps.keys = broken
    const app = createApp(deps)
    const res = await app.request(TOKEN, {
      method: 'POST',
      headers: { 'content-type': FORM, authorization: A },
      body: GRANT,
    })
    const text = await res.clone().text()
    expect(await expectError(res, 500, 'server_error', deps)).toEqual({
      error: 'server_error',
      error_description: 'internal server error',
    })
    expect(text).not.toContain('boom')
    // the detail goes to the log instead
    expect(deps.logLines.some((line) => line.includes('boom') && line.includes('"level":50'))).toBe(true)
  })
})
