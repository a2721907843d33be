import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import type { Hono } from 'hono'
import type { AppEnv } from './http/types.js'

export interface RunningServer {
  server: Server
  /** e.g. http://127.0.0.1:3000 */
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
}

/**
 * Listens with conservative socket limits: 16 KiB of headers (an oversized Authorization header is
 * answered 431 by Node before any of our code runs) and deadlines for a request's headers and for
 * the whole request against slow senders (slowloris). Node enforces both deadlines only when it
 * sweeps its connections, every 30 s by default, so a 20 s limit cut at up to 50 s; a sweep every
 * second keeps each limit within a second of what it says.
 */
export function startServer(app: Hono<AppEnv>, options: ServerOptions): Promise<RunningServer> {
  return new Promise((resolve, reject) => {
    const server = serve(
      {
        fetch: app.fetch,
        port: options.port,
        hostname: options.host,
        serverOptions: {
          maxHeaderSize: 16 * 1024,
          headersTimeout: options.headersTimeoutMs ?? 20_000,
          requestTimeout: options.requestTimeoutMs ?? 30_000,
          connectionsCheckingInterval: 1_000,
          keepAliveTimeout: 5_000,
        },
      },
      (info: AddressInfo) => {
        const host = info.family === 'IPv6' ? `[${info.address}]` : info.address
        resolve({
          server: server as Server,
          url: `http://${host}:${info.port}`,
          close: () =>
            new Promise<void>((done) => {
              // Keep-alive sockets that finish their request while we wait are closed as they go idle.
              const sweep = setInterval(() => (server as Server).closeIdleConnections(), 100)
              ;(server as Server).close(() => {
                clearInterval(sweep)
                done()
              })
              ;(server as Server).closeIdleConnections()
            }),
        })
      },
    ) as Server
    server.once('error', reject)
  })
}
