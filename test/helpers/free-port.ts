import { createServer } from 'node:net'

/**
 * Ports below Linux's default ephemeral range (32768-60999). A port picked by the kernel (`listen(0)`)
 * comes from that range, so an outgoing connection (say a client reconnecting to a Redis that is not
 * up yet) can take it as its own local port before the test binds it; ports below it never are.
 */
const LOW = 20_000
const HIGH = 32_000

function tryListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

/** A loopback port that was free a moment ago, outside the ephemeral range. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW))
    if (await tryListen(port)) return port
  }
  throw new Error(`no free port between ${LOW} and ${HIGH}`)
}
