import type { Context, MiddlewareHandler } from 'hono'
import { newJti } from '../../oauth/access-token.js'
import type { AppEnv } from '../types.js'

export const REQUEST_ID_HEADER = 'X-Request-Id'

/** An `X-Request-Id` taken as it is: 1 to 128 characters, none that could break a log line or a header. */
const SAFE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

/**
 * W3C Trace Context §3.2 `traceparent`, version 00 (§3.2.2.1): `00-<trace-id>-<parent-id>-<flags>`,
 * lowercase hex of 32, 16 and 2 digits. Exactly 55 characters: version 00 allows nothing after the
 * flags (§3.2.4 lets later versions append fields; those are not understood here, so not honoured).
 */
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/
const ZERO_TRACE_ID = '0'.repeat(32)
const ZERO_PARENT_ID = '0'.repeat(16)

/**
 * The trace id of a valid version-00 `traceparent`, else undefined. An all-zero trace-id
 * (§3.2.2.3) or parent-id (§3.2.2.4) is invalid, and so is the header.
 */
export function traceIdOf(traceparent: string | undefined): string | undefined {
  if (traceparent === undefined || traceparent.length !== 55) return undefined
  const match = TRACEPARENT.exec(traceparent)
  const traceId = match?.[1]
  const parentId = match?.[2]
  if (traceId === undefined || parentId === undefined) return undefined
  if (traceId === ZERO_TRACE_ID || parentId === ZERO_PARENT_ID) return undefined
  return traceId
}

/**
 * The id of a request: the caller's `X-Request-Id` when it is safe (1–128 characters of
 * `[A-Za-z0-9._:-]`; anything else is ignored, never echoed), else the trace id of a valid W3C
 * `traceparent`, else a new one (16 random bytes, base64url, as a `jti` is made).
 */
export function chooseRequestId(requestId: string | undefined, traceparent: string | undefined): string {
  if (requestId !== undefined && requestId.length <= 128 && SAFE_REQUEST_ID.test(requestId)) return requestId
  return traceIdOf(traceparent) ?? newJti()
}

/** Requests whose handler put `X-Request-Id` into its response itself (see withRequestId). */
const answered = new WeakSet<Context>()

/**
 * `headers` with `X-Request-Id` added when the request has an id (`c.get('requestId')`, set by the
 * middleware), for a handler that builds its `Response` with a plain headers object (which
 * @hono/node-server writes as it is, where touching `res.headers` afterwards would build web
 * Headers): the middleware then leaves it alone.
 */
export function withRequestId<H extends Record<string, string>>(c: Context<AppEnv>, headers: H): H {
  const id = c.get('requestId')
  if (id === undefined) return headers
  answered.add(c)
  return { ...headers, [REQUEST_ID_HEADER]: id }
}

/**
 * Request correlation: every request gets an id (see chooseRequestId), kept as the context's
 * `requestId`, answered in `X-Request-Id` on every response (errors, 404 and 405 included) and
 * carried as `request_id` by every log record written while it is handled. The id is passed
 * explicitly to whatever logs (the request line, the error handler, audit events, refusals, limit
 * trips): no AsyncLocalStorage, whose promise hooks cost every promise of the process. Registered
 * first, so that every later middleware and handler sees the id. Only these two headers are read.
 */
export function requestId(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const id = chooseRequestId(c.req.header('x-request-id'), c.req.header('traceparent'))
    c.set('requestId', id)
    await next()
    if (!answered.has(c)) c.res.headers.set(REQUEST_ID_HEADER, id)
  }
}
