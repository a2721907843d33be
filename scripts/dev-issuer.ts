import { randomBytes } from 'node:crypto'
import { link, readFile, unlink, writeFile } from 'node:fs/promises'
import { createServer, type ServerResponse } from 'node:http'
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type JWK, SignJWT } from 'jose'
import { parseFlags, UsageError } from '../src/cli/cli.js'

/**
 * A loopback OIDC issuer for trying workload identity federation on one machine. `serve` publishes an
 * OpenID Connect Discovery 1.0 §4 document and its JWK Set (RFC 7517 §5) at http://127.0.0.1:PORT;
 * `mint` prints a platform-style JWT (RFC 7519) signed with the same ES256 key. The key lives in
 * KEY_FILE (default ./dev-issuer.local.json, mode 0600), created by whichever command runs first.
 * Exit 0 on success, 1 on failure, 2 on a usage error.
 */

const USAGE = `usage:
  npx tsx scripts/dev-issuer.ts serve [--port 8088] [--key-file ./dev-issuer.local.json]
  npx tsx scripts/dev-issuer.ts mint [--port 8088] --sub SUBJECT --aud AUDIENCE [--claim NAME=VALUE ...] [--ttl SECONDS]
      [--key-file ./dev-issuer.local.json]

serve   discovery at http://127.0.0.1:PORT/.well-known/openid-configuration, keys at /jwks
mint    prints one JWT: iss http://127.0.0.1:PORT, sub, aud, iat, nbf, exp (iat + ttl, default 300), a random jti,
        and each --claim as a string
`

const DEFAULT_PORT = 8088
const DEFAULT_KEY_FILE = './dev-issuer.local.json'
const ALG = 'ES256'

interface KeyPair {
  publicJwk: JWK
  privateJwk: JWK
}

const report = (message: string) => void process.stderr.write(`dev-issuer: ${message}\n`)

function parsePort(value: string | undefined): number {
  if (value === undefined) return DEFAULT_PORT
  const port = /^\d{1,5}$/.test(value) ? Number(value) : Number.NaN
  if (!(port >= 1 && port <= 65_535)) throw new UsageError('--port must be an integer from 1 to 65535')
  return port
}

function parseTtl(value: string | undefined): number {
  if (value === undefined) return 300
  const ttl = /^\d{1,5}$/.test(value) ? Number(value) : Number.NaN
  if (!(ttl >= 1 && ttl <= 86_400)) throw new UsageError('--ttl must be an integer from 1 to 86400')
  return ttl
}

function parseClaims(values: readonly string[] | undefined): Record<string, string> {
  const claims: Record<string, string> = {}
  for (const value of values ?? []) {
    const at = value.indexOf('=')
    if (at <= 0) throw new UsageError('--claim must be NAME=VALUE')
    claims[value.slice(0, at)] = value.slice(at + 1)
  }
  return claims
}

const issuerOf = (port: number) => `http://127.0.0.1:${port}`

/**
 * The key pair in `path`, made on first use. A new file is written whole to a temp file and linked
 * into place (link fails if the name exists), so `serve` and `mint` started together share one key.
 */
async function loadOrCreateKey(path: string): Promise<KeyPair> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as KeyPair
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
  const pair = await generateKeyPair(ALG, { extractable: true })
  const { ext: _ext, key_ops: _ops, ...publicMembers } = await exportJWK(pair.publicKey)
  const kid = await calculateJwkThumbprint(publicMembers, 'sha256')
  const { ext: _e, key_ops: _o, ...privateMembers } = await exportJWK(pair.privateKey)
  const created: KeyPair = {
    publicJwk: { ...publicMembers, kid, alg: ALG, use: 'sig' },
    privateJwk: { ...privateMembers, kid, alg: ALG },
  }
  const temp = `${path}.${process.pid}.tmp`
  await writeFile(temp, `${JSON.stringify(created, null, 2)}\n`, { mode: 0o600, flag: 'wx' })
  try {
    await link(temp, path)
    report(`created ${path}`)
    return created
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    return JSON.parse(await readFile(path, 'utf8')) as KeyPair
  } finally {
    await unlink(temp)
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

async function serve(args: string[]): Promise<number> {
  const flags = parseFlags(args, { port: { type: 'string' }, 'key-file': { type: 'string' } })
  const port = parsePort(flags.port)
  const { publicJwk } = await loadOrCreateKey(flags['key-file'] ?? DEFAULT_KEY_FILE)
  const issuer = issuerOf(port)
  const discovery = {
    issuer,
    jwks_uri: `${issuer}/jwks`,
    response_types_supported: ['id_token'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: [ALG],
  }
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', issuer).pathname
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { error: 'method_not_allowed' })
    if (path === '/.well-known/openid-configuration') return send(res, 200, discovery)
    if (path === '/jwks') return send(res, 200, { keys: [publicJwk] })
    return send(res, 404, { error: 'not_found' })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', resolve)
  })
  report(`serving ${issuer} (discovery ${issuer}/.well-known/openid-configuration, kid ${publicJwk.kid})`)
  await new Promise<void>((resolve) => {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => server.close(() => resolve()))
  })
  return 0
}

async function mint(args: string[]): Promise<number> {
  const flags = parseFlags(args, {
    port: { type: 'string' },
    sub: { type: 'string' },
    aud: { type: 'string' },
    claim: { type: 'string', multiple: true },
    ttl: { type: 'string' },
    'key-file': { type: 'string' },
  })
  if (flags.sub === undefined) throw new UsageError('--sub is required')
  if (flags.aud === undefined) throw new UsageError('--aud is required')
  const port = parsePort(flags.port)
  const ttl = parseTtl(flags.ttl)
  const claims = parseClaims(flags.claim)
  const { privateJwk } = await loadOrCreateKey(flags['key-file'] ?? DEFAULT_KEY_FILE)
  const now = Math.floor(Date.now() / 1000)
  const token = await new SignJWT(claims)
    .setProtectedHeader({ alg: ALG, kid: privateJwk.kid as string, typ: 'JWT' })
    .setIssuer(issuerOf(port))
    .setSubject(flags.sub)
    .setAudience(flags.aud)
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + ttl)
    .setJti(randomBytes(16).toString('base64url'))
    .sign(await importJWK(privateJwk, ALG))
  process.stdout.write(`${token}\n`)
  return 0
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  try {
    if (command === 'serve') return await serve(rest)
    if (command === 'mint') return await mint(rest)
    if (command === '--help' || command === 'help') {
      process.stdout.write(USAGE)
      return 0
    }
    throw new UsageError(command === undefined ? 'missing command' : `unknown command ${command}`)
  } catch (error) {
    const parseError = String((error as NodeJS.ErrnoException).code).startsWith('ERR_PARSE_ARGS')
    if (error instanceof UsageError || parseError) {
      process.stderr.write(`error: ${(error as Error).message}\n${USAGE}`)
      return 2
    }
    report((error as Error).message)
    return 1
  }
}

process.exitCode = await main(process.argv.slice(2))
