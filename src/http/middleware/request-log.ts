import type { MiddlewareHandler } from 'hono'
import type { Logger } from '../../observability/logger.js'
import type { AppEnv } from '../types.js'

/**
 * One log line per request: method, path (never the query string: a client_secret put there by
 * mistake must not reach the logs), status, duration, and the client and token involved.
 * Monitoring of usage starts here.
 */
export function requestLog(log: Logger): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const started = performance.now()
    await next()
    const status = c.res.status
    const level = status >= 500 ? 'error' : 'info'
    // Below LOG_LEVEL the line would be dropped: do not build it.
    if (!log.isLevelEnabled(level)) return
    log[level](
      {
        method: c.req.method,
        path: c.req.path,
        status,
        ms: Math.round((performance.now() - started) * 10) / 10,
        client_id: c.get('clientId'),
        jti: c.get('jti'),
        error: c.get('error'),
        detail: c.get('errorDetail'),
        request_id: c.get('requestId'),
      },
      'request',
    )
  }
}
