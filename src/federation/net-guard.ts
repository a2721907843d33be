/**
 * The HTTP client of workload identity federation: what fetches a trust entry's discovery document and
 * JWK Set. A trust entry names URLs, and a server that fetches whatever URL it is given is a way into
 * the networks behind it (server-side request forgery: cloud metadata at 169.254.169.254, admin ports on
 * loopback, services on private ranges). So, unless the entry says `allow_private_network: true`:
 *
 * - every address a host name resolves to is classified, and only public unicast ones are connected to;
 *   the check is on the address actually dialled (the `lookup` the socket uses, then the socket's own
 *   remote address), so a name that resolves to a public address when checked and a private one when
 *   connected (DNS rebinding) gains nothing;
 * - an IP-literal host is classified directly; plain `http:` is refused (https only).
 *
 * Always: no redirect is followed (a 3xx is an error: a moved key set is not the configured one, and a
 * redirect could point anywhere), no connection is shared with other code (`agent: false`), the whole
 * exchange has a time limit and the body a size cap. `ca_file` and `bearer_token_file` are read at each
 * fetch (the kubelet rotates a projected service-account token), and the bearer token is sent only to
 * the origins the entry itself names, never to one a discovery document points at.
 */
import { readFile } from 'node:fs/promises'
import { lookup as dnsLookup } from 'node:dns/promises'
import { request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { isIP, type LookupFunction } from 'node:net'

/** What kind of address an IP is, as far as outgoing fetches care (RFC 6890 special-purpose registries). */
export type AddressClass =
  | 'public'
  | 'unspecified'
  | 'loopback'
  | 'private'
  | 'link_local'
  | 'unique_local'
  | 'cgnat'
  | 'multicast'
  | 'reserved'

export class NetGuardError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'NetGuardError'
  }
}

function classifyV4(a: number, b: number, c: number): AddressClass {
  if (a === 0) return 'unspecified' // 0.0.0.0/8 "this network", RFC 791 / RFC 6890
  if (a === 10) return 'private' // RFC 1918
  if (a === 100 && (b & 0xc0) === 64) return 'cgnat' // 100.64.0.0/10, RFC 6598
  if (a === 127) return 'loopback' // RFC 1122
  if (a === 169 && b === 254) return 'link_local' // RFC 3927 (cloud metadata lives here)
  if (a === 172 && (b & 0xf0) === 16) return 'private' // RFC 1918
  if (a === 192 && b === 168) return 'private' // RFC 1918
  if (a === 192 && b === 0 && (c === 0 || c === 2)) return 'reserved' // RFC 6890, RFC 5737
  if (a === 192 && b === 88 && c === 99) return 'reserved' // 6to4 relay anycast, RFC 7526
  if (a === 198 && (b & 0xfe) === 18) return 'reserved' // benchmarking, RFC 2544
  if (a === 198 && b === 51 && c === 100) return 'reserved' // RFC 5737
  if (a === 203 && b === 0 && c === 113) return 'reserved' // RFC 5737
  if (a >= 224 && a <= 239) return 'multicast' // RFC 5771
  if (a >= 240) return 'reserved' // RFC 1112, broadcast included
  return 'public'
}

function parseV4(address: string): [number, number, number, number] | undefined {
  const parts = address.split('.')
  if (parts.length !== 4 || !parts.every((part) => /^\d{1,3}$/.test(part))) return undefined
  const bytes = parts.map(Number)
  if (bytes.some((byte) => byte > 255)) return undefined
  return bytes as [number, number, number, number]
}

/** Eight 16-bit groups of an IPv6 address (RFC 4291 §2.2, dotted IPv4 tail included), or undefined. */
function parseV6(address: string): number[] | undefined {
  const bare = address.replace(/%.*$/, '') // a zone id (RFC 6874) says nothing about the address class
  const halves = bare.split('::')
  if (halves.length > 2) return undefined
  const groups = (text: string): number[] | undefined => {
    if (text === '') return []
    const out: number[] = []
    const parts = text.split(':')
    for (const [index, part] of parts.entries()) {
      if (index === parts.length - 1 && part.includes('.')) {
        const v4 = parseV4(part)
        if (!v4) return undefined
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3])
      } else if (/^[0-9a-fA-F]{1,4}$/.test(part)) {
        out.push(Number.parseInt(part, 16))
      } else {
        return undefined
      }
    }
    return out
  }
  const head = groups(halves[0] ?? '')
  const tail = halves.length === 2 ? groups(halves[1] ?? '') : []
  if (!head || !tail) return undefined
  if (halves.length === 1) return head.length === 8 ? head : undefined
  const missing = 8 - head.length - tail.length
  if (missing < 1) return undefined
  return [...head, ...new Array<number>(missing).fill(0), ...tail]
}

function classifyV6(g: number[]): AddressClass {
  const [g0 = 0, g1 = 0, g2 = 0, g3 = 0, g4 = 0, g5 = 0, g6 = 0, g7 = 0] = g
  const embeddedV4 = () => classifyV4(g6 >> 8, g6 & 0xff, g7 >> 8)
  const zeroTo = (n: number) => g.slice(0, n).every((group) => group === 0)
  if (zeroTo(8)) return 'unspecified' // ::
  if (zeroTo(7) && g7 === 1) return 'loopback' // ::1
  if (zeroTo(5) && g5 === 0xffff) return embeddedV4() // ::ffff:0:0/96 IPv4-mapped, RFC 4291 §2.5.5.2
  if (zeroTo(6)) return 'reserved' // ::/96 IPv4-compatible, deprecated (RFC 4291 §2.5.5.1)
  if (g0 === 0x64 && g1 === 0xff9b && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0) return embeddedV4() // NAT64, RFC 6052
  if (g0 === 0x64 && g1 === 0xff9b && g2 === 1) return 'private' // local-use NAT64, RFC 8215
  if (g0 === 0x100 && g1 === 0 && g2 === 0 && g3 === 0) return 'reserved' // discard-only, RFC 6666
  if ((g0 & 0xfe00) === 0xfc00) return 'unique_local' // fc00::/7, RFC 4193
  if ((g0 & 0xffc0) === 0xfe80) return 'link_local' // fe80::/10, RFC 4291
  if ((g0 & 0xffc0) === 0xfec0) return 'reserved' // site-local, deprecated by RFC 3879
  if ((g0 & 0xff00) === 0xff00) return 'multicast' // ff00::/8
  if (g0 === 0x2001 && g1 < 0x200) return 'reserved' // 2001::/23 IETF assignments (Teredo among them)
  if (g0 === 0x2001 && g1 === 0xdb8) return 'reserved' // documentation, RFC 3849
  if (g0 === 0x2002) return 'reserved' // 6to4, deprecated (RFC 7526); it would tunnel to any IPv4
  if (g0 === 0x3fff && g1 < 0x1000) return 'reserved' // documentation, RFC 9637
  if ((g0 & 0xe000) !== 0x2000) return 'reserved' // outside 2000::/3, the global unicast space
  return 'public'
}

/** Classifies an IPv4 or IPv6 address (IPv4-mapped and NAT64 forms by the IPv4 address they carry). */
export function classifyAddress(address: string): AddressClass {
  const bare = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address
  const v4 = isIP(bare) === 4 ? parseV4(bare) : undefined
  if (v4) return classifyV4(v4[0], v4[1], v4[2])
  const v6 = bare.includes(':') ? parseV6(bare) : undefined
  if (v6) return classifyV6(v6)
  // Not an address at all: nothing to connect to safely.
  return 'reserved'
}

/** Whether a fetch may connect to `address`: public unicast only, unless private networks are allowed. */
export function isAllowedAddress(address: string, allowPrivateNetwork: boolean): boolean {
  const kind = classifyAddress(address)
  if (kind === 'public') return true
  // Even an entry that opts into private networks never dials "no address" or a group address.
  return allowPrivateNetwork && kind !== 'unspecified' && kind !== 'multicast'
}

/** Resolves a host name to every address it has (`dns.lookup` with `all: true`); a test hook. */
export type ResolveHost = (hostname: string) => Promise<readonly { address: string; family: number }[]>

const systemResolve: ResolveHost = (hostname) => dnsLookup(hostname, { all: true, verbatim: true })

export interface GuardedFetchOptions {
  allowPrivateNetwork: boolean
  /** Milliseconds for the whole exchange, body included. */
  timeoutMs: number
  maxBytes: number
  /** PEM file with the CA certificates to trust instead of the system ones (read at each fetch). */
  caFile?: string
  /** File whose trimmed contents are sent as `Authorization: Bearer …` (read at each fetch). */
  bearerTokenFile?: string
  /** Origins (`https://host:port`) the bearer token may be sent to; none, no token. */
  bearerOrigins?: readonly string[]
  resolveHost?: ResolveHost
}

/** A `lookup` for sockets that only ever yields allowed addresses. */
function guardedLookup(resolveHost: ResolveHost, allowPrivateNetwork: boolean): LookupFunction {
  return (hostname, options, callback) => {
    resolveHost(hostname).then(
      (addresses) => {
        const allowed = addresses.filter(
          (entry) =>
            (options.family === undefined || options.family === 0 || entry.family === options.family) &&
            isAllowedAddress(entry.address, allowPrivateNetwork),
        )
        const first = allowed[0]
        if (first === undefined) {
          callback(new NetGuardError(`${hostname} resolves to no address a trust entry may reach`), '', 0)
        } else if (options.all) {
          callback(
            null,
            allowed.map((entry) => ({ address: entry.address, family: entry.family })),
          )
        } else {
          callback(null, first.address, first.family)
        }
      },
      (error: unknown) => callback(error as NodeJS.ErrnoException, '', 0),
    )
  }
}

function responseHeaders(message: IncomingMessage): Headers {
  const headers = new Headers()
  for (const [name, value] of Object.entries(message.headers)) {
    if (value === undefined) continue
    for (const one of Array.isArray(value) ? value : [value]) headers.append(name, one)
  }
  return headers
}

function requestUrl(input: Parameters<typeof fetch>[0]): URL {
  if (input instanceof URL) return input
  if (typeof input === 'string') return new URL(input)
  return new URL(input.url)
}

/**
 * A `fetch` for GET requests (as `fetchJwksJson` makes them) under the rules of the module comment.
 * Refusals and failures reject with `NetGuardError` or the socket's error; any status but a 3xx resolves
 * to a WHATWG `Response` holding the whole (capped) body.
 */
export function createGuardedFetch(options: GuardedFetchOptions): typeof fetch {
  const resolveHost = options.resolveHost ?? systemResolve
  const lookup = guardedLookup(resolveHost, options.allowPrivateNetwork)

  const guarded = async (input: Parameters<typeof fetch>[0], init?: RequestInit): Promise<Response> => {
    const url = requestUrl(input)
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && options.allowPrivateNetwork)) {
      throw new NetGuardError(`refusing ${url.protocol} URL: https only`)
    }
    if (url.username || url.password) throw new NetGuardError('refusing a URL with credentials')
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
    if (isIP(host) !== 0 && !isAllowedAddress(host, options.allowPrivateNetwork)) {
      throw new NetGuardError(`refusing ${classifyAddress(host)} address ${host}`)
    }

    const headers: Record<string, string> = {}
    new Headers(init?.headers).forEach((value, name) => {
      headers[name] = value
    })
    if (options.bearerTokenFile !== undefined && options.bearerOrigins?.includes(url.origin)) {
      const token = (await readFile(options.bearerTokenFile, 'utf8')).trim()
      if (token === '' || /[\r\n]/.test(token)) throw new NetGuardError('bearer_token_file holds no usable token')
      headers.authorization = `Bearer ${token}`
    }
    const ca = options.caFile === undefined ? undefined : await readFile(options.caFile, 'utf8')

    const requestOptions: RequestOptions & { ca?: string } = {
      method: 'GET',
      headers,
      lookup,
      agent: false,
      ...(ca === undefined ? {} : { ca }),
    }
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest

    return new Promise<Response>((resolve, reject) => {
      let settled = false
      const fail = (error: unknown) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        init?.signal?.removeEventListener('abort', onAbort)
        request.destroy()
        reject(error instanceof Error ? error : new NetGuardError('fetch failed', { cause: error }))
      }
      const onAbort = () => fail(new NetGuardError('fetch aborted', { cause: init?.signal?.reason }))
      const timer = setTimeout(() => fail(new NetGuardError('fetch timed out')), options.timeoutMs)

      const request = send(url, requestOptions, (response) => {
        const status = response.statusCode ?? 0
        if (status >= 300 && status < 400) {
          response.resume()
          fail(new NetGuardError(`refusing redirect (${status}): redirects are never followed`))
          return
        }
        const declared = Number(response.headers['content-length'] ?? Number.NaN)
        if (declared > options.maxBytes) {
          fail(new NetGuardError(`response exceeds ${options.maxBytes} bytes`))
          return
        }
        const chunks: Buffer[] = []
        let total = 0
        response.on('data', (chunk: Buffer) => {
          total += chunk.byteLength
          if (total > options.maxBytes) fail(new NetGuardError(`response exceeds ${options.maxBytes} bytes`))
          else chunks.push(chunk)
        })
        response.on('error', fail)
        response.on('end', () => {
          if (settled) return
          settled = true
          clearTimeout(timer)
          init?.signal?.removeEventListener('abort', onAbort)
          const body = status === 204 || status === 304 || status < 200 ? null : Buffer.concat(chunks)
          try {
            resolve(new Response(body, { status: status < 200 ? 502 : status, headers: responseHeaders(response) }))
          } catch (error) {
            reject(error)
          }
        })
      })
      // Belt and braces: the address the socket reached, whatever resolved it.
      request.on('socket', (socket) => {
        socket.once('connect', () => {
          const remote = socket.remoteAddress
          if (remote === undefined || !isAllowedAddress(remote, options.allowPrivateNetwork)) {
            fail(new NetGuardError(`refusing connection to ${remote ?? 'an unknown address'}`))
          }
        })
      })
      request.on('error', fail)
      if (init?.signal?.aborted) onAbort()
      else init?.signal?.addEventListener('abort', onAbort, { once: true })
      request.end()
    })
  }
  return guarded as typeof fetch
}
