import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino'

export type { Logger }

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

const CENSOR = '[redacted]'
/** Keys whose value is censored at the top of a record. */
const SECRETS = new Set([
  'authorization',
  'client_secret',
  'secret',
  'token',
  'access_token',
  'password',
  'sentinelPassword',
  'passphrase',
])
/**
 * Keys censored one level down, in any object of the record (`headers.authorization`). ioredis
 * attaches the failed command to its errors: AUTH's carries the Redis password. Redis errors are
 * logged through describeRedisError, which drops it; this is the backstop. A Redis target
 * (`config.redis`) carries `password` and `sentinelPassword`: it is logged through
 * describeRedisTarget, and these are the backstop for it.
 */
const NESTED_SECRETS = [
  'authorization',
  'client_secret',
  'token',
  'access_token',
  'command',
  'password',
  'sentinelPassword',
]

/**
 * A copy of `value` with `keys` censored, or undefined when it holds none of them. An error stays an
 * error (prototype, message, stack) for pino's error serializer.
 */
function censored(value: object, keys: readonly string[]): Record<string, unknown> | undefined {
  let copy: Record<string, unknown> | undefined
  for (const key of keys) {
    if ((value as Record<string, unknown>)[key] === undefined) continue
    copy ??=
      value instanceof Error
        ? Object.create(Object.getPrototypeOf(value), Object.getOwnPropertyDescriptors(value))
        : { ...value }
    Object.defineProperty(copy, key, { value: CENSOR, enumerable: true, writable: true, configurable: true })
  }
  return copy
}

/**
 * The record with the usual carriers of secrets censored: SECRETS at the top, NESTED_SECRETS one
 * level down, and `req.headers.authorization`. Censors copies: the caller's objects (an error it
 * rethrows, say) are never changed, and a record with nothing to censor is passed on as it is.
 * pino's `redact` paths did the same at about 8 µs a line, when a whole request line costs 1 µs:
 * with `*.key` paths, every value of every record went through its redaction engine.
 */
export function redactSecrets(record: Record<string, unknown>): Record<string, unknown> {
  let result: Record<string, unknown> | undefined
  for (const key in record) {
    const value = record[key]
    if (value === undefined) continue
    if (SECRETS.has(key)) {
      result ??= { ...record }
      result[key] = CENSOR
      continue
    }
    if (typeof value !== 'object' || value === null) continue
    let copy = censored(value, NESTED_SECRETS)
    const headers = key === 'req' ? (value as { headers?: unknown }).headers : undefined
    const censoredHeaders =
      typeof headers === 'object' && headers !== null ? censored(headers, ['authorization']) : undefined
    if (censoredHeaders) {
      copy ??= { ...value }
      copy.headers = censoredHeaders
    }
    if (copy) {
      result ??= { ...record }
      result[key] = copy
    }
  }
  return result ?? record
}

/**
 * A batch is at most PIPE_BUF bytes of whole lines: the kernel writes that much into a pipe in one
 * piece, so the lines of cluster workers sharing stdout never interleave inside a line.
 */
const MAX_BATCH_BYTES = 4096
/** Lines are written once this many bytes are gathered, and at the latest at the end of the event-loop turn. */
const BATCH_BYTES = 2048

export interface BatchedDestination extends DestinationStream {
  /** Writes out every buffered line, in order, before it returns. */
  flushSync(): void
}

/**
 * Writes lines to `fd` in batches instead of one write(2) per line: whatever was logged during one
 * turn of the event loop is written at its end (so a line is on its way before the next requests
 * are read, as prompt as a write per line), and under load once 2 KiB are gathered. A batch is
 * written synchronously from this thread, not on the libuv pool, which the process needs for crypto
 * and files; so `flushSync()` always writes everything, in order, with nothing left in flight.
 */
export function batchedDestination(fd: number): BatchedDestination {
  const sonic = pino.destination({ dest: fd, sync: true, minLength: BATCH_BYTES, maxWrite: MAX_BATCH_BYTES })
  let scheduled = false
  // A synchronous destination writes all it holds (less than BATCH_BYTES) in flush(). Not
  // sonic-boom's flushSync(): on a closed pipe it retries forever, and would hang the exit.
  const endOfTurn = () => {
    scheduled = false
    sonic.flush()
  }
  return {
    write(line: string) {
      sonic.write(line)
      if (scheduled) return
      scheduled = true
      setImmediate(endOfTurn)
    },
    flushSync: () => sonic.flush(),
  }
}

let stdout: BatchedDestination | undefined

/**
 * Standard output in batches (see batchedDestination): a write per line cost a busy token endpoint
 * several percent of its throughput at LOG_LEVEL=info. What is still buffered is written out on
 * exit, however it comes (process.exit included); lines are lost only if the process is killed
 * outright (SIGKILL, an abort). One per process, so that loggers sharing it keep their order.
 */
export function stdoutDestination(): BatchedDestination {
  if (stdout) return stdout
  const destination = batchedDestination(1)
  process.on('exit', () => flushDestination(destination))
  stdout = destination
  return destination
}

function flushDestination(destination: { flushSync?: () => void }): void {
  try {
    destination.flushSync?.()
  } catch {
    // Nowhere left to report a failing stdout (a closed pipe); exiting must go on.
  }
}

/** Writes out whatever the logger's destination holds, before this function returns. */
export function flushLogSync(log: Logger): void {
  flushDestination((log as unknown as Record<symbol, { flushSync?: () => void }>)[pino.symbols.streamSym] ?? {})
}

let lastMillis = -1
let lastTime = ''

/**
 * pino's epoch `time`, with the digits made by toFixed and kept for the lines of the same
 * millisecond. V8 makes the string of a number turned into one with `+` or a template in the old
 * generation, for its number-to-string cache, where it stays until the next full collection: a
 * new timestamp string every millisecond made a busy server's heap (and RSS) creep up by about
 * 60 KiB a second between full collections. toFixed makes the same digits in the young generation.
 */
export function epochTime(): string {
  const now = Date.now()
  if (now !== lastMillis) {
    lastMillis = now
    lastTime = `,"time":${now.toFixed(0)}`
  }
  return lastTime
}

/** A number that pino writes with JSON.stringify (see SERIALIZERS): the same digits. */
class JsonNumber {
  readonly value: number
  constructor(value: number) {
    this.value = value
  }
  toJSON(): number {
    return this.value
  }
}

/**
 * Fields that take a new number on almost every line: the request duration `ms`. pino writes a
 * number with `+`, through V8's number-to-string cache (see epochTime), so a busy server's
 * durations piled up in the old generation; an object it writes with JSON.stringify, which makes
 * the same digits (`null` for NaN, as pino does) without the cache.
 */
const SERIALIZERS = {
  ms: (value: unknown) => (typeof value === 'number' ? new JsonNumber(value) : value),
}

/**
 * JSON lines, on stdout in batches unless a destination is given (tests pass their own). Nothing
 * secret is ever passed to the logger, and as a second line of defence the usual carriers of
 * secrets are redacted (see redactSecrets, which sees each call's fields, not `fields`).
 * Strings are JSON-escaped by pino, so a client_id holding `\n{"level":50}` stays inside one
 * record. `fields` go into every line (a cluster worker's `worker` id). A record written while a
 * request is handled carries `request_id`, passed explicitly by its caller (see
 * src/http/middleware/request-id.ts).
 */
export function createLogger(
  level: LogLevel,
  destination?: DestinationStream,
  fields: Record<string, unknown> = {},
): Logger {
  return pino(loggerOptions(level, fields), destination ?? stdoutDestination())
}

/** The pino options of createLogger. */
export function loggerOptions(level: LogLevel, fields: Record<string, unknown> = {}): LoggerOptions {
  return {
    level,
    base: { service: 'tokensmith', ...fields },
    timestamp: epochTime,
    serializers: SERIALIZERS,
    formatters: { log: redactSecrets },
  }
}

/**
 * The handler for an uncaught exception or an unhandled rejection: the process is in an unknown
 * state, so log the error at fatal, write out every buffered line, and exit 1 (a supervisor, or
 * the cluster primary, starts a new one).
 */
export function exitOnFatal(
  log: Logger,
  exit: (code: number) => void = process.exit,
): (error: unknown, origin?: string) => void {
  return (error, origin) => {
    try {
      log.fatal({ err: error, origin }, 'fatal error, exiting')
    } finally {
      flushLogSync(log)
      exit(1)
    }
  }
}
