/**
 * private_key_jwt at the HTTP level, by property: randomly mutated client assertions (RFC 7523 §2.2,
 * §3; RFC 7515 headers; RFC 8725 §3.1, §3.10) and raw garbage are never answered 5xx, and are answered
 * 200 exactly when the assertion is the valid shape, as restated by the predicate below.
 */
import fc from 'fast-check'
import { beforeAll, describe, expect, it } from 'vitest'

import { createApp } from '../../src/app.js'
import type { ClientEntry } from '../../src/clients/registry.js'
import { b64u, forge, jwksOf, makeKey, signInput, type TestKey } from '../helpers/forge.js'
import { FORM, fixedClock, ISSUER, makeDeps, T0 } from '../helpers/make-deps.js'

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'
const CLIENT_ID = 'svc-jwt'
const TOLERANCE = 30
const MAX_LIFETIME = 300

const es256 = makeKey('ES256', 'svc-jwt-es256')
const rs256 = makeKey('RS256', 'svc-jwt-rs256')
const stranger = makeKey('ES256', 'svc-jwt-es256-stranger')

const ENTRY: ClientEntry = {
  client_id: CLIENT_ID,
  secrets: [],
  token_endpoint_auth_method: 'private_key_jwt',
  jwks: jwksOf(es256, rs256),
  scopes: ['read'],
  audiences: ['https://api.example.com'],
  grant_types: ['client_credentials'],
  resource_server: false,
}

const absent = Symbol('absent')

/** Times around now: both sides of every bound (tolerance, maximum lifetime), and non-numbers. */
const TIMES: unknown[] = [
  T0 - 400,
  T0 - TOLERANCE - 1,
  T0 - TOLERANCE,
  T0 - TOLERANCE + 1,
  T0 + TOLERANCE,
  T0 + TOLERANCE + 1,
  T0 + MAX_LIFETIME + TOLERANCE,
  T0 + MAX_LIFETIME + TOLERANCE + 1,
  absent,
  'soon',
  null,
  String(T0 + 60),
  Number.MAX_SAFE_INTEGER,
  -1,
  1.5e300,
  T0 + 60.5,
  true,
  [T0 + 60],
]

/** The valid shape: the registered key signs with its own algorithm and kid; claims of RFC 7523 §3. */
const VALID = {
  key: es256 as TestKey,
  alg: 'key' as unknown,
  typ: absent as unknown,
  kid: 'key' as unknown,
  extra: absent as unknown,
  iss: CLIENT_ID as unknown,
  sub: CLIENT_ID as unknown,
  aud: ISSUER as unknown,
  exp: (T0 + 60) as unknown,
  nbf: absent as unknown,
  iat: T0 as unknown,
  jti: 'fresh' as unknown,
}
type Field = keyof typeof VALID

/** What each field may be instead; the valid values are among them where there is more than one. */
const VARIANTS: { [F in Field]: unknown[] } = {
  key: [rs256, stranger],
  alg: ['none', 'HS256', 'ES256', 'RS256', 'PS256', 'XY999', '', 42, absent],
  typ: ['client-authentication+jwt', 'application/client-authentication+jwt', 'JWT', 'at+jwt', '', 7],
  kid: [absent, '', 'no-such-kid', 5, null, 'k'.repeat(2000)],
  extra: ['jku', 'x5u', 'jwk', 'x5c', 'crit'],
  iss: [absent, 'svc-other', 'https://platform.example', 42, '', null],
  sub: [absent, 'svc-other', 42, '', null],
  aud: [absent, [ISSUER], [ISSUER, 'x'], `${ISSUER}/oauth/token`, `${ISSUER}/`, [], 7, 'other', null],
  exp: TIMES,
  nbf: [T0, ...TIMES],
  iat: TIMES,
  jti: [absent, '', 'j'.repeat(257), 'fresh256', 'j'.repeat(7000), 5, null, ['a']],
}
const FIELDS = Object.keys(VALID) as Field[]

/** One field changed, the rest valid: every bound is reached often. */
const single = fc
  .constantFrom(...FIELDS)
  .chain((field) =>
    fc
      .tuple(fc.constantFrom(...VARIANTS[field]), fc.boolean())
      .map(([value, clientIdParam]) => ({ ...VALID, [field]: value, clientIdParam })),
  )

/** Any number of fields changed at once. */
const several = fc.record({
  ...(Object.fromEntries(
    FIELDS.map((field) => [
      field,
      fc.oneof(
        { arbitrary: fc.constant<unknown>(VALID[field]), weight: 6 },
        { arbitrary: fc.constantFrom(...VARIANTS[field]), weight: 1 },
      ),
    ]),
  ) as { [F in Field]: fc.Arbitrary<F extends 'key' ? TestKey : unknown> }),
  clientIdParam: fc.boolean(),
})

const jws = fc
  .oneof(
    { arbitrary: fc.constant(VALID), weight: 1 },
    { arbitrary: single, weight: 6 },
    { arbitrary: several, weight: 3 },
  )
  .map((m) => ({ clientIdParam: true, ...m, kind: 'jws' as const }))

const garbage = fc.record({
  kind: fc.constant('garbage' as const),
  text: fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.string({ unit: 'binary', maxLength: 200 }),
    fc.base64String({ maxLength: 300 }),
    fc
      .tuple(fc.base64String({ maxLength: 60 }), fc.base64String({ maxLength: 60 }), fc.base64String({ maxLength: 60 }))
      .map((parts) => parts.join('.')),
    fc.constantFrom('', '.', '..', 'a.b.c', 'e30.e30.', 'e30.e30.e30', `${b64u('{"alg":"ES256","kid":"x"}')}.e30.AA`),
  ),
  clientIdParam: fc.boolean(),
})

const mutation = fc.oneof({ arbitrary: jws, weight: 9 }, { arbitrary: garbage, weight: 1 })
type Jws = typeof VALID & { clientIdParam: boolean }

/** The rules of RFC 7523 §3 as tokensmith applies them (RFC 10070 audience), restated independently. */
function isValid(m: Jws): boolean {
  const now = T0
  const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v)
  const notFuture = (v: unknown) => v === absent || (isNum(v) && v <= now + TOLERANCE)
  const typOk =
    m.typ === absent ||
    (typeof m.typ === 'string' && m.typ.toLowerCase().replace(/^application\//, '') === 'client-authentication+jwt')
  return (
    m.key !== stranger &&
    (m.alg === 'key' || m.alg === m.key.alg) &&
    m.kid === 'key' &&
    typOk &&
    m.extra === absent &&
    m.iss === CLIENT_ID &&
    m.sub === CLIENT_ID &&
    m.aud === ISSUER &&
    isNum(m.exp) &&
    m.exp > now - TOLERANCE &&
    m.exp <= now + MAX_LIFETIME + TOLERANCE &&
    notFuture(m.nbf) &&
    notFuture(m.iat) &&
    (m.jti === 'fresh' || m.jti === 'fresh256')
  )
}

let counter = 0

function build(m: Jws): string {
  const key: TestKey = m.key
  const alg = m.alg === 'key' ? key.alg : m.alg
  const header: Record<string, unknown> = {}
  if (alg !== absent) header.alg = alg
  if (m.kid !== absent) header.kid = m.kid === 'key' ? key.kid : m.kid
  if (m.typ !== absent) header.typ = m.typ
  if (typeof m.extra === 'string') {
    header[m.extra] =
      m.extra === 'crit'
        ? ['exp']
        : m.extra === 'jwk'
          ? key.publicJwk
          : m.extra === 'x5c'
            ? ['MIIB']
            : 'https://attacker.example/keys'
  }
  const payload: Record<string, unknown> = {}
  for (const name of ['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti'] as const) {
    const value: unknown = m[name]
    if (value === absent) continue
    if (value === 'fresh') payload[name] = `fresh-${++counter}-${Date.now()}`
    else if (value === 'fresh256') payload[name] = `fresh-${++counter}-${Date.now()}-`.padEnd(256, 'j')
    else payload[name] = value
  }
  if (alg === 'none') return forge({ header, payload, signature: '' })
  if (alg === 'HS256') {
    const input = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(payload))}`
    return `${input}.${b64u(signInput('HS256', Buffer.from(JSON.stringify(key.publicJwk)), input))}`
  }
  // Any other header alg (right, lying or junk): signed with the key's own algorithm.
  return forge({ header, payload, signAlg: key.alg, key: key.privateKey })
}

describe('client assertions at the token endpoint, by property', () => {
  let app: ReturnType<typeof createApp>

  beforeAll(async () => {
    const deps = await makeDeps({ clock: fixedClock(T0), entries: [ENTRY] })
    expect(deps.config.clockTolerance).toBe(TOLERANCE)
    expect(deps.config.clientAssertionMaxLifetime).toBe(MAX_LIFETIME)
    app = createApp(deps)
  })

  const request = (assertion: string, clientIdParam: boolean) =>
    app.request('/oauth/token', {
      method: 'POST',
      headers: { 'content-type': FORM },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        ...(clientIdParam && { client_id: CLIENT_ID }),
        client_assertion_type: JWT_BEARER,
        client_assertion: assertion,
      }).toString(),
    })

  it('never answers 5xx, and answers 200 exactly for the valid shape (RFC 7523 section 3)', async () => {
    let accepted = 0
    let refused = 0
    await fc.assert(
      fc.asyncProperty(mutation, async (m) => {
        const assertion = m.kind === 'garbage' ? m.text : build(m)
        const res = await request(assertion, m.clientIdParam)
        const text = await res.text()
        expect(res.status, text).toBeLessThan(500)
        const valid = m.kind === 'jws' && isValid(m)
        if (valid) {
          expect(res.status, text).toBe(200)
          accepted++
        } else {
          expect(res.status, text).not.toBe(200)
          // A well-formed request with a bad assertion is a client authentication failure.
          expect([400, 401, 413], text).toContain(res.status)
          refused++
        }
      }),
      { numRuns: 150 },
    )
    expect(accepted).toBeGreaterThan(5)
    expect(refused).toBeGreaterThan(5)
  })

  it('every single-field change is answered as the predicate says, and the unchanged shape with 200', async () => {
    for (const field of FIELDS) {
      for (const value of VARIANTS[field]) {
        const m: Jws = { ...VALID, [field]: value, clientIdParam: true }
        const res = await request(build(m), true)
        const text = await res.text()
        const context = `${field} = ${typeof value === 'string' ? value.slice(0, 40) : String(value)}: ${text}`
        expect(res.status, context).toBe(isValid(m) ? 200 : 401)
      }
    }
  })

  it('a valid assertion is accepted once, and its replay refused (RFC 7523 section 3 item 7)', async () => {
    const assertion = build({ ...VALID, clientIdParam: true })
    expect((await request(assertion, true)).status).toBe(200)
    expect((await request(assertion, true)).status).toBe(401)
  })
})
