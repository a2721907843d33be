/** DPoP proof verification (RFC 9449 §4.3): every refusal code, htu normalization, replay, ath. */
import { generateKeyPairSync, sign } from 'node:crypto'

import { CompactSign, calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose'
import { beforeAll, describe, expect, it } from 'vitest'

import { createMemoryReplayCache } from '../../../src/oauth/replay-cache.js'
import {
  accessTokenHash,
  DPOP_ALGORITHMS,
  DPOP_TYP,
  type DpopCheck,
  DpopRejected,
  type DpopRejectReason,
  type DpopReplay,
  type DpopVerifyOptions,
  normalizeHtu,
  verifyDpopProof,
} from '../../../src/verifier/dpop.js'

const NOW = 1_700_000_000
const TOLERANCE = 5
const HTU = 'https://as.example.com/oauth/token'
const CHECK: DpopCheck = { method: 'POST', url: HTU }

type Keys = Awaited<ReturnType<typeof generateKeyPair>>
let es256: Keys
let other: Keys
let publicJwk: JWK
let privateJwk: JWK

beforeAll(async () => {
  es256 = await generateKeyPair('ES256', { extractable: true })
  other = await generateKeyPair('ES256', { extractable: true })
  publicJwk = await exportJWK(es256.publicKey)
  privateJwk = await exportJWK(es256.privateKey)
})

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
let jtiCounter = 0
const freshJti = () => `jti-${++jtiCounter}`

interface ProofOptions {
  header?: Record<string, unknown>
  claims?: Record<string, unknown>
  /** Claims removed after the defaults were applied. */
  omit?: string[]
  signWith?: Keys['privateKey'] | Uint8Array
  alg?: string
}

async function proof(options: ProofOptions = {}): Promise<string> {
  const alg = options.alg ?? 'ES256'
  const header = { typ: DPOP_TYP, alg, jwk: publicJwk, ...options.header }
  const claims: Record<string, unknown> = { htm: 'POST', htu: HTU, iat: NOW, jti: freshJti(), ...options.claims }
  for (const name of options.omit ?? []) delete claims[name]
  for (const [name, value] of Object.entries(header))
    if (value === undefined) delete header[name as keyof typeof header]
  return new CompactSign(Buffer.from(JSON.stringify(claims)))
    .setProtectedHeader(header as { alg: string })
    .sign(options.signWith ?? es256.privateKey)
}

function options(overrides: Partial<DpopVerifyOptions> = {}): DpopVerifyOptions {
  return {
    clock: () => NOW,
    clockTolerance: TOLERANCE,
    replay: createMemoryReplayCache({ clock: () => NOW }),
    ...overrides,
  }
}

async function reasonOf(promise: Promise<unknown>): Promise<DpopRejectReason | 'accepted'> {
  try {
    await promise
    return 'accepted'
  } catch (error) {
    if (error instanceof DpopRejected) return error.reason
    throw error
  }
}

const verify = (jws: string, check: Partial<DpopCheck> = {}, opts: Partial<DpopVerifyOptions> = {}) =>
  reasonOf(verifyDpopProof(jws, { ...CHECK, ...check }, options(opts)))

describe('verifyDpopProof: accepted proofs', () => {
  it('returns the RFC 7638 thumbprint, the public key, jti and iat', async () => {
    const jws = await proof({ claims: { jti: 'unique-1' } })
    const result = await verifyDpopProof(jws, CHECK, options())
    expect(result.jkt).toBe(await calculateJwkThumbprint(publicJwk, 'sha256'))
    expect(result.jwk).toEqual({ kty: 'EC', crv: 'P-256', x: publicJwk.x, y: publicJwk.y })
    expect(result).toMatchObject({ jti: 'unique-1', iat: NOW })
    expect(result.nonce).toBeUndefined()
  })

  it.each([
    ['EdDSA', 'Ed25519'],
    ['RS256', 'RS256'],
    ['PS256', 'PS256'],
    ['ES384', 'ES384'],
  ] as const)('accepts %s', async (alg, generate) => {
    const keys = await generateKeyPair(generate, { extractable: true })
    const jwk = await exportJWK(keys.publicKey)
    const jws = await proof({ alg, header: { jwk }, signWith: keys.privateKey })
    expect(await verify(jws)).toBe('accepted')
  })

  it('ignores query and fragment of the request URL and of htu (§4.3 item 9)', async () => {
    const jws = await proof({ claims: { htu: `${HTU}?a=1#frag` } })
    expect(await verify(jws, { url: `${HTU}?b=2` })).toBe('accepted')
  })

  it('accepts iat at both edges of the window, and a custom maxAge', async () => {
    expect(await verify(await proof({ claims: { iat: NOW + TOLERANCE } }))).toBe('accepted')
    expect(await verify(await proof({ claims: { iat: NOW - 60 - TOLERANCE } }))).toBe('accepted')
    expect(await verify(await proof({ claims: { iat: NOW - 200 } }), {}, { maxAge: 300 })).toBe('accepted')
  })

  it('ignores a nonce claim when nonces are not used, and returns it', async () => {
    const result = await verifyDpopProof(await proof({ claims: { nonce: 'abc' } }), CHECK, options())
    expect(result.nonce).toBe('abc')
  })
})

describe('verifyDpopProof: every refusal', () => {
  it('format: not one compact JWS of at most 8 KiB', async () => {
    const good = await proof()
    expect(await verify('abc')).toBe('format')
    expect(await verify('')).toBe('format')
    expect(await verify(`${good}, ${await proof()}`)).toBe('format')
    expect(await verify(`${good}=`)).toBe('format')
    expect(await verify(`${b64({ typ: DPOP_TYP })}.${'A'.repeat(9000)}.AAAA`)).toBe('format')
    expect(await verify(`${Buffer.from('not json').toString('base64url')}.e30.AAAA`)).toBe('format')
    expect(await verify(`${b64([1, 2])}.e30.AAAA`)).toBe('format')
    // Non-canonical base64url: the last character's spare bits set.
    const [h, p, s] = good.split('.') as [string, string, string]
    const last = s.at(-1) as string
    const twin = String.fromCharCode(last.charCodeAt(0) + 1)
    if (Buffer.from(s.slice(0, -1) + twin, 'base64url').equals(Buffer.from(s, 'base64url'))) {
      expect(await verify(`${h}.${p}.${s.slice(0, -1)}${twin}`)).toBe('format')
    }
  })

  it('format: a payload that is not a JSON object', async () => {
    const jws = await new CompactSign(Buffer.from('"str"'))
      .setProtectedHeader({ typ: DPOP_TYP, alg: 'ES256', jwk: publicJwk })
      .sign(es256.privateKey)
    expect(await verify(jws)).toBe('format')
  })

  it.each([undefined, 'JWT', 'DPoP+jwt', 'application/dpop+jwt', 'at+jwt'])('typ: %s', async (typ) => {
    expect(await verify(await proof({ header: { typ } }))).toBe('typ')
  })

  it('alg_not_allowed: none, HS256, and an alg outside the configured set', async () => {
    const none = `${b64({ typ: DPOP_TYP, alg: 'none', jwk: publicJwk })}.${b64({ htm: 'POST', htu: HTU, iat: NOW, jti: 'n' })}.AAAA`
    expect(await verify(none)).toBe('alg_not_allowed')
    const secret = new Uint8Array(32).fill(7)
    const hs = await proof({
      alg: 'HS256',
      header: { jwk: { kty: 'oct', k: Buffer.from(secret).toString('base64url') } },
      signWith: secret,
    })
    expect(await verify(hs)).toBe('alg_not_allowed')
    expect(await verify(await proof(), {}, { algorithms: new Set(['EdDSA']) })).toBe('alg_not_allowed')
    // A configured set naming HS256 does not let it through.
    expect(await verify(hs, {}, { algorithms: new Set(['HS256']) })).toBe('alg_not_allowed')
  })

  it('jwk_private: a private key in the jwk header (§4.3 item 6)', async () => {
    expect(await verify(await proof({ header: { jwk: privateJwk } }))).toBe('jwk_private')
    expect(await verify(await proof({ header: { jwk: { ...publicJwk, k: 'AAAA' } } }))).toBe('jwk_private')
  })

  it('jwk_invalid: no jwk, other key sources, unknown kty, weak RSA, a key that does not fit alg', async () => {
    expect(await verify(await proof({ header: { jwk: undefined } }))).toBe('jwk_invalid')
    expect(await verify(await proof({ header: { jwk: undefined, kid: 'k1' } }))).toBe('jwk_invalid')
    expect(await verify(await proof({ header: { jwk: 'string' } }))).toBe('jwk_invalid')
    expect(await verify(await proof({ header: { jku: 'https://evil.example/jwks' } }))).toBe('jwk_invalid')
    expect(await verify(await proof({ header: { x5u: 'https://evil.example/cert' } }))).toBe('jwk_invalid')
    expect(await verify(await proof({ header: { x5c: ['AAAA'] } }))).toBe('jwk_invalid')
    expect(await verify(await proof({ header: { jwk: { kty: 'oct' } } }))).toBe('jwk_invalid')
    expect(await verify(await proof({ header: { jwk: { ...publicJwk, y: undefined } } }))).toBe('jwk_invalid')
    expect(await verify(await proof({ header: { jwk: { ...publicJwk, x: 'AAAA' } } }))).toBe('jwk_invalid')

    const p384 = await exportJWK((await generateKeyPair('ES384', { extractable: true })).publicKey)
    expect(await verify(await proof({ header: { jwk: p384 } }))).toBe('jwk_invalid')

    const weak = generateKeyPairSync('rsa', { modulusLength: 1024 })
    const weakJwk = weak.publicKey.export({ format: 'jwk' }) as JWK
    // jose refuses to sign with it, so sign by hand.
    const input = `${b64({ typ: DPOP_TYP, alg: 'RS256', jwk: weakJwk })}.${b64({ htm: 'POST', htu: HTU, iat: NOW, jti: 'w' })}`
    const signature = sign('sha256', Buffer.from(input), weak.privateKey).toString('base64url')
    expect(await verify(`${input}.${signature}`)).toBe('jwk_invalid')
  })

  it('bad_signature: signed by another key than the jwk header', async () => {
    expect(await verify(await proof({ signWith: other.privateKey }))).toBe('bad_signature')
  })

  it.each(['GET', 'post', 'PUT', 5, undefined])('htm_mismatch: %s', async (htm) => {
    expect(await verify(await proof({ claims: { htm } }))).toBe('htm_mismatch')
  })

  it.each([
    'https://as.example.com/oauth/token/',
    'https://as.example.com/oauth/revoke',
    'http://as.example.com/oauth/token',
    'https://as.example.com:8443/oauth/token',
    'https://evil.example.com/oauth/token',
    'https://user@as.example.com/oauth/token',
    'ftp://as.example.com/oauth/token',
    '/oauth/token',
    'not a url',
    42,
    undefined,
  ])('htu_mismatch: %s', async (htu) => {
    expect(await verify(await proof({ claims: { htu } }))).toBe('htu_mismatch')
  })

  it('iat_missing and iat_out_of_window (stale, future, not a number)', async () => {
    expect(await verify(await proof({ omit: ['iat'] }))).toBe('iat_missing')
    expect(await verify(await proof({ claims: { iat: NOW - 60 - TOLERANCE - 1 } }))).toBe('iat_out_of_window')
    expect(await verify(await proof({ claims: { iat: NOW + TOLERANCE + 1 } }))).toBe('iat_out_of_window')
    expect(await verify(await proof({ claims: { iat: String(NOW) } }))).toBe('iat_out_of_window')
    expect(await verify(await proof({ claims: { iat: null } }))).toBe('iat_out_of_window')
    expect(await verify(await proof({ claims: { iat: NOW - 100 } }), {}, { maxAge: 30 })).toBe('iat_out_of_window')
  })

  it.each([undefined, '', 'x'.repeat(257), 7, ['a']])('jti_invalid: %s', async (jti) => {
    expect(await verify(await proof({ claims: { jti } }))).toBe('jti_invalid')
  })

  it('jti_replayed: the same proof twice; the same jti under another key is not a replay', async () => {
    const replay = createMemoryReplayCache({ clock: () => NOW })
    const jws = await proof({ claims: { jti: 'once' } })
    expect(await verify(jws, {}, { replay })).toBe('accepted')
    expect(await verify(jws, {}, { replay })).toBe('jti_replayed')
    expect(await verify(await proof({ claims: { jti: 'once', iat: NOW - 1 } }), {}, { replay })).toBe('jti_replayed')
    const otherJwk = await exportJWK(other.publicKey)
    const fromOther = await proof({ claims: { jti: 'once' }, header: { jwk: otherJwk }, signWith: other.privateKey })
    expect(await verify(fromOther, {}, { replay })).toBe('accepted')
  })

  it('records the jti scoped by thumbprint until iat + maxAge + tolerance', async () => {
    const calls: [string, string, number][] = []
    const replay: DpopReplay = {
      async useOnce(scope, jti, until) {
        calls.push([scope, jti, until])
        return true
      },
    }
    await verifyDpopProof(await proof({ claims: { jti: 'j', iat: NOW - 3 } }), CHECK, options({ replay, maxAge: 90 }))
    expect(calls).toEqual([[await calculateJwkThumbprint(publicJwk), 'j', NOW - 3 + 90 + TOLERANCE]])
  })

  it('lets replay store failures through unchanged, and records nothing for a refused proof', async () => {
    const down = new Error('store down')
    const failing: DpopReplay = {
      useOnce: () => Promise.reject(down),
    }
    await expect(verifyDpopProof(await proof(), CHECK, options({ replay: failing }))).rejects.toBe(down)
    await expect(
      verifyDpopProof(await proof({ claims: { htm: 'GET' } }), CHECK, options({ replay: failing })),
    ).rejects.toMatchObject({ reason: 'htm_mismatch' })
  })

  it('ath_missing and ath_mismatch when an access token is presented (§4.3 item 10)', async () => {
    const token = 'Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU'
    expect(await verify(await proof(), { accessToken: token })).toBe('ath_missing')
    expect(await verify(await proof({ claims: { ath: accessTokenHash('other') } }), { accessToken: token })).toBe(
      'ath_mismatch',
    )
    expect(await verify(await proof({ claims: { ath: 5 } }), { accessToken: token })).toBe('ath_mismatch')
    expect(await verify(await proof({ claims: { ath: accessTokenHash(token) } }), { accessToken: token })).toBe(
      'accepted',
    )
  })

  it('nonce_missing and nonce_invalid from the server nonce check (§8, §9)', async () => {
    const nonce: DpopCheck['nonce'] = (value) => (value === undefined ? 'missing' : value === 'good' ? 'ok' : 'invalid')
    expect(await verify(await proof(), { nonce })).toBe('nonce_missing')
    expect(await verify(await proof({ claims: { nonce: 'bad' } }), { nonce })).toBe('nonce_invalid')
    expect(await verify(await proof({ claims: { nonce: 17 } }), { nonce })).toBe('nonce_invalid')
    expect(await verify(await proof({ claims: { nonce: 'good' } }), { nonce })).toBe('accepted')
  })

  it('jkt_mismatch: another key than the token is bound to (§7.1)', async () => {
    const otherJkt = await calculateJwkThumbprint(await exportJWK(other.publicKey))
    expect(await verify(await proof(), { expectedJkt: otherJkt })).toBe('jkt_mismatch')
    const jkt = await calculateJwkThumbprint(publicJwk)
    expect(await verify(await proof(), { expectedJkt: jkt })).toBe('accepted')
  })
})

describe('normalizeHtu (RFC 9449 §4.3 item 9, RFC 3986 §6.2)', () => {
  it.each([
    ['https://as.example.com/oauth/token', 'https://as.example.com/oauth/token'],
    ['HTTPS://AS.Example.COM/oauth/token', 'https://as.example.com/oauth/token'],
    ['https://as.example.com:443/oauth/token', 'https://as.example.com/oauth/token'],
    ['http://as.example.com:80/x', 'http://as.example.com/x'],
    ['http://as.example.com:8080/x', 'http://as.example.com:8080/x'],
    ['https://as.example.com', 'https://as.example.com/'],
    ['https://as.example.com?x=1', 'https://as.example.com/'],
    ['https://as.example.com/p?q=1#f', 'https://as.example.com/p'],
    ['https://as.example.com/p#f', 'https://as.example.com/p'],
    ['https://as.example.com/%7euser/%2fa', 'https://as.example.com/~user/%2Fa'],
    ['https://as.example.com/a%2Db', 'https://as.example.com/a-b'],
    ['https://as.example.com/oauth/token/', 'https://as.example.com/oauth/token/'],
    ['https://[::1]:443/t', 'https://[::1]/t'],
  ])('%s → %s', (input, expected) => {
    expect(normalizeHtu(input)).toBe(expected)
    expect(normalizeHtu(new URL(input))).toBe(expected)
  })

  it.each(['ftp://as.example.com/x', 'https://u:p@as.example.com/x', 'relative/path', ''])('refuses %s', (input) => {
    expect(() => normalizeHtu(input)).toThrow(TypeError)
  })
})

describe('accessTokenHash and DPOP_ALGORITHMS', () => {
  it('computes the ath of RFC 9449 §7.1', () => {
    expect(accessTokenHash('Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU')).toBe(
      'fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo',
    )
  })

  it('advertises asymmetric algorithms only', () => {
    expect(DPOP_ALGORITHMS).toContain('ES256')
    expect(DPOP_ALGORITHMS.some((alg) => alg === 'none' || alg.startsWith('HS'))).toBe(false)
  })
})
