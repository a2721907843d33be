import cluster, { type Worker } from 'node:cluster'
import type { Env } from './env.js'
import type { Logger } from './observability/logger.js'

/**
 * What the primary tells a worker, over the cluster's IPC channel rather than with signals: a
 * signal reaching a worker before it has installed its handlers would kill it. A worker hears
 * commands once it listens (a message sent before its handler exists would be lost), so the
 * primary holds them back until then. `shutdown` is the graceful stop a SIGTERM starts; `force` is
 * the second signal.
 */
export type PrimaryCommand = { tokensmith: 'reload' } | { tokensmith: 'shutdown' | 'force'; signal: NodeJS.Signals }

export function isPrimaryCommand(message: unknown): message is PrimaryCommand {
  const command = (message as { tokensmith?: unknown } | null)?.tokensmith
  return command === 'reload' || command === 'shutdown' || command === 'force'
}

/** A worker that dies young is replaced after 100 ms, then 200, 400, 800 ... up to 10 s, not in a hot loop. */
const FIRST_RESTART_DELAY_MS = 100
const MAX_RESTART_DELAY_MS = 10_000
/** Workers of one slot that died before listening, in a row, after which the primary gives up. */
const START_FAILURE_LIMIT = 5
/** A worker that ran this long before dying is replaced at once; one that dies sooner, after the back-off. */
const STABLE_AFTER_MS = 10_000
/** Workers stop within their own 10 s; this is the backstop for one that hangs. */
const SHUTDOWN_BACKSTOP_MS = 11_000
/** After a second signal, how long workers get to write out their logs before they are killed. */
const FORCE_GRACE_MS = 1_000

/** One of the N places a worker serves from; a worker that dies is replaced in its slot. */
interface Slot {
  worker?: Worker
  forkedAt: number
  listening: boolean
  /** A SIGHUP came while the worker was starting: it reloads once it listens. */
  reloadPending: boolean
  /** Deaths in a row within STABLE_AFTER_MS of starting: they set the back-off. */
  quickExits: number
  /** Deaths in a row before listening: at START_FAILURE_LIMIT the primary gives up. */
  startFailures: number
  restart?: NodeJS.Timeout
}

export interface Primary {
  /** SIGHUP: every worker reloads KEYS_DIR and CLIENTS_FILE at once. */
  reload(): void
  /** SIGTERM, SIGINT: every worker drains; the process exits when all are gone. A second call forces. */
  stop(signal: NodeJS.Signals): void
}

/**
 * The cluster primary: forks `workers` processes serving the one port, replaces one that dies (after
 * a back-off when it dies young, and gives up with exit 1 when a slot's workers keep failing before
 * they listen), passes reloads on and drains them all on stop. Each worker gets `env`, the
 * configuration the primary checked, so a replacement started later serves with the same settings
 * even if `.env` changed since. It serves nothing itself.
 */
export function startPrimary(options: {
  workers: number
  env: Env
  log: Logger
  exit: (code: number) => void
}): Primary {
  const { log } = options
  const slots: Slot[] = Array.from({ length: options.workers }, () => ({
    forkedAt: 0,
    listening: false,
    reloadPending: false,
    quickExits: 0,
    startFailures: 0,
  }))
  const slotOf = new Map<Worker, Slot>()
  let stopping: 'no' | 'draining' | 'forced' = 'no'
  let stopSignal: NodeJS.Signals = 'SIGTERM'
  let exitCode = 0

  const live = () => slots.flatMap((slot) => (slot.worker ? [slot.worker] : []))
  const send = (worker: Worker, command: PrimaryCommand) => {
    // A worker that is dying has no channel left; its exit is handled below.
    if (worker.isConnected()) worker.send(command, () => {})
  }
  /** Sends to every worker that listens; the others get the current state when they do. */
  const tellAll = (command: PrimaryCommand) => {
    for (const slot of slots) {
      if (slot.worker && slot.listening) send(slot.worker, command)
      else if (command.tokensmith === 'reload') slot.reloadPending = true
    }
  }
  const fork = (slot: Slot) => {
    slot.restart = undefined
    const worker = cluster.fork(options.env)
    Object.assign(slot, { worker, forkedAt: Date.now(), listening: false, reloadPending: false })
    slotOf.set(worker, slot)
  }
  const finishWhenAllGone = () => {
    if (live().length > 0) return
    log.info({ exitCode }, 'stopped')
    options.exit(exitCode)
  }

  cluster.on('listening', (worker) => {
    const slot = slotOf.get(worker)
    if (!slot) return
    slot.listening = true
    slot.startFailures = 0
    if (stopping !== 'no')
      send(worker, { tokensmith: stopping === 'forced' ? 'force' : 'shutdown', signal: stopSignal })
    else if (slot.reloadPending) send(worker, { tokensmith: 'reload' })
  })

  cluster.on('exit', (worker, code, signal) => {
    const slot = slotOf.get(worker)
    if (!slot) return
    slotOf.delete(worker)
    slot.worker = undefined
    const status = { workerId: worker.id, workerPid: worker.process.pid, code, signal }
    if (stopping !== 'no') {
      if (code !== 0) exitCode = 1
      return finishWhenAllGone()
    }
    slot.quickExits = Date.now() - slot.forkedAt < STABLE_AFTER_MS ? slot.quickExits + 1 : 0
    slot.startFailures = slot.listening ? 0 : slot.startFailures + 1
    if (slot.startFailures >= START_FAILURE_LIMIT) {
      log.fatal(
        { ...status, failures: slot.startFailures },
        `workers keep failing at start (${slot.startFailures} in a row); giving up`,
      )
      exitCode = 1
      return stop(undefined)
    }
    const delayMs =
      slot.quickExits === 0 ? 0 : Math.min(FIRST_RESTART_DELAY_MS * 2 ** (slot.quickExits - 1), MAX_RESTART_DELAY_MS)
    log.error(
      { ...status, delayMs },
      slot.listening ? 'worker died; starting a new one' : 'worker failed at start; starting a new one',
    )
    slot.restart = setTimeout(() => fork(slot), delayMs)
  })

  /** `signal` undefined: the primary gave up. */
  const stop = (signal: NodeJS.Signals | undefined) => {
    if (stopping !== 'no') {
      if (stopping === 'forced' || !signal) return
      stopping = 'forced'
      exitCode = 1
      stopSignal = signal
      log.warn({ signal }, 'second signal, exiting now')
      tellAll({ tokensmith: 'force', signal })
      // Each worker writes out its log and exits at once; one that cannot is killed.
      setTimeout(() => {
        for (const worker of live()) worker.process.kill('SIGKILL')
        options.exit(1)
      }, FORCE_GRACE_MS).unref()
      return
    }
    stopping = 'draining'
    stopSignal = signal ?? 'SIGTERM'
    for (const slot of slots) clearTimeout(slot.restart)
    log.info({ signal, workers: live().length }, 'shutting down')
    tellAll({ tokensmith: 'shutdown', signal: stopSignal })
    setTimeout(() => {
      log.error({ workers: live().length }, 'workers did not stop within 10 s, killing them')
      for (const worker of live()) worker.process.kill('SIGKILL')
      options.exit(1)
    }, SHUTDOWN_BACKSTOP_MS).unref()
    finishWhenAllGone()
  }

  log.info({ workers: options.workers, pid: process.pid }, 'tokensmith primary starting workers')
  for (const slot of slots) fork(slot)
  return {
    reload() {
      if (stopping === 'no') tellAll({ tokensmith: 'reload' })
    },
    stop,
  }
}
