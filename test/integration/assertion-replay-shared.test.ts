/**
 * Single use of client assertions across instances (RFC 7523 §3 item 7, RFC 7519 §4.1.7): two
 * authorization-server instances sharing one Redis denylist refuse at B an assertion already used at A,
 * for a client's own private_key_jwt assertion and for a single-use platform token alike. The in-memory
 * denylist serves one instance only: two instances each with their own both accept it.
 */
import { randomUUID } from 'node:crypto'

import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { createApp } from '../../src/app.js'
import type { ClientEntry } from '../../src/clients/registry.js'
import { systemClock } from '../../src/clock.js'
import type { Denylist } from '../../src/denylist/denylist.js'
import { createMemoryDenylist } from '../../src/denylist/memory.js'
import { type TrustEntry, trustEntrySchema } from '../../src/federation/trust-entry.js'
import { forge, jwksOf, makeKey } from '../helpers/forge.js'
import { FORM, ISSUER, makeDeps, testKey } from '../helpers/make-deps.js'
import { expectError } from '../helpers/oauth-error.js'
import { startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js'
import { TOPOLOGIES, useSharedRedis } from '../helpers/shared-redis.js'

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'
const clientKey = makeKey('ES256', 'svc-jwt-key')

const CLIENT_ENTRIES: ClientEntry[] = [
  {
    client_id: 'svc-jwt',
    secrets: [],
    token_endpoint_auth_method: 'private_key_jwt',
    jwks: jwksOf(clientKey),
    scopes: ['read'],
    audiences: ['https://api.example.com'],
    grant_types: ['client_credentials'],
    resource_server: false,
  },
  {
    client_id: 'workload',
    secrets: [],
    token_endpoint_auth_method: 'private_key_jwt',
    scopes: ['read'],
    audiences: ['https://api.example.com'],
    grant_types: ['client_credentials'],
    resource_server: false,
  },
]

const now = () => Math.floor(Date.now() / 1000)

/** A private_key_jwt assertion of svc-jwt for the shared issuer identifier. */
const clientAssertion = () =>
  forge({
    header: { alg: 'ES256', kid: clientKey.kid },
    payload: { iss: 'svc-jwt', sub: 'svc-jwt', aud: ISSUER, iat: now(), exp: now() + 60, jti: randomUUID() },
    key: clientKey.privateKey,
  })

type Instance = Awaited<ReturnType<typeof instance>>

/** One authorization-server instance (same issuer, same signing key) over `denylist`. */
async function instance(denylist: Denylist, trust: TrustEntry[]) {
  const deps = await makeDeps({
    clock: systemClock,
    clients: [],
    entries: CLIENT_ENTRIES,
    keys: [await testKey()],
    denylist,
    trust: { entries: trust },
  })
  const app = createApp(deps)
  const token = (assertion: string, clientId: string) =>
    app.request('/oauth/token', {
      method: 'POST',
      headers: { 'content-type': FORM },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: clientId,
        client_assertion_type: JWT_BEARER,
        client_assertion: assertion,
      }).toString(),
    })
  const lastRefusal = () =>
    deps.logLines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((record) => record.msg === 'client assertion refused')
      .at(-1)
  return { deps, token, lastRefusal }
}

let platform: TestIssuer
let trust: TrustEntry[]

beforeAll(async () => {
  platform = await startIssuer({ alg: 'ES256' })
  trust = [
    trustEntrySchema.parse({
      id: 'ci',
      issuer: platform.url,
      allow_private_network: true,
      subject: 'repo:octo-org/*',
      clients: ['workload'],
      // single_use_jti defaults to true
    }),
  ]
})
afterAll(async () => {
  await platform?.stop()
})

const platformToken = () =>
  platform.issueToken({
    iss: platform.url,
    sub: 'repo:octo-org/app:ref:refs/heads/main',
    aud: ISSUER,
    iat: now(),
    exp: now() + 300,
    jti: randomUUID(),
  })

// On each shared deployment: a single node, a Cluster and a Sentinel group.
describe.each(TOPOLOGIES)('assertion replay across instances on %s Redis', (topology) => {
  const redis = useSharedRedis(topology)

  async function sharedPair(): Promise<[Instance, Instance]> {
    const keyPrefix = redis.prefix('assertion-replay')
    return [
      await instance(await redis.denylist(keyPrefix, systemClock), trust),
      await instance(await redis.denylist(keyPrefix, systemClock), trust),
    ]
  }

  it('a private_key_jwt assertion used at instance A is refused at instance B: jti_replayed', async () => {
    const [a, b] = await sharedPair()
    const assertion = clientAssertion()
    expect((await a.token(assertion, 'svc-jwt')).status).toBe(200)
    await expectError(await b.token(assertion, 'svc-jwt'), 401, 'invalid_client')
    expect(b.lastRefusal()).toMatchObject({ method: 'private_key_jwt', reason: 'jti_replayed', client_id: 'svc-jwt' })
    // And at A itself, of course.
    await expectError(await a.token(assertion, 'svc-jwt'), 401, 'invalid_client')
    // A fresh assertion still works at B.
    expect((await b.token(clientAssertion(), 'svc-jwt')).status).toBe(200)
  })

  it('a single-use platform token used at instance A is refused at instance B: jti_replayed', async () => {
    const [a, b] = await sharedPair()
    const token = platformToken()
    expect((await a.token(token, 'workload')).status).toBe(200)
    await expectError(await b.token(token, 'workload'), 401, 'invalid_client')
    expect(b.lastRefusal()).toMatchObject({
      method: 'federation',
      reason: 'jti_replayed',
      client_id: 'workload',
      entry: 'ci',
    })
    expect((await b.token(platformToken(), 'workload')).status).toBe(200)
  })

  it('the records live under the shared key prefix, and expire', async () => {
    const keyPrefix = redis.prefix('assertion-replay')
    const a = await instance(await redis.denylist(keyPrefix, systemClock), trust)
    expect((await a.token(clientAssertion(), 'svc-jwt')).status).toBe(200)
    expect((await a.token(platformToken(), 'workload')).status).toBe(200)
    const keys = await redis.keysUnder(keyPrefix)
    expect(keys.length).toBe(2)
    for (const key of keys) expect(await redis.admin.pttl(key)).toBeGreaterThan(0)
  })
})

describe('assertion replay with in-memory denylists', () => {
  it('documented: the in-memory denylist serves one instance, so two such instances both accept one assertion', async () => {
    const a = await instance(createMemoryDenylist({ clock: systemClock }), trust)
    const b = await instance(createMemoryDenylist({ clock: systemClock }), trust)
    const assertion = clientAssertion()
    expect((await a.token(assertion, 'svc-jwt')).status).toBe(200)
    expect((await b.token(assertion, 'svc-jwt')).status).toBe(200)
    const token = platformToken()
    expect((await a.token(token, 'workload')).status).toBe(200)
    expect((await b.token(token, 'workload')).status).toBe(200)
    // Each still refuses its own replay.
    await expectError(await a.token(assertion, 'svc-jwt'), 401, 'invalid_client')
    await expectError(await b.token(token, 'workload'), 401, 'invalid_client')
  })
})
