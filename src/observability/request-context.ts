import { AsyncLocalStorage } from 'node:async_hooks'

/**
 * The request a log record is written for. One AsyncLocalStorage run per request (started by the
 * request-id middleware, src/http/middleware/request-id.ts) holds its id; the logger's mixin
 * (src/observability/logger.ts) reads it, so every record written while the request is handled (the
 * request line, refusals, audit events, errors), however deep the call, carries `request_id`.
 */
const requests = new AsyncLocalStorage<string>()

/** Runs `fn` as the handling of the request `id`: records logged inside carry `request_id: id`. */
export function runWithRequestId<T>(id: string, fn: () => T): T {
  return requests.run(id, fn)
}

/** The id of the request being handled, or undefined outside any request. */
export function currentRequestId(): string | undefined {
  return requests.getStore()
}

/** Returned by requestContextFields outside any request: the record is written as it is. */
export const NO_REQUEST_FIELDS: Readonly<Record<string, never>> = Object.freeze({})

/**
 * The fields the logger adds to a record: `{ request_id }` inside a request (a new object each time:
 * pino merges the record into it), NO_REQUEST_FIELDS outside one.
 */
export function requestContextFields(): Record<string, unknown> {
  const id = requests.getStore()
  return id === undefined ? NO_REQUEST_FIELDS : { request_id: id }
}
