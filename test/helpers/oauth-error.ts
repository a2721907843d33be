import { expect } from 'vitest'
import { OAuthError } from '../../src/errors.js'

/** RFC 6749 §5.2: error_description = 1*( %x20-21 / %x23-5B / %x5D-7E ) */
export const ERROR_DESCRIPTION = /^[\x20-\x21\x23-\x5B\x5D-\x7E]+$/

/** The challenge of every 401 from the authorization server (RFC 6749 §5.2, RFC 7617 §2.1). */
export const BASIC_CHALLENGE = 'Basic realm="tokensmith", charset="UTF-8"'

/** A stack frame, a source location or an error's own text: nothing of the kind reaches a client. */
const LEAK = /\n\s+at |\bat .*\(|\.ts:\d|node:internal|Error:/

export interface ExpectErrorOptions {
  /** What a 405 lists in Allow (RFC 9110 §15.5.6). Default `POST`, the OAuth endpoints' one method. */
  allow?: string
  /**
   * The app's captured log (`deps` from makeDeps will do): its last request record must carry no
   * `jti`, since an error issues no token.
   */
  logLines?: readonly string[]
}

/**
 * Checks an authorization-server error on the wire and returns its JSON body: exactly `status`;
 * `Content-Type: application/json; charset=utf-8`; `Cache-Control: no-store` and `Pragma: no-cache`
 * (RFC 6749 §5.1); the Basic challenge on a 401 or invalid_client and no challenge otherwise; `Allow`
 * on a 405; a body of exactly `error` and `error_description` (RFC 6749 §5.2), the description within
 * the RFC's characters; no stack trace or source location.
 */
export async function expectError(
  res: Response,
  status: number,
  code: string,
  options: ExpectErrorOptions = {},
): Promise<Record<string, unknown>> {
  const text = await res.text()
  // The body rides along so that a wrong status shows what was answered instead.
  expect({ status: res.status, text }).toMatchObject({ status })
  expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8')
  expect(res.headers.get('cache-control')).toBe('no-store')
  expect(res.headers.get('pragma')).toBe('no-cache')
  if (status === 401 || code === 'invalid_client') expect(res.headers.get('www-authenticate')).toBe(BASIC_CHALLENGE)
  else expect(res.headers.get('www-authenticate')).toBeNull()
  if (status === 405) expect(res.headers.get('allow')).toBe(options.allow ?? 'POST')
  const body = JSON.parse(text) as Record<string, unknown>
  expect(Object.keys(body).sort()).toEqual(['error', 'error_description'])
  expect(body.error).toBe(code)
  expect(body.error_description).toMatch(ERROR_DESCRIPTION)
  expect(text).not.toMatch(LEAK)
  if (options.logLines) expect(lastRequestRecord(options.logLines).jti).toBeUndefined()
  return body
}

function lastRequestRecord(logLines: readonly string[]): Record<string, unknown> {
  const records = logLines
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((record) => record.msg === 'request')
  return records.at(-1) ?? {}
}

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
