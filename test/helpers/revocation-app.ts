import { decodeJwt } from 'jose'
import { expect, it } from 'vitest'
import { createApp } from '../../src/app.js'
import type { Clock } from '../../src/clock.js'
import { DenylistUnavailableError, type Denylist } from '../../src/denylist/denylist.js'
import { createMemoryDenylist } from '../../src/denylist/memory.js'
import { entryKey } from '../../src/denylist/protocol.js'
import { createRedisDenylist } from '../../src/denylist/redis.js'
import { freePort } from './free-port.js'
import {
  DEFAULT_CLIENTS,
  FORM,
  basic,
  fixedClock,
  makeDeps,
  type MakeDepsOptions,
  type TestClient,
} from './make-deps.js'
import { expectError } from './oauth-error.js'
import { silentLog, useSharedRedis } from './shared-redis.js'

/**
 * The app behind POST /oauth/revoke (RFC 7009) and POST /oauth/introspect (RFC 7662), on a fixed
 * clock, with a denylist whose writes a test can count: in memory, or Redis under a prefix of its own.
 */

/** config.clockTolerance by default: a token is revocable, and its entry lives, until exp + T. */
export const T = 30
/** config.accessTokenTtl by default. */
export const TTL = 300
export const API = 'https://api.example.com'
export const INACTIVE = '{"active":false}'

/** svc-a, svc-b, no-grant, plus a resource server for API and an unflagged client with the same audience. */
export const CLIENTS: TestClient[] = [
  ...DEFAULT_CLIENTS,
  { id: 'rs-api', secret: 'tks_secret-of-rs', audiences: [API], resourceServer: true },
  { id: 'svc-c', secret: 'tks_secret-of-c', audiences: [API] },
]
export const AUTH = {
  a: basic('svc-a', 'tks_secret-of-a'),
  b: basic('svc-b', 'tks_secret-of-b'),
  rs: basic('rs-api', 'tks_secret-of-rs'),
  c: basic('svc-c', 'tks_secret-of-c'),
}

export const jtiOf = (token: string) => decodeJwt(token).jti as string
export const expOf = (token: string) => decodeJwt(token).exp as number

export type Clockwork = ReturnType<typeof fixedClock>
export type BackendName = 'memory' | 'redis'
export const BACKENDS: readonly BackendName[] = ['memory', 'redis']

/** A denylist under test whose writes are observable from outside it. */
export interface Backend {
  denylist: Denylist
  /** Entries written so far: Redis entry keys under the test prefix, or revoke* calls in memory. */
  writes(): Promise<number>
  /** Remaining lifetime of a jti entry in ms, -2 when there is none (Redis PTTL semantics). */
  remainingMs(jti: string): Promise<number>
}

/** The app on `denylist`, with CLIENTS, and the requests the tests make of it. */
export async function appWith(options: MakeDepsOptions & { clock: Clockwork; denylist: Denylist }) {
  const deps = await makeDeps({ clients: CLIENTS, ...options })
  const app = createApp(deps)
  const post = (path: string, body: string, auth?: string, contentType: string | undefined = FORM) =>
    app.request(path, {
      method: 'POST',
      headers: {
        ...(contentType !== undefined && { 'content-type': contentType }),
        ...(auth !== undefined && { authorization: auth }),
      },
      body,
    })
  const issue = async (auth = AUTH.a, extra = '') => {
    const res = await post('/oauth/token', `grant_type=client_credentials${extra}`, auth)
    expect(res.status).toBe(200)
    return ((await res.json()) as { access_token: string }).access_token
  }
  const revoke = (token: string, auth: string | undefined = AUTH.a, extra = '') =>
    post('/oauth/revoke', `token=${encodeURIComponent(token)}${extra}`, auth)
  const introspect = (token: string, auth: string | undefined = AUTH.a) =>
    post('/oauth/introspect', `token=${encodeURIComponent(token)}`, auth)
  return { deps, app, post, issue, revoke, introspect }
}

/**
 * Denylist backends for one test file: call at its top level. What a test makes is closed, and its
 * Redis keys deleted, after it.
 */
export function useRevocationHarness() {
  const redis = useSharedRedis()

  /** The memory denylist behind a spy: every write attempt is counted, whatever the denylist does with it. */
  function memoryBackend(clock: Clock, denylist: Denylist = createMemoryDenylist({ clock })): Backend {
    const untils = new Map<string, number>()
    let calls = 0
    const spy: Denylist = {
      kind: denylist.kind,
      isRevoked: (token) => denylist.isRevoked(token),
      async revokeToken(jti, until, owner) {
        calls++
        untils.set(jti, Math.max(until, untils.get(jti) ?? -Infinity))
        return denylist.revokeToken(jti, until, owner)
      },
      async revokeKey(kid, until) {
        calls++
        return denylist.revokeKey(kid, until)
      },
      async revokeClient(clientId, revokedAt, until) {
        calls++
        return denylist.revokeClient(clientId, revokedAt, until)
      },
      replayCache: (namespace) => denylist.replayCache(namespace),
      ping: () => denylist.ping(),
      close: () => denylist.close(),
    }
    redis.defer(() => denylist.close())
    return {
      denylist: spy,
      writes: async () => calls,
      async remainingMs(jti) {
        const until = untils.get(jti)
        if (until === undefined || !(await denylist.isRevoked({ jti }))) return -2
        return (until - clock()) * 1000
      },
    }
  }

  /** A Redis denylist on the shared server under a random prefix, on the test's clock (TTLs are relative). */
  async function redisBackend(clock: Clock): Promise<Backend> {
    const prefix = redis.prefix()
    const denylist = await redis.denylist(prefix, clock)
    return {
      denylist,
      // Entries only: the per-client counts (`revoked-by:`) are bookkeeping, not revocations.
      writes: async () =>
        (await redis.keysUnder(prefix)).filter((key) => /^(jti|kid|client):/.test(key.slice(prefix.length))).length,
      remainingMs: (jti) => redis.admin.pttl(entryKey(prefix, 'jti', jti)),
    }
  }

  const backend = (name: BackendName, clock: Clock) => (name === 'memory' ? memoryBackend(clock) : redisBackend(clock))

  /** A fresh backend and the app on it, on a fixed clock at T0. */
  async function setup(name: BackendName, options: MakeDepsOptions = {}) {
    const clock = fixedClock()
    const chosen = await backend(name, clock)
    const server = await appWith({ ...options, clock, denylist: chosen.denylist })
    return { clock, backend: chosen, ...server }
  }

  /** A Redis denylist pointed at a port where nothing listens. */
  async function unreachableDenylist(clock: Clock): Promise<Denylist> {
    const denylist = createRedisDenylist({
      url: `redis://127.0.0.1:${await freePort()}`,
      keyPrefix: 'test:unreachable:',
      clock,
      log: silentLog,
    })
    redis.defer(() => denylist.close())
    return denylist
  }

  return { redis, memoryBackend, backend, setup, unreachableDenylist }
}

/** A denylist whose every method throws `error`, counting the calls. */
export function failingDenylist(error: () => Error): Denylist & { calls: number } {
  const fail = async (): Promise<never> => {
    fake.calls++
    throw error()
  }
  const fake = {
    kind: 'redis' as const,
    calls: 0,
    isRevoked: fail,
    revokeToken: fail,
    revokeKey: fail,
    revokeClient: fail,
    replayCache: () => ({ useOnce: fail }),
    ping: fail,
    async close() {},
  }
  return fake
}

/** The app on a denylist that answers nothing: every call is DenylistUnavailableError (Redis down). */
export async function appWithDenylistDown() {
  const denylist = failingDenylist(() => new DenylistUnavailableError('down'))
  return { denylist, ...(await appWith({ clock: fixedClock(), denylist })) }
}

/** What a denylist that throws a plain Error (a bug) tells the caller: nothing of the error. */
export const BUG_DETAIL = 'boom: secret detail at /srv/tokensmith/src/denylist/redis.ts:42'

type App = Awaited<ReturnType<typeof appWith>> & { backend: Backend }

/**
 * What both endpoints ask of a request alike (RFC 7009 §2.1, RFC 7662 §2.1): POST, a form body, an
 * authenticated client. Nothing is written for a refused request, and the token stays active.
 * Call inside the describe of one endpoint and backend; `setup` makes a fresh app.
 */
export function sharedRequestChecks(path: '/oauth/revoke' | '/oauth/introspect', setup: () => Promise<App>) {
  it('answers GET, PUT and DELETE with 405 and Allow: POST', async () => {
    const { app, backend } = await setup()
    for (const method of ['GET', 'PUT', 'DELETE']) {
      await expectError(
        await app.request(path, { method, headers: { authorization: AUTH.a } }),
        405,
        'invalid_request',
        { allow: 'POST' },
      )
    }
    expect(await backend.writes()).toBe(0)
  })

  it('refuses JSON, multipart and a body without Content-Type with 400 invalid_request', async () => {
    const { app, post, issue, introspect, backend } = await setup()
    const token = await issue()
    await expectError(await post(path, JSON.stringify({ token }), AUTH.a, 'application/json'), 400, 'invalid_request')
    const multipart = new FormData()
    multipart.set('token', token)
    await expectError(
      await app.request(path, { method: 'POST', headers: { authorization: AUTH.a }, body: multipart }),
      400,
      'invalid_request',
    )
    const bare = new Request(`http://localhost${path}`, {
      method: 'POST',
      headers: { authorization: AUTH.a },
      body: new TextEncoder().encode(`token=${token}`),
    })
    expect(bare.headers.get('content-type')).toBeNull()
    await expectError(await app.request(bare), 400, 'invalid_request')
    expect(await backend.writes()).toBe(0)
    await expectActive(await introspect(token))
  })

  it('answers a request without client authentication, or with a wrong one, with 401 invalid_client and the Basic challenge', async () => {
    const { post, issue, introspect, backend } = await setup()
    const token = await issue()
    await expectError(await post(path, `token=${token}`), 401, 'invalid_client')
    await expectError(await post(path, `token=${token}`, 'Bearer x'), 401, 'invalid_client')
    await expectError(await post(path, `token=${token}`, basic('svc-a', 'wrong-secret')), 401, 'invalid_client')
    await expectError(await post(path, `token=${token}`, basic('nobody', 'tks_secret-of-a')), 401, 'invalid_client')
    expect(await backend.writes()).toBe(0)
    await expectActive(await introspect(token))
  })
}

// ---------------------------------------------------------------------------------------------
// Wire assertions.

/** RFC 7009 §2.2: 200, an empty body, never cached. */
export async function expectRevoked200(res: Response) {
  expect(res.status).toBe(200)
  expect(await res.text()).toBe('')
  expect(res.headers.get('cache-control')).toBe('no-store')
  expect(res.headers.get('pragma')).toBe('no-cache')
}

/** RFC 7662 §2.2: exactly {"active":false}, JSON, never cached. */
export async function expectInactive(res: Response) {
  expect(res.status).toBe(200)
  expect(await res.text()).toBe(INACTIVE)
  expect(res.headers.get('cache-control')).toBe('no-store')
  expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8')
}

export async function expectActive(res: Response, clientId = 'svc-a') {
  expect(res.status).toBe(200)
  const body = (await res.json()) as Record<string, unknown>
  expect(body).toMatchObject({ active: true, client_id: clientId })
  return body
}

/** 503 temporarily_unavailable with a Retry-After: never a false answer while the denylist is down. */
export async function expectUnavailable(res: Response) {
  await expectError(res, 503, 'temporarily_unavailable')
  expect(res.headers.get('retry-after')).toMatch(/^[1-9]\d*$/)
}

/** 500 server_error with the fixed message: no stack, no detail of BUG_DETAIL; the detail is logged. */
export async function expectHiddenBug(res: Response, logLines: readonly string[]) {
  const text = await res.clone().text()
  expect(text).not.toContain('boom')
  expect(text).not.toContain('redis.ts')
  const body = await expectError(res, 500, 'server_error')
  expect(body.error_description).toBe('internal server error')
  // The detail goes to the log, for the operator.
  expect(logLines.some((line) => line.includes(BUG_DETAIL))).toBe(true)
}
