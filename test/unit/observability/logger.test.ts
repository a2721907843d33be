import { spawn } from 'node:child_process'
import fs, { openSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { pino } from 'pino'
import { afterEach, describe, expect, it, vi } from 'vitest'
import {
  batchedDestination,
  createLogger,
  epochTime,
  exitOnFatal,
  flushLogSync,
  loggerOptions,
} from '../../../src/observability/logger.js'
import { tempDir } from '../../helpers/cli.js'

afterEach(() => vi.restoreAllMocks())

/** A logger on a batched destination writing to a fresh file, and a way to read that file. */
function fileLogger() {
  const path = join(tempDir(), 'log.jsonl')
  const fd = openSync(path, 'w')
  const log = createLogger('info', batchedDestination(fd))
  const lines = () => readFileSync(path, 'utf8').split('\n').filter(Boolean)
  return { log, fd, lines, records: () => lines().map((line) => JSON.parse(line) as Record<string, unknown>) }
}

const requestRecord = (i: number) => ({
  method: 'POST',
  path: '/oauth/token',
  status: 200,
  ms: 1.2,
  client_id: 'svc-a',
  jti: `jti-${i}`,
})

/** Every line that `log` writes, as written and parsed. */
function captured(fields?: Record<string, unknown>) {
  const lines: string[] = []
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(chunk.toString())
      done()
    },
  })
  const log = createLogger('info', stream, fields)
  return { log, lines: () => lines, records: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>) }
}

describe('the batched destination', () => {
  it('writes lines in batches of whole lines no larger than a pipe writes at once, and flushLogSync writes the rest in order', () => {
    const { log, fd, lines } = fileLogger()
    const writes: { size: number; text: string }[] = []
    const writeSync = fs.writeSync.bind(fs)
    vi.spyOn(fs, 'writeSync').mockImplementation(((
      target: number,
      data: string | NodeJS.ArrayBufferView,
      ...rest: never[]
    ) => {
      if (target === fd) writes.push({ size: Buffer.byteLength(data as string), text: String(data) })
      return writeSync(target, data as string, ...rest)
    }) as typeof fs.writeSync)

    for (let i = 0; i < 5; i++) log.info(requestRecord(i), 'request')
    expect(lines()).toEqual([]) // not one write per line

    for (let i = 5; i < 200; i++) log.info(requestRecord(i), 'request')
    expect(writes.length).toBeGreaterThan(0)
    expect(writes.length).toBeLessThan(200 / 5)
    for (const write of writes) {
      expect(write.size).toBeLessThanOrEqual(4096) // PIPE_BUF: workers' lines never interleave
      expect(write.text.endsWith('\n')).toBe(true)
    }

    flushLogSync(log)
    expect(lines().map((line) => JSON.parse(line).jti)).toEqual(Array.from({ length: 200 }, (_, i) => `jti-${i}`))
  })

  it('writes what one turn of the event loop logged at the end of that turn', async () => {
    const { log, lines } = fileLogger()
    log.info('started')
    log.warn('a warning')
    expect(lines()).toEqual([])
    await new Promise((resolve) => setImmediate(resolve))
    expect(lines().map((line) => JSON.parse(line).msg)).toEqual(['started', 'a warning'])
  })
})

describe('the stdout logger', () => {
  it('exits at once when stdout is a pipe nobody reads any more', async () => {
    const logger = fileURLToPath(new URL('../../../src/observability/logger.ts', import.meta.url))
    const script = `
      const { createLogger, flushLogSync } = await import(${JSON.stringify(logger)})
      const log = createLogger('info')
      setTimeout(() => { log.info('into a closed pipe'); flushLogSync(log); process.exit(0) }, 300)`
    const child = spawn(
      process.execPath,
      ['--import', import.meta.resolve('tsx'), '--input-type=module', '-e', script],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    )
    child.stdout.destroy()
    const exited = new Promise((resolve) => child.once('exit', resolve))
    const timeout = new Promise((resolve) => setTimeout(() => resolve('still running after 5 s'), 5_000))
    const outcome = await Promise.race([exited, timeout])
    child.kill('SIGKILL')
    expect(outcome).toBe(0)
  })
})

describe('exitOnFatal', () => {
  it('logs the error at fatal and writes out every buffered line before it exits 1', () => {
    const { log, records } = fileLogger()
    log.info(requestRecord(1), 'request')
    log.info(requestRecord(2), 'request')
    let atExit: { code: number; records: Record<string, unknown>[] } | undefined
    const handler = exitOnFatal(log, (code) => {
      atExit = { code, records: records() }
    })

    handler(new TypeError('boom at the worst moment'), 'uncaughtException')

    expect(atExit?.code).toBe(1)
    expect(atExit?.records.map((r) => r.msg)).toEqual(['request', 'request', 'fatal error, exiting'])
    const fatal = atExit!.records[2]!
    expect(fatal).toMatchObject({
      level: 60,
      origin: 'uncaughtException',
      err: { type: 'TypeError', message: 'boom at the worst moment' },
    })
    expect((fatal.err as { stack: string }).stack).toContain('logger.test.ts')
  })

  it('exits 1 even when the reason is not an error', () => {
    const { log, records } = fileLogger()
    const exit = vi.fn()
    exitOnFatal(log, exit)('a rejected string', 'unhandledRejection')
    expect(exit).toHaveBeenCalledWith(1)
    expect(records()).toEqual([
      expect.objectContaining({ level: 60, err: 'a rejected string', origin: 'unhandledRejection' }),
    ])
  })
})

describe('createLogger', () => {
  it("writes time as epoch milliseconds, exactly as pino's epochTime does", () => {
    for (const now of [0, 7, 1_796_196_587_123, 4_102_444_800_000]) {
      vi.spyOn(Date, 'now').mockReturnValue(now)
      expect(epochTime()).toBe(pino.stdTimeFunctions.epochTime())
      const { log, records } = captured()
      log.info('at a known instant')
      expect(records()[0]!.time).toBe(now)
    }
  })

  it('writes a duration in ms as the number pino would write', () => {
    const { log, lines } = captured()
    const values = [3.4, 3, 0, 12.3, Number.NaN, -1.5, 1e21, 'not a number']
    for (const ms of values) log.info({ ms }, 'request')
    expect(lines().map((line) => /"ms":([^,}]*)/.exec(line)?.[1])).toEqual([
      '3.4',
      '3',
      '0',
      '12.3',
      'null',
      '-1.5',
      '1e+21',
      '"not a number"',
    ])
  })

  it('puts the given fields, such as a cluster worker id, in every line', () => {
    const { log, records } = captured({ worker: 3 })
    log.info('one')
    log.warn({ a: 1 }, 'two')
    expect(records().map((r) => [r.service, r.worker, r.msg])).toEqual([
      ['tokensmith', 3, 'one'],
      ['tokensmith', 3, 'two'],
    ])
  })

  it('redacts the usual carriers of secrets at the top and one level down, without changing what was logged', () => {
    const { log, records } = captured()
    const nested = {
      authorization: 'Basic c2VjcmV0',
      client_secret: 's1',
      token: 't1',
      access_token: 'a1',
      command: { name: 'auth', args: ['pw'] },
      password: 'redis-pw',
      sentinelPassword: 'sentinel-pw',
      kept: 'visible',
    }
    const logged = {
      authorization: 'Bearer x',
      client_secret: 's0',
      secret: 's',
      token: 't0',
      access_token: 'a0',
      password: 'p',
      sentinelPassword: 'sp',
      passphrase: 'pp',
      headers: { authorization: 'Basic y', host: 'h' },
      req: { headers: { authorization: 'Basic z' } },
      nested,
      list: ['token'],
      count: 3,
    }
    const copy = structuredClone(logged)
    log.info(logged, 'secrets')

    const record = records()[0]!
    for (const key of [
      'authorization',
      'client_secret',
      'secret',
      'token',
      'access_token',
      'password',
      'sentinelPassword',
      'passphrase',
    ]) {
      expect(record[key], key).toBe('[redacted]')
    }
    expect(record.headers).toEqual({ authorization: '[redacted]', host: 'h' })
    expect(record.req).toEqual({ headers: { authorization: '[redacted]' } })
    expect(record.nested).toEqual({
      authorization: '[redacted]',
      client_secret: '[redacted]',
      token: '[redacted]',
      access_token: '[redacted]',
      command: '[redacted]',
      password: '[redacted]',
      sentinelPassword: '[redacted]',
      kept: 'visible',
    })
    expect(record).toMatchObject({ list: ['token'], count: 3 })
    expect(logged).toEqual(copy)
  })

  it('redacts the command an error carries, and keeps the error an error, untouched', () => {
    class ReplyError extends Error {
      override name = 'ReplyError'
      command = { name: 'auth', args: ['user', 'the-password'] }
    }
    const { log, records } = captured()
    const error = new ReplyError('WRONGPASS')
    log.error({ err: error }, 'redis failed')
    expect(records()[0]!.err).toMatchObject({
      type: 'ReplyError',
      message: 'WRONGPASS',
      command: '[redacted]',
      stack: expect.stringContaining('WRONGPASS'),
    })
    expect(error.command.args).toEqual(['user', 'the-password'])
  })

  // pino's own `*.key` redaction paths sent every value of every record through its redaction
  // engine: about 7 times the cost of the line itself.
  it('redacts at little cost: a request line costs less than twice one without redaction', () => {
    const sink = { write() {} }
    // The same logger without the redacting formatter.
    const loggers = {
      plain: pino({ ...loggerOptions('info'), formatters: {} }, sink),
      ours: createLogger('info', sink),
    }
    const perLine = (log: pino.Logger) => {
      const n = 2_000
      const started = performance.now()
      for (let i = 0; i < n; i++) {
        // The shape of the request log's record (src/http/middleware/request-log.ts).
        log.info(
          {
            method: 'POST',
            path: '/oauth/token',
            status: 200,
            ms: 1.2,
            client_id: 'svc-a',
            jti: 'Jb1z0Q4mYqN2c3d4e5f6g7',
            error: undefined,
            detail: undefined,
          },
          'request',
        )
      }
      return (performance.now() - started) / n
    }
    // Interleaved rounds, best of each: a busy machine slows both alike.
    const best = { plain: Infinity, ours: Infinity }
    for (let round = 0; round < 15; round++) {
      for (const name of ['plain', 'ours'] as const) best[name] = Math.min(best[name], perLine(loggers[name]))
    }
    expect(best.ours).toBeLessThan(2 * best.plain)
  })
})
