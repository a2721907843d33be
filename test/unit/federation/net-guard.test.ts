import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import {
  classifyAddress,
  createGuardedFetch,
  isAllowedAddress,
  NetGuardError,
  type AddressClass,
} from '../../../src/federation/net-guard.js'
import { fetchJwksJson } from '../../../src/verifier/jwks-fetch.js'

describe('classifyAddress', () => {
  const table: [string, AddressClass][] = [
    ['8.8.8.8', 'public'],
    ['1.1.1.1', 'public'],
    ['93.184.216.34', 'public'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['10.0.0.1', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['172.32.0.1', 'public'],
    ['192.168.1.1', 'private'],
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['169.254.169.254', 'link_local'],
    ['100.64.0.1', 'cgnat'],
    ['100.127.255.255', 'cgnat'],
    ['100.128.0.1', 'public'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['240.0.0.1', 'reserved'],
    ['255.255.255.255', 'reserved'],
    ['192.0.2.1', 'reserved'],
    ['198.18.0.1', 'reserved'],
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['0:0:0:0:0:0:0:1', 'loopback'],
    ['[::1]', 'loopback'],
    ['::ffff:10.0.0.1', 'private'],
    ['::ffff:a00:1', 'private'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:169.254.169.254', 'link_local'],
    ['::ffff:8.8.8.8', 'public'],
    ['0:0:0:0:0:ffff:0a00:0001', 'private'],
    ['::10.0.0.1', 'reserved'],
    ['64:ff9b::10.0.0.1', 'private'],
    ['64:ff9b::8.8.8.8', 'public'],
    ['fc00::', 'unique_local'],
    ['fd12:3456:789a::1', 'unique_local'],
    ['fe80::', 'link_local'],
    ['fe80::1%eth0', 'link_local'],
    ['febf::1', 'link_local'],
    ['fec0::1', 'reserved'],
    ['ff02::1', 'multicast'],
    ['2001:db8::1', 'reserved'],
    ['2001::1', 'reserved'],
    ['2002:a00:1::1', 'reserved'],
    ['2606:4700:4700::1111', 'public'],
    ['2a00:1450:4001:81a::200e', 'public'],
    ['4000::1', 'reserved'],
    ['not an address', 'reserved'],
    ['1.2.3', 'reserved'],
    ['1:2:3:4:5:6:7:8:9', 'reserved'],
  ]
  it.each(table)('%s is %s', (address, kind) => {
    expect(classifyAddress(address)).toBe(kind)
  })

  it('allows public addresses always, private ones only when the entry allows them', () => {
    expect(isAllowedAddress('8.8.8.8', false)).toBe(true)
    expect(isAllowedAddress('2606:4700:4700::1111', false)).toBe(true)
    for (const address of [
      '127.0.0.1',
      '10.0.0.1',
      '169.254.169.254',
      '100.64.0.1',
      'fc00::1',
      'fe80::1',
      '::ffff:10.0.0.1',
    ]) {
      expect(isAllowedAddress(address, false)).toBe(false)
      expect(isAllowedAddress(address, true)).toBe(true)
    }
    // Never "no address" or a group address, whatever the entry says.
    for (const address of ['0.0.0.0', '::', '224.0.0.1', 'ff02::1']) expect(isAllowedAddress(address, true)).toBe(false)
  })
})

describe('createGuardedFetch', () => {
  let server: Server
  let port: number
  let dir: string
  const seen: { path: string; headers: IncomingHttpHeaders }[] = []
  const hits = (path: string) => seen.filter((request) => request.path === path).length

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'net-guard-'))
    server = createServer((req, res) => {
      const path = req.url ?? '/'
      seen.push({ path, headers: req.headers })
      if (path === '/ok') {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ keys: [] }))
      } else if (path === '/redirect') {
        res.writeHead(302, { location: '/ok' })
        res.end()
      } else if (path === '/big') {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(`"${'x'.repeat(100_000)}"`)
      } else if (path === '/big-chunked') {
        res.writeHead(200, { 'content-type': 'application/json' })
        for (let i = 0; i < 100; i++) res.write('x'.repeat(1000))
        res.end()
      } else if (path === '/slow') {
        // Never answers.
      } else {
        res.writeHead(404)
        res.end()
      }
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    port = (server.address() as AddressInfo).port
  })
  afterAll(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
    await rm(dir, { recursive: true, force: true })
  })

  const base = { timeoutMs: 2000, maxBytes: 65_536 }

  it('refuses a loopback IP literal without allow_private_network, before connecting', async () => {
    const guarded = createGuardedFetch({ ...base, allowPrivateNetwork: false })
    const before = seen.length
    await expect(guarded(`https://127.0.0.1:${port}/ok`)).rejects.toThrow(NetGuardError)
    await expect(guarded(`https://[::1]:${port}/ok`)).rejects.toThrow(NetGuardError)
    await expect(guarded(`https://[::ffff:127.0.0.1]:${port}/ok`)).rejects.toThrow(NetGuardError)
    // Plain http too: https only.
    await expect(guarded(`http://127.0.0.1:${port}/ok`)).rejects.toThrow(/https only/)
    expect(seen.length).toBe(before)
  })

  it('refuses a host name whose addresses are all private (checked at connect time)', async () => {
    const before = seen.length
    const rebinding = createGuardedFetch({
      ...base,
      allowPrivateNetwork: false,
      // A name that "resolves" to loopback when the socket dials it.
      resolveHost: async () => [{ address: '127.0.0.1', family: 4 }],
    })
    await expect(rebinding(`https://issuer.example:${port}/ok`)).rejects.toThrow(/resolves to no address/)
    const system = createGuardedFetch({ ...base, allowPrivateNetwork: false })
    await expect(system(`https://localhost:${port}/ok`)).rejects.toThrow(NetGuardError)
    expect(seen.length).toBe(before)
  })

  it('connects only to the allowed addresses of a name', async () => {
    const guarded = createGuardedFetch({
      ...base,
      allowPrivateNetwork: true,
      // 0.0.0.0 is never dialled, even for an entry that allows private networks.
      resolveHost: async () => [
        { address: '0.0.0.0', family: 4 },
        { address: '127.0.0.1', family: 4 },
      ],
    })
    const response = await guarded(`http://issuer.internal:${port}/ok`)
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ keys: [] })
    expect(seen.at(-1)?.headers.host).toBe(`issuer.internal:${port}`)
  })

  it('fetches from loopback with allow_private_network, and fetchJwksJson reads the answer', async () => {
    const guarded = createGuardedFetch({ ...base, allowPrivateNetwork: true })
    const json = await fetchJwksJson(new URL(`http://127.0.0.1:${port}/ok`), {
      fetch: guarded,
      timeoutMs: 2000,
      maxBytes: 1000,
    })
    expect(json).toEqual({ keys: [] })
  })

  it('never follows a redirect', async () => {
    const guarded = createGuardedFetch({ ...base, allowPrivateNetwork: true })
    const before = hits('/ok')
    await expect(guarded(`http://127.0.0.1:${port}/redirect`)).rejects.toThrow(/redirect/)
    expect(hits('/redirect')).toBeGreaterThan(0)
    expect(hits('/ok')).toBe(before)
  })

  it('caps the body, declared or streamed', async () => {
    const guarded = createGuardedFetch({ ...base, allowPrivateNetwork: true, maxBytes: 10_000 })
    await expect(guarded(`http://127.0.0.1:${port}/big`)).rejects.toThrow(/exceeds 10000 bytes/)
    await expect(guarded(`http://127.0.0.1:${port}/big-chunked`)).rejects.toThrow(/exceeds 10000 bytes/)
  })

  it('gives up after the time limit', async () => {
    const guarded = createGuardedFetch({ ...base, allowPrivateNetwork: true, timeoutMs: 200 })
    const started = Date.now()
    await expect(guarded(`http://127.0.0.1:${port}/slow`)).rejects.toThrow(/timed out/)
    expect(Date.now() - started).toBeLessThan(2000)
  })

  it('sends the bearer token file, read at each fetch, to the named origins only', async () => {
    const tokenFile = join(dir, 'token')
    await writeFile(tokenFile, 'first-token\n')
    const options = {
      ...base,
      allowPrivateNetwork: true,
      bearerTokenFile: tokenFile,
      resolveHost: async () => [{ address: '127.0.0.1', family: 4 }],
    }
    const guarded = createGuardedFetch({ ...options, bearerOrigins: [`http://127.0.0.1:${port}`] })
    await guarded(`http://127.0.0.1:${port}/ok`)
    expect(seen.at(-1)?.headers.authorization).toBe('Bearer first-token')
    await writeFile(tokenFile, 'rotated-token')
    await guarded(`http://127.0.0.1:${port}/ok`)
    expect(seen.at(-1)?.headers.authorization).toBe('Bearer rotated-token')
    // Another origin (same address, other name): no token.
    await guarded(`http://elsewhere.internal:${port}/ok`)
    expect(seen.at(-1)?.headers.authorization).toBeUndefined()
  })
})
