import { request as httpRequest, type Server } from 'node:http'
import { connect } from 'node:net'
import { serve } from '@hono/node-server'
import { createRemoteJWKSet, jwtVerify } from 'jose'
import * as oauth from 'oauth4webapi'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp } from '../../src/app.js'
import { basic, captureLog, makeDeps } from '../helpers/make-deps.js'
import { expectError } from '../helpers/oauth-error.js'
import { freePort } from '../helpers/free-port.js'
import { startTestServer } from '../helpers/test-server.js'
import { waitFor } from '../helpers/wait-for.js'

// A second opinion on the wire format: a real OAuth client library (oauth4webapi) and jose's
// remote JWKS, both talking to the server over a real socket.
const CLIENTS = [
  { id: 'svc-a', secret: 'tks_secret-of-a', scopes: ['read', 'write'], audiences: ['https://api.example.com'] },
  // RFC 6749 App. B: Basic credentials are form-urlencoded first; these need it.
  { id: 'svc.odd_1', secret: 'tks_a:b%c+d&e f', scopes: ['read'], audiences: ['https://api.example.com'] },
]

describe('over a real socket', () => {
  let server: Awaited<ReturnType<typeof startTestServer>>
  let as: oauth.AuthorizationServer
  const insecure = { [oauth.allowInsecureRequests]: true } // loopback test server has no TLS

  beforeAll(async () => {
    server = await startTestServer({ clients: CLIENTS })
    const issuer = new URL(server.issuer)
    as = await oauth.processDiscoveryResponse(
      issuer,
      await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }),
    )
  })
  afterAll(() => server.close())

  it('discovery metadata is accepted by oauth4webapi and names this issuer', () => {
    expect(as.issuer).toBe(server.issuer)
    expect(as.token_endpoint).toBe(`${server.issuer}/oauth/token`)
    expect(as.jwks_uri).toBe(`${server.issuer}/.well-known/jwks.json`)
  })

  it.each([
    ['client_secret_basic', oauth.ClientSecretBasic],
    ['client_secret_post', oauth.ClientSecretPost],
  ])('oauth4webapi gets a token with %s and validates it as an RFC 9068 access token', async (_name, auth) => {
    for (const client of CLIENTS) {
      const response = await oauth.clientCredentialsGrantRequest(
        as,
        { client_id: client.id },
        auth(client.secret),
        new URLSearchParams({ scope: 'read' }),
        insecure,
      )
      const tokens = await oauth.processClientCredentialsResponse(as, { client_id: client.id }, response)
      expect(tokens.token_type).toBe('bearer') // oauth4webapi lower-cases it
      expect(tokens.scope).toBe('read')
      expect(tokens.refresh_token).toBeUndefined()

      const claims = await oauth.validateJwtAccessToken(
        as,
        new Request('https://api.example.com/thing', { headers: { authorization: `Bearer ${tokens.access_token}` } }),
        'https://api.example.com',
        insecure,
      )
      expect(claims).toMatchObject({
        iss: server.issuer,
        sub: client.id,
        client_id: client.id,
        aud: 'https://api.example.com',
        scope: 'read',
      })
    }
  })

  it('oauth4webapi sees the RFC 6749 §5.2 error for a wrong secret', async () => {
    const response = await oauth.clientCredentialsGrantRequest(
      as,
      { client_id: 'svc-a' },
      oauth.ClientSecretBasic('wrong'),
      new URLSearchParams(),
      insecure,
    )
    const error = await oauth
      .processClientCredentialsResponse(as, { client_id: 'svc-a' }, response)
      .catch((e: unknown) => e)
    // The 401 carries a Basic challenge (RFC 6749 §5.2), which oauth4webapi surfaces first.
    expect(error).toBeInstanceOf(oauth.WWWAuthenticateChallengeError)
    const challenge = error as oauth.WWWAuthenticateChallengeError
    expect(challenge.status).toBe(401)
    expect(challenge.cause).toEqual([{ scheme: 'basic', parameters: { realm: 'tokensmith', charset: 'UTF-8' } }])
    await expectError(challenge.response, 401, 'invalid_client')
  })

  it('jose jwtVerify accepts the token with the JWKS fetched from the server', async () => {
    const response = await fetch(`${server.issuer}/oauth/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from('svc-a:tks_secret-of-a').toString('base64')}`,
      },
      body: 'grant_type=client_credentials',
    })
    expect(response.status).toBe(200)
    const { access_token } = (await response.json()) as { access_token: string }
    const jwks = createRemoteJWKSet(new URL(`${server.issuer}/.well-known/jwks.json`))
    const { payload, protectedHeader } = await jwtVerify(access_token, jwks, {
      issuer: server.issuer,
      audience: 'https://api.example.com',
      typ: 'at+jwt',
      algorithms: ['ES256'],
      requiredClaims: ['iss', 'sub', 'client_id', 'aud', 'iat', 'exp', 'jti', 'scope'],
    })
    expect(protectedHeader.typ).toBe('at+jwt')
    expect(payload.scope).toBe('read write')
    expect(payload.exp! - payload.iat!).toBe(300)
  })

  it('answers an Authorization header over 16 KiB with 431, not a hang (README: request headers at most 16 KiB)', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${server.url}/oauth/token`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${'A'.repeat(17 * 1024)}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
      })
      req.on('response', (res) => resolve(res.statusCode!))
      req.on('error', reject)
      req.end('grant_type=client_credentials')
    })
    expect(status).toBe(431)
  })

  it('cuts a 10 MiB chunked body at the 16 KiB limit with 413', async () => {
    const started = Date.now()
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${server.url}/oauth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'transfer-encoding': 'chunked' },
      })
      req.on('response', (res) => {
        res.resume()
        resolve(res.statusCode!)
        req.destroy()
      })
      req.on('error', (error) =>
        (error as NodeJS.ErrnoException).code === 'ECONNRESET' || (error as NodeJS.ErrnoException).code === 'EPIPE'
          ? undefined
          : reject(error),
      )
      const chunk = Buffer.alloc(64 * 1024, 'a')
      let sent = 0
      const pump = () => {
        while (sent < 10 * 1024 * 1024) {
          sent += chunk.length
          if (!req.write(chunk)) return void req.once('drain', pump)
        }
        req.end()
      }
      pump()
    })
    expect(status).toBe(413)
    expect(Date.now() - started).toBeLessThan(5000)
  })

  it('reads a chunked body of exactly 16 KiB, sent in pieces, and issues the token (the 16 KiB body limit is inclusive)', async () => {
    const prefix = 'grant_type=client_credentials&padding='
    const body = Buffer.from(prefix + 'x'.repeat(16 * 1024 - prefix.length))
    const answer = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = httpRequest(`${server.url}/oauth/token`, {
        method: 'POST',
        headers: {
          authorization: basic('svc-a', 'tks_secret-of-a'),
          'content-type': 'application/x-www-form-urlencoded',
          'transfer-encoding': 'chunked',
        },
      })
      req.on('response', (res) => {
        let text = ''
        res.on('data', (chunk: Buffer) => (text += chunk.toString()))
        res.on('end', () => resolve({ status: res.statusCode!, text }))
      })
      req.on('error', reject)
      for (let offset = 0; offset < body.length; offset += 1000) req.write(body.subarray(offset, offset + 1000))
      req.end()
    })
    expect(answer.status).toBe(200)
    expect(JSON.parse(answer.text)).toMatchObject({ token_type: 'Bearer', scope: 'read write' })
  })
})

/**
 * Writes raw bytes to the server, then closes the socket after `closeAfterMs` (or waits for the
 * server to close it); resolves with whatever the server sent back.
 */
function rawExchange(port: number, bytes: string, closeAfterMs?: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    let received = ''
    socket.on('data', (data) => (received += data.toString()))
    socket.on('error', () => {}) // a reset is part of what these tests provoke
    socket.on('close', () => resolve(received))
    socket.write(bytes)
    if (closeAfterMs !== undefined) setTimeout(() => socket.destroy(), closeAfterMs)
  })
}

const tokenRequestHead = (framing: string) =>
  'POST /oauth/token HTTP/1.1\r\nHost: 127.0.0.1\r\n' +
  `Authorization: ${basic('svc-a', 'tks_secret-of-a')}\r\n` +
  `Content-Type: application/x-www-form-urlencoded\r\n${framing}\r\n\r\n`

/** The client's failure is logged as the client's: no error-level record, no stack, no 500. */
async function expectLoggedAsClientFault(records: () => Record<string, unknown>[], requestsBefore: number) {
  const request = await waitFor(() => {
    const requests = records().filter((r) => r.msg === 'request')
    expect(requests.length).toBeGreaterThan(requestsBefore)
    return requests.at(-1)!
  })
  expect(request).toMatchObject({ path: '/oauth/token', status: 400, error: 'invalid_request', level: 30 })
  expect(request.detail).toMatch(/^request body stream failed: /)
  for (const record of records()) {
    expect(record.level as number, JSON.stringify(record)).toBeLessThan(50)
    expect(JSON.stringify(record)).not.toMatch(/stack|server_error/)
  }
}

describe('client-side stream failures over a real socket', () => {
  const captured = captureLog()
  let server: Awaited<ReturnType<typeof startTestServer>>
  let port: number
  const requestCount = () => captured.records().filter((r) => r.msg === 'request').length

  beforeAll(async () => {
    server = await startTestServer({ log: captured.log })
    port = Number(new URL(server.url).port)
  })
  afterAll(() => server.close())

  it('logs a client that closes the connection mid-body as a 400 invalid_request at info, without a stack', async () => {
    const before = requestCount()
    await rawExchange(port, `${tokenRequestHead('Content-Length: 100')}grant_type=cl`, 100)
    await expectLoggedAsClientFault(captured.records, before)
  })

  it('logs a malformed chunked body as a 400 invalid_request at info, without a stack', async () => {
    const before = requestCount()
    // "ZZ" is no chunk size: Node's parser rejects the framing and closes the connection.
    const answer = await rawExchange(
      port,
      `${tokenRequestHead('Transfer-Encoding: chunked')}5\r\ngrant\r\nZZ\r\nxx\r\n0\r\n\r\n`,
    )
    expect(answer).toMatch(/^HTTP\/1\.1 400 /)
    await expectLoggedAsClientFault(captured.records, before)
  })

  it('logs a body trickled past the request timeout as a 400 invalid_request at info, without a stack', async () => {
    const trickle = captureLog()
    const deps = await makeDeps({ log: trickle.log })
    const slowPort = await freePort()
    // The app as main.ts serves it, with a request timeout short enough for a test.
    const slow = await new Promise<Server>((resolve) => {
      const created = serve(
        {
          fetch: createApp(deps).fetch,
          port: slowPort,
          hostname: '127.0.0.1',
          serverOptions: { requestTimeout: 300, connectionsCheckingInterval: 50 },
        },
        () => resolve(created as Server),
      ) as Server
    })
    try {
      const socket = connect(slowPort, '127.0.0.1')
      let answer = ''
      socket.on('data', (data) => (answer += data.toString()))
      socket.on('error', () => {})
      socket.write(`${tokenRequestHead('Content-Length: 100')}g`)
      const closed = new Promise((resolve) => socket.on('close', resolve))
      const drip = setInterval(() => socket.writable && socket.write('r'), 50)
      await closed // the server cut the request
      clearInterval(drip)
      expect(answer).toMatch(/^HTTP\/1\.1 408 /) // Node's own answer at the request timeout
      await expectLoggedAsClientFault(trickle.records, 0)
    } finally {
      await new Promise((resolve) => slow.close(resolve))
    }
  })
})
