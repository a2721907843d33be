/**
 * The bench's resource server: one route behind `bearerAuth`, with the Redis revocation feed on, in
 * its own process (like the token server) so autocannon measures the middleware, not the bench.
 * Env: PORT, ISSUER, AUDIENCE, REDIS_URL, REDIS_KEY_PREFIX.
 */
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { systemClock } from '../../src/clock.js'
import { createRedisRevocationCheck } from '../../src/denylist/feed.js'
import { createLogger } from '../../src/observability/logger.js'
import { bearerAuth } from '../../src/verifier/index.js'

const env = process.env as Record<string, string>
const denylist = createRedisRevocationCheck({
  url: env.REDIS_URL!,
  keyPrefix: env.REDIS_KEY_PREFIX!,
  clock: systemClock,
  log: createLogger('warn'),
})
const app = new Hono()
app.get('/readyz', (c) => c.text(denylist.live ? 'ready' : 'feed not live', denylist.live ? 200 : 503))
app.use('/api/*', bearerAuth({ issuer: env.ISSUER!, audience: env.AUDIENCE!, jwksUri: `${env.ISSUER}/.well-known/jwks.json`, denylist }))
app.get('/api/orders', (c) => c.json({ orders: [] }))
serve({ fetch: app.fetch, port: Number(env.PORT), hostname: '127.0.0.1' })
process.on('SIGTERM', () => void denylist.close().finally(() => process.exit(0)))
