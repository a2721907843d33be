import cluster from 'node:cluster'
import { checkBeforeFork } from './bootstrap.js'
import { systemClock } from './clock.js'
import { startPrimary } from './cluster.js'
import { ConfigError, cleartextWarning, loadConfig, type Config } from './config.js'
import { readEnv, type Env } from './env.js'
import { createLogger, exitOnFatal, type Logger } from './observability/logger.js'
import { exit, serve } from './serve.js'

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
  const log = createLogger(config.logLevel, undefined, cluster.worker ? { worker: cluster.worker.id } : {})
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

main().catch((error: unknown) => {
  const who = cluster.worker ? `worker ${cluster.worker.id} ` : ''
  process.stderr.write(`tokensmith: ${who}failed to start: ${(error as Error).message}\n`)
  process.exit(1)
})
