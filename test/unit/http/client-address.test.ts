import { describe, expect, it } from 'vitest'
import { normalizeAddress, resolveClientAddress } from '../../../src/http/client-address.js'

describe('normalizeAddress', () => {
  it.each([
    ['1.2.3.4', '1.2.3.4'],
    [' 1.2.3.4 ', '1.2.3.4'],
    ['1.2.3.4:5678', '1.2.3.4'],
    ['::ffff:1.2.3.4', '1.2.3.4'],
    ['::FFFF:10.0.0.1', '10.0.0.1'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['[2001:db8::1]', '2001:db8::1'],
    ['[2001:db8::1]:443', '2001:db8::1'],
    ['::1', '::1'],
  ])('%j is %j', (text, address) => expect(normalizeAddress(text)).toBe(address))

  it.each([
    '',
    'unknown',
    'example.com',
    '1.2.3',
    '1.2.3.4.5',
    '999.1.1.1',
    '1.2.3.4:x',
    'fe80::1%eth0',
    '[1.2.3.4]x',
    '_',
  ])('refuses %j', (text) => expect(normalizeAddress(text)).toBeUndefined())
})

describe('resolveClientAddress', () => {
  const PEER = '127.0.0.1'
  it.each([
    // TRUST_PROXY unset: the header is ignored, whatever it says.
    ['unset, no header', undefined, undefined, PEER],
    ['unset, forged header', '203.0.113.7', undefined, PEER],
    ['unset, rotating header', '198.51.100.1, 198.51.100.2', undefined, PEER],
    // Hop counts: the n-th entry from the right.
    ['1 hop', '203.0.113.7', { hops: 1 }, '203.0.113.7'],
    ['1 hop, spoofed entries on the left', '6.6.6.6, 7.7.7.7, 203.0.113.7', { hops: 1 }, '203.0.113.7'],
    ['2 hops', '6.6.6.6, 203.0.113.7, 10.0.0.2', { hops: 2 }, '203.0.113.7'],
    ['2 hops, chain too short: the socket', '203.0.113.7', { hops: 2 }, PEER],
    ['1 hop, no header', undefined, { hops: 1 }, PEER],
    ['1 hop, empty header', '', { hops: 1 }, PEER],
    ['1 hop, malformed entry: the socket', 'unknown', { hops: 1 }, PEER],
    ['2 hops, malformed entry within the hops', '203.0.113.7, garbage', { hops: 2 }, PEER],
    ['1 hop, malformed entry beyond the hops ignored', 'garbage, 203.0.113.7', { hops: 1 }, '203.0.113.7'],
    ['1 hop, mapped IPv4', '::ffff:203.0.113.7', { hops: 1 }, '203.0.113.7'],
    ['1 hop, IPv6 with port', '[2001:DB8::7]:1234', { hops: 1 }, '2001:db8::7'],
    // Ranges: walk from the right over trusted proxies.
    ['ranges, trusted peer', '203.0.113.7', { ranges: ['127.0.0.1'] }, '203.0.113.7'],
    ['ranges, untrusted peer: header ignored', '203.0.113.7', { ranges: ['10.0.0.0/8'] }, PEER],
    [
      'ranges, inner proxies skipped',
      '6.6.6.6, 203.0.113.7, 10.1.2.3, 10.0.0.9',
      { ranges: ['127.0.0.0/8', '10.0.0.0/8'] },
      '203.0.113.7',
    ],
    [
      'ranges, every entry a proxy: the leftmost',
      '10.0.0.1, 10.0.0.2',
      { ranges: ['127.0.0.1', '10.0.0.0/8'] },
      '10.0.0.1',
    ],
    ['ranges, malformed entry: the proxy that wrote it', 'garbage', { ranges: ['127.0.0.1'] }, PEER],
    [
      'ranges, malformed behind a proxy',
      '6.6.6.6, garbage, 10.0.0.2',
      { ranges: ['127.0.0.1', '10.0.0.0/8'] },
      '10.0.0.2',
    ],
    [
      'ranges, IPv6 proxy range',
      '2001:db8:1::5, 2001:db8::9',
      { ranges: ['127.0.0.1', '2001:db8::/64'] },
      '2001:db8:1::5',
    ],
    ['ranges, mapped IPv4 entry', '::ffff:203.0.113.7', { ranges: ['127.0.0.1'] }, '203.0.113.7'],
  ] as const)('%s', (_name, header, trustProxy, expected) => {
    expect(resolveClientAddress(PEER, header, trustProxy)).toBe(expected)
  })

  it('checks an IPv6 peer against IPv6 ranges', () => {
    expect(resolveClientAddress('::1', '203.0.113.7', { ranges: ['::1'] })).toBe('203.0.113.7')
    expect(resolveClientAddress('::1', '203.0.113.7', { ranges: ['127.0.0.1'] })).toBe('::1')
  })

  it('never trusts the header of an unknown peer', () => {
    expect(resolveClientAddress('unknown', '203.0.113.7', { ranges: ['127.0.0.1'] })).toBe('unknown')
  })
})
