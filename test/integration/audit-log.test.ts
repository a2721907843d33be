import { randomBytes } from 'node:crypto'
import {
  CompactSign,
  type CryptoKey,
  calculateJwkThumbprint,
  decodeJwt,
  exportJWK,
  generateKeyPair,
  type JWK,
  SignJWT,
} from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ClientEntry } from '../../src/clients/registry.js'
import { trustEntrySchema } from '../../src/federation/trust-entry.js'
import { AUDIT_EVENTS } from '../../src/observability/audit.js'
import { basic, FORM } from '../helpers/make-deps.js'
import { kubernetesClaims, startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js'
import { startTestServer } from '../helpers/test-server.js'

// Issue 12: every security-relevant act is one audit record with a fixed field set, asserted over
// the captured log of a whole scripted session on a real socket; redaction is structural (no secret,
// token, assertion, DPoP proof or Authorization header value reaches the log anywhere); and every
// record written during a request carries that request's id, the one answered in X-Request-Id.

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'
const API = 'https://api.example.com'
const now = () => Math.floor(Date.now() / 1000)
/** Fields pino and the correlation add to every record: not part of an event's field set. */
const ENVELOPE = ['level', 'time', 'service', 'msg', 'request_id', 'event']

type Server = Awaited<ReturnType<typeof startTestServer>>
type LogRecord = Record<string, unknown>

const SECRET_A = 'tks_secret-of-a'
const SECRET_B = 'tks_secret-of-b'
const WRONG_SECRET = 'tks_wrong-secret-never-logged'

describe('audit log of a scripted session', () => {
  let server: Server
  let signer: { privateKey: CryptoKey; kid: string; publicJwk: JWK }
  let stranger: { privateKey: CryptoKey; kid: string }
  let dpopKey: { privateKey: CryptoKey; publicJwk: JWK; jkt: string }
  /** Every value that must never reach the log, by what it is. */
  const secrets: [string, string][] = []
  /** Each request's id as answered, and the log lines written while it was handled. */
  const requests: { id: string | null; lines: string[] }[] = []

  beforeAll(async () => {
    const pair = await generateKeyPair('ES256', { extractable: true })
    const publicJwk = await exportJWK(pair.publicKey)
    const kid = await calculateJwkThumbprint(publicJwk)
    signer = { privateKey: pair.privateKey, kid, publicJwk: { ...publicJwk, kid, alg: 'ES256', use: 'sig' } }
    const other = await generateKeyPair('ES256')
    stranger = { privateKey: other.privateKey, kid }
    const dpop = await generateKeyPair('ES256', { extractable: true })
    const dpopJwk = await exportJWK(dpop.publicKey)
    dpopKey = { privateKey: dpop.privateKey, publicJwk: dpopJwk, jkt: await calculateJwkThumbprint(dpopJwk) }
    const jwtClient: ClientEntry = {
      client_id: 'svc-jwt',
      secrets: [],
      scopes: ['read'],
      audiences: [API],
      grant_types: ['client_credentials'],
      resource_server: false,
      token_endpoint_auth_method: 'private_key_jwt',
      jwks: { keys: [signer.publicJwk] },
    }
    server = await startTestServer({
      // Three failures per (client id, address) trip the limit; the address limit stays out of the way.
      config: { authFailureLimit: 3, authFailureLimitPerAddress: 1000 },
      clients: [
        { id: 'svc-a', secret: SECRET_A, scopes: ['read', 'write'], audiences: [API] },
        { id: 'svc-b', secret: SECRET_B, scopes: ['read'], audiences: [API] },
      ],
      entries: [jwtClient],
    })
  })

  afterAll(async () => {
    await server?.close()
  })

  /** Sends one request, keeping what it logged and the id it was answered with. */
  async function send(path: string, init: { headers?: Record<string, string>; body?: string }): Promise<Response> {
    const headers = { 'content-type': FORM, ...init.headers }
    for (const [name, value] of Object.entries(headers)) {
      if (name === 'authorization') secrets.push([`Authorization header of ${path}`, value])
      if (name === 'authorization') secrets.push([`Authorization credentials of ${path}`, value.slice(6)])
      if (name === 'dpop') secrets.push(['DPoP proof', value], ...segments('DPoP proof', value))
    }
    const before = server.deps.logLines.length
    const res = await fetch(`${server.issuer}${path}`, { method: 'POST', headers, body: init.body ?? '' })
    const text = await res.text()
    requests.push({ id: res.headers.get('x-request-id'), lines: server.deps.logLines.slice(before) })
    return new Response(text, { status: res.status, headers: res.headers })
  }

  /** The payload and signature segments of a compact JWS (the header may be shared by many). */
  const segments = (what: string, jws: string): [string, string][] => {
    const [, payload = '', signature = ''] = jws.split('.')
    return [
      [`${what} payload`, payload],
      [`${what} signature`, signature],
    ]
  }

  async function issued(res: Response): Promise<{ token: string; claims: Record<string, unknown> }> {
    const text = await res.text()
    expect({ status: res.status, text }).toMatchObject({ status: 200 })
    const token = (JSON.parse(text) as { access_token: string }).access_token
    secrets.push(['access token', token], ...segments('access token', token))
    return { token, claims: decodeJwt(token) }
  }

  async function assertion(key: { privateKey: CryptoKey; kid: string }, clientId = 'svc-jwt'): Promise<string> {
    const signed = await new SignJWT({
      iss: clientId,
      sub: clientId,
      aud: server.issuer,
      iat: now(),
      exp: now() + 60,
      jti: randomBytes(16).toString('base64url'),
    })
      .setProtectedHeader({ alg: 'ES256', kid: key.kid })
      .sign(key.privateKey)
    secrets.push(['client assertion', signed], ...segments('client assertion', signed))
    return signed
  }

  async function dpopProof(): Promise<string> {
    const claims = {
      htm: 'POST',
      htu: `${server.issuer}/oauth/token`,
      iat: now(),
      jti: randomBytes(16).toString('base64url'),
    }
    return new CompactSign(Buffer.from(JSON.stringify(claims)))
      .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: dpopKey.publicJwk })
      .sign(dpopKey.privateKey)
  }

  const grant = (extra: Record<string, string> = {}) =>
    new URLSearchParams({ grant_type: 'client_credentials', ...extra }).toString()

  it('writes each act as one event with its exact fields, in order; redacts structurally; correlates', async () => {
    secrets.push(['secret of svc-a', SECRET_A], ['secret of svc-b', SECRET_B], ['wrong secret', WRONG_SECRET])
    const expected: [string, Record<string, unknown>][] = []
    const address = '127.0.0.1'

    // 1. A secret client (Basic), with a caller-chosen request id.
    const a = await issued(
      await send('/oauth/token', {
        headers: { authorization: basic('svc-a', SECRET_A), 'x-request-id': 'session-1' },
        body: grant({ scope: 'read write' }),
      }),
    )
    expect(requests.at(-1)?.id).toBe('session-1')
    expected.push([
      'token.issued',
      {
        client_id: 'svc-a',
        auth_method: 'client_secret_basic',
        jti: a.claims.jti,
        scope: 'read write',
        aud: API,
        exp: a.claims.exp,
      },
    ])

    // 2. private_key_jwt, under a W3C traceparent.
    const traceId = randomBytes(16).toString('hex')
    const jwt = await issued(
      await send('/oauth/token', {
        headers: { traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` },
        body: grant({
          client_id: 'svc-jwt',
          client_assertion_type: JWT_BEARER,
          client_assertion: await assertion(signer),
        }),
      }),
    )
    expect(requests.at(-1)?.id).toBe(traceId)
    expected.push([
      'token.issued',
      {
        client_id: 'svc-jwt',
        auth_method: 'private_key_jwt',
        jti: jwt.claims.jti,
        scope: 'read',
        aud: API,
        exp: jwt.claims.exp,
      },
    ])

    // 3. A DPoP-bound token (RFC 9449 §5), the secret in the body.
    const bound = await issued(
      await send('/oauth/token', {
        headers: { dpop: await dpopProof() },
        body: grant({ client_id: 'svc-b', client_secret: SECRET_B }),
      }),
    )
    expect(bound.claims.cnf).toEqual({ jkt: dpopKey.jkt })
    expected.push([
      'token.issued',
      {
        client_id: 'svc-b',
        auth_method: 'client_secret_post',
        jti: bound.claims.jti,
        scope: 'read',
        aud: API,
        exp: bound.claims.exp,
        dpop_jkt: dpopKey.jkt,
      },
    ])

    // 4. A wrong secret, an assertion signed by another key, and no credentials at all.
    expect(
      (await send('/oauth/token', { headers: { authorization: basic('svc-b', WRONG_SECRET) }, body: grant() })).status,
    ).toBe(401)
    expected.push([
      'auth.failed',
      { client_id: 'svc-b', auth_method: 'client_secret_basic', reason: 'unknown_client_or_wrong_secret', address },
    ])
    const forged = await send('/oauth/token', {
      body: grant({
        client_id: 'svc-jwt',
        client_assertion_type: JWT_BEARER,
        client_assertion: await assertion(stranger),
      }),
    })
    expect(forged.status).toBe(401)
    expected.push([
      'auth.failed',
      { client_id: 'svc-jwt', auth_method: 'private_key_jwt', reason: 'bad_signature', address },
    ])
    expect((await send('/oauth/token', { body: grant() })).status).toBe(401)
    expected.push(['auth.failed', { auth_method: 'none', reason: 'no_credentials', address }])
    // An assertion may name its client only as its `sub` (RFC 7521 §4.2): that is the id claimed.
    const ghost = await send('/oauth/token', {
      body: grant({ client_assertion_type: JWT_BEARER, client_assertion: await assertion(stranger, 'svc-ghost') }),
    })
    expect(ghost.status).toBe(401)
    expected.push([
      'auth.failed',
      { client_id: 'svc-ghost', auth_method: 'private_key_jwt', reason: 'unknown_client', address },
    ])

    // 5. svc-a revokes its token (RFC 7009), then introspects it and svc-b its own (RFC 7662).
    const auth = basic('svc-a', SECRET_A)
    expect((await send('/oauth/revoke', { headers: { authorization: auth }, body: `token=${a.token}` })).status).toBe(
      200,
    )
    expected.push(['token.revoked', { client_id: 'svc-a', jti: a.claims.jti }])
    const revoked = await send('/oauth/introspect', { headers: { authorization: auth }, body: `token=${a.token}` })
    expect(await revoked.json()).toEqual({ active: false })
    expected.push(['token.introspected', { client_id: 'svc-a', jti: a.claims.jti, active: false }])
    const active = await send('/oauth/introspect', {
      headers: { authorization: basic('svc-b', SECRET_B) },
      body: `token=${bound.token}`,
    })
    expect(await active.json()).toMatchObject({ active: true })
    expected.push(['token.introspected', { client_id: 'svc-b', jti: bound.claims.jti, active: true }])
    expect(
      (await send('/oauth/introspect', { headers: { authorization: auth }, body: 'token=not-a-token' })).status,
    ).toBe(200)
    expected.push(['token.introspected', { client_id: 'svc-a', active: false }])

    // 6. Two more wrong secrets for svc-b from this address: the third failure trips its limit.
    for (let attempt = 0; attempt < 2; attempt++) {
      expect(
        (await send('/oauth/token', { headers: { authorization: basic('svc-b', WRONG_SECRET) }, body: grant() }))
          .status,
      ).toBe(401)
      expected.push([
        'auth.failed',
        { client_id: 'svc-b', auth_method: 'client_secret_basic', reason: 'unknown_client_or_wrong_secret', address },
      ])
    }
    const records = () => server.deps.logLines.map((line) => JSON.parse(line) as LogRecord)
    const trip = records().find((record) => record.event === 'limit.tripped')
    expected.push(['limit.tripped', { limit: 'auth_client', client_id: 'svc-b', address, until: trip?.until }])
    expect(trip?.until).toBeGreaterThan(now())
    // Refused before any secret is looked at: a 429, and no auth.failed.
    const limited = await send('/oauth/token', { headers: { authorization: basic('svc-b', SECRET_B) }, body: grant() })
    expect(limited.status).toBe(429)

    // (a) The events, their exact field sets, in order; each written once.
    const events = records().filter((record) => record.event !== undefined)
    const fieldsOf = (record: LogRecord) =>
      Object.fromEntries(Object.entries(record).filter(([name]) => !ENVELOPE.includes(name)))
    expect(events.map((record) => [record.event, fieldsOf(record)])).toEqual(expected)
    for (const record of events) {
      expect(AUDIT_EVENTS).toContain(record.event)
      expect(record.msg).toBe(record.event)
      expect(record.level).toBe(['auth.failed', 'limit.tripped'].includes(record.event as string) ? 40 : 30)
    }
    // The refused assertion's details are information; its one warning is the auth.failed event.
    const refusal = records().filter((record) => record.msg === 'client assertion refused')
    expect(refusal).toEqual([
      expect.objectContaining({ level: 30, reason: 'bad_signature', client_id: 'svc-jwt' }),
      expect.objectContaining({ level: 30, reason: 'unknown_client', client_id: 'svc-ghost' }),
    ])

    // (b) Structural redaction: nothing secret anywhere in the log, in any record or field.
    const log = server.deps.logLines.join('\n')
    expect(secrets.length).toBeGreaterThan(20)
    for (const [what, value] of secrets) {
      expect(value.length, what).toBeGreaterThan(8)
      expect(log.includes(value), `${what} in the log`).toBe(false)
    }

    // (c) Correlation: every record written during a request carries the id it was answered with.
    expect(requests).toHaveLength(14)
    const ids = new Set<string>()
    for (const { id, lines } of requests) {
      expect(id).toMatch(/^[A-Za-z0-9._:-]{1,128}$/)
      ids.add(id as string)
      expect(lines.length).toBeGreaterThan(0)
      const logged = lines.map((line) => JSON.parse(line) as LogRecord)
      for (const record of logged) expect(record.request_id, JSON.stringify(record)).toBe(id)
      expect(logged.filter((record) => record.msg === 'request')).toHaveLength(1)
    }
    expect(ids.size).toBe(requests.length)
    // Every event is one of them.
    for (const record of events) expect(ids).toContain(record.request_id)
  })
})

describe('audit log of a federated workload', () => {
  let server: Server
  let platform: TestIssuer

  beforeAll(async () => {
    platform = await startIssuer({ alg: 'ES256' })
    server = await startTestServer({
      clients: [],
      entries: [
        {
          client_id: 'billing-api',
          secrets: [],
          token_endpoint_auth_method: 'private_key_jwt',
          scopes: ['billing:read'],
          audiences: [API],
          grant_types: ['client_credentials'],
          resource_server: false,
        },
      ],
      trust: {
        entries: [
          trustEntrySchema.parse({
            id: 'k8s-prod-billing',
            issuer: platform.url,
            subject: 'system:serviceaccount:prod:billing',
            clients: ['billing-api'],
            allow_private_network: true,
          }),
        ],
      },
    })
  })

  afterAll(async () => {
    await server?.close()
    await platform?.stop()
  })

  const podToken = (serviceAccount: string) =>
    platform.issueToken(
      kubernetesClaims({
        issuer: platform.url,
        audience: [server.issuer],
        namespace: 'prod',
        serviceAccount,
        podName: 'billing-7d9f-abcde',
        node: 'node-1',
        now: now(),
      }),
    )

  const tokenRequest = (assertion: string) =>
    fetch(`${server.issuer}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': FORM },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: 'billing-api',
        client_assertion_type: JWT_BEARER,
        client_assertion: assertion,
      }),
    })

  it('names the trust entry that admitted or refused the workload, and never logs its token', async () => {
    const good = podToken('billing')
    const res = await tokenRequest(good)
    expect(res.status).toBe(200)
    const token = ((await res.json()) as { access_token: string }).access_token
    const claims = decodeJwt(token)
    const bad = podToken('intruder')
    expect((await tokenRequest(bad)).status).toBe(401)

    const records = server.deps.logLines.map((line) => JSON.parse(line) as LogRecord)
    const events = records.filter((record) => record.event !== undefined)
    const fieldsOf = (record: LogRecord) =>
      Object.fromEntries(Object.entries(record).filter(([name]) => !ENVELOPE.includes(name)))
    expect(events.map((record) => [record.event, fieldsOf(record)])).toEqual([
      [
        'token.issued',
        {
          client_id: 'billing-api',
          auth_method: 'federation',
          jti: claims.jti,
          scope: 'billing:read',
          aud: API,
          exp: claims.exp,
          trust_entry: 'k8s-prod-billing',
        },
      ],
      [
        'auth.failed',
        {
          client_id: 'billing-api',
          auth_method: 'federation',
          reason: 'subject_mismatch',
          address: '127.0.0.1',
          trust_entry: 'k8s-prod-billing',
        },
      ],
    ])
    const log = server.deps.logLines.join('\n')
    for (const jws of [good, bad, token]) {
      const [, payload = '', signature = ''] = jws.split('.')
      for (const part of [jws, payload, signature]) expect(log.includes(part)).toBe(false)
    }
  })
})
