import { createSign, generateKeyPairSync, randomBytes } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import { type CryptoKey, calculateJwkThumbprint, decodeJwt, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose'
import * as oauth from 'oauth4webapi'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ClientEntry } from '../../src/clients/registry.js'
import { DenylistUnavailableError } from '../../src/denylist/denylist.js'
import { createMemoryDenylist } from '../../src/denylist/memory.js'
import { systemClock } from '../../src/clock.js'
import { basic, FORM } from '../helpers/make-deps.js'
import { expectError } from '../helpers/oauth-error.js'
import { startTestServer } from '../helpers/test-server.js'

// private_key_jwt client authentication (RFC 7523 §2.2 as updated by RFC 10070) end to end over a
// real socket: oauth4webapi as the client library, jose's SignJWT as a second, independent signer.

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'
const API = 'https://api.example.com'

interface Signer {
  privateKey: CryptoKey
  publicJwk: JWK
  kid: string
}

async function makeSigner(alg: 'ES256' | 'EdDSA' | 'PS256' = 'ES256'): Promise<Signer> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
  const publicJwk = await exportJWK(publicKey)
  const kid = await calculateJwkThumbprint(publicJwk)
  return { privateKey, publicJwk: { ...publicJwk, kid, alg, use: 'sig' }, kid }
}

function pkjwtEntry(
  id: string,
  keys: { jwks?: JWK[]; jwksUri?: string },
  extra: Partial<ClientEntry> = {},
): ClientEntry {
  return {
    client_id: id,
    secrets: [],
    scopes: ['read', 'write'],
    audiences: [API],
    grant_types: ['client_credentials'],
    resource_server: false,
    token_endpoint_auth_method: 'private_key_jwt',
    ...(keys.jwks && { jwks: { keys: keys.jwks } }),
    ...(keys.jwksUri && { jwks_uri: keys.jwksUri }),
    ...extra,
  }
}

const now = () => Math.floor(Date.now() / 1000)

describe('private_key_jwt client authentication', () => {
  let server: Awaited<ReturnType<typeof startTestServer>>
  let jwksServer: Server
  let jwksUri: string
  let es256: Signer
  let eddsa: Signer
  let remote: Signer
  let stranger: Signer
  let weakRsa: { privateKeyPem: string; jwk: JWK }
  let as: oauth.AuthorizationServer
  const insecure = { [oauth.allowInsecureRequests]: true }
  let jwksFetches = 0

  beforeAll(async () => {
    ;[es256, eddsa, remote, stranger] = await Promise.all([
      makeSigner('ES256'),
      makeSigner('EdDSA'),
      makeSigner('ES256'),
      makeSigner('ES256'),
    ])
    // RSA under 2048 bits: no library signs with it, so node:crypto does.
    const weak = generateKeyPairSync('rsa', { modulusLength: 1024 })
    weakRsa = {
      privateKeyPem: weak.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      jwk: { ...(weak.publicKey.export({ format: 'jwk' }) as JWK), kid: 'weak-rsa', alg: 'RS256', use: 'sig' },
    }
    // A client that publishes its keys itself (jwks_uri): a real loopback HTTP server.
    jwksServer = createServer((_req, res) => {
      jwksFetches++
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ keys: [remote.publicJwk, weakRsa.jwk] }))
    })
    await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve))
    const address = jwksServer.address()
    if (address === null || typeof address === 'string') throw new Error('no address')
    jwksUri = `http://127.0.0.1:${address.port}/jwks.json`

    server = await startTestServer({
      // The negative matrix sends dozens of failures from one address: the failure limit (tested on its
      // own) would answer 429 before the assertion is looked at.
      config: { authFailureLimit: 10_000, authFailureLimitPerAddress: 1_000_000 },
      clients: [{ id: 'svc-secret', secret: 'tks_secret-of-svc', audiences: [API] }],
      entries: [
        pkjwtEntry('svc-jwt', { jwks: [es256.publicJwk, eddsa.publicJwk] }),
        pkjwtEntry('svc-typed', { jwks: [es256.publicJwk] }, { require_typ: true }),
        pkjwtEntry('svc-remote', { jwksUri }),
        pkjwtEntry('svc-other', { jwks: [stranger.publicJwk] }),
      ],
    })
    const issuer = new URL(server.issuer)
    as = await oauth.processDiscoveryResponse(
      issuer,
      await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }),
    )
  })
  afterAll(async () => {
    await server?.close()
    await new Promise((resolve) => jwksServer?.close(resolve))
  })

  /** A valid assertion for `clientId`, changed by `header` and `claims` (undefined deletes). */
  async function assertion(
    signer: Signer,
    clientId: string,
    options: { header?: Record<string, unknown>; claims?: Record<string, unknown>; alg?: string } = {},
  ): Promise<string> {
    const claims: Record<string, unknown> = {
      iss: clientId,
      sub: clientId,
      aud: server.issuer,
      iat: now(),
      exp: now() + 60,
      jti: randomBytes(16).toString('base64url'),
      ...options.claims,
    }
    for (const [name, value] of Object.entries(claims)) if (value === undefined) delete claims[name]
    const alg = options.alg ?? (signer === eddsa ? 'EdDSA' : 'ES256')
    return new SignJWT(claims).setProtectedHeader({ alg, kid: signer.kid, ...options.header }).sign(signer.privateKey)
  }

  const tokenRequest = (fields: Record<string, string>, headers: Record<string, string> = {}) =>
    fetch(`${server.issuer}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': FORM, ...headers },
      body: new URLSearchParams({ grant_type: 'client_credentials', ...fields }),
    })

  const withAssertion = (clientAssertion: string, clientId?: string) =>
    tokenRequest({
      ...(clientId !== undefined && { client_id: clientId }),
      client_assertion_type: JWT_BEARER,
      client_assertion: clientAssertion,
    })

  /** The last refusal the server logged: its stable reason code. */
  function lastRefusal(): Record<string, unknown> | undefined {
    return server.deps.logLines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((record) => record.msg === 'client assertion refused')
      .at(-1)
  }

  it('oauth4webapi gets a token with PrivateKeyJwt, and the token names the client', async () => {
    const response = await oauth.clientCredentialsGrantRequest(
      as,
      { client_id: 'svc-jwt' },
      oauth.PrivateKeyJwt({ key: es256.privateKey, kid: es256.kid }),
      new URLSearchParams({ scope: 'read' }),
      insecure,
    )
    const tokens = await oauth.processClientCredentialsResponse(as, { client_id: 'svc-jwt' }, response)
    expect(tokens.scope).toBe('read')
    expect(decodeJwt(tokens.access_token)).toMatchObject({ client_id: 'svc-jwt', sub: 'svc-jwt', aud: API })
  })

  it('jose SignJWT, an independent signer, gets a token with an EdDSA key and the explicit typ', async () => {
    const signed = await assertion(eddsa, 'svc-jwt', { header: { typ: 'client-authentication+jwt' } })
    const res = await withAssertion(signed, 'svc-jwt')
    expect(res.status).toBe(200)
    expect(decodeJwt(((await res.json()) as { access_token: string }).access_token).client_id).toBe('svc-jwt')
  })

  it('takes the client from the assertion when client_id is left out (RFC 7521 section 4.2)', async () => {
    const res = await withAssertion(await assertion(es256, 'svc-jwt'))
    expect(res.status).toBe(200)
  })

  it('fetches a client jwks_uri once and uses the cached set after', async () => {
    const before = jwksFetches
    for (let i = 0; i < 3; i++) {
      const res = await withAssertion(await assertion(remote, 'svc-remote'), 'svc-remote')
      expect(res.status).toBe(200)
    }
    expect(jwksFetches - before).toBeLessThanOrEqual(1)
  })

  it('accepts an assertion issued 8 seconds ahead of the server clock (within the tolerance)', async () => {
    const res = await withAssertion(await assertion(es256, 'svc-jwt', { claims: { iat: now() + 8, nbf: now() + 8 } }))
    expect(res.status).toBe(200)
  })

  describe('refuses with 401 invalid_client, and logs the reason', () => {
    const cases: [string, () => Promise<string>, string, string?][] = [
      [
        'aud = the token endpoint URL',
        () => assertion(es256, 'svc-jwt', { claims: { aud: `${server.issuer}/oauth/token` } }),
        'aud_invalid',
      ],
      [
        'aud as an array with two members',
        () => assertion(es256, 'svc-jwt', { claims: { aud: [server.issuer, `${server.issuer}/oauth/token`] } }),
        'aud_invalid',
      ],
      [
        'aud as a one-member array (RFC 10070: a single string)',
        () => assertion(es256, 'svc-jwt', { claims: { aud: [server.issuer] } }),
        'aud_invalid',
      ],
      ['aud missing', () => assertion(es256, 'svc-jwt', { claims: { aud: undefined } }), 'aud_invalid'],
      [
        'aud unrelated',
        () => assertion(es256, 'svc-jwt', { claims: { aud: 'https://elsewhere.example' } }),
        'aud_invalid',
      ],
      [
        'an expired assertion',
        () => assertion(es256, 'svc-jwt', { claims: { exp: now() - 120, iat: now() - 180 } }),
        'expired',
      ],
      ['exp too far ahead', () => assertion(es256, 'svc-jwt', { claims: { exp: now() + 3600 } }), 'exp_too_far'],
      ['no exp', () => assertion(es256, 'svc-jwt', { claims: { exp: undefined } }), 'exp_missing'],
      ['iat more than 60 s ahead', () => assertion(es256, 'svc-jwt', { claims: { iat: now() + 61 } }), 'iat_in_future'],
      ['nbf more than 60 s ahead', () => assertion(es256, 'svc-jwt', { claims: { nbf: now() + 61 } }), 'nbf_in_future'],
      ['no jti', () => assertion(es256, 'svc-jwt', { claims: { jti: undefined } }), 'jti_missing'],
      ['a key the client did not register', () => assertion(stranger, 'svc-jwt'), 'unknown_key'],
      [
        'iss different from sub',
        () => assertion(es256, 'svc-jwt', { claims: { sub: 'svc-other' } }),
        'iss_sub_mismatch',
      ],
      ['sub missing', () => assertion(es256, 'svc-jwt', { claims: { sub: undefined } }), 'iss_sub_mismatch'],
      ['no typ where the client requires it', () => assertion(es256, 'svc-typed'), 'typ_required', 'svc-typed'],
      ['a wrong typ', () => assertion(es256, 'svc-typed', { header: { typ: 'JWT' } }), 'typ_mismatch', 'svc-typed'],
      [
        'a jku header',
        () => assertion(es256, 'svc-jwt', { header: { jku: `${server.issuer}/.well-known/jwks.json` } }),
        'forbidden_header',
      ],
      ['a jwk header', () => assertion(es256, 'svc-jwt', { header: { jwk: es256.publicJwk } }), 'forbidden_header'],
      [
        'a broken signature',
        async () => {
          const [h, p, s] = (await assertion(es256, 'svc-jwt')).split('.')
          return `${h}.${p}.${s?.startsWith('A') ? `B${s.slice(1)}` : `A${s?.slice(1)}`}`
        },
        'bad_signature',
      ],
      [
        'alg none',
        async () => {
          const claims = { iss: 'svc-jwt', sub: 'svc-jwt', aud: server.issuer, exp: now() + 60, jti: 'none-1' }
          const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url')
          return `${part({ alg: 'none', kid: es256.kid })}.${part(claims)}.`
        },
        'format',
      ],
      [
        'HS256 keyed with the public key',
        async () => {
          const claims = { iss: 'svc-jwt', sub: 'svc-jwt', aud: server.issuer, exp: now() + 60, jti: 'hs-1' }
          return new SignJWT(claims)
            .setProtectedHeader({ alg: 'HS256', kid: es256.kid })
            .sign(new TextEncoder().encode(JSON.stringify(es256.publicJwk)))
        },
        'alg_not_allowed',
      ],
      [
        'RSA under 2048 bits',
        async () => {
          const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url')
          const input = `${part({ alg: 'RS256', kid: 'weak-rsa' })}.${part({ iss: 'svc-remote', sub: 'svc-remote', aud: server.issuer, exp: now() + 60, jti: randomBytes(8).toString('hex') })}`
          const signature = createSign('RSA-SHA256').update(input).sign(weakRsa.privateKeyPem).toString('base64url')
          return `${input}.${signature}`
        },
        '*',
        'svc-remote',
      ],
    ]
    it.each(cases)('%s', async (_name, make, reason, clientId = 'svc-jwt') => {
      const res = await withAssertion(await make(), clientId)
      await expectError(res, 401, 'invalid_client')
      if (reason !== '*')
        expect(lastRefusal()).toMatchObject({ method: 'private_key_jwt', reason, client_id: clientId })
    })

    it('an assertion of another client (client_id names one client, the assertion another)', async () => {
      await expectError(await withAssertion(await assertion(stranger, 'svc-other'), 'svc-jwt'), 401, 'invalid_client')
    })

    it('a reused jti, before exp + tolerance', async () => {
      const once = await assertion(es256, 'svc-jwt')
      expect((await withAssertion(once, 'svc-jwt')).status).toBe(200)
      await expectError(await withAssertion(once, 'svc-jwt'), 401, 'invalid_client')
      expect(lastRefusal()).toMatchObject({ reason: 'jti_replayed' })
    })

    it('an assertion for a client that authenticates with a secret', async () => {
      await expectError(await withAssertion(await assertion(es256, 'svc-secret'), 'svc-secret'), 401, 'invalid_client')
    })

    it('an unknown client', async () => {
      await expectError(await withAssertion(await assertion(es256, 'svc-nobody'), 'svc-nobody'), 401, 'invalid_client')
    })

    it('a secret for a private_key_jwt client (it has none)', async () => {
      await expectError(await tokenRequest({}, { authorization: basic('svc-jwt', '') }), 401, 'invalid_client')
    })

    it('never logs the assertion', async () => {
      const signed = await assertion(es256, 'svc-jwt', { claims: { aud: 'https://elsewhere.example' } })
      await withAssertion(signed, 'svc-jwt')
      expect(server.deps.logLines.join('\n')).not.toContain(signed.split('.')[1])
    })
  })

  describe('malformed requests: 400 invalid_request', () => {
    it('client_assertion_type missing or wrong', async () => {
      const signed = await assertion(es256, 'svc-jwt')
      await expectError(await tokenRequest({ client_id: 'svc-jwt', client_assertion: signed }), 400, 'invalid_request')
      await expectError(
        await tokenRequest({ client_id: 'svc-jwt', client_assertion_type: 'urn:x', client_assertion: signed }),
        400,
        'invalid_request',
      )
    })

    it('a secret and an assertion together', async () => {
      const signed = await assertion(es256, 'svc-jwt')
      const res = await tokenRequest(
        { client_id: 'svc-secret', client_assertion_type: JWT_BEARER, client_assertion: signed },
        { authorization: basic('svc-secret', 'tks_secret-of-svc') },
      )
      await expectError(res, 400, 'invalid_request')
    })
  })

  it('revocation and introspection accept the same client authentication', async () => {
    const res = await withAssertion(await assertion(es256, 'svc-jwt'), 'svc-jwt')
    const { access_token } = (await res.json()) as { access_token: string }
    const call = async (path: string, fields: Record<string, string>) =>
      fetch(`${server.issuer}${path}`, {
        method: 'POST',
        headers: { 'content-type': FORM },
        body: new URLSearchParams({
          client_id: 'svc-jwt',
          client_assertion_type: JWT_BEARER,
          client_assertion: await assertion(es256, 'svc-jwt'),
          ...fields,
        }),
      })
    expect((await call('/oauth/revoke', { token: access_token })).status).toBe(200)
    // An ordinary client may introspect only as a resource server: refused, but authenticated (not 401).
    expect((await call('/oauth/introspect', { token: access_token })).status).not.toBe(401)
  })

  it('a final valid control still gets a token', async () => {
    expect((await withAssertion(await assertion(es256, 'svc-jwt'), 'svc-jwt')).status).toBe(200)
  })
})

describe('private_key_jwt with the replay store unreachable', () => {
  it('answers 503, since single use cannot be guaranteed', async () => {
    const memory = createMemoryDenylist({ clock: systemClock })
    const denylist = {
      ...memory,
      replayCache: () => ({
        useOnce: () => Promise.reject(new DenylistUnavailableError('Redis is down')),
      }),
    }
    const signer = await makeSigner('ES256')
    const server = await startTestServer({ entries: [pkjwtEntry('svc-jwt', { jwks: [signer.publicJwk] })], denylist })
    try {
      const claims = { iss: 'svc-jwt', sub: 'svc-jwt', aud: server.issuer, exp: now() + 60, jti: 'j-1' }
      const signed = await new SignJWT(claims)
        .setProtectedHeader({ alg: 'ES256', kid: signer.kid })
        .sign(signer.privateKey)
      const res = await fetch(`${server.issuer}/oauth/token`, {
        method: 'POST',
        headers: { 'content-type': FORM },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          client_id: 'svc-jwt',
          client_assertion_type: JWT_BEARER,
          client_assertion: signed,
        }),
      })
      await expectError(res, 503, 'temporarily_unavailable')
      expect(res.headers.get('retry-after')).toMatch(/^[1-9][0-9]*$/)
    } finally {
      await server.close()
    }
  })
})
