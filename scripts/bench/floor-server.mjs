/**
 * Bench-only entry (plain JavaScript: no TypeScript loader in the process). The server exactly as
 * `npm start` runs it (dist/serve.js, the same assembly, reloads and shutdown), plus one route:
 *
 *   POST /bench/floor   answers a token response prepared at start-up, with the token endpoint's
 *                       own status, headers and body (a real token issued to the bench client)
 *
 * So its throughput is what this app, framework, middleware and request log included, does around
 * a token request when authenticating and signing cost nothing: the floor under the token endpoint.
 * Everything else is served normally. Env: the server's, plus FLOOR_AUTHORIZATION, the
 * client_secret_basic Authorization header of a registered client, and optionally FLOOR_LIMITER=off:
 * the failed-authentication limits switched off, so that the bench can show what they cost the
 * token endpoint's success path (the product has no such switch).
 */
import { loadConfig } from '../../dist/config.js'
import { readEnv } from '../../dist/env.js'
import { disableAuthLimitsForBench } from '../../dist/limits/auth-failures.js'
import { createLogger } from '../../dist/observability/logger.js'
import { serve } from '../../dist/serve.js'

const fail = (message) => {
  process.stderr.write(`floor-server: ${message}\n`)
  process.exit(1)
}

const authorization = process.env.FLOOR_AUTHORIZATION ?? fail('FLOOR_AUTHORIZATION is not set')
const config = loadConfig(readEnv())

await serve(config, createLogger(config.logLevel), {
  async extend(app, deps) {
    if (process.env.FLOOR_LIMITER === 'off') disableAuthLimitsForBench(deps)
    let prepared
    app.post('/bench/floor', (c) => c.body(prepared.body, 200, prepared.headers))
    const sample = await app.request('/oauth/token', {
      method: 'POST',
      headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials',
    })
    const body = await sample.text()
    if (sample.status !== 200) fail(`the token endpoint answered ${sample.status}: ${body}`)
    // The length is the server's to write, as for any body.
    prepared = { body, headers: Object.fromEntries([...sample.headers].filter(([name]) => name !== 'content-length')) }
  },
})
