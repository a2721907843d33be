import { DenylistUnavailableError } from './denylist.js'

/**
 * What may be logged of a Redis error. ioredis attaches the failed command to its errors
 * (`err.command = { name: 'auth', args: [user, password] }`), and a logger that prints the whole
 * error (pino's `err` serializer copies every enumerable property; `console` and `util.inspect`
 * print them and the `cause` chain too) puts the Redis password in the log when Redis refuses the
 * login. So every Redis error is logged, and stored as a `cause`, only as this summary: its type,
 * its code and its message, never the command, its arguments or a stack.
 */
export interface RedisErrorSummary {
  /** The error's class, e.g. `ReplyError`, `DenylistUnavailableError`. */
  type: string
  /** A Node error code (`ECONNREFUSED`) or the Redis error prefix (`WRONGPASS`, `NOAUTH`), when there is one. */
  code?: string
  /** The message, followed by the messages of its causes. */
  message: string
}

/** Causes followed at most this deep, so a cyclic chain cannot loop. */
const MAX_CAUSES = 5

/**
 * Redis 6.2+ quotes the arguments of a command it does not know ("ERR unknown command 'AUTH',
 * with args beginning with: 'the-password'"), e.g. with AUTH renamed away: cut that part off.
 */
const scrub = (message: string) =>
  message.replace(/,? with args beginning with:.*$/s, ', with args beginning with: (not logged)')

/** A Redis reply error starts with an upper-case code: `WRONGPASS invalid username-password pair`. */
const REPLY_CODE = /^([A-Z][A-Z0-9_-]{1,31})\s/

function typeOf(error: object): string {
  const name = (error as { name?: unknown }).name
  if (typeof name === 'string' && name !== '' && name !== 'Error') return name
  const constructorName = error.constructor?.name
  return typeof constructorName === 'string' && constructorName !== 'Object' ? constructorName : 'Error'
}

/** The one serializer for Redis errors: use it wherever one is logged or kept as a cause. */
export function describeRedisError(error: unknown): RedisErrorSummary {
  if (typeof error !== 'object' || error === null) return { type: typeof error, message: scrub(String(error)) }
  const messages: string[] = []
  let code: string | undefined
  let current: unknown = error
  for (let depth = 0; depth < MAX_CAUSES && typeof current === 'object' && current !== null; depth++) {
    const { message, code: ownCode } = current as { message?: unknown; code?: unknown }
    if (typeof message === 'string' && message !== '') messages.push(scrub(message))
    // The innermost code names the actual problem (WRONGPASS rather than a wrapper's).
    if (typeof ownCode === 'string' && ownCode !== '') code = ownCode
    else if (typeof message === 'string') code = REPLY_CODE.exec(message)?.[1] ?? code
    current = (current as { cause?: unknown }).cause
  }
  return { type: typeOf(error), ...(code !== undefined && { code }), message: messages.join(': ') }
}

/** The cause is kept only as its summary: an ioredis error carries the failed command, AUTH's password included. */
export function unavailable(message: string, cause?: unknown): DenylistUnavailableError {
  return new DenylistUnavailableError(message, cause === undefined ? undefined : { cause: describeRedisError(cause) })
}
