import { describe, expect, it } from 'vitest'
import type { Client } from '../../../src/clients/registry.js'
import { checkGrantType, resolveAudience, resolveScopes } from '../../../src/oauth/client-credentials.js'
import { parseForm } from '../../../src/oauth/form.js'
import { thrown } from '../../helpers/oauth-error.js'

const form = (body = '') => parseForm(new TextEncoder().encode(body))

const client = (overrides: Partial<Client> = {}): Client => ({
  id: 'svc-a',
  scopes: ['read', 'write', 'a:b/c'],
  audiences: ['https://api.example.com', 'urn:api:b', 'plain-audience'],
  accessTokenTtl: undefined,
  grantTypes: ['client_credentials'],
  resourceServer: false,
  quota: undefined,
  requireDpop: false,
  ...overrides,
})

describe('checkGrantType', () => {
  it('accepts client_credentials for a client allowed it', () => {
    expect(() => checkGrantType(client(), form('grant_type=client_credentials'))).not.toThrow()
  })

  it('refuses a missing or empty grant_type with invalid_request', () => {
    expect(thrown(() => checkGrantType(client(), form()))).toMatchObject({ code: 'invalid_request', status: 400 })
    expect(thrown(() => checkGrantType(client(), form('grant_type=')))).toMatchObject({
      code: 'invalid_request',
      status: 400,
    })
  })

  it('refuses a repeated grant_type with invalid_request', () => {
    expect(
      thrown(() => checkGrantType(client(), form('grant_type=client_credentials&grant_type=client_credentials'))).code,
    ).toBe('invalid_request')
  })

  it.each([
    'password',
    'authorization_code',
    'refresh_token',
    'implicit',
    'foo',
    'Client_Credentials',
    'client_credentials ',
  ])('answers grant_type %j with unsupported_grant_type', (grantType) => {
    const error = thrown(() => checkGrantType(client(), form(`grant_type=${encodeURIComponent(grantType)}`)))
    expect(error).toMatchObject({ code: 'unsupported_grant_type', status: 400 })
  })

  it('answers unsupported_grant_type before unauthorized_client for an unknown grant', () => {
    expect(thrown(() => checkGrantType(client({ grantTypes: [] }), form('grant_type=password'))).code).toBe(
      'unsupported_grant_type',
    )
  })

  it('refuses a client not allowed the grant with unauthorized_client', () => {
    const error = thrown(() => checkGrantType(client({ grantTypes: [] }), form('grant_type=client_credentials')))
    expect(error).toMatchObject({ code: 'unauthorized_client', status: 400 })
  })
})

describe('resolveScopes', () => {
  it('grants every client scope when scope is omitted or empty (RFC 6749 §3.1)', () => {
    expect(resolveScopes(client(), undefined)).toEqual(['read', 'write', 'a:b/c'])
    expect(resolveScopes(client(), '')).toEqual(['read', 'write', 'a:b/c'])
  })

  it.each([' ', '  ', '   '])('refuses a scope of spaces only (%j) with invalid_scope, not every scope', (scope) => {
    expect(thrown(() => resolveScopes(client(), scope))).toMatchObject({ code: 'invalid_scope', status: 400 })
  })

  it('grants exactly the requested scopes, in request order, without duplicates', () => {
    expect(resolveScopes(client(), 'write read')).toEqual(['write', 'read'])
    expect(resolveScopes(client(), 'read read  a:b/c')).toEqual(['read', 'a:b/c'])
  })

  it.each([
    ['a scope outside the allow-list', 'read admin'],
    ['only unknown scopes', 'admin'],
    ['a prefix of an allowed scope', 'rea'],
    ['a different case', 'READ'],
  ])('refuses %s with invalid_scope', (_name, scope) => {
    expect(thrown(() => resolveScopes(client(), scope))).toMatchObject({ code: 'invalid_scope', status: 400 })
  })

  it.each([
    ['a control character', 'read\u0001'],
    ['a TAB', 'read\twrite'],
    ['a newline', 'read\nwrite'],
    ['a DEL', 'read\u007f'],
    ['a double quote', 're"ad'],
    ['a backslash', 're\\ad'],
    ['a non-ASCII character', 'réad'],
  ])('refuses a scope with %s with invalid_scope', (_name, scope) => {
    expect(thrown(() => resolveScopes(client(), scope)).code).toBe('invalid_scope')
  })
})

describe('resolveAudience', () => {
  it("uses the client's first audience when neither resource nor audience is given", () => {
    expect(resolveAudience(client(), form())).toBe('https://api.example.com')
  })

  it('never issues for an empty audience: a client without one is a fault of ours, not a default', () => {
    expect(() => resolveAudience(client({ audiences: [] }), form())).toThrow('client svc-a has no audience')
  })

  it('uses a registered resource or audience', () => {
    expect(resolveAudience(client(), form('resource=urn%3Aapi%3Ab'))).toBe('urn:api:b')
    expect(resolveAudience(client(), form('audience=urn%3Aapi%3Ab'))).toBe('urn:api:b')
    expect(resolveAudience(client(), form('audience=plain-audience'))).toBe('plain-audience')
  })

  it.each([
    ['a relative resource', 'resource=%2Fapi'],
    ['a resource that is not a URI', 'resource=plain-audience'],
    ['a resource with a fragment', 'resource=https%3A%2F%2Fapi.example.com%23f'],
    ['a resource with an empty fragment', 'resource=https%3A%2F%2Fapi.example.com%23'],
    ['an unregistered resource', 'resource=https%3A%2F%2Fevil.example.com'],
    ['a registered resource with a trailing slash', 'resource=https%3A%2F%2Fapi.example.com%2F'],
    ['a repeated resource', 'resource=urn%3Aapi%3Ab&resource=urn%3Aapi%3Ab'],
    ['an unregistered audience', 'audience=other'],
    ['a repeated audience', 'audience=urn%3Aapi%3Ab&audience=plain-audience'],
  ])('refuses %s with invalid_target', (_name, body) => {
    expect(thrown(() => resolveAudience(client(), form(body)))).toMatchObject({ code: 'invalid_target', status: 400 })
  })

  it('refuses resource and audience together with invalid_request', () => {
    expect(thrown(() => resolveAudience(client(), form('resource=urn%3Aapi%3Ab&audience=urn%3Aapi%3Ab'))).code).toBe(
      'invalid_request',
    )
  })
})
