/**
 * The container image's runtime stage, reproduced without a container runtime: the compiled server,
 * package.json and package-lock.json in a root-owned read-only directory, production dependencies
 * only (`npm ci --omit=dev`, as the Dockerfile runs it), the Dockerfile's ENV and CMD, an
 * unprivileged user, and the keys and clients as a Kubernetes Secret volume presents them (files
 * 0440 with the pod's fsGroup, reached through the `..data` symlink the kubelet swaps on update).
 * https://kubernetes.io/docs/concepts/configuration/secret/#using-secrets-as-files-from-a-pod
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from '../helpers/free-port.js'
import { GiveUp, waitFor } from '../helpers/wait-for.js'

const run = promisify(execFile)
const root = fileURLToPath(new URL('../..', import.meta.url))
/** The user the server runs as: not root, and not the owner of the app directory. */
const NOBODY = { uid: 65534, gid: 65534 }
/** src/serve.ts: after SIGTERM the server exits within 10 s. */
const DRAIN_MS = 10_000
const CLIENT_ID = 'image-test'

/** The runtime stage's ENV, CMD and HEALTHCHECK from the Dockerfile (the last stage's). */
function dockerfileRuntime() {
  const text = readFileSync(join(root, 'Dockerfile'), 'utf8')
  const lines = text
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('#'))
    .join('\n')
    .replace(/\\\n/g, ' ')
    .split('\n')
  const runtime = lines.slice(lines.findLastIndex((line) => /^FROM\s/i.test(line)))
  const env: Record<string, string> = {}
  for (const line of runtime.filter((l) => /^ENV\s/i.test(l))) {
    for (const pair of line.replace(/^ENV\s+/i, '').split(/\s+/)) {
      const equals = pair.indexOf('=')
      if (equals > 0) env[pair.slice(0, equals)] = pair.slice(equals + 1)
    }
  }
  const exec = (op: string) => {
    const line = runtime.find((l) => new RegExp(`^${op}\\s`, 'i').test(l)) ?? ''
    return JSON.parse(line.slice(line.indexOf('['))) as string[]
  }
  const workdir = runtime.find((l) => /^WORKDIR\s/i.test(l))?.split(/\s+/)[1]
  return { env, cmd: exec('CMD'), healthcheck: exec('HEALTHCHECK.*CMD'), workdir }
}

/** Every path under `dir` with its type, size and mtime: equal before and after means nothing was written. */
function snapshot(dir: string): string[] {
  const entries: string[] = []
  const walk = (path: string) => {
    const info = lstatSync(path)
    entries.push(`${path}:${info.mode}:${info.size}:${info.mtimeMs}`)
    if (info.isDirectory()) for (const name of readdirSync(path).sort()) walk(join(path, name))
  }
  walk(dir)
  return entries
}

/** Makes every directory 0555 and every file 0444 (or 0555 if executable), owned by root. */
function makeReadOnly(path: string): void {
  const info = lstatSync(path)
  if (info.isSymbolicLink()) return
  if (info.isDirectory()) for (const name of readdirSync(path)) makeReadOnly(join(path, name))
  chownSync(path, 0, 0)
  chmodSync(path, info.isDirectory() || info.mode & 0o111 ? 0o555 : 0o444)
}

/**
 * A Secret volume's layout: the files in a timestamped directory, `..data` pointing at it, and one
 * symlink per key through `..data`; files root-owned with the fsGroup, mode 0440 (defaultMode).
 */
function secretVolume(dir: string, files: Record<string, string>, gid: number): void {
  const data = join(dir, '..2026_01_01_00_00_00.000000000')
  mkdirSync(data, { recursive: true })
  for (const [name, from] of Object.entries(files)) {
    cpSync(from, join(data, name), { dereference: true })
    chownSync(join(data, name), 0, gid)
    chmodSync(join(data, name), 0o440)
    symlinkSync(join('..data', name), join(dir, name))
  }
  symlinkSync('..2026_01_01_00_00_00.000000000', join(dir, '..data'))
  chownSync(data, 0, gid)
  chmodSync(data, 0o2755)
}

interface Server {
  child: ChildProcess
  output: string[]
  exited: Promise<number | null>
}

const quote = (text: string) => `'${text.replaceAll("'", "'\\''")}'`

/**
 * Runs `cmd` as the container would: in a mount namespace of its own where each of `readOnly` is
 * a read-only bind mount (the image's root filesystem, the Secret volumes), as an unprivileged
 * user. unshare, sh and setpriv each exec the next, so the child's pid is node's, as PID 1 is in
 * the container, and a signal sent to it reaches node itself.
 */
function startServer(cwd: string, cmd: string[], env: Record<string, string>, readOnly: string[]): Server {
  const mounts = readOnly.map(
    (dir) => `mount --bind ${quote(dir)} ${quote(dir)} && mount -o remount,bind,ro ${quote(dir)}`,
  )
  const script = [...mounts, `exec setpriv --reuid=${NOBODY.uid} --regid=${NOBODY.gid} --clear-groups -- "$@"`].join(
    ' && ',
  )
  const child = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', ...cmd], {
    cwd,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const output: string[] = []
  for (const stream of [child.stdout, child.stderr]) {
    let rest = ''
    stream?.on('data', (chunk: Buffer) => {
      const lines = (rest + chunk.toString()).split('\n')
      rest = lines.pop() ?? ''
      output.push(...lines)
    })
  }
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  return { child, output, exited }
}

/** Root is needed to hand files to another user and to make read-only bind mounts. */
const isRoot = process.getuid?.() === 0

describe.skipIf(!isRoot)('the container image, reproduced without a container runtime (needs root)', () => {
  const image = dockerfileRuntime()
  let tmp = ''
  let app = ''
  let secrets = ''
  let port = 0
  let clientSecret = ''
  let env: Record<string, string> = {}
  let server: Server | undefined
  let before: string[] = []
  let secretsBefore: string[] = []

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'tokensmith-image-'))
    app = join(tmp, 'app')
    secrets = join(tmp, 'secrets')
    // The build stage: `npm run build`, into this directory rather than the checkout's dist/.
    mkdirSync(app)
    await run(
      'npm',
      ['run', '--silent', 'build', '--', '--outDir', join(app, 'dist'), '--tsBuildInfoFile', join(tmp, 'tsbuildinfo')],
      { cwd: root },
    ).catch((error: { stdout?: string; stderr?: string }) => {
      throw new Error(`npm run build failed, as the image build would:\n${error.stdout ?? ''}${error.stderr ?? ''}`)
    })
    for (const file of ['package.json', 'package-lock.json']) cpSync(join(root, file), join(app, file))
    // The prod-deps stage, with the npm cache this machine already has.
    await run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], {
      cwd: app,
    })

    // Keys and a client, made by the CLIs of the build as an operator would before creating the Secrets.
    const made = join(tmp, 'made')
    const cliEnv = {
      PATH: process.env.PATH ?? '',
      KEYS_DIR: join(made, 'keys'),
      CLIENTS_FILE: join(made, 'clients.json'),
    }
    await run(process.execPath, ['dist/cli/keys.js', 'rotate', '--now'], { cwd: app, env: cliEnv })
    const created = await run(
      process.execPath,
      ['dist/cli/client.js', 'create', '--id', CLIENT_ID, '--scope', 'read', '--audience', 'https://api.example.com'],
      { cwd: app, env: cliEnv },
    )
    clientSecret = JSON.parse(created.stdout).client_secret

    // The Secret volumes as the kubelet lays them out with fsGroup: the mount point root-owned,
    // group fsGroup, mode 3777 (a tmpfs, group-set, sticky), mounted read-only (startServer).
    const clients = join(secrets, 'clients')
    secretVolume(clients, { 'clients.json': join(made, 'clients.json') }, NOBODY.gid)
    const keys = join(secrets, 'keys')
    const keyFiles = Object.fromEntries(readdirSync(join(made, 'keys')).map((name) => [name, join(made, 'keys', name)]))
    secretVolume(keys, keyFiles, NOBODY.gid)
    for (const volume of [clients, keys]) {
      chownSync(volume, 0, NOBODY.gid)
      chmodSync(volume, 0o3777)
    }
    rmSync(made, { recursive: true })

    makeReadOnly(app)
    // mkdtemp made the parent 0700: the server's user must reach app/ and secrets/ through it.
    chmodSync(tmp, 0o755)
    chmodSync(secrets, 0o755)
    before = snapshot(app)
    secretsBefore = snapshot(secrets)

    port = await freePort()
    // The image's ENV; the test listens on loopback only, on a free port, with its own mount paths.
    env = {
      PATH: process.env.PATH ?? '',
      ...image.env,
      HOST: '127.0.0.1',
      PORT: String(port),
      KEYS_DIR: keys,
      CLIENTS_FILE: join(clients, 'clients.json'),
      TRUST_FILE: join(secrets, 'trust', 'trust.json'),
    }
    server = startServer(app, image.cmd, env, [app, secrets])
    const started = server
    await waitFor(() => {
      if (started.child.exitCode !== null)
        throw new GiveUp(`exited ${started.child.exitCode}:\n${started.output.join('\n')}`)
      if (!started.output.some((line) => line.includes('tokensmith listening'))) throw new Error('not listening yet')
    }, 20_000)
  }, 300_000)

  afterAll(async () => {
    if (server && server.child.exitCode === null) {
      server.child.kill('SIGKILL')
      await server.exited
    }
    if (tmp) rmSync(tmp, { recursive: true, force: true })
  })

  const url = (path: string) => `http://127.0.0.1:${port}${path}`

  it('runs the Dockerfile CMD, node on the compiled server, as an unprivileged user', () => {
    expect(image.cmd).toEqual(['node', 'dist/main.js'])
    expect(image.workdir).toBe('/app')
    const status = readFileSync(`/proc/${server!.child.pid}/status`, 'utf8')
    expect(status).toMatch(new RegExp(`^Uid:\\s+${NOBODY.uid}\\s`, 'm'))
  })

  it('answers /healthz and /readyz with 200', async () => {
    expect((await fetch(url('/healthz'))).status).toBe(200)
    const ready = await fetch(url('/readyz'))
    expect(ready.status).toBe(200)
    expect(await ready.json()).toEqual({ status: 'ready' })
  })

  it("passes the Dockerfile's HEALTHCHECK", async () => {
    const [command = '', ...args] = image.healthcheck
    const result = await new Promise<number | null>((resolve) => {
      const check = spawn(command, args, { env, ...NOBODY, stdio: 'ignore' })
      check.on('exit', resolve)
    })
    expect(result).toBe(0)
  })

  it('issues a token to a client from the mounted clients file, with keys from the mounted KEYS_DIR', async () => {
    const response = await fetch(url('/oauth/token'), {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${CLIENT_ID}:${clientSecret}`).toString('base64')}`,
      },
      body: 'grant_type=client_credentials&scope=read',
    })
    expect(response.status).toBe(200)
    const body = (await response.json()) as { access_token: string; token_type: string }
    expect(body.token_type).toBe('Bearer')
    const header = JSON.parse(Buffer.from(body.access_token.split('.')[0]!, 'base64url').toString())
    expect(readdirSync(join(tmp, 'secrets', 'keys'))).toContain(`${header.kid}.json`)
  })

  it('has production dependencies only', () => {
    const modules = join(app, 'node_modules')
    for (const dependency of ['hono', 'jose', 'zod', 'pino']) expect(existsSync(join(modules, dependency))).toBe(true)
    for (const dev of ['vitest', 'typescript', '@biomejs', 'msw', 'yaml', 'fast-check'])
      expect(existsSync(join(modules, dev)), dev).toBe(false)
  })

  it('writes nothing into the app directory or the mounted secrets, and logs no permission error', () => {
    // Both are read-only mounts for the server (EROFS on any write) and root-owned besides.
    expect(statSync(app).uid).toBe(0)
    expect(snapshot(app)).toEqual(before)
    expect(snapshot(join(tmp, 'secrets'))).toEqual(secretsBefore)
    const log = server!.output.join('\n')
    expect(log).not.toMatch(/EACCES|EROFS|EPERM/)
    expect(log).not.toContain(clientSecret)
    const levels = server!.output.flatMap((line) => {
      try {
        return [JSON.parse(line).level as number]
      } catch {
        return []
      }
    })
    // pino: 50 is error. Warnings are expected: the in-memory denylist (no REDIS_URL here).
    expect(levels.filter((level) => level >= 50)).toEqual([])
  })

  it('exits 0 on SIGTERM within the drain time', async () => {
    const started = Date.now()
    server!.child.kill('SIGTERM')
    expect(await server!.exited).toBe(0)
    expect(Date.now() - started).toBeLessThan(DRAIN_MS)
    expect(server!.output.some((line) => line.includes('"stopped"'))).toBe(true)
  })
})
