import { BlockList, isIP, isIPv4 } from 'node:net'
import type { Context } from 'hono'
import type { TrustProxy } from '../config.js'
import type { AppEnv } from './types.js'

/**
 * The source address of a request, for the failed-authentication limits (RFC 6749 §2.3.1; RFC 9700
 * §4.13 on trusting forwarded addresses). It is the socket's peer, unless TRUST_PROXY says which
 * peers are proxies whose `X-Forwarded-For` may be believed:
 * - unset: the header is ignored; a forged one changes nothing;
 * - `{ hops: n }`: every request arrives through exactly n proxies, each appending the address it
 *   saw, so the client is the n-th entry from the right. A chain shorter than n, or a malformed entry
 *   among the last n, breaks that promise (someone reached an inner proxy, or wrote the header
 *   themselves): then the socket's peer, the one address not read from the header;
 * - `{ ranges }`: the peer must itself be in the ranges, else the header is ignored; then the entries
 *   are walked from the right while each address is a trusted proxy, and the first one that is not is
 *   the client. A malformed entry stops the walk at the trusted proxy that wrote it (grouping its
 *   clients, never trusting text a client may have written). When every entry is a proxy, the leftmost.
 * Addresses are normalized: an IPv4-mapped IPv6 address (`::ffff:1.2.3.4`) is the IPv4 address, IPv6
 * in its canonical form, so one host has one key however it is written.
 */

/**
 * The address of a socket that has none left to tell (a peer that already disconnected): every such
 * request shares this one key, so it is limited like any other address.
 */
export const UNKNOWN_ADDRESS = 'unknown'

/** What @hono/node-server passes as `c.env`: the Node request and response. */
interface NodeBindings {
  incoming?: { socket?: { remoteAddress?: string | undefined } }
}

/**
 * The request's source address, or undefined for a request that did not come over a socket:
 * `app.request()` called in this process (tests, the bench's floor server) passes no Node request.
 * A request from the network always has one (@hono/node-server, HTTP and HTTPS alike).
 */
export function clientAddress(c: Context<AppEnv>, trustProxy: TrustProxy | undefined): string | undefined {
  const incoming = (c.env as NodeBindings | undefined)?.incoming
  if (incoming === undefined) return undefined
  const peer = normalizeAddress(incoming.socket?.remoteAddress ?? '') ?? UNKNOWN_ADDRESS
  return resolveClientAddress(peer, c.req.header('x-forwarded-for'), trustProxy)
}

/**
 * The client's address from the socket peer (already normalized, or UNKNOWN_ADDRESS) and the
 * `X-Forwarded-For` header (several header lines arrive joined with commas), by the rules above.
 */
export function resolveClientAddress(
  peer: string,
  forwardedFor: string | undefined,
  trustProxy: TrustProxy | undefined,
): string {
  if (trustProxy === undefined || forwardedFor === undefined) return peer
  const chain = forwardedFor.split(',')
  if ('hops' in trustProxy) {
    const written = chain.slice(-trustProxy.hops).map(normalizeAddress)
    if (chain.length < trustProxy.hops || written.includes(undefined)) return peer
    return written[0] ?? peer
  }
  const trusted = trustedRanges(trustProxy.ranges)
  let current = peer
  for (const entry of chain.reverse()) {
    if (!isTrusted(trusted, current)) return current
    const next = normalizeAddress(entry)
    if (next === undefined) return current
    current = next
  }
  return current
}

/**
 * One address as a key: trimmed; an IPv4 address with a port (`1.2.3.4:5678`) or a bracketed IPv6
 * address with or without one (`[::1]:80`, some proxies write them) loses the port; an IPv4-mapped
 * IPv6 address becomes IPv4; IPv6 takes its canonical form (RFC 5952). Undefined when it is not an
 * IP address at all (`unknown`, a host name, garbage).
 */
export function normalizeAddress(text: string): string | undefined {
  let address = text.trim()
  const bracketed = /^\[([^\]]+)\](?::[0-9]{1,5})?$/.exec(address)
  if (bracketed?.[1] !== undefined) address = bracketed[1]
  else if (/^[0-9.]+:[0-9]{1,5}$/.test(address)) address = address.slice(0, address.indexOf(':'))
  const family = isIP(address)
  if (family === 4) return address
  if (family !== 6) return undefined
  const mapped = /^::ffff:([0-9.]+)$/i.exec(address)?.[1]
  if (mapped !== undefined && isIPv4(mapped)) return mapped
  if (address.includes('%')) return undefined // a zone index names an interface of the sender, not a host
  try {
    return new URL(`http://[${address}]/`).hostname.slice(1, -1)
  } catch {
    return undefined
  }
}

const rangeLists = new WeakMap<readonly string[], BlockList>()

/** TRUST_PROXY's addresses and CIDR ranges (validated with the configuration) as one BlockList. */
function trustedRanges(ranges: readonly string[]): BlockList {
  let list = rangeLists.get(ranges)
  if (!list) {
    list = new BlockList()
    for (const range of ranges) {
      const [address = '', prefix] = range.split('/')
      const family = isIPv4(address) ? 'ipv4' : 'ipv6'
      if (prefix === undefined) list.addAddress(address, family)
      else list.addSubnet(address, Number(prefix), family)
    }
    rangeLists.set(ranges, list)
  }
  return list
}

function isTrusted(list: BlockList, address: string): boolean {
  const family = isIP(address)
  if (family === 0) return false
  return list.check(address, family === 4 ? 'ipv4' : 'ipv6')
}
