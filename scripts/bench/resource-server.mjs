/**
 * Bench-only resource server (plain JavaScript, compiled modules from dist/ as a consumer of
 * `tokensmith/verifier` and `tokensmith/revocation-feed` gets them): the route of
 * examples/resource-server.ts behind `bearerAuth`, with the Redis revocation feed on.
 *
 *   GET /invoices   bearerAuth (issuer's remote JWKS, scope invoices:read, the feed as denylist)
 *   GET /healthz    200 once listening
 *   GET /readyz     200 once the feed is live (subscribed and fully loaded), else 503
 *
 * Env: PORT, ISSUER, AUDIENCE, REDIS_URL, REDIS_KEY_PREFIX; TOKEN_CACHE=off verifies every token afresh
 * (`tokenCache: false`), for the row that shows the signature check's own cost.
 */
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { systemClock } from '../../dist/clock.js'
import { createRevocationFeed } from '../../dist/denylist/revocation-feed.js'
import { bearerAuth, scopesOf } from '../../dist/verifier/index.js'

const env = process.env
const write =
  (level) =>
  (...args) =>
    process.stderr.write(
      `resource-server ${level}: ${args.map((arg) => (typeof arg === 'string' ? arg : JSON.stringify(arg))).join(' ')}\n`,
    )
const log = { info: write('info'), warn: write('warn'), error: write('error') }

const denylist = createRevocationFeed({ url: env.REDIS_URL, keyPrefix: env.REDIS_KEY_PREFIX, clock: systemClock, log })
const auth = (scopes) =>
  bearerAuth({
    issuer: env.ISSUER,
    audience: env.AUDIENCE,
    jwks: { uri: `${env.ISSUER}/.well-known/jwks.json` },
    scopes,
    denylist,
    ...(env.TOKEN_CACHE === 'off' ? { tokenCache: false } : {}),
  })

const app = new Hono()
app.get('/healthz', (c) => c.text('ok'))
app.get('/readyz', (c) => (denylist.live ? c.text('ready') : c.text('feed not live', 503)))
app.get('/invoices', auth(['invoices:read']), (c) => {
  const claims = c.get('auth')
  return c.json({ invoices: [], client: claims.client_id, scopes: scopesOf(claims) })
})

const server = serve({ fetch: app.fetch, port: Number(env.PORT), hostname: '127.0.0.1' })
process.on('SIGTERM', () => {
  server.close()
  void denylist.close().finally(() => process.exit(0))
})
