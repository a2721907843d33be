import { execFileSync, spawn } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { chmodSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { request as httpsRequest, type Server as HttpsServer } from 'node:https'
import { connect as netConnect } from 'node:net'
import { join } from 'node:path'
import { connect as tlsConnect } from 'node:tls'
import { fileURLToPath } from 'node:url'
import * as oauth from 'oauth4webapi'
import { describe, expect, it } from 'vitest'
import { createApp } from '../../src/app.js'
import { run as clientCli } from '../../src/cli/client.js'
import { systemClock } from '../../src/clock.js'
import { openTls } from '../../src/http/tls.js'
import { ensureKeys } from '../../src/keys/keys-dir.js'
import { startServer } from '../../src/server.js'
import { useCleanups } from '../helpers/cleanups.js'
import { runCli, tempDir } from '../helpers/cli.js'
import { freePort } from '../helpers/free-port.js'
import { basic, captureLog, fixedClock, FORM, makeDeps } from '../helpers/make-deps.js'
import { spawnServer } from '../helpers/spawn-server.js'
import { startTestServer } from '../helpers/test-server.js'
import { waitFor } from '../helpers/wait-for.js'

// TLS_CERT_FILE / TLS_KEY_FILE: the server speaks HTTPS itself, with a certificate these tests make
// with openssl, sends Strict-Transport-Security on every response (RFC 6797 §6.1) and picks up a
// replaced certificate without a restart; a broken replacement keeps the last good one.
const defer = useCleanups()
const HSTS = 'max-age=31536000'
const REFUSED = 'reload failed; keeping the last good state'

/** A self-signed P-256 certificate for 127.0.0.1 and localhost, as `<name>.crt` and `<name>.key` (0600). */
function makeCert(dir: string, name: string, cn = 'localhost') {
  const certFile = join(dir, `${name}.crt`)
  const keyFile = join(dir, `${name}.key`)
  execFileSync(
    'openssl',
    [
      ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1'],
      ...['-subj', `/CN=${cn}`, '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
      ...['-keyout', keyFile, '-out', certFile],
    ],
    { stdio: 'ignore' },
  )
  chmodSync(keyFile, 0o600)
  return { certFile, keyFile, fingerprint: new X509Certificate(readFileSync(certFile)).fingerprint256 }
}

/** Puts a new pair in place of the served files, each file by an atomic rename. */
function replacePair(target: { certFile: string; keyFile: string }, source: { certFile: string; keyFile: string }) {
  renameSync(source.keyFile, target.keyFile)
  renameSync(source.certFile, target.certFile)
}

/**
 * A fetch for oauth4webapi (its customFetch) that trusts `ca` and nothing else: node:https on a
 * connection of its own. Node's global fetch cannot be given a CA without undici's Agent.
 */
function httpsFetch(ca: Buffer) {
  return async (url: string, init: { method?: string; headers?: unknown; body?: unknown } = {}): Promise<Response> => {
    const headers = Object.fromEntries(new Headers(init.headers as ConstructorParameters<typeof Headers>[0]))
    const body =
      init.body === undefined || init.body === null
        ? undefined
        : Buffer.from(await new Response(init.body as ConstructorParameters<typeof Response>[0]).arrayBuffer())
    return new Promise((resolve, reject) => {
      const req = httpsRequest(url, { method: init.method ?? 'GET', headers, ca, agent: false }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (chunk: Buffer) => chunks.push(chunk))
        res.on('end', () => {
          const out = new Headers()
          for (const [name, value] of Object.entries(res.headers)) {
            for (const one of [value ?? []].flat()) out.append(name, one)
          }
          const status = res.statusCode!
          resolve(
            new Response(status === 204 || status === 304 ? null : Buffer.concat(chunks), { status, headers: out }),
          )
        })
        res.on('error', reject)
      })
      req.on('error', reject)
      req.end(body)
    })
  }
}

/** Raw bytes sent over TLS (or plain TCP): what Node answers before any of our code runs. */
function raw(url: string, bytes: string, ca?: Buffer): Promise<string> {
  const { hostname, port, protocol } = new URL(url)
  return new Promise((resolve) => {
    const socket =
      protocol === 'https:'
        ? tlsConnect({ host: hostname, port: Number(port), ca }, () => socket.write(bytes))
        : netConnect(Number(port), hostname, () => socket.write(bytes))
    let text = ''
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')))
    socket.on('close', () => resolve(text))
    socket.on('error', () => resolve(text))
  })
}

/** The SHA-256 fingerprint of the certificate a new connection is served. */
function servedFingerprint(url: string): Promise<string> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: hostname, port: Number(port), rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate().fingerprint256)
      socket.end()
    })
    socket.on('error', reject)
  })
}

/** The whole app over HTTPS, in this process, with the TLS watcher polling every 100 ms. */
async function startHttps(intervalMs = 100, headersTimeoutMs?: number) {
  const dir = tempDir()
  const files = makeCert(dir, 'server')
  const port = await freePort()
  const issuer = `https://127.0.0.1:${port}`
  const deps = await makeDeps({ clock: systemClock, config: { issuer } })
  const logged = captureLog()
  const tls = await openTls(files, logged.log)
  const running = await startServer(createApp(deps), {
    port,
    host: '127.0.0.1',
    tls: tls.pair,
    ...(headersTimeoutMs !== undefined && { headersTimeoutMs }),
  })
  const watcher = tls.watch(running.server as HttpsServer, intervalMs)
  defer(() => running.close())
  defer(() => watcher.stop())
  const ca = readFileSync(files.certFile)
  return { ...running, dir, files, issuer, deps, ca, fetch: httpsFetch(ca), ...logged }
}

const refusals = (records: () => Record<string, unknown>[]) => records().filter((record) => record.msg === REFUSED)

describe('HTTPS with TLS_CERT_FILE and TLS_KEY_FILE', () => {
  it('an OAuth client library gets a token over it, and every response carries Strict-Transport-Security', async () => {
    const server = await startHttps()
    expect(server.url).toBe(server.issuer)
    const options = { [oauth.customFetch]: server.fetch }
    const issuer = new URL(server.issuer)
    const discovery = await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...options })
    expect(discovery.headers.get('strict-transport-security')).toBe(HSTS)
    const as = await oauth.processDiscoveryResponse(issuer, discovery)
    expect(as.token_endpoint).toBe(`${server.issuer}/oauth/token`)

    const client = { client_id: 'svc-a' }
    const response = await oauth.clientCredentialsGrantRequest(
      as,
      client,
      oauth.ClientSecretBasic('tks_secret-of-a'),
      new URLSearchParams({ scope: 'read' }),
      options,
    )
    expect(response.headers.get('strict-transport-security')).toBe(HSTS)
    const tokens = await oauth.processClientCredentialsResponse(as, client, response)
    const claims = await oauth.validateJwtAccessToken(
      as,
      new Request('https://api.example.com/x', { headers: { authorization: `Bearer ${tokens.access_token}` } }),
      'https://api.example.com',
      options,
    )
    expect(claims).toMatchObject({ iss: server.issuer, client_id: 'svc-a', scope: 'read' })

    // A wrong secret: the library sees the 401 challenge, and the 401 is HSTS'd too.
    const wrong = await oauth.clientCredentialsGrantRequest(
      as,
      client,
      oauth.ClientSecretBasic('wrong'),
      new URLSearchParams(),
      options,
    )
    expect(wrong.status).toBe(401)
    expect(wrong.headers.get('strict-transport-security')).toBe(HSTS)
  })

  it('sends it on 404, 405, 400, 413, health checks and on what Node answers by itself (431, 400)', async () => {
    const server = await startHttps()
    const at = (path: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}) =>
      server.fetch(`${server.url}${path}`, init)
    const cases: [Promise<Response>, number][] = [
      [at('/nowhere'), 404],
      [at('/oauth/token'), 405],
      [at('/oauth/token', { method: 'POST', headers: { 'content-type': FORM }, body: 'grant_type=x' }), 401],
      [
        at('/oauth/token', {
          method: 'POST',
          headers: { 'content-type': FORM, authorization: basic('svc-a', 'tks_secret-of-a') },
          body: 'grant_type=password',
        }),
        400,
      ],
      [
        at('/oauth/token', {
          method: 'POST',
          headers: { 'content-type': FORM, authorization: basic('svc-a', 'tks_secret-of-a') },
          body: `grant_type=client_credentials&pad=${'a'.repeat(20_000)}`,
        }),
        413,
      ],
      [at('/healthz'), 200],
      [at('/readyz'), 200],
      [at('/.well-known/jwks.json'), 200],
    ]
    for (const [response, status] of cases) {
      const res = await response
      expect(res.status).toBe(status)
      expect(res.headers.get('strict-transport-security')).toBe(HSTS)
    }
    const oversized = await raw(
      server.url,
      `GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
      server.ca,
    )
    expect(oversized).toMatch(/^HTTP\/1\.1 431 /)
    expect(oversized).toContain(`\r\nStrict-Transport-Security: ${HSTS}\r\n`)
    const garbage = await raw(server.url, 'NOT HTTP AT ALL\r\n\r\n', server.ca)
    expect(garbage).toMatch(/^HTTP\/1\.1 400 /)
    expect(garbage).toContain(`\r\nStrict-Transport-Security: ${HSTS}\r\n`)
  })

  it('sends it on the 408 Node answers to a client too slow with its headers', async () => {
    const server = await startHttps(100, 300)
    const answer = await raw(server.url, 'GET /healthz HTTP/1.1\r\nHost: a\r\n', server.ca)
    expect(answer).toMatch(/^HTTP\/1\.1 408 /)
    expect(answer).toContain(`\r\nStrict-Transport-Security: ${HSTS}\r\n`)
  })

  it('sends no Strict-Transport-Security over plain HTTP (RFC 6797 §7.2)', async () => {
    const server = await startTestServer()
    defer(() => server.close())
    expect(server.url).toMatch(/^http:\/\//)
    for (const path of ['/healthz', '/nowhere', '/oauth/token', '/.well-known/oauth-authorization-server']) {
      const res = await fetch(`${server.url}${path}`)
      expect(res.headers.has('strict-transport-security')).toBe(false)
    }
    const token = await fetch(`${server.url}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': FORM, authorization: basic('svc-a', 'tks_secret-of-a') },
      body: 'grant_type=client_credentials',
    })
    expect(token.status).toBe(200)
    expect(token.headers.has('strict-transport-security')).toBe(false)
    const oversized = await raw(server.url, `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`)
    expect(oversized).toMatch(/^HTTP\/1\.1 431 /)
    expect(oversized.toLowerCase()).not.toContain('strict-transport-security')
  })
})

describe('certificate reload', () => {
  it('serves a replaced certificate within the reload interval; a broken replacement keeps the last good one', async () => {
    const server = await startHttps(100)
    expect(await servedFingerprint(server.url)).toBe(server.files.fingerprint)

    const rotated = makeCert(server.dir, 'rotated', 'rotated.localhost')
    replacePair(server.files, rotated)
    await waitFor(async () => expect(await servedFingerprint(server.url)).toBe(rotated.fingerprint), 3000)
    // Clients that trust the new certificate get tokens over it.
    const newFetch = httpsFetch(readFileSync(server.files.certFile))
    const token = await newFetch(`${server.url}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': FORM, authorization: basic('svc-a', 'tks_secret-of-a') },
      body: 'grant_type=client_credentials',
    })
    expect(token.status).toBe(200)

    // A key of another certificate, then garbage: refused, logged naming the file, never quoting it.
    const stranger = makeCert(server.dir, 'stranger')
    renameSync(stranger.keyFile, server.files.keyFile)
    await waitFor(() => expect(refusals(server.records)).toHaveLength(1), 3000)
    expect(refusals(server.records)[0]).toMatchObject({
      problem: `TLS_KEY_FILE ${server.files.keyFile} is not the private key of the certificate in TLS_CERT_FILE ${server.files.certFile}`,
    })
    writeFileSync(server.files.certFile, 'garbage')
    await waitFor(() => expect(refusals(server.records)).toHaveLength(2), 3000)
    expect(refusals(server.records)[1]).toMatchObject({
      problem: `TLS_CERT_FILE ${server.files.certFile} does not hold a PEM certificate`,
    })
    expect(await servedFingerprint(server.url)).toBe(rotated.fingerprint)
    const key = readFileSync(server.files.keyFile, 'utf8')
    for (const line of key.split('\n').filter((l) => l && !l.startsWith('-----'))) {
      expect(server.lines.join('\n')).not.toContain(line)
    }
    expect((await newFetch(`${server.url}/healthz`)).status).toBe(200)

    // Fixed: served again.
    const fixed = makeCert(server.dir, 'fixed', 'fixed.localhost')
    replacePair(server.files, fixed)
    await waitFor(async () => expect(await servedFingerprint(server.url)).toBe(fixed.fingerprint), 3000)
  })
})

// The real server, as `npm start` runs it (through tsx, as test/helpers/spawn-server.ts does).
const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url))

async function serverFiles() {
  const root = tempDir()
  const keysDir = join(root, 'keys')
  const clientsFile = join(root, 'clients.json')
  await ensureKeys(keysDir, 'ES256', { clock: fixedClock(), log: captureLog().log })
  const created = await runCli(
    clientCli,
    ['create', '--id', 'svc-a', '--scope', 'read', '--audience', 'https://api.example.com'],
    { CLIENTS_FILE: clientsFile },
  )
  expect(created.code).toBe(0)
  const { client_secret: secret } = JSON.parse(created.stdout) as { client_secret: string }
  const files = makeCert(root, 'server')
  const env = { KEYS_DIR: keysDir, CLIENTS_FILE: clientsFile, REDIS_URL: '', LOG_LEVEL: 'info' }
  return { root, files, secret, env }
}

/** Spawns the server with TLS and waits for /healthz over HTTPS. */
async function spawnHttps(env: Record<string, string>, ca: Buffer) {
  const port = await freePort()
  const url = `https://127.0.0.1:${port}`
  const proc = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), MAIN], {
    env: { ...process.env, PORT: String(port), ISSUER: url, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const exited = new Promise((resolve) => proc.once('exit', resolve))
  defer(async () => {
    proc.kill('SIGTERM')
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000))])
  })
  const output: string[] = []
  const collect = (chunk: Buffer) => output.push(...chunk.toString().split('\n').filter(Boolean))
  proc.stdout.on('data', collect)
  proc.stderr.on('data', collect)
  const get = httpsFetch(ca)
  await waitFor(
    async () => {
      if (proc.exitCode !== null) throw new Error(`server exited:\n${output.join('\n')}`)
      expect((await get(`${url}/healthz`)).status).toBe(200)
    },
    15_000,
    50,
  )
  const records = () =>
    output.filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, unknown>)
  return { proc, url, output, records, fetch: get }
}

describe('the server process', () => {
  it('serves HTTPS, warns about a key file others can read, and reloads the certificate on SIGHUP', async () => {
    const { root, files, secret, env } = await serverFiles()
    chmodSync(files.keyFile, 0o644)
    const server = await spawnHttps(
      { ...env, TLS_CERT_FILE: files.certFile, TLS_KEY_FILE: files.keyFile, RELOAD_INTERVAL: '60' },
      readFileSync(files.certFile),
    )
    expect(server.records().find((record) => record.msg === 'tokensmith listening')).toMatchObject({
      url: server.url,
      issuer: server.url,
    })
    expect(server.records()).toContainEqual(
      expect.objectContaining({
        level: 40,
        file: files.keyFile,
        msg: 'TLS_KEY_FILE is readable by others (mode 0644); run chmod 600 on it (in Kubernetes, defaultMode: 0400 on the secret volume)',
      }),
    )
    const token = await server.fetch(`${server.url}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': FORM, authorization: basic('svc-a', secret) },
      body: 'grant_type=client_credentials',
    })
    expect(token.status).toBe(200)
    expect(token.headers.get('strict-transport-security')).toBe(HSTS)
    expect((await server.fetch(`${server.url}/nowhere`)).headers.get('strict-transport-security')).toBe(HSTS)

    // RELOAD_INTERVAL is a minute: only SIGHUP can make the new certificate served this soon.
    const rotated = makeCert(root, 'rotated', 'rotated.localhost')
    replacePair(files, rotated)
    server.proc.kill('SIGHUP')
    await waitFor(async () => expect(await servedFingerprint(server.url)).toBe(rotated.fingerprint), 3000)
  })

  it.each([
    ['a key of another certificate', 'mismatch'],
    ['a certificate file that is not PEM', 'garbage'],
    ['a key file that is missing', 'missing'],
  ])('stops at start-up on %s, with one line naming the file', async (_name, kind) => {
    const { root, files, env } = await serverFiles()
    let expected: string
    if (kind === 'mismatch') {
      renameSync(makeCert(root, 'other').keyFile, files.keyFile)
      expected = `TLS_KEY_FILE ${files.keyFile} is not the private key of the certificate in TLS_CERT_FILE ${files.certFile}`
    } else if (kind === 'garbage') {
      writeFileSync(files.certFile, 'not a certificate')
      expected = `TLS_CERT_FILE ${files.certFile} does not hold a PEM certificate`
    } else {
      renameSync(files.keyFile, join(root, 'elsewhere.key'))
      expected = `TLS_KEY_FILE ${files.keyFile} cannot be read (ENOENT)`
    }
    const failure = (await spawnServer({
      ...env,
      TLS_CERT_FILE: files.certFile,
      TLS_KEY_FILE: files.keyFile,
    }).catch((error: unknown) => error)) as Error
    expect(failure).toBeInstanceOf(Error)
    const [first, ...output] = failure.message.split('\n')
    expect(first).toBe('server exited with 1:')
    expect(output.filter((line) => line.startsWith('tokensmith: failed to start:'))).toEqual([
      `tokensmith: failed to start: ${expected}`,
    ])
  })
})
