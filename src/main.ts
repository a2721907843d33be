import { createApp } from './app.js'
import { buildDeps, watchClients, watchKeys } from './bootstrap.js'
import { systemClock } from './clock.js'
import { ConfigError, cleartextWarning, loadConfig } from './config.js'
import { readEnv } from './env.js'
import { createLogger } from './observability/logger.js'
import { startServer } from './server.js'

async function main(): Promise<void> {
  let config
  try {
    config = loadConfig(readEnv())
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    for (const problem of error.problems) process.stderr.write(`tokensmith: configuration: ${problem}\n`)
    process.exit(1)
  }

  const log = createLogger(config.logLevel)
  const cleartext = cleartextWarning(config)
  if (cleartext) log.warn({ host: config.host, issuer: config.issuer }, cleartext)
  const deps = await buildDeps(config, log, systemClock)
  // The keys watcher's first check runs now, before serving: it reports exposed or unencrypted key
  // files and denylists revoked keys.
  const interval = config.reloadInterval * 1000
  const watchers = [await watchClients(deps, interval), await watchKeys(deps, interval)]
  const running = await startServer(createApp(deps), { port: config.port, host: config.host })
  log.info({ url: running.url, issuer: config.issuer, pid: process.pid }, 'tokensmith listening')
  process.on('SIGHUP', () => {
    log.info('SIGHUP: reloading')
    for (const watcher of watchers) void watcher.check()
  })

  // Graceful shutdown: /readyz turns 503 at once, no new connections, in-flight requests finish,
  // then exit 0. A second signal, or 10 s without finishing, forces the exit.
  let stopping = false
  const stop = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal, exiting now')
      process.exit(1)
    }
    stopping = true
    deps.lifecycle.shuttingDown = true
    for (const watcher of watchers) watcher.stop()
    log.info({ signal }, 'shutting down')
    setTimeout(() => {
      log.error('in-flight requests did not finish within 10 s, exiting')
      process.exit(1)
    }, 10_000).unref()
    running.close().then(async () => {
      await deps.denylist.close().catch(() => {})
      log.info('stopped')
      log.flush()
      process.exit(0)
    })
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
}

main().catch((error: unknown) => {
  process.stderr.write(`tokensmith: failed to start: ${(error as Error).message}\n`)
  process.exit(1)
})
