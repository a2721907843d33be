import { Hono } from 'hono'
import parsePrometheusTextFormat, { type ParsedFamily } from 'parse-prometheus-text-format'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp } from '../../src/app.js'
import { systemClock } from '../../src/clock.js'
import type { Deps } from '../../src/deps.js'
import { instrumentDenylist } from '../../src/denylist/instrumented.js'
import { OAuthError } from '../../src/errors.js'
import { installMetrics, METRICS_CONTENT_TYPE, startMetricsServer } from '../../src/http/metrics-endpoint.js'
import { renderError } from '../../src/http/render-error.js'
import type { AppEnv } from '../../src/http/types.js'
import { metricsOf } from '../../src/observability/metrics.js'
import { type RunningServer, startServer } from '../../src/server.js'
import { freePort } from '../helpers/free-port.js'
import { basic, FORM, makeDeps } from '../helpers/make-deps.js'

const METRICS_TOKEN = 'metrics-token-0123456789abcdefghijklmnop'

/**
 * The app as serve.ts runs it. Once app.ts calls installMetrics(app, deps) in createApp, that is
 * createApp alone; until then the metrics are put in front of it here, with the same 404 for
 * unknown paths, so that this test runs the same sequence either way.
 */
function appWithMetrics(deps: Deps): Hono<AppEnv> {
  const app = createApp(deps)
  if (app.routes.some((route) => route.path === '/metrics')) return app
  const outer = new Hono<AppEnv>()
  installMetrics(outer, deps)
  outer.route('/', app)
  outer.notFound((c) => renderError(c, new OAuthError('invalid_request', 404, 'no such endpoint')))
  return outer
}

/** Every family of an exposition, parsed strictly: each sample a number, every family typed and described. */
function parseExposition(text: string): Map<string, ParsedFamily> {
  const families = parsePrometheusTextFormat(text)
  const byName = new Map<string, ParsedFamily>()
  // Go's ParseFloat, which Prometheus uses: special values in any case (prom-client writes `Nan`).
  const number = /^(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?inf(?:inity)?|nan)$/i
  for (const family of families) {
    expect(byName.has(family.name), `family ${family.name} once`).toBe(false)
    byName.set(family.name, family)
    expect(family.help, `HELP of ${family.name}`).not.toBe('')
    expect(family.type, `TYPE of ${family.name}`).not.toBe('UNTYPED')
    for (const sample of family.metrics) {
      const values = [
        sample.value,
        sample.count,
        sample.sum,
        ...Object.values(sample.buckets ?? {}),
        ...Object.values(sample.quantiles ?? {}),
      ]
      for (const value of values) if (value !== undefined) expect(value, `a sample of ${family.name}`).toMatch(number)
    }
  }
  // Every line is a comment, a sample of a described family, or empty.
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue
    expect(line, 'a sample line').toMatch(SAMPLE)
  }
  return byName
}

/** The value of one series of a counter or gauge family, by its exact labels. */
function sample(families: Map<string, ParsedFamily>, name: string, labels: Record<string, string> = {}) {
  const family = families.get(name)
  if (!family) throw new Error(`no family ${name}`)
  const same = (other: Record<string, string> = {}) =>
    JSON.stringify(Object.entries(other).sort()) === JSON.stringify(Object.entries(labels).sort())
  const found = family.metrics.find((metric) => same(metric.labels))
  return found === undefined ? undefined : Number(found.value)
}

/** One sample line: `name{label="value",...} value`, read strictly (label values with their escapes). */
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*",?)*)\})? (\S+)$/
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"/g

/**
 * The observation counts of a histogram, as its labels joined by a space → count, read from the
 * `<name>_count` lines (the parser above groups histogram series wrongly when `le` is not where it
 * expects it, so their labels are read here).
 */
function histogramCounts(text: string, name: string): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const line of text.split('\n')) {
    const match = SAMPLE.exec(line)
    if (match?.[1] !== `${name}_count`) continue
    const labels = [...(match[2] ?? '').matchAll(LABEL)].map((label) => label[2])
    counts[labels.join(' ')] = Number(match[3])
  }
  return counts
}

describe('GET /metrics after a scripted sequence of requests', () => {
  let deps: Deps
  let main: RunningServer
  let metricsServer: RunningServer

  beforeAll(async () => {
    const port = await freePort()
    const metricsPort = await freePort()
    deps = await makeDeps({
      clock: systemClock,
      config: {
        issuer: `http://127.0.0.1:${port}`,
        metricsToken: METRICS_TOKEN,
        metricsPort,
        authFailureLimit: 2,
      },
    })
    // What bootstrap.ts does once metrics are enabled.
    metricsOf(deps)
    deps.denylist = instrumentDenylist(deps.denylist, metricsOf(deps))
    main = await startServer(appWithMetrics(deps), { port, host: '127.0.0.1' })
    metricsServer = await startMetricsServer(deps, metricsPort, '127.0.0.1')
  })
  afterAll(async () => {
    await main?.close()
    await metricsServer?.close()
    metricsOf(deps).close()
    await deps.denylist.close()
  })

  const token = (authorization: string | undefined, body = 'grant_type=client_credentials') =>
    fetch(`${main.url}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': FORM, ...(authorization !== undefined && { authorization }) },
      body,
    })
  /** null: no Authorization header. */
  const scrape = (url = main.url, authorization: string | null = `Bearer ${METRICS_TOKEN}`) =>
    fetch(`${url}/metrics`, { headers: authorization === null ? {} : { authorization } })

  it('counts what was done, per label, in an exposition that parses', async () => {
    const statuses: number[] = []
    for (let i = 0; i < 3; i++) statuses.push((await token(basic('svc-a', 'tks_secret-of-a'))).status)
    const post = await token(undefined, 'grant_type=client_credentials&client_id=svc-b&client_secret=tks_secret-of-b')
    statuses.push(post.status)
    const { access_token: svcBToken } = (await post.json()) as { access_token: string }
    // Two wrong secrets for svc-a from this address: the second reaches AUTH_FAILURE_LIMIT=2 ...
    statuses.push(
      (await token(basic('svc-a', 'tks_guess-7'))).status,
      (await token(basic('svc-a', 'tks_guess-7'))).status,
    )
    // ... so the right one is refused now.
    statuses.push((await token(basic('svc-a', 'tks_secret-of-a'))).status)
    statuses.push((await token(undefined)).status)
    statuses.push((await token(basic('intruder-203.0.113.9', 'guess'))).status)
    statuses.push((await fetch(`${main.url}/oauth/token`)).status)
    statuses.push((await fetch(`${main.url}/nowhere/at/all`)).status)
    const revoke = await fetch(`${main.url}/oauth/revoke`, {
      method: 'POST',
      headers: { 'content-type': FORM, authorization: basic('svc-b', 'tks_secret-of-b') },
      body: `token=${svcBToken}`,
    })
    statuses.push(revoke.status)
    expect(statuses).toEqual([200, 200, 200, 200, 401, 401, 429, 401, 401, 405, 404, 200])

    const res = await scrape()
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe(METRICS_CONTENT_TYPE)
    expect(res.headers.get('cache-control')).toBe('no-store')
    const text = await res.text()
    const families = parseExposition(text)

    expect(families.get('tokensmith_tokens_issued_total')?.metrics).toEqual([
      { labels: { client_id: 'svc-a', auth_method: 'client_secret_basic' }, value: '3' },
      { labels: { client_id: 'svc-b', auth_method: 'client_secret_post' }, value: '1' },
    ])
    expect(families.get('tokensmith_auth_failures_total')?.metrics).toEqual([
      {
        labels: { reason: 'unknown_client_or_wrong_secret', auth_method: 'client_secret_basic', trust_entry: '' },
        value: '3',
      },
      { labels: { reason: 'no_credentials', auth_method: 'none', trust_entry: '' }, value: '1' },
    ])
    // Token endpoint answers by client and outcome; a failed authentication names no client.
    const requests = (client_id: string, outcome: string) =>
      sample(families, 'tokensmith_token_requests_total', { client_id, outcome })
    expect(requests('svc-a', 'issued')).toBe(3)
    expect(requests('svc-b', 'issued')).toBe(1)
    expect(requests('', 'invalid_client')).toBe(4)
    expect(requests('svc-a', 'temporarily_unavailable')).toBe(1)
    expect(requests('', 'invalid_request')).toBe(1)
    expect(families.get('tokensmith_token_requests_total')?.metrics).toHaveLength(5)
    expect(families.get('tokensmith_limit_trips_total')?.metrics).toEqual([
      { labels: { limit: 'auth_client' }, value: '1' },
    ])
    expect(histogramCounts(text, 'tokensmith_http_request_duration_seconds')).toEqual({
      '/oauth/token 2xx': 4,
      '/oauth/token 4xx': 6,
      'unmatched 4xx': 1,
      '/oauth/revoke 2xx': 1,
    })
    expect(sample(families, 'tokensmith_denylist_operations_total', { operation: 'revoke_token', outcome: 'ok' })).toBe(
      1,
    )
    expect(histogramCounts(text, 'tokensmith_denylist_operation_duration_seconds').revoke_token).toBe(1)
    expect(sample(families, 'tokensmith_ready')).toBe(1)
    const kid = deps.keys.signingKey().kid
    expect(sample(families, 'tokensmith_signing_key_state', { kid, alg: 'ES256', state: 'current' })).toBe(1)
    const created = deps.keys.records.find((record) => record.kid === kid)?.created ?? Number.NaN
    const age = sample(families, 'tokensmith_signing_key_age_seconds', { kid, state: 'current' }) ?? Number.NaN
    expect(Math.abs(age - (deps.clock() - created))).toBeLessThan(5)
    for (const name of [
      'process_cpu_user_seconds_total',
      'nodejs_eventloop_lag_seconds',
      'nodejs_heap_size_used_bytes',
    ])
      expect(families.has(name), name).toBe(true)

    // Never an address, a claimed id, a jti or a secret as a label value.
    const jti = JSON.parse(Buffer.from(svcBToken.split('.')[1] ?? '', 'base64url').toString()).jti as string
    for (const leaked of ['127.0.0.1', 'intruder', '203.0.113.9', jti, 'tks_secret', 'tks_guess', METRICS_TOKEN])
      expect(text).not.toContain(leaked)

    // The scrape itself is counted once answered: the next one shows it.
    const again = await (await scrape()).text()
    parseExposition(again)
    expect(histogramCounts(again, 'tokensmith_http_request_duration_seconds')['/metrics 2xx']).toBe(1)
  })

  it('answers /metrics on PORT only to the right token, with the 404 of a path that does not exist', async () => {
    const unknown = await fetch(`${main.url}/no-such-endpoint`)
    const expected = { status: 404, body: await unknown.text(), type: unknown.headers.get('content-type') }
    expect(expected.status).toBe(404)
    const refused = [
      await scrape(main.url, null),
      await scrape(main.url, `Bearer ${METRICS_TOKEN}x`),
      await scrape(main.url, `Bearer ${METRICS_TOKEN.slice(0, -1)}`),
      await scrape(main.url, 'Bearer '),
      await scrape(main.url, `Basic ${METRICS_TOKEN}`),
      await scrape(main.url, METRICS_TOKEN),
      await fetch(`${main.url}/metrics`, { method: 'POST', headers: { authorization: `Bearer ${METRICS_TOKEN}` } }),
    ]
    for (const [index, res] of refused.entries()) {
      expect({ status: res.status, body: await res.text(), type: res.headers.get('content-type'), index }).toEqual({
        ...expected,
        index,
      })
    }
    expect((await scrape(main.url, `bearer  ${METRICS_TOKEN}`)).status).toBe(200)
  })

  it('serves /metrics and nothing else on METRICS_PORT, without a token', async () => {
    const res = await scrape(metricsServer.url, null)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe(METRICS_CONTENT_TYPE)
    const families = parseExposition(await res.text())
    expect(
      sample(families, 'tokensmith_tokens_issued_total', { client_id: 'svc-a', auth_method: 'client_secret_basic' }),
    ).toBe(3)
    expect((await fetch(`${metricsServer.url}/metrics`, { method: 'HEAD' })).status).toBe(200)
    for (const path of ['/', '/oauth/token', '/.well-known/jwks.json', '/healthz', '/readyz', '/metrics/x']) {
      expect((await fetch(`${metricsServer.url}${path}`)).status, path).toBe(404)
    }
    const post = await fetch(`${metricsServer.url}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': FORM, authorization: basic('svc-b', 'tks_secret-of-b') },
      body: 'grant_type=client_credentials',
    })
    expect(post.status).toBe(404)
    expect(await post.text()).not.toContain('access_token')
  })
})

describe('without METRICS_PORT and METRICS_TOKEN', () => {
  it('has no /metrics and counts nothing', async () => {
    const deps = await makeDeps()
    const app = new Hono<AppEnv>()
    installMetrics(app, deps)
    expect(app.routes).toEqual([])
    const res = await createApp(deps).request('/metrics', { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })
    expect(res.status).toBe(404)
  })
})
