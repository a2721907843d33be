import { randomUUID } from 'node:crypto'

import fc from 'fast-check'
import { type JWTPayload, SignJWT } from 'jose'
import { describe, expect, it } from 'vitest'

import {
  AssertionRejected,
  type AssertionRejectReason,
  CLIENT_ASSERTION_TYPE,
  type ClientAssertionDeps,
  verifyClientAssertion,
} from '../../../src/oauth/client-assertion.js'
import { createMemoryReplayCache } from '../../../src/oauth/replay-cache.js'
import { parseJwkSet } from '../../../src/verifier/jwk-set.js'
import { b64u, forge, jwksOf, makeKey, type TestKey } from '../../helpers/forge.js'
import { fixedClock, T0 } from '../../helpers/make-deps.js'

const ISSUER = 'https://as.example.com'
const TOKEN_ENDPOINT = `${ISSUER}/oauth/token`
const CLIENT_ID = 'client-a'
const TOLERANCE = 30
const MAX_LIFETIME = 300

const es256 = makeKey('ES256', 'client-a-es256')
const eddsa = makeKey('EdDSA', 'client-a-eddsa')
const stranger = makeKey('ES256', 'someone-else')
const keys = parseJwkSet(jwksOf(es256, eddsa))

function makeDeps(): ClientAssertionDeps {
  const clock = fixedClock()
  return {
    clock,
    clockTolerance: TOLERANCE,
    maxLifetime: MAX_LIFETIME,
    issuer: ISSUER,
    replay: createMemoryReplayCache({ clock }),
  }
}

interface SignOptions {
  key?: TestKey
  header?: Record<string, unknown>
  /** Claim overrides; `undefined` removes the claim. */
  claims?: Record<string, unknown>
}

/** A valid assertion, as an independent client library (jose `SignJWT`) would build it. */
async function sign({ key = es256, header = {}, claims = {} }: SignOptions = {}): Promise<string> {
  const payload: Record<string, unknown> = {
    iss: CLIENT_ID,
    sub: CLIENT_ID,
    aud: ISSUER,
    iat: T0,
    exp: T0 + 60,
    jti: randomUUID(),
  }
  for (const [name, value] of Object.entries(claims)) {
    if (value === undefined) delete payload[name]
    else payload[name] = value
  }
  return new SignJWT(payload as JWTPayload)
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'client-authentication+jwt', ...header })
    .sign(key.privateKey)
}

async function rejection(promise: Promise<unknown>): Promise<AssertionRejectReason> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  )
  expect(error).toBeInstanceOf(AssertionRejected)
  return (error as AssertionRejected).reason
}

describe('verifyClientAssertion', () => {
  it('exports the RFC 7523 §2.2 assertion type', () => {
    expect(CLIENT_ASSERTION_TYPE).toBe('urn:ietf:params:oauth:client-assertion-type:jwt-bearer')
  })

  it.each([es256, eddsa])('accepts a valid assertion signed with $alg', async (key) => {
    const assertion = await sign({ key })
    const claims = await verifyClientAssertion(makeDeps(), assertion, { clientId: CLIENT_ID, keys, requireTyp: true })
    expect(claims).toMatchObject({ iss: CLIENT_ID, sub: CLIENT_ID, aud: ISSUER, exp: T0 + 60 })
  })

  it.each([
    ['no typ, when not required', { header: { typ: undefined } }],
    ['typ with the application/ prefix, any case', { header: { typ: 'Application/Client-Authentication+JWT' } }],
    ['exp at the maximum lifetime plus tolerance', { claims: { exp: T0 + MAX_LIFETIME + TOLERANCE } }],
    ['exp just expired, within tolerance', { claims: { exp: T0 - TOLERANCE + 1 } }],
    ['nbf and iat ahead within tolerance', { claims: { nbf: T0 + TOLERANCE, iat: T0 + TOLERANCE } }],
  ] satisfies [string, SignOptions][])('accepts %s', async (_, options) => {
    const assertion = await sign(options)
    await expect(verifyClientAssertion(makeDeps(), assertion, { clientId: CLIENT_ID, keys })).resolves.toBeDefined()
  })

  it('refuses a reused jti, and accepts a fresh one', async () => {
    const deps = makeDeps()
    const assertion = await sign()
    await verifyClientAssertion(deps, assertion, { clientId: CLIENT_ID, keys })
    expect(await rejection(verifyClientAssertion(deps, assertion, { clientId: CLIENT_ID, keys }))).toBe('jti_replayed')
    await expect(verifyClientAssertion(deps, await sign(), { clientId: CLIENT_ID, keys })).resolves.toBeDefined()
  })

  it('refuses HS256 signed with the public key bytes', async () => {
    const secret = new TextEncoder().encode(JSON.stringify(es256.publicJwk))
    const assertion = await new SignJWT({ iss: CLIENT_ID, sub: CLIENT_ID, aud: ISSUER, exp: T0 + 60, jti: 'x' })
      .setProtectedHeader({ alg: 'HS256', kid: es256.kid })
      .sign(secret)
    expect(await rejection(verifyClientAssertion(makeDeps(), assertion, { clientId: CLIENT_ID, keys }))).toBe(
      'alg_not_allowed',
    )
  })

  it('refuses alg none, with or without a signature segment', async () => {
    const payload = { iss: CLIENT_ID, sub: CLIENT_ID, aud: ISSUER, exp: T0 + 60, jti: 'x' }
    const header = { alg: 'none', kid: es256.kid }
    const signed = forge({ header, payload, signature: 'AAAA' })
    expect(await rejection(verifyClientAssertion(makeDeps(), signed, { clientId: CLIENT_ID, keys }))).toBe(
      'alg_not_allowed',
    )
    const unsigned = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(payload))}.`
    expect(await rejection(verifyClientAssertion(makeDeps(), unsigned, { clientId: CLIENT_ID, keys }))).toBe('format')
  })

  const matrix: [string, SignOptions, AssertionRejectReason, boolean?][] = [
    ['aud = the token endpoint URL', { claims: { aud: TOKEN_ENDPOINT } }, 'aud_invalid'],
    ['aud as an array with two members', { claims: { aud: [ISSUER, TOKEN_ENDPOINT] } }, 'aud_invalid'],
    [
      'aud as a one-member array, even of the issuer (RFC 10070: a single string)',
      { claims: { aud: [ISSUER] } },
      'aud_invalid',
    ],
    ['an expired assertion', { claims: { exp: T0 - TOLERANCE } }, 'expired'],
    ['exp too far ahead', { claims: { exp: T0 + MAX_LIFETIME + TOLERANCE + 1 } }, 'exp_too_far'],
    ['no exp', { claims: { exp: undefined } }, 'exp_missing'],
    ['nbf in the future', { claims: { nbf: T0 + TOLERANCE + 1 } }, 'nbf_in_future'],
    ['iat in the future', { claims: { iat: T0 + TOLERANCE + 1 } }, 'iat_in_future'],
    ['no jti', { claims: { jti: undefined } }, 'jti_missing'],
    ['an empty jti', { claims: { jti: '' } }, 'jti_invalid'],
    ['a jti longer than 256 characters', { claims: { jti: 'j'.repeat(257) } }, 'jti_invalid'],
    ['an unknown key (kid not in the set)', { key: stranger }, 'unknown_key'],
    ['a known kid over another key', { key: { ...stranger, kid: es256.kid } }, 'bad_signature'],
    ['iss ≠ sub', { claims: { sub: 'client-b' } }, 'iss_sub_mismatch'],
    ['an assertion for another client', { claims: { iss: 'client-b', sub: 'client-b' } }, 'client_mismatch'],
    ['a wrong typ where required', { header: { typ: 'JWT' } }, 'typ_mismatch', true],
    ['a wrong typ where not required', { header: { typ: 'at+jwt' } }, 'typ_mismatch'],
    ['a missing typ where required', { header: { typ: undefined } }, 'typ_required', true],
    ['a jku header', { header: { jku: 'https://attacker.example/jwks' } }, 'forbidden_header'],
    ['an embedded jwk header', { header: { jwk: stranger.publicJwk } }, 'forbidden_header'],
  ]
  it.each(matrix)('refuses %s', async (_, options, reason, requireTyp = false) => {
    const assertion = await sign(options)
    expect(
      await rejection(verifyClientAssertion(makeDeps(), assertion, { clientId: CLIENT_ID, keys, requireTyp })),
    ).toBe(reason)
  })

  it('refuses text that is not a compact JWS, or longer than 8 KiB', async () => {
    for (const text of ['', 'a.b', 'a.b.c.d', `${await sign({ claims: { pad: 'x'.repeat(9000) } })}`]) {
      expect(await rejection(verifyClientAssertion(makeDeps(), text, { clientId: CLIENT_ID, keys }))).toBe('format')
    }
  })

  it('records the jti until exp plus the clock tolerance', async () => {
    const calls: [string, string, number][] = []
    const deps = {
      ...makeDeps(),
      replay: { useOnce: async (c: string, j: string, u: number) => !!calls.push([c, j, u]) },
    }
    await verifyClientAssertion(deps, await sign({ claims: { jti: 'the-jti' } }), { clientId: CLIENT_ID, keys })
    expect(calls).toEqual([[CLIENT_ID, 'the-jti', T0 + 60 + TOLERANCE]])
  })

  it('lets a replay cache failure through unchanged (a 503, not invalid_client)', async () => {
    const failure = new Error('redis down')
    const deps = { ...makeDeps(), replay: { useOnce: () => Promise.reject(failure) } }
    await expect(verifyClientAssertion(deps, await sign(), { clientId: CLIENT_ID, keys })).rejects.toBe(failure)
  })
})

describe('verifyClientAssertion, mutated assertions', () => {
  const absent = Symbol('absent')
  /** Mostly the valid value, so a good share of runs is accepted and both halves of the property are exercised. */
  const mostly = <T>(valid: T, other: fc.Arbitrary<unknown>) =>
    fc.oneof({ arbitrary: fc.constant<unknown>(valid), weight: 8 }, { arbitrary: other, weight: 1 })
  const time = fc.oneof(
    fc.integer({ min: -2 * MAX_LIFETIME, max: 2 * MAX_LIFETIME }).map((delta) => T0 + delta),
    fc.constantFrom<unknown>(absent, 'soon', null, Number.MAX_SAFE_INTEGER),
  )
  const mutation = fc.record({
    key: fc.constantFrom(es256, eddsa, es256, eddsa, stranger),
    typ: fc.constantFrom<unknown>(
      absent,
      'client-authentication+jwt',
      'APPLICATION/client-authentication+JWT',
      'JWT',
      'at+jwt',
      7,
    ),
    extra: mostly(absent, fc.constantFrom('jku', 'x5u', 'jwk', 'x5c', 'crit', 'b64', 'cty', 'zip')),
    iss: mostly(CLIENT_ID, fc.constantFrom<unknown>(absent, 'client-b', 42)),
    sub: mostly(CLIENT_ID, fc.constantFrom<unknown>(absent, 'client-b', 42)),
    aud: mostly(
      ISSUER,
      fc.constantFrom<unknown>(absent, [ISSUER], [ISSUER, ISSUER], TOKEN_ENDPOINT, [], 7, `${ISSUER}/`),
    ),
    exp: mostly(T0 + 60, time),
    nbf: mostly(absent, time),
    iat: mostly(T0, time),
    jti: mostly('fresh', fc.constantFrom<unknown>(absent, '', 'j'.repeat(257), 5)),
    requireTyp: fc.boolean(),
  })
  type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never

  /** The rules, restated independently of the implementation. */
  function isValid(m: Mutation): boolean {
    const now = T0
    const isNum = (v: unknown): v is number => typeof v === 'number'
    const notFuture = (v: unknown) => v === absent || (isNum(v) && v <= now + TOLERANCE)
    const typOk =
      m.typ === absent
        ? !m.requireTyp
        : typeof m.typ === 'string' && m.typ.toLowerCase().replace(/^application\//, '') === 'client-authentication+jwt'
    return (
      m.key !== stranger &&
      typOk &&
      (m.extra === absent || m.extra === 'cty' || m.extra === 'zip') &&
      m.iss === CLIENT_ID &&
      m.sub === CLIENT_ID &&
      m.aud === ISSUER &&
      isNum(m.exp) &&
      m.exp > now - TOLERANCE &&
      m.exp <= now + MAX_LIFETIME + TOLERANCE &&
      notFuture(m.nbf) &&
      notFuture(m.iat) &&
      m.jti === 'fresh'
    )
  }

  it('accepts exactly the valid mutations and refuses the rest with AssertionRejected', async () => {
    let counter = 0
    let accepted = 0
    await fc.assert(
      fc.asyncProperty(mutation, async (m) => {
        const header: Record<string, unknown> = { alg: m.key.alg, kid: m.key.kid }
        if (m.typ !== absent) header.typ = m.typ
        if (typeof m.extra === 'string')
          header[m.extra] = m.extra === 'crit' ? ['exp'] : m.extra === 'b64' ? false : 'x'
        const payload: Record<string, unknown> = {}
        for (const name of ['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti'] as const) {
          const value = m[name]
          if (value !== absent) payload[name] = value === 'fresh' ? `fresh-${++counter}` : value
        }
        // Raw signing (not SignJWT), so headers a library would refuse to emit still reach the verifier.
        const assertion = forge({ header, payload, key: m.key.privateKey })
        const outcome = await verifyClientAssertion(makeDeps(), assertion, {
          clientId: CLIENT_ID,
          keys,
          requireTyp: m.requireTyp,
        }).then(
          () => 'accepted' as const,
          (error: unknown) => error,
        )
        if (outcome === 'accepted') {
          accepted++
          expect(isValid(m)).toBe(true)
        } else {
          expect(outcome).toBeInstanceOf(AssertionRejected)
          expect(isValid(m)).toBe(false)
        }
      }),
      { numRuns: 300 },
    )
    // Both outcomes occurred, so the property checked the accepting side too.
    expect(accepted).toBeGreaterThan(10)
    expect(accepted).toBeLessThan(290)
  })
})
