/**
 * Bench-only entry (plain JavaScript: no TypeScript loader in the process). The server as
 * src/main.ts assembles it, from the compiled modules in dist/, plus one route:
 *
 *   POST /bench/floor   answers a token response prepared at start-up, with the token endpoint's
 *                       own status, headers and body (a real token issued to the bench client)
 *
 * So its throughput is what this app, framework, middleware and request log included, does around
 * a token request when authenticating and signing cost nothing: the floor under the token endpoint.
 * Everything else is served normally. Env: the server's, plus FLOOR_AUTHORIZATION, the
 * client_secret_basic Authorization header of a registered client.
 *
 * Keep the assembly in step with src/main.ts (see the bench's README notes).
 */
import { createApp } from '../../dist/app.js'
import { buildDeps, watchClients, watchKeys } from '../../dist/bootstrap.js'
import { systemClock } from '../../dist/clock.js'
import { loadConfig } from '../../dist/config.js'
import { readEnv } from '../../dist/env.js'
import { createLogger } from '../../dist/observability/logger.js'
import { startServer } from '../../dist/server.js'

const fail = (message) => {
  process.stderr.write(`floor-server: ${message}\n`)
  process.exit(1)
}

const config = loadConfig(readEnv())
const log = createLogger(config.logLevel)
const deps = await buildDeps(config, log, systemClock)
const interval = config.reloadInterval * 1000
const watchers = [await watchClients(deps, interval), await watchKeys(deps, interval)]
const app = createApp(deps)

// Registered before the first request: Hono builds its router then and takes no route after.
let prepared
app.post('/bench/floor', (c) => c.body(prepared.body, 200, prepared.headers))

const authorization = process.env.FLOOR_AUTHORIZATION ?? fail('FLOOR_AUTHORIZATION is not set')
const sample = await app.request('/oauth/token', {
  method: 'POST',
  headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' },
  body: 'grant_type=client_credentials',
})
const body = await sample.text()
if (sample.status !== 200) fail(`the token endpoint answered ${sample.status}: ${body}`)
// The length is the server's to write, as for any body.
prepared = { body, headers: Object.fromEntries([...sample.headers].filter(([name]) => name !== 'content-length')) }

const running = await startServer(app, { port: config.port, host: config.host })
log.info({ url: running.url, pid: process.pid }, 'tokensmith floor server listening')

const stop = () => {
  for (const watcher of watchers) watcher.stop()
  running.close().then(async () => {
    await deps.denylist.close().catch(() => {})
    log.flush()
    process.exit(0)
  })
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
