import type { Server } from 'node:http'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import type { Hono } from 'hono'
import { secureContextOptions, sendStrictTransportSecurity, type TlsPair } from './http/tls.js'
import type { AppEnv } from './http/types.js'

export interface RunningServer {
  /** An https.Server when started with `tls` (which has setSecureContext for reloads). */
  server: Server | HttpsServer
  /** e.g. http://127.0.0.1:3000, or https://… with `tls` */
  url: string
  /** Stops accepting, lets in-flight requests finish, then closes idle keep-alive sockets. */
  close(): Promise<void>
}

export interface ServerOptions {
  port: number
  host: string
  /** Time to receive a request's headers; default 20 s (slowloris). Tests make it small. */
  headersTimeoutMs?: number
  /** Time to receive a whole request; default 30 s. */
  requestTimeoutMs?: number
  /** Serve HTTPS with this certificate and key (src/http/tls.ts), with Strict-Transport-Security on every response. */
  tls?: Pick<TlsPair, 'cert' | 'key'> | undefined
}

/**
 * Listens with conservative socket limits: 16 KiB of headers (an oversized Authorization header is
 * answered 431 by Node before any of our code runs) and deadlines for a request's headers and for
 * the whole request against slow senders (slowloris). Node enforces both deadlines only when it
 * sweeps its connections, every 30 s by default, so a 20 s limit cut at up to 50 s; a sweep every
 * second keeps each limit within a second of what it says.
 * With `tls`, the same limits over HTTPS (TLS 1.2 or later), and Strict-Transport-Security set on
 * every response by the Node server itself (RFC 6797 §6.1), so no route or error path can miss it.
 */
export function startServer(app: Hono<AppEnv>, options: ServerOptions): Promise<RunningServer> {
  return new Promise((resolve, reject) => {
    const limits = {
      maxHeaderSize: 16 * 1024,
      headersTimeout: options.headersTimeoutMs ?? 20_000,
      requestTimeout: options.requestTimeoutMs ?? 30_000,
      connectionsCheckingInterval: 1_000,
      keepAliveTimeout: 5_000,
    }
    const listen = { fetch: app.fetch, port: options.port, hostname: options.host }
    const scheme = options.tls ? 'https' : 'http'
    const server = serve(
      options.tls
        ? {
            ...listen,
            createServer: createHttpsServer,
            serverOptions: { ...limits, ...secureContextOptions(options.tls) },
          }
        : { ...listen, serverOptions: limits },
      (info: AddressInfo) => {
        const host = info.family === 'IPv6' ? `[${info.address}]` : info.address
        resolve({
          server,
          url: `${scheme}://${host}:${info.port}`,
          close: () =>
            new Promise<void>((done) => {
              // Keep-alive sockets that finish their request while we wait are closed as they go idle.
              const sweep = setInterval(() => server.closeIdleConnections(), 100)
              server.close(() => {
                clearInterval(sweep)
                done()
              })
              server.closeIdleConnections()
            }),
        })
      },
    ) as Server | HttpsServer
    if (options.tls) sendStrictTransportSecurity(server as HttpsServer)
    server.once('error', reject)
  })
}
