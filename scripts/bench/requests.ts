import type { BenchClient } from './clients-file.js'
import type { HttpTarget } from './load.js'
import type { BenchServer } from './servers.js'

/** The requests the bench makes itself, outside autocannon. */

export const tokenTarget = (server: BenchServer, client: BenchClient, path = '/oauth/token'): HttpTarget => ({
  url: `${server.url}${path}`,
  method: 'POST',
  headers: { authorization: client.authorization, 'content-type': 'application/x-www-form-urlencoded' },
  body: 'grant_type=client_credentials',
})

export async function requestToken(server: BenchServer, client: BenchClient): Promise<{ token: string; body: string }> {
  const target = tokenTarget(server, client)
  const response = await fetch(target.url, { method: 'POST', headers: target.headers, body: target.body ?? '' })
  const body = await response.text()
  if (response.status !== 200) throw new Error(`${server.name}: POST /oauth/token answered ${response.status}: ${body}`)
  return { token: (JSON.parse(body) as { access_token: string }).access_token, body }
}

export async function getStatus(url: string, token: string): Promise<number> {
  const response = await fetch(url, { headers: { authorization: `Bearer ${token}` } })
  await response.arrayBuffer()
  return response.status
}
