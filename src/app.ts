import { Hono } from 'hono'
import type { Deps } from './deps.js'
import { OAuthError, methodNotAllowed } from './errors.js'
import { healthHandler, readyHandler } from './http/health.js'
import { requestId } from './http/middleware/request-id.js'
import { requestLog } from './http/middleware/request-log.js'
import { renderError, toOAuthError } from './http/render-error.js'
import { installMetrics } from './http/metrics-endpoint.js'
import { introspectHandler } from './http/introspect.js'
import { revokeHandler } from './http/revoke.js'
import { tokenHandler } from './http/token.js'
import type { AppEnv } from './http/types.js'
import { jwksHandler, metadataHandler } from './http/well-known.js'

/** Builds the authorization server's HTTP app. Nothing runs until a request arrives. */
export function createApp(deps: Deps): Hono<AppEnv> {
  const app = new Hono<AppEnv>()
  app.use(requestId())
  app.use(requestLog(deps.log))
  // Before every route: Hono runs a middleware only for the routes added after it.
  installMetrics(app, deps)
  app.use(async (c, next) => {
    await next()
    // During shutdown, tell keep-alive clients to reconnect elsewhere (RFC 9112 §9.6: Connection: close).
    if (deps.lifecycle.shuttingDown) c.res.headers.set('Connection', 'close')
  })

  // RFC 6749 §3.2, RFC 7009 §2.1, RFC 7662 §2.1: POST only; anything else is 405 with Allow.
  const postOnly = () => {
    throw methodNotAllowed('POST')
  }
  app.post('/oauth/token', tokenHandler(deps)).all(postOnly)
  app.post('/oauth/revoke', revokeHandler(deps)).all(postOnly)
  app.post('/oauth/introspect', introspectHandler(deps)).all(postOnly)

  // RFC 9110 §15.5.6: a known resource asked with a method it does not support is 405 with Allow,
  // not 404. Hono answers HEAD from the GET handler (RFC 9110 §9.3.2), so HEAD never reaches getOnly.
  const getOnly = () => {
    throw methodNotAllowed('GET, HEAD')
  }
  app.get('/.well-known/jwks.json', jwksHandler(deps)).all(getOnly)
  app.get('/.well-known/oauth-authorization-server', metadataHandler(deps)).all(getOnly)
  app.get('/healthz', healthHandler).all(getOnly)
  app.get('/readyz', readyHandler(deps)).all(getOnly)

  app.notFound((c) => renderError(c, new OAuthError('invalid_request', 404, 'no such endpoint')))

  app.onError((error, c) => {
    const oauthError = toOAuthError(error)
    // The request log line carries the code and the reason; a fault of ours also logs its cause.
    c.set('error', oauthError.code)
    if (oauthError.detail) c.set('errorDetail', oauthError.detail)
    if (oauthError.status >= 500)
      deps.log.error(
        { err: error, path: c.req.path, code: oauthError.code, request_id: c.get('requestId') },
        'request failed',
      )
    return renderError(c, oauthError)
  })
  return app
}
