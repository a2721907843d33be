import { pino, type Logger, type DestinationStream } from 'pino'

export type { Logger }

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

/**
 * JSON lines on stdout. Nothing secret is ever passed to the logger, and as a second line of defence
 * the usual carriers of secrets are redacted (SK-14). Strings are JSON-escaped by pino, so a
 * client_id holding `\n{"level":50}` stays inside one record (SK-15).
 */
export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'tokensmith' },
      redact: {
        paths: [
          'authorization',
          'client_secret',
          'secret',
          'token',
          'access_token',
          'password',
          'passphrase',
          '*.authorization',
          '*.client_secret',
          '*.token',
          '*.access_token',
          'headers.authorization',
          'req.headers.authorization',
          // ioredis attaches the failed command to its errors: AUTH's carries the Redis password.
          // Redis errors are logged through describeRedisError, which drops it; this is the backstop.
          '*.command',
        ],
        censor: '[redacted]',
      },
    },
    destination,
  )
}
