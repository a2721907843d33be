/**
 * msw wiring for verifier tests: a fake AS serving its JWKS, an attacker host, and request counters.
 * Every unhandled request is an error: a test that reaches for the network by mistake fails.
 */
import { setupServer, type SetupServer } from 'msw/node'
import type { RequestHandler } from 'msw'
import { afterAll, afterEach, beforeAll } from 'vitest'

export const AS_ORIGIN = 'https://as.tokensmith.test'
export const JWKS_URL = `${AS_ORIGIN}/.well-known/jwks.json`
export const ATTACKER_ORIGIN = 'https://attacker.test'

export interface MswHarness {
  server: SetupServer
  /** Requests seen since the last reset, by URL, including ones no handler answered. */
  requests: string[]
  count(prefix: string): number
}

/** Starts one msw server for the calling test file; handlers added with `server.use` reset after each test. */
export function useMsw(...handlers: RequestHandler[]): MswHarness {
  const server = setupServer(...handlers)
  const requests: string[] = []
  server.events.on('request:start', ({ request }) => {
    requests.push(request.url)
  })
  beforeAll(() => server.listen({ onUnhandledRequest: 'error' }))
  afterEach(() => {
    server.resetHandlers()
    requests.length = 0
  })
  afterAll(() => server.close())
  return { server, requests, count: (prefix) => requests.filter((url) => url.startsWith(prefix)).length }
}
