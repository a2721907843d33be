import { describe, expect, it } from 'vitest'
import { createClientRegistry } from '../../../src/clients/registry.js'
import { authenticateSecret, extractClientCredentials } from '../../../src/oauth/client-auth.js'
import { parseForm } from '../../../src/oauth/form.js'
import { T0, basic, clientEntry, fixedClock } from '../../helpers/make-deps.js'
import { thrown } from '../../helpers/oauth-error.js'

const form = (body = '') => parseForm(new TextEncoder().encode(body))
const rawBasic = (credentials: string) => `Basic ${Buffer.from(credentials).toString('base64')}`

describe('extractClientCredentials', () => {
  it('reads client_secret_basic', () => {
    expect(extractClientCredentials(basic('svc-a', 'tks_s'), form())).toEqual({
      method: 'client_secret_basic',
      clientId: 'svc-a',
      secret: 'tks_s',
    })
  })

  it('accepts the scheme name in any case and extra spaces before the credentials', () => {
    const token = Buffer.from('svc-a:tks_s').toString('base64')
    for (const header of [`basic ${token}`, `BASIC ${token}`, `Basic   ${token}`]) {
      expect(extractClientCredentials(header, form())).toMatchObject({ clientId: 'svc-a', secret: 'tks_s' })
    }
  })

  it('form-decodes id and secret (RFC 6749 Appendix B): + is a space, escapes are UTF-8', () => {
    expect(extractClientCredentials(rawBasic('a%3Ab%25c:x+y%2Bz%26%C3%A9'), form())).toMatchObject({
      clientId: 'a:b%c',
      secret: 'x y+z&é',
    })
    expect(extractClientCredentials(basic('id with: % + & space', 'se:cr%et + &'), form())).toMatchObject({
      clientId: 'id with: % + & space',
      secret: 'se:cr%et + &',
    })
  })

  it('splits at the first colon, so an unencoded colon stays in the secret', () => {
    expect(extractClientCredentials(rawBasic('svc-a:a:b:c'), form())).toMatchObject({
      clientId: 'svc-a',
      secret: 'a:b:c',
    })
  })

  it('accepts an empty secret in Basic as a (wrong) secret, not as no authentication', () => {
    expect(extractClientCredentials(rawBasic('svc-a:'), form())).toEqual({
      method: 'client_secret_basic',
      clientId: 'svc-a',
      secret: '',
    })
  })

  it.each([
    ['an empty Basic value', 'Basic'],
    ['only spaces', 'Basic  '],
    ['non-base64 characters', 'Basic $$$$'],
    ['base64url characters', `Basic ${Buffer.from('svc-a:>>>?').toString('base64url')}`],
    ['missing padding', `Basic ${Buffer.from('svc-a:x').toString('base64').replace(/=+$/, '')}`],
    ['too much padding', `Basic ${Buffer.from('svc-a:xy').toString('base64')}=`],
    ['no colon', rawBasic('svc-a')],
    ['invalid UTF-8', `Basic ${Buffer.from([0x61, 0x3a, 0xff]).toString('base64')}`],
    ['a broken escape in the id', rawBasic('svc%ZZ:x')],
    ['a raw % in the secret', rawBasic('svc-a:50%off')],
    ['a lone surrogate in the secret', rawBasic('svc-a:%ED%A0%80')],
  ])('refuses %s with invalid_request', (_name, header) => {
    expect(thrown(() => extractClientCredentials(header, form()))).toMatchObject({
      code: 'invalid_request',
      status: 400,
    })
  })

  it('reads client_secret_post', () => {
    expect(extractClientCredentials(undefined, form('client_id=svc-a&client_secret=tks_s%2B'))).toEqual({
      method: 'client_secret_post',
      clientId: 'svc-a',
      secret: 'tks_s+',
    })
  })

  it('refuses client_secret without client_id', () => {
    expect(thrown(() => extractClientCredentials(undefined, form('client_secret=tks_s'))).code).toBe('invalid_request')
  })

  it.each([
    ['no header and no body credentials', undefined, ''],
    ['a client_id alone', undefined, 'client_id=svc-a'],
    ['a Bearer header', 'Bearer x', ''],
    ['a header without a scheme value', 'Bearer', 'client_id=svc-a'],
    ['an unknown scheme', 'Digest username="svc-a"', ''],
    ['an empty client_secret (treated as omitted)', undefined, 'client_id=svc-a&client_secret='],
  ])('finds no client authentication in %s', (_name, header, body) => {
    expect(extractClientCredentials(header, form(body))).toBeUndefined()
  })

  const JWT_BEARER = encodeURIComponent('urn:ietf:params:oauth:client-assertion-type:jwt-bearer')

  it('reads a JWT client assertion (RFC 7521 section 4.2), with or without client_id', () => {
    expect(
      extractClientCredentials(
        undefined,
        form(`client_id=svc-a&client_assertion_type=${JWT_BEARER}&client_assertion=x.y.z`),
      ),
    ).toEqual({ method: 'private_key_jwt', clientId: 'svc-a', assertion: 'x.y.z' })
    expect(
      extractClientCredentials(undefined, form(`client_assertion_type=${JWT_BEARER}&client_assertion=x.y.z`)),
    ).toEqual({ method: 'private_key_jwt', clientId: undefined, assertion: 'x.y.z' })
  })

  it.each([
    ['a client_assertion without its type', 'client_id=svc-a&client_assertion=x.y.z'],
    ['a client_assertion_type without an assertion', `client_id=svc-a&client_assertion_type=${JWT_BEARER}`],
    ['an empty client_assertion', `client_assertion_type=${JWT_BEARER}&client_assertion=`],
    [
      'another assertion type (SAML 2.0)',
      'client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Asaml2-bearer&client_assertion=x',
    ],
  ])('refuses %s as a malformed request', (_name, body) => {
    expect(thrown(() => extractClientCredentials(undefined, form(body))).code).toBe('invalid_request')
  })

  it.each([
    ['Basic and a body secret', basic('svc-a', 's'), 'client_secret=s'],
    ['Basic and a client_assertion', basic('svc-a', 's'), 'client_assertion=x'],
    ['Basic and a client_assertion_type', basic('svc-a', 's'), 'client_assertion_type=x'],
    ['a body secret and a client_assertion', undefined, 'client_id=svc-a&client_secret=s&client_assertion=x'],
  ])('refuses two methods (%s) with invalid_request', (_name, header, body) => {
    expect(thrown(() => extractClientCredentials(header, form(body))).code).toBe('invalid_request')
  })

  it('refuses a body client_id that differs from the Basic one', () => {
    expect(thrown(() => extractClientCredentials(basic('svc-a', 's'), form('client_id=svc-b'))).code).toBe(
      'invalid_request',
    )
  })

  it('accepts a body client_id equal to the Basic one', () => {
    expect(extractClientCredentials(basic('svc-a', 's'), form('client_id=svc-a'))).toMatchObject({
      method: 'client_secret_basic',
      clientId: 'svc-a',
    })
  })

  it('refuses a repeated client_id or client_secret', () => {
    expect(
      thrown(() => extractClientCredentials(undefined, form('client_id=a&client_id=a&client_secret=s'))).code,
    ).toBe('invalid_request')
    expect(
      thrown(() => extractClientCredentials(undefined, form('client_id=a&client_secret=s&client_secret=s'))).code,
    ).toBe('invalid_request')
  })
})

describe('authenticateSecret', () => {
  const clock = fixedClock()
  const clients = createClientRegistry({
    clients: [
      clientEntry({ id: 'svc-a', secret: 'tks_a' }),
      clientEntry({
        id: 'svc-old',
        secret: 'tks_new',
        secrets: [
          { secret: 'tks_old', expires: T0 - 1 },
          { secret: 'tks_new', expires: null },
        ],
      }),
    ],
  })
  const deps = { clients, clock }

  it('returns the client for a right secret, whichever method carried it', () => {
    expect(authenticateSecret(deps, { method: 'client_secret_basic', clientId: 'svc-a', secret: 'tks_a' }).id).toBe(
      'svc-a',
    )
    expect(authenticateSecret(deps, { method: 'client_secret_post', clientId: 'svc-a', secret: 'tks_a' }).id).toBe(
      'svc-a',
    )
  })

  it('throws one identical invalid_client for no credentials, an unknown client, a wrong or an expired secret', () => {
    const errors = [
      thrown(() => authenticateSecret(deps, undefined)),
      thrown(() =>
        authenticateSecret(deps, { method: 'client_secret_basic', clientId: 'svc-nobody', secret: 'tks_a' }),
      ),
      thrown(() => authenticateSecret(deps, { method: 'client_secret_basic', clientId: 'svc-a', secret: 'tks_b' })),
      thrown(() => authenticateSecret(deps, { method: 'client_secret_basic', clientId: 'svc-old', secret: 'tks_old' })),
    ]
    for (const error of errors) {
      expect({ code: error.code, status: error.status, message: error.message }).toEqual({
        code: 'invalid_client',
        status: 401,
        message: 'client authentication failed',
      })
    }
    // the reason is kept for the log only
    expect(errors[0]!.detail).toBe('no client authentication')
    expect(errors[1]!.detail).toBe('unknown client or wrong secret')
  })
})
