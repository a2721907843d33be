import cluster from 'node:cluster'
import type { Server as HttpsServer } from 'node:https'
import type { Hono } from 'hono'
import type { AppEnv } from './http/types.js'
import { createApp } from './app.js'
import { buildDeps } from './bootstrap.js'
import { watchClients } from './clients/reload.js'
import { openTls } from './http/tls.js'
import { watchKeys } from './keys/reload.js'
import { watchTrust } from './federation/reload.js'
import { systemClock } from './clock.js'
import { isPrimaryCommand } from './cluster.js'
import { authLimiterOf } from './limits/auth-failures.js'
import type { Config } from './config.js'
import type { Deps } from './deps.js'
import { flushLogSync, type Logger } from './observability/logger.js'
import { startServer } from './server.js'
import { startMetricsServer } from './http/metrics-endpoint.js'

/**
 * How long in-flight requests may take to finish after SIGTERM before the process exits anyway.
 * A Kubernetes pod's terminationGracePeriodSeconds must exceed its preStop sleep plus this
 * (test/unit/deploy/manifests.test.ts checks deploy/kubernetes against it).
 */
export const SHUTDOWN_DRAIN_MS = 10_000

/** process.exit, after writing out the log lines still buffered. */
export function exit(log: Logger, code: number): never {
  flushLogSync(log)
  process.exit(code)
}

export interface ServeOptions {
  /**
   * Adds to the app before it serves its first request (Hono builds its router then and takes no
   * route after). The bench's floor server adds its one route here.
   */
  extend?: (app: Hono<AppEnv>, deps: Deps) => void | Promise<void>
}

/** Serves on its own (WORKERS=1) or as one cluster worker, exactly as a separate instance does. */
export async function serve(config: Config, log: Logger, options: ServeOptions = {}): Promise<void> {
  // TLS files that cannot be used stop start-up, naming the file, rather than serve in clear (RFC 6749 §1.6).
  const tls =
    config.tlsCertFile && config.tlsKeyFile
      ? await openTls({ certFile: config.tlsCertFile, keyFile: config.tlsKeyFile }, log)
      : undefined
  const deps = await buildDeps(config, log, systemClock)
  // Made now, so its subscription to other instances' blocks is live before the first request.
  const authLimiter = authLimiterOf(deps)
  // The keys watcher's first check runs now, before serving: it reports exposed or unencrypted key
  // files and denylists revoked keys.
  const interval = config.reloadInterval * 1000
  const watchers = [
    await watchClients(deps, interval),
    await watchKeys(deps, interval),
    await watchTrust(deps, interval),
  ]
  const app = createApp(deps)
  await options.extend?.(app, deps)
  const server = await startServer(app, { port: config.port, host: config.host, tls: tls?.pair })
  if (tls) watchers.push(tls.watch(server.server as HttpsServer, interval))
  log.info({ url: server.url, issuer: config.issuer, pid: process.pid }, 'tokensmith listening')
  const metricsServer =
    config.metricsPort === undefined ? undefined : await startMetricsServer(deps, config.metricsPort, config.host)
  if (metricsServer) log.info({ url: metricsServer.url }, 'metrics listening')
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
      log.error({ drainMs: SHUTDOWN_DRAIN_MS }, 'in-flight requests did not finish in time, exiting')
      exit(log, 1)
    }, SHUTDOWN_DRAIN_MS).unref()
    void Promise.all([server.close(), metricsServer?.close()]).then(async () => {
      await authLimiter.close().catch(() => {})
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
