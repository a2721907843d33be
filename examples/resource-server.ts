/**
 * A resource server protected by tokensmith's middleware: a few lines of Hono.
 *
 *   ISSUER=http://localhost:3000 AUDIENCE=https://api.example.com PORT=4000 \
 *   REDIS_URL=redis://127.0.0.1:6379 npx tsx examples/resource-server.ts
 *
 * Tokens are verified offline against the issuer's JWKS (fetched once, cached, refetched on an
 * unknown kid). With REDIS_URL, revocations reach it within milliseconds through the Redis feed,
 * with no Redis round trip per request. In your own project import from 'tokensmith/verifier' and
 * 'tokensmith/revocation-feed'.
 */
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { createRevocationFeed } from '../src/denylist/revocation-feed.js'
import { bearerAuth, scopesOf, type BearerAuthVariables, type RevocationCheck } from '../src/verifier/index.js'

export function createResourceServer(options: { issuer: string; audience: string; denylist?: RevocationCheck }) {
  const app = new Hono<{ Variables: BearerAuthVariables }>()
  const auth = (scopes: string[]) =>
    bearerAuth({
      issuer: options.issuer,
      audience: options.audience,
      jwks: { uri: `${options.issuer}/.well-known/jwks.json` },
      scopes,
      denylist: options.denylist,
    })

  app.get('/invoices', auth(['invoices:read']), (c) => {
    const claims = c.get('auth')
    return c.json({ invoices: [], client: claims.client_id, scopes: scopesOf(claims) })
  })
  app.post('/invoices', auth(['invoices:write']), (c) => c.json({ created: true, by: c.get('auth').client_id }, 201))
  return app
}

if (process.argv[1]?.endsWith('resource-server.ts')) {
  const issuer = process.env.ISSUER ?? 'http://localhost:3000'
  const redisUrl = process.env.REDIS_URL
  const denylist = redisUrl
    ? createRevocationFeed({ url: redisUrl, keyPrefix: process.env.REDIS_KEY_PREFIX ?? 'tokensmith:' })
    : undefined
  if (!denylist) console.warn('REDIS_URL unset: revoked tokens stay valid here until they expire')
  const app = createResourceServer({ issuer, audience: process.env.AUDIENCE ?? 'https://api.example.com', denylist })
  const port = Number(process.env.PORT ?? 4000)
  serve({ fetch: app.fetch, port, hostname: '127.0.0.1' }, () =>
    console.info(`resource server on http://127.0.0.1:${port}`),
  )
}
