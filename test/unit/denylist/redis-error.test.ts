import { describe, expect, it } from 'vitest'
import { DenylistUnavailableError } from '../../../src/denylist/denylist.js'
import { describeRedisError, unavailable } from '../../../src/denylist/redis-error.js'
import { captureLog } from '../../helpers/make-deps.js'

/** What ioredis rejects with when Redis refuses AUTH: the command, password included, rides along. */
class ReplyError extends Error {
  override name = 'ReplyError'
  command = { name: 'auth', args: ['baduser', 'the-password-1f2e'] }
}

describe('describeRedisError', () => {
  it('keeps type, code and message only: never the command, its arguments or the stack', () => {
    const summary = describeRedisError(new ReplyError('WRONGPASS invalid username-password pair or user is disabled.'))
    expect(summary).toStrictEqual({
      type: 'ReplyError',
      code: 'WRONGPASS',
      message: 'WRONGPASS invalid username-password pair or user is disabled.',
    })
  })

  it('keeps a Node error code, and the messages and innermost code of the causes', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' })
    expect(describeRedisError(refused)).toStrictEqual({
      type: 'Error',
      code: 'ECONNREFUSED',
      message: 'connect ECONNREFUSED 127.0.0.1:6379',
    })
    const wrapped = unavailable('cannot store the revocation', new ReplyError('NOAUTH Authentication required.'))
    expect(wrapped).toBeInstanceOf(DenylistUnavailableError)
    expect(describeRedisError(wrapped)).toStrictEqual({
      type: 'DenylistUnavailableError',
      code: 'NOAUTH',
      message: 'cannot store the revocation: NOAUTH Authentication required.',
    })
  })

  it('cuts the arguments Redis quotes for a command it does not know (AUTH renamed away)', () => {
    const summary = describeRedisError(
      new ReplyError("ERR unknown command 'AUTH', with args beginning with: 'baduser' 'the-password-1f2e' "),
    )
    expect(summary.message).not.toContain('the-password-1f2e')
    expect(summary).toMatchObject({ code: 'ERR', message: expect.stringContaining("ERR unknown command 'AUTH'") })
  })

  it('describes anything thrown, not only errors', () => {
    expect(describeRedisError('boom')).toStrictEqual({ type: 'string', message: 'boom' })
    expect(describeRedisError(undefined)).toStrictEqual({ type: 'undefined', message: 'undefined' })
  })

  it('keeps only the summary as the cause of DenylistUnavailableError', () => {
    const error = unavailable(
      'revocation denylist unreachable',
      new ReplyError('WRONGPASS invalid username-password pair'),
    )
    expect(JSON.stringify(error.cause)).not.toContain('the-password-1f2e')
    expect(error.cause).toStrictEqual({
      type: 'ReplyError',
      code: 'WRONGPASS',
      message: 'WRONGPASS invalid username-password pair',
    })
  })
})

describe('logger', () => {
  it('redacts a command carried by a logged error, as a backstop', () => {
    const { log, lines } = captureLog()
    log.error({ err: new ReplyError('WRONGPASS invalid username-password pair') }, 'redis failed')
    expect(lines.join('\n')).not.toContain('the-password-1f2e')
    expect(JSON.parse(lines[0]!).err.command).toBe('[redacted]')
  })
})
