import { expect } from 'vitest'
import { OAuthError } from '../../src/errors.js'

/** The OAuthError `fn` throws; fails the test if it throws nothing or something else. */
export function thrown(fn: () => unknown): OAuthError {
  try {
    fn()
  } catch (error) {
    expect(error).toBeInstanceOf(OAuthError)
    return error as OAuthError
  }
  throw new Error('expected an OAuthError, nothing was thrown')
}
