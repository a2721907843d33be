import { Hono } from 'hono'
import { describe, expect, it } from 'vitest'
import { createApp } from '../../../src/app.js'
import { chooseRequestId, requestId, traceIdOf, withRequestId } from '../../../src/http/middleware/request-id.js'
import type { AppEnv } from '../../../src/http/types.js'
import { loggerOptions } from '../../../src/observability/logger.js'
import { basic, FORM, makeDeps } from '../../helpers/make-deps.js'

// Request correlation: X-Request-Id when safe, else the trace id of a W3C Trace Context §3.2
// traceparent (version 00), else a generated id; answered on every response and carried as
// `request_id` by every log record of the request.

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736'
const TRACEPARENT = `00-${TRACE_ID}-00f067aa0ba902b7-01`
const GENERATED = /^[A-Za-z0-9_-]{22}$/

describe('traceIdOf (W3C Trace Context §3.2, version 00)', () => {
  it('takes the trace id of a valid header, whatever the flags', () => {
    expect(traceIdOf(TRACEPARENT)).toBe(TRACE_ID)
    expect(traceIdOf(`00-${TRACE_ID}-00f067aa0ba902b7-00`)).toBe(TRACE_ID)
  })

  it.each([
    ['absent', undefined],
    ['empty', ''],
    ['all-zero trace-id (§3.2.2.3)', `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`],
    ['all-zero parent-id (§3.2.2.4)', `00-${TRACE_ID}-${'0'.repeat(16)}-01`],
    ['uppercase hex', `00-${TRACE_ID.toUpperCase()}-00f067aa0ba902b7-01`],
    ['another version', `01-${TRACE_ID}-00f067aa0ba902b7-01`],
    ['version ff (§3.2.2.2)', `ff-${TRACE_ID}-00f067aa0ba902b7-01`],
    ['trailing fields on version 00', `${TRACEPARENT}-extra`],
    ['short trace-id', `00-${TRACE_ID.slice(1)}-00f067aa0ba902b7-01`],
    ['short parent-id', `00-${TRACE_ID}-00f067aa0ba902b-01`],
    ['one-digit flags', `00-${TRACE_ID}-00f067aa0ba902b7-1`],
    ['non-hex', `00-${TRACE_ID.slice(0, 31)}g-00f067aa0ba902b7-01`],
    ['surrounding space', ` ${TRACEPARENT}`],
  ])('ignores %s', (_name, header) => {
    expect(traceIdOf(header)).toBeUndefined()
  })
})

describe('chooseRequestId', () => {
  it('honours a safe X-Request-Id of 1 to 128 characters of [A-Za-z0-9._:-], before a traceparent', () => {
    expect(chooseRequestId('a', TRACEPARENT)).toBe('a')
    expect(chooseRequestId('req-1.2_3:4', undefined)).toBe('req-1.2_3:4')
    const longest = 'x'.repeat(128)
    expect(chooseRequestId(longest, undefined)).toBe(longest)
  })

  it.each([
    ['empty', ''],
    ['129 characters', 'x'.repeat(129)],
    ['a space', 'a b'],
    ['a newline', 'a\nb'],
    ['a quote', 'a"b'],
    ['JSON', '{"level":50}'],
    ['a slash', 'a/b'],
    ['non-ASCII', 'é'],
    ['a header break', 'a\r\nSet-Cookie: x=y'],
  ])('ignores an X-Request-Id with %s: the traceparent, else a new id', (_name, header) => {
    expect(chooseRequestId(header, TRACEPARENT)).toBe(TRACE_ID)
    const generated = chooseRequestId(header, 'not a traceparent')
    expect(generated).toMatch(GENERATED)
    expect(generated).not.toBe(header)
  })

  it('generates a new id (16 random bytes, base64url) each time otherwise', () => {
    const ids = new Set(Array.from({ length: 1000 }, () => chooseRequestId(undefined, undefined)))
    expect(ids.size).toBe(1000)
    for (const id of ids) expect(id).toMatch(GENERATED)
  })
})

describe('request context', () => {
  it('is passed explicitly: the handler reads the id from its context, through awaits', async () => {
    const app = new Hono<AppEnv>()
    app.use(requestId())
    const seen: (string | undefined)[] = []
    app.get('/late', async (c) => {
      await new Promise((resolve) => setTimeout(resolve, 1))
      seen.push(c.get('requestId'))
      return c.text('ok')
    })
    app.get('/own', (c) => new Response('ok', { headers: withRequestId(c, { 'Cache-Control': 'no-store' }) }))
    const [one, two] = await Promise.all([
      app.request('/late', { headers: { 'x-request-id': 'r-1' } }),
      app.request('/late', { headers: { 'x-request-id': 'r-2' } }),
    ])
    expect([one?.headers.get('x-request-id'), two?.headers.get('x-request-id')]).toEqual(['r-1', 'r-2'])
    expect(seen.sort()).toEqual(['r-1', 'r-2'])
    const own = await app.request('/own', { headers: { 'x-request-id': 'r-3' } })
    expect(own.headers.get('x-request-id')).toBe('r-3')
    expect(own.headers.get('cache-control')).toBe('no-store')
  })

  it('costs nothing outside a request: no logger mixin (no AsyncLocalStorage behind it)', () => {
    expect(loggerOptions('info')).not.toHaveProperty('mixin')
  })
})

describe('the request-id middleware', () => {
  async function setup() {
    const deps = await makeDeps()
    const app = createApp(deps)
    const records = () => deps.logLines.map((line) => JSON.parse(line) as Record<string, unknown>)
    return { deps, app, records }
  }

  it('answers X-Request-Id on success, 401, 404, 405 and 400 alike, and every record carries it', async () => {
    const { deps, app, records } = await setup()
    const requests: [string, RequestInit, number][] = [
      [
        '/oauth/token',
        {
          method: 'POST',
          headers: { 'content-type': FORM, authorization: basic('svc-a', 'tks_secret-of-a') },
          body: 'grant_type=client_credentials',
        },
        200,
      ],
      [
        '/oauth/token',
        {
          method: 'POST',
          headers: { 'content-type': FORM, authorization: basic('svc-a', 'tks_wrong') },
          body: 'grant_type=client_credentials',
        },
        401,
      ],
      ['/nowhere', { method: 'GET' }, 404],
      ['/oauth/token', { method: 'GET' }, 405],
      ['/oauth/token', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' }, 400],
      ['/.well-known/jwks.json', { method: 'GET' }, 200],
    ]
    for (const [path, init, status] of requests) {
      const before = deps.logLines.length
      const res = await app.request(path, init)
      expect(res.status).toBe(status)
      const id = res.headers.get('x-request-id')
      expect(id).toMatch(GENERATED)
      const logged = records().slice(before)
      expect(logged.length).toBeGreaterThan(0)
      for (const record of logged) expect(record.request_id).toBe(id)
    }
    // Between requests nothing carries an id.
    deps.log.info('outside')
    expect(records().at(-1)).not.toHaveProperty('request_id')
  })

  it('echoes a safe X-Request-Id, takes the trace id of a traceparent, and never echoes unsafe input', async () => {
    const { app, records } = await setup()
    const get = (headers: Record<string, string>) => app.request('/healthz', { headers })
    expect((await get({ 'x-request-id': 'client-req-7' })).headers.get('x-request-id')).toBe('client-req-7')
    expect(records().at(-1)?.request_id).toBe('client-req-7')
    expect((await get({ traceparent: TRACEPARENT })).headers.get('x-request-id')).toBe(TRACE_ID)
    expect((await get({ 'x-request-id': 'client-req-7', traceparent: TRACEPARENT })).headers.get('x-request-id')).toBe(
      'client-req-7',
    )
    const unsafe = (await get({ 'x-request-id': '<script>' })).headers.get('x-request-id')
    expect(unsafe).toMatch(GENERATED)
    expect(records().at(-1)?.request_id).toBe(unsafe)
    expect(JSON.stringify(records())).not.toContain('<script>')
  })

  it('keeps concurrent requests apart', async () => {
    const { app, records } = await setup()
    const ids = Array.from({ length: 20 }, (_, index) => `req-${index}`)
    await Promise.all(
      ids.map((id) =>
        app.request('/oauth/token', {
          method: 'POST',
          headers: { 'content-type': FORM, authorization: basic('svc-a', 'tks_secret-of-a'), 'x-request-id': id },
          body: 'grant_type=client_credentials',
        }),
      ),
    )
    const issued = records().filter((record) => record.event === 'token.issued')
    const logged = records().filter((record) => record.msg === 'request')
    expect(issued).toHaveLength(20)
    for (const record of [...issued, ...logged]) expect(ids).toContain(record.request_id)
    // Each request's event and request line carry the same id, and the jti ties them together.
    for (const line of logged) {
      expect(issued.find((event) => event.jti === line.jti)?.request_id).toBe(line.request_id)
    }
  })
})
