import cluster from 'node:cluster'
import { createApp } from './app.js'
import { buildDeps, checkBeforeFork, watchClients, watchKeys } from './bootstrap.js'
import { systemClock } from './clock.js'
import { isPrimaryCommand, startPrimary } from './cluster.js'
import { ConfigError, cleartextWarning, loadConfig, type Config } from './config.js'
import { readEnv, type Env } from './env.js'
import { createLogger, exitOnFatal, flushLogSync, type Logger } from './observability/logger.js'
import { startServer } from './server.js'

/** process.exit, after writing out the log lines still buffered. */
function exit(log: Logger, code: number): never {
  flushLogSync(log)
  process.exit(code)
}

async function main(): Promise<void> {
  let env: Env
  let config: Config
  try {
    env = readEnv()
    config = loadConfig(env)
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    for (const problem of error.problems) process.stderr.write(`tokensmith: configuration: ${problem}\n`)
    process.exit(1)
  }

  // A cluster worker's lines carry its id, so that the lines of N processes can be told apart.
  const log = createLogger(config.logLevel, undefined, cluster.isWorker ? { worker: cluster.worker!.id } : {})
  const fatal = exitOnFatal(log)
  process.on('uncaughtException', fatal)
  process.on('unhandledRejection', (reason) => fatal(reason, 'unhandledRejection'))
  const cleartext = cleartextWarning(config)
  if (cleartext && !cluster.isWorker) log.warn({ host: config.host, issuer: config.issuer }, cleartext)

  if (config.workers > 1 && cluster.isPrimary) return runPrimary(config, env, log)
  return serve(config, log)
}

/**
 * WORKERS > 1: check the configuration, keys and clients once, then fork the workers and pass
 * signals on to them. The primary serves nothing.
 */
async function runPrimary(config: Config, env: Env, log: Logger): Promise<void> {
  await checkBeforeFork(config, log, systemClock)
  const primary = startPrimary({ workers: config.workers, env, log, exit: (code) => exit(log, code) })
  process.on('SIGHUP', () => {
    log.info('SIGHUP: reloading every worker')
    primary.reload()
  })
  process.on('SIGTERM', () => primary.stop('SIGTERM'))
  process.on('SIGINT', () => primary.stop('SIGINT'))
}

/** Serves on its own (WORKERS=1) or as one cluster worker, exactly as a separate instance does. */
async function serve(config: Config, log: Logger): Promise<void> {
  const deps = await buildDeps(config, log, systemClock)
  // The keys watcher's first check runs now, before serving: it reports exposed or unencrypted key
  // files and denylists revoked keys.
  const interval = config.reloadInterval * 1000
  const watchers = [await watchClients(deps, interval), await watchKeys(deps, interval)]
  const server = await startServer(createApp(deps), { port: config.port, host: config.host })
  log.info({ url: server.url, issuer: config.issuer, pid: process.pid }, 'tokensmith listening')
  const reload = () => {
    log.info('SIGHUP: reloading')
    for (const watcher of watchers) void watcher.check()
  }

  // Graceful shutdown: /readyz turns 503 at once, no new connections, in-flight requests finish,
  // then exit 0. A second signal, or 10 s without finishing, forces the exit.
  let stopping = false
  const force = (signal: string) => {
    log.warn({ signal }, 'second signal, exiting now')
    exit(log, 1)
  }
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    deps.lifecycle.shuttingDown = true
    for (const watcher of watchers) watcher.stop()
    log.info({ signal }, 'shutting down')
    setTimeout(() => {
      log.error('in-flight requests did not finish within 10 s, exiting')
      exit(log, 1)
    }, 10_000).unref()
    void server.close().then(async () => {
      await deps.denylist.close().catch(() => {})
      log.info('stopped')
      exit(log, 0)
    })
  }
  // In a cluster the primary counts the signals: a worker that gets the terminal's Ctrl-C itself
  // gets the primary's shutdown too, in either order, and that is not a second signal.
  const onSignal = (signal: string) => (stopping && !cluster.isWorker ? force(signal) : stop(signal))
  process.on('SIGHUP', reload)
  process.on('SIGTERM', () => onSignal('SIGTERM'))
  process.on('SIGINT', () => onSignal('SIGINT'))
  // A worker's orders from the primary, which sends them once the worker listens (that is, from now on).
  if (cluster.isWorker) {
    process.on('message', (message: unknown) => {
      if (!isPrimaryCommand(message)) return
      if (message.tokensmith === 'reload') reload()
      else if (message.tokensmith === 'shutdown') stop(message.signal)
      else force(message.signal)
    })
  }
}

main().catch((error: unknown) => {
  const who = cluster.isWorker ? `worker ${cluster.worker!.id} ` : ''
  process.stderr.write(`tokensmith: ${who}failed to start: ${(error as Error).message}\n`)
  process.exit(1)
})
