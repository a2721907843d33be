import type { Context } from 'hono'
import { NO_STORE } from './render-error.js'
import type { AppEnv, Deps } from './types.js'

/** GET /healthz — the process is up and serving. */
export const healthHandler = (c: Context<AppEnv>) => c.body('{"status":"ok"}', 200, NO_STORE)

/**
 * GET /readyz — 200 when keys and clients are loaded and every configured backend answers,
 * else 503 naming what is missing. Turns 503 as soon as shutdown begins, and while a file watcher
 * reports a problem only an operator can fix (the last good keys or clients stay in force).
 */
export function readyHandler(deps: Deps) {
  return async (c: Context<AppEnv>) => {
    const missing: string[] = []
    if (deps.lifecycle.shuttingDown) missing.push('shutting down')
    if (deps.keys.size === 0) missing.push('signing keys')
    missing.push(...(deps.readiness?.values() ?? []))
    try {
      await deps.denylist.ping()
    } catch {
      missing.push(`denylist (${deps.denylist.kind})`)
    }
    const status = missing.length === 0 ? 200 : 503
    const body = status === 200 ? { status: 'ready' } : { status: 'not ready', missing }
    return c.body(JSON.stringify(body), status, status === 503 ? { ...NO_STORE, 'Retry-After': '1' } : NO_STORE)
  }
}
