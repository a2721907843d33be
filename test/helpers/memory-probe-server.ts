/**
 * The README's resource server (examples/resource-server.ts) in a process of its own, plus a `/memory`
 * route, so a test can measure what one request costs this process alone. Prints `{"port":…}` once
 * listening. Run with `node --import tsx`; PORT picks the port.
 */
import { serve } from '@hono/node-server'
import { createResourceServer } from '../../examples/resource-server.js'

// The issuer is never contacted: the tests send tokens that fail before any key is looked up.
const app = createResourceServer({ issuer: 'http://127.0.0.1:9', audience: 'https://api.example.com' })
// With --expose-gc, collect first: `rss` then counts what is held, `maxRss` the peak so far.
app.get('/memory', (c) => {
  globalThis.gc?.()
  return c.json({ rss: process.memoryUsage.rss(), maxRss: process.resourceUsage().maxRSS * 1024 })
})

serve({ fetch: app.fetch, port: Number(process.env.PORT), hostname: '127.0.0.1' }, (info) => {
  process.stdout.write(`${JSON.stringify({ port: info.port })}\n`)
})
