import type { Logger } from '../observability/logger.js'

export interface Watcher {
  /** Reloads now if the source changed (SIGHUP calls this); resolves when done. */
  check(): Promise<void>
  stop(): void
}

/**
 * Polls a cheap signature of some files (mtime, size, inode, real path) and calls `reload` when it changes.
 * Polling rather than fs.watch: it behaves the same on every filesystem, including network and
 * container mounts where inotify events do not arrive. A failed reload is logged and retried at
 * every check; whatever was loaded last stays in force.
 */
export function watchForChanges(options: {
  name: string
  signature: () => Promise<string>
  reload: () => Promise<void>
  intervalMs: number
  log: Logger
  /** Signature of what is loaded now, so the first poll does not reload for nothing. */
  initial?: string
  /** Called with each refusal that is logged (once per distinct failing state): the audit event. */
  onRejected?: (problem: string) => void
  /**
   * Signatures that may be a moment inside an update rather than its outcome: a file missing, or a
   * link that leads nowhere, while a Kubernetes volume swaps to its next version (mounted-files.ts).
   * Such a signature is acted on only when the next check still sees it; until then nothing is
   * reloaded or logged, and what is loaded stays in force.
   */
  transient?: (signature: string) => boolean
}): Watcher {
  let last = options.initial
  let lastFailed: string | undefined
  let failing = false
  let running: Promise<void> | undefined
  // A transient signature seen at the last check, not acted on yet.
  let pending: string | undefined

  // `last` moves only when a reload succeeds, so a failed one (a file unreadable for a moment) is
  // tried again at every check; it is logged once per distinct failing state, not every second.
  // Coming back to what is loaded after a failure (a chmod undone) reloads once more, so whatever
  // the failing reload set (a readiness problem) is cleared by the reload that succeeds. A transient
  // signature waits one check: a state that persists is treated like any other.
  const check = (): Promise<void> => {
    running ??= (async () => {
      let signature: string | undefined
      try {
        signature = await options.signature()
        if (signature === last || options.transient?.(signature) !== true) pending = undefined
        else if (pending !== signature) {
          pending = signature
          return
        }
        if (signature === last && !failing) return
        await options.reload()
        last = signature
        lastFailed = undefined
        failing = false
      } catch (error) {
        failing = true
        if (signature !== undefined && signature === lastFailed) return
        lastFailed = signature
        const problem = (error as Error).message
        options.log.error({ source: options.name, problem }, 'reload failed; keeping the last good state')
        options.onRejected?.(problem)
      }
    })().finally(() => {
      running = undefined
    })
    return running
  }

  const timer = setInterval(() => void check(), options.intervalMs)
  timer.unref()
  return { check, stop: () => clearInterval(timer) }
}
