/**
 * `bearerAuth({ metrics: { registry } })`: exact counter values per label after scripted requests, the
 * JWKS fetch counter and the `onFetch` hook, sharing one registry, and prom-client left unloaded when
 * the option is absent.
 */
import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { Hono } from 'hono'
import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'

import { createRemoteKeySource } from '../../../src/verifier/key-source.js'
import { type BearerAuthVariables, bearerAuth, type RevocationCheck } from '../../../src/verifier/index.js'
import { tempDir } from '../../helpers/cli.js'
import { jwksOf, makeKey, signToken } from '../../helpers/forge.js'
import { AUDIENCE, DEFAULTS, ISSUER, NOW, bearer, callWith, makeApp } from './harness.js'

const es = makeKey('ES256', 'es-1')
const other = makeKey('ES256', 'other')
const token = signToken(es, DEFAULTS)

/** Every series of a counter, as `label=value,…` → value. */
async function series(registry: Registry, name: string): Promise<Record<string, number>> {
  const metric = registry.getSingleMetric(name)
  if (!metric) throw new Error(`${name} is not registered`)
  const { values } = await metric.get()
  return Object.fromEntries(
    values.map(({ labels, value }) => [
      Object.entries(labels)
        .map(([label, v]) => `${label}=${v}`)
        .join(','),
      value,
    ]),
  )
}

/** The zero series present from the start, so `increase()` sees the first 503. */
const REQUEST_ZEROS = {
  'outcome=accepted,reason=': 0,
  'outcome=unavailable,reason=denylist_unavailable': 0,
  'outcome=unavailable,reason=jwks_unavailable': 0,
  'outcome=unavailable,reason=dpop_replay_unavailable': 0,
}

const down: RevocationCheck = {
  isRevoked: async () => {
    throw new Error('denylist down')
  },
}

describe('bearerAuth metrics: tokensmith_rs_requests_total', () => {
  it('counts each request once, by outcome and reason', async () => {
    const registry = new Registry()
    const revoked = signToken(es, DEFAULTS, { jti: 'revoked-jti' })
    const denylist: RevocationCheck = { isRevoked: async ({ jti }) => jti === 'revoked-jti' }
    const { app } = makeApp({ jwks: jwksOf(es), denylist, scopes: ['read'], metrics: { registry } })

    for (let i = 0; i < 3; i += 1) expect((await callWith(app, token)).status).toBe(200)
    expect((await app.request('/api/whoami')).status).toBe(401) // no credentials
    expect((await callWith(app, signToken(es, DEFAULTS, { exp: NOW - 3600 }))).status).toBe(401)
    expect((await callWith(app, signToken(es, DEFAULTS, { exp: NOW - 3600 }))).status).toBe(401)
    expect((await callWith(app, signToken(other, DEFAULTS))).status).toBe(401) // unknown kid
    expect((await callWith(app, revoked)).status).toBe(401)
    expect((await callWith(app, signToken(es, DEFAULTS, { scope: 'write' }))).status).toBe(403)
    expect((await callWith(app, 'not a token')).status).toBe(400)

    expect(await series(registry, 'tokensmith_rs_requests_total')).toEqual({
      ...REQUEST_ZEROS,
      'outcome=accepted,reason=': 3,
      'outcome=rejected,reason=no_credentials': 1,
      'outcome=rejected,reason=expired': 2,
      'outcome=rejected,reason=unknown_kid': 1,
      'outcome=rejected,reason=revoked': 1,
      'outcome=rejected,reason=insufficient_scope': 1,
      'outcome=rejected,reason=token_syntax': 1,
    })
  })

  it('counts 503s as unavailable, and passes under failOpen as fail_open', async () => {
    const registry = new Registry()
    const strict = makeApp({ jwks: jwksOf(es), denylist: down, metrics: { registry } })
    const lenient = makeApp({
      jwks: jwksOf(es),
      denylist: down,
      failOpen: true,
      onFailOpen: () => undefined,
      metrics: { registry },
    })
    for (let i = 0; i < 2; i += 1) expect((await callWith(strict.app, token)).status).toBe(503)
    expect((await callWith(lenient.app, token)).status).toBe(200)
    // Two middlewares on one registry share the series.
    expect(await series(registry, 'tokensmith_rs_requests_total')).toEqual({
      ...REQUEST_ZEROS,
      'outcome=unavailable,reason=denylist_unavailable': 2,
      'outcome=fail_open,reason=denylist_unavailable': 1,
    })
    expect(lenient.middleware.stats().failOpenPasses).toBe(1)
  })

  it('shows in the text exposition with the exact names', async () => {
    const registry = new Registry()
    const { app } = makeApp({ jwks: jwksOf(es), metrics: { registry } })
    await callWith(app, token)
    const text = await registry.metrics()
    expect(text).toContain('# TYPE tokensmith_rs_requests_total counter')
    expect(text).toContain('tokensmith_rs_requests_total{outcome="accepted",reason=""} 1')
    expect(text).toContain('# TYPE tokensmith_rs_jwks_fetches_total counter')
  })

  it('refuses a metrics option without a registry, at start-up', () => {
    const options = { issuer: ISSUER, audience: AUDIENCE, jwks: jwksOf(es) }
    expect(() => bearerAuth({ ...options, metrics: {} as never })).toThrow(/metrics must be \{ registry \}/)
    expect(() => bearerAuth({ ...options, metrics: { registry: {} as never } })).toThrow(TypeError)
  })

  it('a metric of the same name registered by the application makes start-up throw', async () => {
    const registry = new Registry()
    const { Counter } = await import('prom-client')
    new Counter({ name: 'tokensmith_rs_requests_total', help: 'mine', registers: [registry] })
    expect(() => makeApp({ jwks: jwksOf(es), metrics: { registry } })).toThrow(/already been registered/)
  })
})

describe('bearerAuth metrics: tokensmith_rs_jwks_fetches_total', () => {
  const JWKS_URI = 'https://as.example.test/.well-known/jwks.json'

  it('counts fetch attempts by outcome', async () => {
    const registry = new Registry()
    const clock = { now: NOW }
    let answer: () => Response = () => Response.json(jwksOf(es))
    const app = new Hono<{ Variables: BearerAuthVariables }>()
    app.use(
      '/api/*',
      bearerAuth({
        issuer: ISSUER,
        audience: AUDIENCE,
        jwks: { uri: JWKS_URI, cooldown: 10, cacheMaxAge: 60 },
        clock: () => clock.now,
        fetch: async () => answer(),
        metrics: { registry },
      }),
    )
    app.get('/api/whoami', (c) => c.json(c.get('auth')))
    const call = () => app.request('/api/whoami', bearer(signToken(es, { ...DEFAULTS, now: clock.now })))

    expect((await call()).status).toBe(200) // first fetch: ok
    expect((await call()).status).toBe(200) // cached
    answer = () => new Response('nope', { status: 500 })
    clock.now += 61
    expect((await call()).status).toBe(200) // refresh fails, the cached set is still good
    clock.now += 11
    answer = () => Response.json({ keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 'x' }] })
    expect((await call()).status).toBe(200) // a refused set is an error too
    clock.now += 11
    answer = () => Response.json(jwksOf(es))
    expect((await call()).status).toBe(200)

    expect(await series(registry, 'tokensmith_rs_jwks_fetches_total')).toEqual({ 'outcome=ok': 2, 'outcome=error': 2 })
  })

  it('createRemoteKeySource calls onFetch after each attempt, and ignores a throwing hook', async () => {
    const outcomes: string[] = []
    let fail = false
    const keys = createRemoteKeySource({
      url: new URL(JWKS_URI),
      cacheMaxAge: 0,
      cooldown: 0,
      timeout: 5,
      maxBytes: 65_536,
      maxStale: 3600,
      clock: () => NOW,
      fetch: async () => (fail ? new Response('', { status: 503 }) : Response.json(jwksOf(es))),
      onFetch: (outcome) => {
        outcomes.push(outcome)
        throw new Error('hook failure')
      },
    })
    await keys.setFor('es-1')
    fail = true
    await expect(keys.setFor('missing')).rejects.toMatchObject({ reason: 'jwks_unavailable' })
    expect(outcomes).toEqual(['ok', 'error'])
    expect(keys.fetches()).toBe(2)
  })
})

describe('bearerAuth metrics: prom-client is optional', () => {
  it('is not loaded without the option, and loaded with it', async () => {
    const root = resolve(import.meta.dirname, '../../..')
    const script = join(tempDir('tokensmith-rs-metrics-'), 'probe.mts')
    writeFileSync(
      script,
      `import { createRequire } from 'node:module'
const { bearerAuth } = await import(${JSON.stringify(join(root, 'src/verifier/index.ts'))})
const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((path) => path.includes('prom-client'))
const options = { issuer: 'https://as.test', audience: 'api', jwks: { keys: [] } }
bearerAuth(options)
const before = loaded()
const { Registry } = createRequire(${JSON.stringify(join(root, 'package.json'))})('prom-client')
bearerAuth({ ...options, metrics: { registry: new Registry() } })
console.log(JSON.stringify({ before, after: loaded() }))
`,
    )
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', script], { cwd: root })
    expect(JSON.parse(stdout)).toEqual({ before: false, after: true })
  })
})
