import { describe, expect, it } from 'vitest'

import { extractBearerToken } from '../../../src/verifier/credentials.js'
import { BearerError } from '../../../src/verifier/errors.js'

const sources = (authorization: string | undefined, extra: { query?: boolean } = {}) => ({
  authorization,
  queryHasToken: extra.query ?? false,
})

const thrownBy = (fn: () => unknown): unknown => {
  try {
    fn()
  } catch (error) {
    return error
  }
  throw new Error('expected a BearerError, nothing was thrown')
}

describe('extractBearerToken (RFC 6750 §2.1)', () => {
  it('returns the b64token after the scheme', () => {
    expect(extractBearerToken(sources('Bearer abc.def-_~+/=='))).toBe('abc.def-_~+/==')
  })

  it('finds no credentials without a Bearer header, whatever the query string holds', () => {
    expect(extractBearerToken(sources('Basic eDp5', { query: true }))).toBeUndefined()
    expect(extractBearerToken(sources(undefined, { query: true }))).toBeUndefined()
  })

  it.each([
    ['', 'malformed_authorization'],
    [' Bearer abc', 'malformed_authorization'],
    ['Bear(er abc', 'malformed_authorization'],
    ['Bearer', 'empty_token'],
    ['Bearer a=b', 'token_syntax'],
    ['Bearer a b', 'token_syntax'],
    ['Bearer =abc', 'token_syntax'],
  ])('%j → 400 invalid_request (%s)', (authorization, reason) => {
    const error = thrownBy(() => extractBearerToken(sources(authorization)))
    expect(error).toBeInstanceOf(BearerError)
    expect(error).toMatchObject({ code: 'invalid_request', status: 400, reason })
  })

  it('refuses a header token together with ?access_token= (RFC 6750 §2: one method per request)', () => {
    expect(thrownBy(() => extractBearerToken(sources('Bearer abc', { query: true })))).toMatchObject({
      reason: 'multiple_token_methods',
    })
  })
})
