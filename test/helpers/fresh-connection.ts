import { request } from 'node:http'

export interface PlainResponse {
  status: number
  text: string
  json(): Record<string, unknown>
}

/**
 * One request on a connection of its own (no keep-alive pool), so that a cluster's primary hands
 * each one to the next worker. `hold` sends the body's first bytes and waits for `release` before
 * the rest: a request in flight.
 */
export function requestOnNewConnection(
  url: string,
  options: { method?: string; authorization?: string; form?: string; hold?: Promise<void> } = {},
): Promise<PlainResponse> {
  return new Promise((resolve, reject) => {
    const body = options.form
    const req = request(url, {
      method: options.method ?? (body === undefined ? 'GET' : 'POST'),
      agent: false,
      headers: {
        ...(body !== undefined && {
          'content-type': 'application/x-www-form-urlencoded',
          'content-length': String(Buffer.byteLength(body)),
        }),
        ...(options.authorization && { authorization: options.authorization }),
      },
    })
    req.on('response', (res) => {
      let text = ''
      res.on('data', (chunk) => (text += chunk))
      res.on('end', () => resolve({ status: res.statusCode!, text, json: () => JSON.parse(text) }))
    })
    req.on('error', reject)
    if (body === undefined) return void req.end()
    if (!options.hold) return void req.end(body)
    req.write(body.slice(0, 5))
    void options.hold.then(() => req.end(body.slice(5)))
  })
}
