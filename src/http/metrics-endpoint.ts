import { createHash, timingSafeEqual } from 'node:crypto'
import { type Context, Hono } from 'hono'
import type { Deps } from '../deps.js'
import { OAuthError } from '../errors.js'
import { metricsEnabled, metricsOf } from '../observability/metrics.js'
import { type RunningServer, startServer } from '../server.js'
import { requestMetrics } from './middleware/metrics.js'
import { renderError } from './render-error.js'
import type { AppEnv } from './types.js'

/** The Prometheus text exposition format, version 0.0.4. */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

/**
 * Adds metrics to the authorization server's app, when METRICS_PORT or METRICS_TOKEN is set (else
 * nothing: no cost, no route): the request timer for every route, and with METRICS_TOKEN, GET /metrics
 * on PORT for `Authorization: Bearer <METRICS_TOKEN>`. Anything else asking for /metrics gets the very
 * 404 of a path that does not exist, so the endpoint is not revealed. Call it in createApp before the
 * first route: Hono runs middleware only for the routes added after it.
 */
export function installMetrics(app: Hono<AppEnv>, deps: Deps): void {
  if (!metricsEnabled(deps.config)) return
  const metrics = metricsOf(deps)
  app.use(requestMetrics(metrics))
  const token = deps.config.metricsToken
  if (token === undefined) return
  const expected = digest(token)
  app.get('/metrics', async (c) => {
    if (!bearerMatches(c.req.header('authorization'), expected)) {
      return renderError(c, new OAuthError('invalid_request', 404, 'no such endpoint'))
    }
    return exposition(c, deps)
  })
}

/** SHA-256 first, so the comparison takes the same time whatever the lengths (the digests are equal in length). */
const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest()

function bearerMatches(authorization: string | undefined, expected: Buffer): boolean {
  const match = /^Bearer +(\S+)$/i.exec(authorization ?? '')
  // Always compare, so a missing or malformed header takes the time of a wrong token ('' never matches:
  // METRICS_TOKEN has at least 32 characters).
  return timingSafeEqual(digest(match?.[1] ?? ''), expected)
}

async function exposition(c: Context, deps: Deps): Promise<Response> {
  const body = await metricsOf(deps).registry.metrics()
  return c.body(body, 200, { 'Content-Type': METRICS_CONTENT_TYPE, 'Cache-Control': 'no-store' })
}

/** The app of METRICS_PORT: GET /metrics (HEAD too), and a plain 404 for everything else. */
export function createMetricsApp(deps: Deps): Hono<AppEnv> {
  const app = new Hono<AppEnv>()
  app.get('/metrics', (c) => exposition(c, deps))
  app.notFound((c) => c.text('Not Found', 404, { 'Cache-Control': 'no-store' }))
  app.onError((error, c) => {
    deps.log.error({ err: error }, 'metrics: scrape failed')
    return c.text('Internal Server Error', 500, { 'Cache-Control': 'no-store' })
  })
  return app
}

/**
 * Serves GET /metrics alone on METRICS_PORT (no token: keep the port off the public network), with the
 * same socket limits as the main server. Close it on shutdown.
 */
export function startMetricsServer(deps: Deps, port: number, host: string): Promise<RunningServer> {
  return startServer(createMetricsApp(deps), { port, host })
}
