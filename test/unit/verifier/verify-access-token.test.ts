/**
 * The one verification core, as the server uses it (a key per `kid`, any audience) and as `bearerAuth`
 * uses it (a JWK Set, configured audiences): the same checks, whichever key resolver is plugged in.
 */
import { describe, expect, it, vi } from 'vitest'

import { DEFAULT_ALGORITHMS } from '../../../src/verifier/algorithms.js'
import { BearerError, invalidToken } from '../../../src/verifier/errors.js'
import { parseJwkSet } from '../../../src/verifier/jwk-set.js'
import {
  verifyAccessToken,
  type AccessTokenVerifierDeps,
  type KeyResolver,
} from '../../../src/verifier/verify-access-token.js'
import { forge, makeKey, signToken, withSignature } from '../../helpers/forge.js'
import { AUDIENCE, DEFAULTS, ISSUER, NOW, T } from './harness.js'

const es = makeKey('ES256', 'es-1')
const rs = makeKey('RS256', 'rs-1')
const token = signToken(es, DEFAULTS)

/** The server's view: one key per kid, bound to its own algorithm, any audience. */
function ownView(
  resolveKey: KeyResolver = ({ kid }) => {
    const key = [es, rs].find((candidate) => candidate.kid === kid)
    if (!key) throw invalidToken('unknown_kid')
    return { key: key.publicKey, algorithms: [key.alg] }
  },
): AccessTokenVerifierDeps {
  return {
    issuer: ISSUER,
    audience: undefined,
    algorithms: new Set(DEFAULT_ALGORITHMS),
    clockTolerance: T,
    clock: () => NOW,
    resolveKey,
  }
}

/** Resolves to the reason of the refusal, or 'accepted'. */
async function verdict(deps: AccessTokenVerifierDeps, presented: string): Promise<string> {
  try {
    await verifyAccessToken(deps, presented)
    return 'accepted'
  } catch (error) {
    expect(error).toBeInstanceOf(BearerError)
    return (error as BearerError).reason
  }
}

describe('verifyAccessToken', () => {
  it('returns the verified claims and the kid', async () => {
    const { claims, kid } = await verifyAccessToken(ownView(), token)
    expect(kid).toBe('es-1')
    expect(claims).toMatchObject({
      iss: ISSUER,
      sub: 'client-a',
      client_id: 'client-a',
      aud: AUDIENCE,
      iat: NOW,
      exp: NOW + 300,
    })
  })

  it('accepts any audience when none is required, and still refuses a malformed one', async () => {
    expect(await verdict(ownView(), signToken(es, DEFAULTS, { aud: 'https://elsewhere.test' }))).toBe('accepted')
    expect(await verdict(ownView(), signToken(es, DEFAULTS, { aud: [] }))).toBe('claims_invalid')
    expect(await verdict(ownView(), signToken(es, DEFAULTS, { aud: [AUDIENCE, 5] }))).toBe('claims_invalid')
  })

  it('requires a configured audience when one is given (RFC 9068 §4)', async () => {
    const deps = { ...ownView(), audience: ['https://other.test'] }
    expect(await verdict(deps, token)).toBe('aud_mismatch')
  })

  it('never asks for a key before the text and header pass', async () => {
    const resolveKey = vi.fn<KeyResolver>()
    const deps = ownView(resolveKey)
    expect(await verdict(deps, `${token}=`)).toBe('jws_format')
    expect(await verdict(deps, 'x'.repeat(8193))).toBe('token_too_long')
    expect(await verdict(deps, signToken(es, DEFAULTS, {}, { alg: 'HS256' }))).toBe('alg_not_allowed')
    expect(await verdict(deps, signToken(es, DEFAULTS, {}, { jku: 'https://attacker.test/jwks' }))).toBe(
      'forbidden_header',
    )
    expect(await verdict(deps, signToken(es, DEFAULTS, {}, { kid: 'k'.repeat(257) }))).toBe('kid_invalid')
    expect(resolveKey).not.toHaveBeenCalled()
  })

  it('binds a key to its own algorithm: PS256 on the RS256 key is refused (RFC 8725 §3.1)', async () => {
    const header = { kid: rs.kid, typ: 'at+jwt' }
    const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString())
    expect(
      await verdict(ownView(), forge({ header: { ...header, alg: 'RS256' }, payload: claims, key: rs.privateKey })),
    ).toBe('accepted')
    expect(
      await verdict(ownView(), forge({ header: { ...header, alg: 'PS256' }, payload: claims, key: rs.privateKey })),
    ).toBe('alg_not_allowed')
  })

  it('passes on what the key resolver throws', async () => {
    expect(await verdict(ownView(), signToken(es, DEFAULTS, {}, { kid: 'nobody' }))).toBe('unknown_kid')
  })

  it('gives the same verdicts with a JWK Set as with a key per kid', async () => {
    const set = parseJwkSet({ keys: [es.publicJwk, rs.publicJwk] })
    const setView = { ...ownView(), audience: [AUDIENCE], resolveKey: () => set }
    const corpus = [
      token,
      signToken(rs, DEFAULTS),
      signToken(es, DEFAULTS, { exp: NOW - T }),
      signToken(es, DEFAULTS, { iat: NOW + T + 1 }),
      signToken(es, DEFAULTS, { sub: 'client-b' }),
      signToken(es, DEFAULTS, { iss: `${ISSUER}/` }),
      signToken(es, DEFAULTS, {}, { typ: 'JWT' }),
      signToken(makeKey('ES256', 'es-1'), DEFAULTS),
      withSignature(token, new Uint8Array(64)),
    ]
    for (const presented of corpus) expect(await verdict(setView, presented)).toBe(await verdict(ownView(), presented))
  })
})
