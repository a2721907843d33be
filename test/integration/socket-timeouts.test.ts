import { connect } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp } from '../../src/app.js'
import { systemClock } from '../../src/clock.js'
import { startServer, type RunningServer } from '../../src/server.js'
import { freePort } from '../helpers/free-port.js'
import { makeDeps } from '../helpers/make-deps.js'

// Small limits stand in for the production 20 s / 30 s; what is tested is that a limit is enforced
// close to its value, not at Node's next 30-second connection sweep.
const HEADERS_TIMEOUT = 2_000
const REQUEST_TIMEOUT = 4_000
const SLACK = 2_000 // the 1 s connection sweep plus scheduling delays

/**
 * Connects, sends `head`, then one more byte of `drip` every 200 ms; resolves with the time from
 * connecting until the server closed the connection (or gives up after `giveUpMs`).
 */
function trickle(url: string, head: string, drip: string, giveUpMs: number): Promise<number> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname)
    const started = Date.now()
    let sent = 0
    const timer = setInterval(() => socket.write(drip[sent++ % drip.length]!), 200)
    const giveUp = setTimeout(() => socket.destroy(), giveUpMs)
    socket.on('connect', () => socket.write(head))
    socket.on('data', () => {}) // the 408 Node sends, if any
    socket.on('error', (error) =>
      (error as NodeJS.ErrnoException).code === 'ECONNRESET' || (error as NodeJS.ErrnoException).code === 'EPIPE'
        ? undefined
        : reject(error),
    )
    socket.on('close', () => {
      clearInterval(timer)
      clearTimeout(giveUp)
      resolve(Date.now() - started)
    })
  })
}

describe('socket deadlines', () => {
  let server: RunningServer

  beforeAll(async () => {
    const port = await freePort()
    const deps = await makeDeps({ clock: systemClock, config: { issuer: `http://127.0.0.1:${port}` } })
    server = await startServer(createApp(deps), {
      port,
      host: '127.0.0.1',
      headersTimeoutMs: HEADERS_TIMEOUT,
      requestTimeoutMs: REQUEST_TIMEOUT,
    })
  })
  afterAll(() => server.close())

  it('cuts a client that trickles its headers close to the header deadline', async () => {
    const elapsed = await trickle(server.url, 'POST /oauth/token HTTP/1.1\r\nHost: a\r\n', 'X-Slow: 1\r\n', 10_000)
    expect(elapsed).toBeGreaterThanOrEqual(HEADERS_TIMEOUT - 100)
    expect(elapsed).toBeLessThan(HEADERS_TIMEOUT + SLACK)
  })

  it('cuts a client that trickles its body close to the request deadline', async () => {
    const head =
      'POST /oauth/token HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 4096\r\n\r\n'
    const elapsed = await trickle(server.url, head, 'grant_type=client_credentials&', 12_000)
    expect(elapsed).toBeGreaterThanOrEqual(REQUEST_TIMEOUT - 100)
    expect(elapsed).toBeLessThan(REQUEST_TIMEOUT + SLACK)
  })
})
