import type { Logger } from '../observability/logger.js'

export interface Watcher {
  /** Reloads now if the source changed (SIGHUP calls this); resolves when done. */
  check(): Promise<void>
  stop(): void
}

/**
 * Polls a cheap signature of some files (mtime, size, inode) and calls `reload` when it changes.
 * Polling rather than fs.watch: it behaves the same on every filesystem, including network and
 * container mounts where inotify events do not arrive. A failed reload is logged and retried on
 * the next change; whatever was loaded last stays in force.
 */
export function watchForChanges(options: {
  name: string
  signature: () => Promise<string>
  reload: () => Promise<void>
  intervalMs: number
  log: Logger
  /** Signature of what is loaded now, so the first poll does not reload for nothing. */
  initial?: string
}): Watcher {
  let last = options.initial
  let running: Promise<void> | undefined

  const check = (): Promise<void> => {
    running ??= (async () => {
      try {
        const signature = await options.signature()
        if (signature === last) return
        last = signature
        await options.reload()
      } catch (error) {
        options.log.error({ source: options.name, problem: (error as Error).message }, 'reload failed; keeping the last good state')
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
