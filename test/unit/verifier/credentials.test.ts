import { describe, expect, it, vi } from 'vitest'

import { extractBearerToken } from '../../../src/verifier/credentials.js'
import { BearerError } from '../../../src/verifier/errors.js'

const sources = (authorization: string | undefined, extra: { query?: boolean; body?: boolean } = {}) => ({
  authorization,
  queryHasToken: extra.query ?? false,
  bodyHasToken: vi.fn(async () => extra.body ?? false),
})

describe('extractBearerToken (RFC 6750 §2.1)', () => {
  it('returns the b64token after the scheme', async () => {
    expect(await extractBearerToken(sources('Bearer abc.def-_~+/=='))).toBe('abc.def-_~+/==')
  })

  it('reads no body unless a Bearer header is present', async () => {
    const basic = sources('Basic eDp5', { body: true })
    expect(await extractBearerToken(basic)).toBeUndefined()
    expect(basic.bodyHasToken).not.toHaveBeenCalled()
    const none = sources(undefined, { body: true, query: true })
    expect(await extractBearerToken(none)).toBeUndefined()
    expect(none.bodyHasToken).not.toHaveBeenCalled()
  })

  it.each([
    ['', 'malformed_authorization'],
    [' Bearer abc', 'malformed_authorization'],
    ['Bear(er abc', 'malformed_authorization'],
    ['Bearer', 'empty_token'],
    ['Bearer a=b', 'token_syntax'],
    ['Bearer a b', 'token_syntax'],
    ['Bearer =abc', 'token_syntax'],
  ])('%j → 400 invalid_request (%s)', async (authorization, reason) => {
    const error = await extractBearerToken(sources(authorization)).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(BearerError)
    expect(error).toMatchObject({ code: 'invalid_request', status: 400, reason })
  })

  it('refuses a second method only when the header has a token', async () => {
    await expect(extractBearerToken(sources('Bearer abc', { query: true }))).rejects.toMatchObject({ reason: 'multiple_token_methods' })
    await expect(extractBearerToken(sources('Bearer abc', { body: true }))).rejects.toMatchObject({ reason: 'multiple_token_methods' })
  })
})
