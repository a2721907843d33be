import { createApp } from '../../src/app.js'
import { systemClock } from '../../src/clock.js'
import { startServer, type RunningServer } from '../../src/server.js'
import { freePort } from './free-port.js'
import { makeDeps, type MakeDepsOptions } from './make-deps.js'

/** The whole app on a real loopback socket, with the issuer set to its own URL and the real clock. */
export async function startTestServer(options: MakeDepsOptions = {}) {
  const port = await freePort()
  const issuer = `http://127.0.0.1:${port}`
  const deps = await makeDeps({ clock: systemClock, ...options, config: { issuer, ...options.config } })
  const running: RunningServer = await startServer(createApp(deps), { port, host: '127.0.0.1' })
  return { ...running, issuer, deps }
}
