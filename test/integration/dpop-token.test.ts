/**
 * DPoP (RFC 9449) at the token endpoint, over a real socket: oauth4webapi's DPoP support gets a bound
 * token; hand-made proofs are refused for every way they can be wrong; server nonces (§8); introspection
 * shows `cnf` (§6.2); and a property over mutated proofs: never a 5xx, a token bound only to a valid proof.
 */
import { randomBytes } from 'node:crypto'
import { request } from 'node:http'

import fc from 'fast-check'
import {
  CompactSign,
  type CryptoKey,
  calculateJwkThumbprint,
  decodeJwt,
  exportJWK,
  generateKeyPair,
  type JWK,
} from 'jose'
import * as oauth from 'oauth4webapi'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { basic, clientEntry, FORM } from '../helpers/make-deps.js'
import { expectError } from '../helpers/oauth-error.js'
import { startTestServer } from '../helpers/test-server.js'

const API = 'https://api.example.com'
const SVC = { id: 'svc-a', secret: 'tks_secret-of-a', audiences: [API], scopes: ['read', 'write'] }
const STRICT = { id: 'svc-dpop', secret: 'tks_secret-of-dpop', audiences: [API] }
const insecure = { [oauth.allowInsecureRequests]: true }
const now = () => Math.floor(Date.now() / 1000)

type Server = Awaited<ReturnType<typeof startTestServer>>
type KeyPair = { privateKey: CryptoKey; publicKey: CryptoKey }

interface ProofParts {
  header?: Record<string, unknown>
  claims?: Record<string, unknown>
  signWith?: CryptoKey | Uint8Array
  alg?: string
}

let key: KeyPair
let otherKey: KeyPair
let publicJwk: JWK
let privateJwk: JWK
let jkt: string

beforeAll(async () => {
  key = await generateKeyPair('ES256', { extractable: true })
  otherKey = await generateKeyPair('ES256', { extractable: true })
  publicJwk = await exportJWK(key.publicKey)
  privateJwk = await exportJWK(key.privateKey)
  jkt = await calculateJwkThumbprint(publicJwk)
})

/** A proof for `htu`, changed by `parts` (an undefined value deletes a member). */
async function makeProof(htu: string, parts: ProofParts = {}): Promise<string> {
  const header: Record<string, unknown> = {
    typ: 'dpop+jwt',
    alg: parts.alg ?? 'ES256',
    jwk: publicJwk,
    ...parts.header,
  }
  const claims: Record<string, unknown> = {
    htm: 'POST',
    htu,
    iat: now(),
    jti: randomBytes(16).toString('base64url'),
    ...parts.claims,
  }
  for (const record of [header, claims])
    for (const [name, value] of Object.entries(record)) if (value === undefined) delete record[name]
  return new CompactSign(Buffer.from(JSON.stringify(claims)))
    .setProtectedHeader(header as { alg: string })
    .sign(parts.signWith ?? key.privateKey)
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')

function tokenRequest(
  server: Server,
  headers: Record<string, string> = {},
  client: { id: string; secret: string } = SVC,
) {
  return fetch(`${server.issuer}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': FORM, authorization: basic(client.id, client.secret), ...headers },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource: API }),
  })
}

/** Two `DPoP` header fields on one request, which fetch would merge: node:http sends them apart. */
function twoDpopHeaders(server: Server, proofs: [string, string]): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${server.issuer}/oauth/token`, { method: 'POST' }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        body += chunk
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.setHeader('content-type', FORM)
    req.setHeader('authorization', basic(SVC.id, SVC.secret))
    req.setHeader('DPoP', proofs)
    req.end(new URLSearchParams({ grant_type: 'client_credentials', resource: API }).toString())
  })
}

async function discover(server: Server): Promise<oauth.AuthorizationServer> {
  const issuer = new URL(server.issuer)
  return oauth.processDiscoveryResponse(
    issuer,
    await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }),
  )
}

describe('DPoP at the token endpoint', () => {
  let server: Server
  let htu: string

  beforeAll(async () => {
    server = await startTestServer({
      clients: [SVC, { id: 'rs', secret: 'tks_secret-of-rs', audiences: [API], resourceServer: true }],
      entries: [{ ...clientEntry(STRICT), require_dpop: true }],
    })
    htu = `${server.issuer}/oauth/token`
  })
  afterAll(async () => {
    await server?.close()
  })

  it('advertises dpop_signing_alg_values_supported (RFC 9449 §5.1), asymmetric only', async () => {
    const as = await discover(server)
    expect(as.dpop_signing_alg_values_supported).toEqual(expect.arrayContaining(['ES256', 'EdDSA', 'PS256']))
    expect(as.dpop_signing_alg_values_supported?.some((alg) => alg === 'none' || alg.startsWith('HS'))).toBe(false)
  })

  it('gives oauth4webapi a token bound to its key', async () => {
    const as = await discover(server)
    const client: oauth.Client = { client_id: SVC.id }
    const keyPair = await generateKeyPair('ES256')
    const dpop = oauth.DPoP(client, keyPair)
    const response = await oauth.clientCredentialsGrantRequest(
      as,
      client,
      oauth.ClientSecretBasic(SVC.secret),
      { resource: API, scope: 'read' },
      { DPoP: dpop, ...insecure },
    )
    expect(response.headers.get('dpop-nonce')).toBeNull()
    const result = await oauth.processClientCredentialsResponse(as, client, response)
    expect(result.token_type).toBe('dpop')
    const claims = decodeJwt(result.access_token)
    expect(claims.cnf).toEqual({ jkt: await dpop.calculateThumbprint() })
    expect(claims.cnf).toEqual({ jkt: await calculateJwkThumbprint(await exportJWK(keyPair.publicKey)) })
  })

  it('answers token_type "DPoP" and no-store for a proof, Bearer without one', async () => {
    const bound = await tokenRequest(server, { DPoP: await makeProof(htu) })
    expect(bound.status).toBe(200)
    expect(bound.headers.get('cache-control')).toBe('no-store')
    const body = (await bound.json()) as Record<string, unknown>
    expect(body.token_type).toBe('DPoP')
    expect(decodeJwt(body.access_token as string).cnf).toEqual({ jkt })

    const plain = (await (await tokenRequest(server)).json()) as Record<string, unknown>
    expect(plain.token_type).toBe('Bearer')
    expect(decodeJwt(plain.access_token as string).cnf).toBeUndefined()
  })

  it('shows cnf and token_type DPoP at introspection (RFC 9449 §6.2)', async () => {
    const bound = (await (await tokenRequest(server, { DPoP: await makeProof(htu) })).json()) as {
      access_token: string
    }
    const plain = (await (await tokenRequest(server)).json()) as { access_token: string }
    const introspect = async (token: string) =>
      (await (
        await fetch(`${server.issuer}/oauth/introspect`, {
          method: 'POST',
          headers: { 'content-type': FORM, authorization: basic('rs', 'tks_secret-of-rs') },
          body: new URLSearchParams({ token }),
        })
      ).json()) as Record<string, unknown>
    expect(await introspect(bound.access_token)).toMatchObject({ active: true, token_type: 'DPoP', cnf: { jkt } })
    const plainAnswer = await introspect(plain.access_token)
    expect(plainAnswer).toMatchObject({ active: true, token_type: 'Bearer' })
    expect(plainAnswer.cnf).toBeUndefined()
  })

  it('refuses a replayed proof', async () => {
    const proof = await makeProof(htu)
    expect((await tokenRequest(server, { DPoP: proof })).status).toBe(200)
    await expectError(await tokenRequest(server, { DPoP: proof }), 400, 'invalid_dpop_proof')
  })

  const refusals: [string, () => Promise<string>][] = [
    ['a wrong htu', () => makeProof(htu, { claims: { htu: `${htu}/x` } })],
    ['another host in htu', () => makeProof(htu, { claims: { htu: 'https://evil.example/oauth/token' } })],
    ['a wrong htm', () => makeProof(htu, { claims: { htm: 'GET' } })],
    ['a stale iat', () => makeProof(htu, { claims: { iat: now() - 600 } })],
    ['an iat in the future', () => makeProof(htu, { claims: { iat: now() + 600 } })],
    ['a private key in jwk', () => makeProof(htu, { header: { jwk: privateJwk } })],
    ['another key than jwk', () => makeProof(htu, { signWith: otherKey.privateKey })],
    ['typ JWT', () => makeProof(htu, { header: { typ: 'JWT' } })],
    ['no jti', () => makeProof(htu, { claims: { jti: undefined } })],
    [
      'alg none',
      async () =>
        `${b64({ typ: 'dpop+jwt', alg: 'none', jwk: publicJwk })}.${b64({ htm: 'POST', htu, iat: now(), jti: 'x' })}.`,
    ],
    [
      'alg none with a signature segment',
      async () =>
        `${b64({ typ: 'dpop+jwt', alg: 'none', jwk: publicJwk })}.${b64({ htm: 'POST', htu, iat: now(), jti: 'y' })}.AAAA`,
    ],
    [
      'HS256',
      () => {
        const secret = randomBytes(32)
        return makeProof(htu, {
          alg: 'HS256',
          header: { jwk: { kty: 'oct', k: secret.toString('base64url') } },
          signWith: secret,
        })
      },
    ],
    ['an empty header', async () => ''],
    ['garbage', async () => 'not-a-jwt'],
  ]

  it.each(refusals)('refuses %s with 400 invalid_dpop_proof (RFC 9449 §5)', async (_name, build) => {
    const res = await tokenRequest(server, { DPoP: await build() })
    await expectError(res, 400, 'invalid_dpop_proof')
  })

  it('refuses two DPoP header fields (RFC 9449 §4.3 item 1)', async () => {
    const answer = await twoDpopHeaders(server, [await makeProof(htu), await makeProof(htu)])
    expect(answer.status).toBe(400)
    expect(JSON.parse(answer.body)).toMatchObject({ error: 'invalid_dpop_proof' })
  })

  it('checks client authentication before the proof', async () => {
    const res = await tokenRequest(server, { DPoP: 'garbage', authorization: basic(SVC.id, 'wrong') })
    await expectError(res, 401, 'invalid_client')
  })

  it('refuses a require_dpop client without a proof, and binds it with one', async () => {
    await expectError(await tokenRequest(server, {}, STRICT), 400, 'invalid_dpop_proof')
    const res = await tokenRequest(server, { DPoP: await makeProof(htu) }, STRICT)
    expect(res.status).toBe(200)
    const body = (await res.json()) as { access_token: string; token_type: string }
    expect(body.token_type).toBe('DPoP')
    expect(decodeJwt(body.access_token).cnf).toEqual({ jkt })
  })

  it('property: no proof yields a 5xx, and a token is bound only to a valid proof', async () => {
    const secret = randomBytes(32)
    const otherJwk = await exportJWK(otherKey.publicKey)
    // Each part: [its value, whether it keeps the proof valid]; valid 4 times in 5, so about one proof in
    // eight is valid throughout.
    const choice = <T extends readonly [unknown, boolean]>(...options: T[]) =>
      fc.oneof(
        { weight: 4, arbitrary: fc.constantFrom(...options.filter(([, ok]) => ok)) },
        { weight: 1, arbitrary: fc.constantFrom(...options.filter(([, ok]) => !ok)) },
      )
    let validRuns = 0
    let invalidRuns = 0
    const typ = choice<[unknown, boolean]>(['dpop+jwt', true], ['JWT', false], [undefined, false], ['DPOP+JWT', false])
    const alg = choice<[string, boolean]>(
      ['ES256', true],
      ['ES384', false],
      ['HS256', false],
      ['none', false],
      ['RS256', false],
    )
    const jwk = choice<[unknown, boolean]>(
      [publicJwk, true],
      [privateJwk, false],
      [otherJwk, false],
      [undefined, false],
      [{ kty: 'oct', k: secret.toString('base64url') }, false],
      [{ ...publicJwk, crv: 'P-384' }, false],
      ['text', false],
    )
    const extra = choice<[Record<string, unknown>, boolean]>(
      [{}, true],
      [{ kid: 'k1' }, true],
      [{ jku: 'https://evil.example/jwks' }, false],
      [{ x5c: ['AAAA'] }, false],
    )
    const htm = choice<[unknown, boolean]>(['POST', true], ['GET', false], ['post', false], [undefined, false])
    const htuValue = choice<[unknown, boolean]>(
      [htu, true],
      [`${htu}?q=1#f`, true],
      [htu.toUpperCase().replace('/OAUTH/TOKEN', '/oauth/token'), true],
      [`${htu}/`, false],
      ['https://evil.example/oauth/token', false],
      [7, false],
      [undefined, false],
    )
    const iatOffset = choice<[number | undefined | string, boolean]>(
      [0, true],
      [-20, true],
      [-3600, false],
      [3600, false],
      [undefined, false],
      ['now', false],
    )
    const jti = choice<['fresh' | unknown, boolean]>(['fresh', true], ['', false], ['x'.repeat(300), false], [5, false])
    const signer = choice<['own' | 'other' | 'secret' | 'tamper', boolean]>(
      ['own', true],
      ['other', false],
      ['secret', false],
      ['tamper', false],
    )
    const raw = fc.oneof(
      { weight: 9, arbitrary: fc.constant(null) },
      {
        weight: 1,
        arbitrary: fc.string({
          unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)),
          maxLength: 200,
        }),
      },
    )

    await fc.assert(
      fc.asyncProperty(
        fc.record({ typ, alg, jwk, extra, htm, htu: htuValue, iatOffset, jti, signer, raw }),
        async (m) => {
          let proof: string
          let valid: boolean
          if (m.raw !== null) {
            proof = m.raw
            valid = false
          } else {
            valid = [m.typ, m.alg, m.jwk, m.extra, m.htm, m.htu, m.iatOffset, m.jti, m.signer].every(([, ok]) => ok)
            const header: Record<string, unknown> = { typ: m.typ[0], alg: m.alg[0], jwk: m.jwk[0], ...m.extra[0] }
            const [offset] = m.iatOffset
            const claims: Record<string, unknown> = {
              htm: m.htm[0],
              htu: m.htu[0],
              iat: typeof offset === 'number' ? now() + offset : offset === 'now' ? String(now()) : undefined,
              jti: m.jti[0] === 'fresh' ? randomBytes(16).toString('base64url') : m.jti[0],
            }
            for (const record of [header, claims])
              for (const [name, value] of Object.entries(record)) if (value === undefined) delete record[name]
            const input = `${b64(header)}.${b64(claims)}`
            const sign = async (): Promise<string> => {
              const [which] = m.signer
              if (which === 'secret' || m.alg[0] === 'HS256')
                return new CompactSign(Buffer.from(JSON.stringify(claims)))
                  .setProtectedHeader({ ...header, alg: 'HS256' })
                  .sign(secret)
              const signed = await new CompactSign(Buffer.from(JSON.stringify(claims)))
                .setProtectedHeader({ ...header, alg: 'ES256' })
                .sign(which === 'other' ? otherKey.privateKey : key.privateKey)
              return `${input}.${signed.split('.')[2]}`
            }
            proof = m.alg[0] === 'none' ? `${input}.AAAA` : await sign()
            if (m.signer[0] === 'tamper') proof = `${proof.slice(0, -4)}${proof.slice(-4) === 'AAAA' ? 'BBBB' : 'AAAA'}`
          }
          const res = await tokenRequest(server, { DPoP: proof })
          const body = (await res.json()) as Record<string, unknown>
          expect(res.status).toBeLessThan(500)
          if (valid) {
            validRuns++
            expect({ status: res.status, body }).toMatchObject({ status: 200, body: { token_type: 'DPoP' } })
            expect(decodeJwt(body.access_token as string).cnf).toEqual({ jkt })
          } else {
            invalidRuns++
            expect({ status: res.status, body }).toMatchObject({ status: 400, body: { error: 'invalid_dpop_proof' } })
            expect(body.access_token).toBeUndefined()
          }
        },
      ),
      { numRuns: 150 },
    )
    expect(validRuns).toBeGreaterThan(0)
    expect(invalidRuns).toBeGreaterThan(0)
  }, 60_000)
})

describe('DPoP server nonces (RFC 9449 §8)', () => {
  let server: Server
  let htu: string

  beforeAll(async () => {
    server = await startTestServer({ clients: [SVC], config: { dpopNonce: true } })
    htu = `${server.issuer}/oauth/token`
  })
  afterAll(async () => {
    await server?.close()
  })

  it('answers use_dpop_nonce with a DPoP-Nonce, then accepts a proof carrying it', async () => {
    const first = await tokenRequest(server, { DPoP: await makeProof(htu) })
    const nonce = first.headers.get('dpop-nonce')
    expect(nonce).toMatch(/^[A-Za-z0-9_-]{27}$/)
    await expectError(first, 400, 'use_dpop_nonce')

    const second = await tokenRequest(server, { DPoP: await makeProof(htu, { claims: { nonce } }) })
    expect(second.status).toBe(200)
    expect(second.headers.get('dpop-nonce')).toMatch(/^[A-Za-z0-9_-]{27}$/)
    expect(((await second.json()) as Record<string, unknown>).token_type).toBe('DPoP')
  })

  it.each(['made-up', 'A'.repeat(27), ''])('answers use_dpop_nonce to the nonce %j', async (nonce) => {
    const res = await tokenRequest(server, { DPoP: await makeProof(htu, { claims: { nonce } }) })
    expect(res.headers.get('dpop-nonce')).toMatch(/^[A-Za-z0-9_-]{27}$/)
    await expectError(res, 400, 'use_dpop_nonce')
  })

  it('still answers invalid_dpop_proof, not use_dpop_nonce, to an otherwise bad proof', async () => {
    const res = await tokenRequest(server, { DPoP: await makeProof(htu, { claims: { htm: 'GET' } }) })
    await expectError(res, 400, 'invalid_dpop_proof')
  })

  it('lets oauth4webapi retry with the nonce (isDPoPNonceError) and get a bound token', async () => {
    const as = await discover(server)
    const client: oauth.Client = { client_id: SVC.id }
    const dpop = oauth.DPoP(client, await generateKeyPair('ES256'))
    const attempt = async () =>
      oauth.processClientCredentialsResponse(
        as,
        client,
        await oauth.clientCredentialsGrantRequest(
          as,
          client,
          oauth.ClientSecretBasic(SVC.secret),
          { resource: API },
          {
            DPoP: dpop,
            ...insecure,
          },
        ),
      )
    let retried = false
    let result: oauth.TokenEndpointResponse
    try {
      result = await attempt()
    } catch (error) {
      expect(oauth.isDPoPNonceError(error)).toBe(true)
      retried = true
      result = await attempt()
    }
    expect(retried).toBe(true)
    expect(result.token_type).toBe('dpop')
    expect(decodeJwt(result.access_token).cnf).toEqual({ jkt: await dpop.calculateThumbprint() })
  })
})
