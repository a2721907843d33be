import fc from 'fast-check'
import { createLocalJWKSet, jwtVerify } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp } from '../../src/app.js'
import { FORM, ISSUER, T0, basic, captureLog, makeDeps } from '../helpers/make-deps.js'

/**
 * Whatever arrives at the token endpoint, the answer is never a 5xx, every 4xx is
 * JSON with a known RFC error code, and error_description stays within RFC 6749 §5.2's characters.
 */

const ALLOWED_ERRORS = new Set([
  'invalid_request',
  'invalid_client',
  'unauthorized_client',
  'unsupported_grant_type',
  'invalid_scope',
  'invalid_target',
])
const FORBIDDEN_IN_DESCRIPTION = /["\\\r\n\t]/
const RUNS = 5_000

const SECRET = 'tks_pr:op%+& erty'
const CLIENT = {
  id: 'svc-prop',
  secret: SECRET,
  scopes: ['a', 'b', 'c:read', 'd/write', 'e.f'],
  audiences: ['https://api.example.com', 'urn:api:b', 'https://third.example.com/x'],
}

const unhandled: unknown[] = []
const onUnhandled = (reason: unknown) => void unhandled.push(reason)
beforeAll(() => void process.on('unhandledRejection', onUnhandled))
afterAll(() => void process.off('unhandledRejection', onUnhandled))

async function setup() {
  const deps = await makeDeps({
    clients: [
      {
        id: 'svc-a',
        secret: 'tks_secret-of-a',
        scopes: ['read', 'write'],
        audiences: ['https://api.example.com', 'urn:api:b'],
      },
      { id: 'no-grant', secret: 'tks_secret-no-grant', grantTypes: [] },
      CLIENT,
    ],
    log: captureLog('silent').log,
  })
  return { deps, app: createApp(deps) }
}

// ---- generators -------------------------------------------------------------------------------

/** Characters a fetch header value may hold (no NUL, CR, LF; nothing above U+00FF). */
const headerChar = fc
  .oneof(fc.integer({ min: 0x20, max: 0x7e }), fc.integer({ min: 0x80, max: 0xff }), fc.constant(0x09))
  .map((code) => String.fromCharCode(code))
const headerValue = fc.oneof(
  { weight: 5, arbitrary: fc.string({ unit: headerChar, maxLength: 60 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1_000, max: 40_000 }).map((n) => 'A'.repeat(n)) },
)

const percentEscape = fc.oneof(
  fc.integer({ min: 0, max: 255 }).map((b) => `%${b.toString(16).padStart(2, '0')}`),
  fc.constantFrom('%ZZ', '%', '%2', '%FF%FE', '%ED%A0%80', '%C3', '%E2%82', '%C0%AF', '%00', '%0D%0A', '%22', '%5C'),
)
/** A form component: plain characters, escapes good and bad, `+`, brackets. */
const component = fc
  .array(
    fc.oneof(
      { weight: 6, arbitrary: fc.string({ unit: 'grapheme-ascii', maxLength: 8 }) },
      { weight: 1, arbitrary: percentEscape },
      { weight: 1, arbitrary: fc.constantFrom('+', '[]', '=', ';', ' ', '\u00e9', '\ud83d\ude00') },
      { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 4 }) },
    ),
    { maxLength: 6 },
  )
  .map((parts) => parts.join(''))

const paramName = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      'grant_type',
      'scope',
      'client_id',
      'client_secret',
      'resource',
      'audience',
      'client_assertion',
      'client_assertion_type',
      'token',
      'scope[]',
      'grant_type[]',
    ),
  },
  { weight: 1, arbitrary: component },
)
const paramValue = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      'client_credentials',
      'password',
      'read',
      'read+write',
      'admin',
      'svc-a',
      'tks_secret-of-a',
      'https%3A%2F%2Fapi.example.com',
      'urn%3Aapi%3Ab',
      '%2Frel',
      'https%3A%2F%2Fa%23f',
      '',
    ),
  },
  { weight: 2, arbitrary: component },
)
/** Mostly-plausible token requests: known parameters with likely values, sometimes repeated. */
const scopeValue = fc
  .array(
    fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom('read', 'write', 'a', 'b', 'c:read', 'd/write', 'e.f') },
      { weight: 1, arbitrary: component },
    ),
    { maxLength: 4 },
  )
  .chain((scopes) => fc.constantFrom(' ', '+', '%20', '%09', '++').map((separator) => scopes.join(separator)))
const plausiblePair: fc.Arbitrary<[string, string | undefined]> = fc.oneof(
  fc.tuple(
    fc.constant('grant_type'),
    fc.oneof({ weight: 4, arbitrary: fc.constant('client_credentials') }, { weight: 1, arbitrary: paramValue }),
  ),
  fc.tuple(fc.constant('scope'), scopeValue),
  fc.tuple(
    fc.constantFrom('resource', 'audience'),
    fc.oneof(
      fc.constantFrom(
        'https%3A%2F%2Fapi.example.com',
        'urn%3Aapi%3Ab',
        'https%3A%2F%2Fthird.example.com%2Fx',
        'https%3A%2F%2Fapi.example.com%23f',
      ),
      component,
    ),
  ),
  fc.tuple(fc.constant('client_id'), fc.constantFrom('svc-a', 'svc-prop', 'svc-b')),
)
const formBody = fc
  .array(
    fc.oneof(
      { weight: 3, arbitrary: plausiblePair },
      { weight: 1, arbitrary: fc.tuple(paramName, fc.option(paramValue, { nil: undefined })) },
    ),
    { maxLength: 6 },
  )
  .chain((pairs) =>
    fc.tuple(
      fc.constant(pairs),
      fc.oneof({ weight: 3, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: fc.subarray(pairs) }),
    ),
  ) // some parameters repeated
  .chain(([pairs, repeated]) =>
    fc.shuffledSubarray([...pairs, ...repeated], { minLength: pairs.length + repeated.length }),
  )
  .map((pairs) => pairs.map(([name, value]) => (value === undefined ? name : `${name}=${value}`)).join('&'))

const body: fc.Arbitrary<string | Uint8Array> = fc.oneof(
  { weight: 6, arbitrary: formBody },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 200 }) },
  { weight: 1, arbitrary: fc.constant('') },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 16_000, max: 17_000 }).map((n) => `grant_type=client_credentials&p=${'x'.repeat(n)}`),
  },
)

/** For an authenticated client: often a granted request with random extras, to reach the later checks. */
const authenticatedBody = fc.oneof(
  { weight: 3, arbitrary: formBody.map((rest) => `grant_type=client_credentials&${rest}`) },
  { weight: 2, arbitrary: body },
)

const contentType = fc.option(
  fc.oneof(
    {
      weight: 6,
      arbitrary: fc.constantFrom(FORM, `${FORM}; charset=UTF-8`, FORM.toUpperCase(), `${FORM};charset="utf-8"`),
    },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        'application/json',
        'multipart/form-data; boundary=x',
        'text/plain',
        `${FORM}; charset=latin1`,
        `${FORM}, text/plain`,
        ';',
        '',
      ),
    },
    { weight: 1, arbitrary: headerValue },
  ),
  { nil: undefined },
)

const b64 = (text: string) => Buffer.from(text).toString('base64')
const authorization = fc.option(
  fc.oneof(
    {
      weight: 3,
      arbitrary: fc.constantFrom(
        basic('svc-a', 'tks_secret-of-a'),
        basic(CLIENT.id, SECRET),
        basic('no-grant', 'tks_secret-no-grant'),
      ),
    },
    { weight: 2, arbitrary: fc.tuple(component, component).map(([id, secret]) => `Basic ${b64(`${id}:${secret}`)}`) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.string({ unit: 'binary', maxLength: 30 }), fc.string({ unit: 'binary', maxLength: 30 }))
        .map(([id, secret]) => basic(id, secret)),
    },
    {
      weight: 1,
      arbitrary: fc.uint8Array({ maxLength: 40 }).map((bytes) => `Basic ${Buffer.from(bytes).toString('base64')}`),
    },
    { weight: 1, arbitrary: headerValue.map((value) => `Basic ${value}`) },
    { weight: 1, arbitrary: headerValue.map((value) => `Bearer ${value}`) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        'Basic',
        'Basic ',
        'basic =',
        'Basic ====',
        `Basic ${b64('no-colon')}`,
        `Basic ${b64('svc-a:tks_secret-of-a')}, Basic x`,
      ),
    },
    { weight: 1, arbitrary: headerValue },
  ),
  { nil: undefined },
)

const method = fc.oneof(
  { weight: 8, arbitrary: fc.constant('POST') },
  { weight: 2, arbitrary: fc.constantFrom('GET', 'HEAD', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'FOO', 'post') },
)

const path = fc.constantFrom(
  '/oauth/token',
  '/oauth/token?client_id=svc-a&client_secret=tks_secret-of-a',
  '/oauth/token?x=%ZZ',
)

// ---- checks -----------------------------------------------------------------------------------

async function checkAnswer(res: Response, requestMethod: string): Promise<void> {
  expect(res.status).toBeLessThan(500)
  if (res.status >= 400) {
    expect(res.headers.get('cache-control')).toBe('no-store')
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8')
    if (res.status === 401)
      expect(res.headers.get('www-authenticate')).toBe('Basic realm="tokensmith", charset="UTF-8"')
    if (requestMethod.toUpperCase() === 'HEAD') return // HEAD answers carry no body
    const json = (await res.json()) as { error: unknown; error_description: unknown }
    expect(ALLOWED_ERRORS.has(json.error as string), `unexpected error ${String(json.error)}`).toBe(true)
    expect(typeof json.error_description).toBe('string')
    expect(json.error_description as string).not.toMatch(FORBIDDEN_IN_DESCRIPTION)
  } else {
    expect(res.status).toBe(200)
    const json = (await res.json()) as { access_token?: unknown }
    expect(typeof json.access_token).toBe('string')
  }
}

describe('token endpoint under random input', () => {
  it(`never answers 5xx and only with allowed errors for ${RUNS} random form bodies from an authenticated client`, async () => {
    const { app } = await setup()
    await fc.assert(
      fc.asyncProperty(
        authenticatedBody,
        fc.constantFrom(basic('svc-a', 'tks_secret-of-a'), basic(CLIENT.id, SECRET)),
        async (payload, auth) => {
          const res = await app.request('/oauth/token', {
            method: 'POST',
            headers: { 'content-type': FORM, authorization: auth },
            body: payload,
          })
          await checkAnswer(res, 'POST')
        },
      ),
      { numRuns: RUNS },
    )
    expect(unhandled).toEqual([])
  })

  it(`never answers 5xx and only with allowed errors for ${RUNS} random methods, headers and bodies`, async () => {
    const { app } = await setup()
    await fc.assert(
      fc.asyncProperty(method, path, contentType, authorization, body, async (verb, target, type, auth, payload) => {
        const headers: Record<string, string> = {}
        if (type !== undefined) headers['content-type'] = type
        if (auth !== undefined) headers.authorization = auth
        const hasBody = !['GET', 'HEAD'].includes(verb.toUpperCase())
        const res = await app.request(target, { method: verb, headers, ...(hasBody && { body: payload }) })
        await checkAnswer(res, verb)
      }),
      { numRuns: RUNS },
    )
    expect(unhandled).toEqual([])
  })

  it('always issues a verifiable token with exactly the requested scopes and audience to a valid client', async () => {
    const { app, deps } = await setup()
    const jwks = createLocalJWKSet(JSON.parse(deps.keys.jwks().body))
    const request = fc.record({
      scopes: fc.subarray(CLIENT.scopes),
      separator: fc.constantFrom(' ', '+', '%20'),
      target: fc.option(fc.tuple(fc.constantFrom('resource', 'audience'), fc.constantFrom(...CLIENT.audiences)), {
        nil: undefined,
      }),
      viaPost: fc.boolean(),
    })
    await fc.assert(
      fc.asyncProperty(request, async ({ scopes, separator, target, viaPost }) => {
        const params = ['grant_type=client_credentials']
        if (scopes.length > 0) params.push(`scope=${scopes.map(encodeURIComponent).join(separator)}`)
        if (target) params.push(`${target[0]}=${encodeURIComponent(target[1])}`)
        if (viaPost) params.push(`client_id=${CLIENT.id}`, `client_secret=${encodeURIComponent(SECRET)}`)
        const headers: Record<string, string> = { 'content-type': FORM }
        if (!viaPost) headers.authorization = basic(CLIENT.id, SECRET)
        const res = await app.request('/oauth/token', { method: 'POST', headers, body: params.join('&') })
        expect(res.status).toBe(200)
        const json = (await res.json()) as { access_token: string; scope: string; expires_in: number }
        const audience = target?.[1] ?? CLIENT.audiences[0]!
        const { payload } = await jwtVerify(json.access_token, jwks, {
          issuer: ISSUER,
          audience,
          typ: 'at+jwt',
          algorithms: ['ES256'],
          currentDate: new Date(T0 * 1000),
        })
        const expected = scopes.length > 0 ? scopes : CLIENT.scopes
        expect(json.scope).toBe(expected.join(' '))
        expect(payload).toMatchObject({
          aud: audience,
          client_id: CLIENT.id,
          sub: CLIENT.id,
          scope: expected.join(' '),
          exp: T0 + 300,
        })
      }),
      { numRuns: 500 },
    )
  })
})
