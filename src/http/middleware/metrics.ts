import type { MiddlewareHandler } from 'hono'
import { matchedRoutes } from 'hono/route'
import type { Metrics } from '../../observability/metrics.js'
import type { AppEnv } from '../types.js'

/** The paths middleware is registered under (`app.use(handler)`): never a route of their own. */
const MIDDLEWARE_PATHS = new Set(['/*', '*'])

/**
 * Times every request into tokensmith_http_request_duration_seconds{route, status_class}, and counts
 * token endpoint answers into tokensmith_token_requests_total{client_id, outcome}. The route
 * is the pattern that answered ('/oauth/token'), never the path asked for, so the label stays bounded;
 * a request no route matched is 'unmatched'. Registered before the routes (Hono runs middleware in the
 * order it was added), by installMetrics (src/http/metrics-endpoint.ts).
 */
export function requestMetrics(metrics: Pick<Metrics, 'httpDuration' | 'tokenRequest'>): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const started = performance.now()
    try {
      await next()
    } finally {
      const seconds = (performance.now() - started) / 1000
      const route = routeOf(c)
      metrics.httpDuration.observe({ route, status_class: statusClass(c.res.status) }, seconds)
      // Tokens by client and outcome: issued, or why not (RFC 6749 §5.2 codes).
      if (route === '/oauth/token') {
        metrics.tokenRequest(c.get('clientId'), c.res.status === 200 ? 'issued' : (c.get('error') ?? 'server_error'))
      }
    }
  }
}

function routeOf(c: Parameters<MiddlewareHandler<AppEnv>>[0]): string {
  const routes = matchedRoutes(c)
  for (let i = routes.length - 1; i >= 0; i--) {
    const path = routes[i]?.path
    if (path !== undefined && !MIDDLEWARE_PATHS.has(path)) return path
  }
  return 'unmatched'
}

export const statusClass = (status: number): string =>
  status >= 100 && status < 600 ? `${Math.floor(status / 100)}xx` : 'other'
