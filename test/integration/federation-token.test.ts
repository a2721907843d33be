/**
 * Workload identity federation end to end over a real socket: platform tokens from loopback OIDC
 * issuers (Kubernetes- and GitHub-Actions-shaped) sent as the `client_assertion` of RFC 7521 §4.2 /
 * RFC 7523 §2.2 with a `client_id`, answered by the token endpoint with a token for the mapped client.
 */
import { randomUUID } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { decodeJwt } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import type { ClientEntry } from '../../src/clients/registry.js'
import type { Clock } from '../../src/clock.js'
import { type TrustEntry, trustEntrySchema } from '../../src/federation/trust-entry.js'
import { FORM } from '../helpers/make-deps.js'
import { expectError } from '../helpers/oauth-error.js'
import { githubActionsClaims, kubernetesClaims, startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js'
import { startTestServer } from '../helpers/test-server.js'

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'
const DISCOVERY = '/.well-known/openid-configuration'
const GHA_AUDIENCE = 'https://tokensmith.example/github'
/** The issuer keys' default cooldown between fetch attempts of one source (issuer-keys.ts), plus one. */
const PAST_COOLDOWN = 31

/** A clock the tests move by hand, starting at the real time (the platform tokens use it too). */
function movableClock(): Clock & { advance(seconds: number): void } {
  let now = Math.floor(Date.now() / 1000)
  const clock = (() => now) as Clock & { advance(seconds: number): void }
  clock.advance = (seconds) => {
    now += seconds
  }
  return clock
}

/** A client that authenticates only through trust entries: no secret, no keys of its own. */
function federatedClient(id: string, scopes: string[], audience: string): ClientEntry {
  return {
    client_id: id,
    secrets: [],
    token_endpoint_auth_method: 'private_key_jwt',
    scopes,
    audiences: [audience],
    grant_types: ['client_credentials'],
    resource_server: false,
  }
}

const entry = (fields: Record<string, unknown>): TrustEntry =>
  trustEntrySchema.parse({ allow_private_network: true, ...fields })

describe('workload identity federation at the token endpoint', () => {
  const clock = movableClock()
  let server: Awaited<ReturnType<typeof startTestServer>>
  let k8s: TestIssuer
  let github: TestIssuer
  let rotating: TestIssuer
  let down: TestIssuer
  let pinned: TestIssuer
  let privateNet: TestIssuer
  let stranger: TestIssuer
  let pinnedDir: string
  const issuers: TestIssuer[] = []

  beforeAll(async () => {
    ;[k8s, github, rotating, down, pinned, privateNet, stranger] = await Promise.all([
      startIssuer({ alg: 'ES256' }),
      startIssuer({ alg: 'RS256' }),
      startIssuer({ alg: 'ES256' }),
      startIssuer({ alg: 'ES256' }),
      startIssuer({ alg: 'ES256' }),
      startIssuer({ alg: 'ES256' }),
      startIssuer({ alg: 'ES256' }),
    ])
    issuers.push(k8s, github, rotating, down, pinned, privateNet, stranger)
    // Down before anything was ever fetched from it.
    down.setDown(true)
    // A pinned key set: written once, then the issuer goes away (no network at all).
    pinnedDir = await mkdtemp(join(tmpdir(), 'federation-token-'))
    const pinnedFile = join(pinnedDir, 'pinned-jwks.json')
    await writeFile(pinnedFile, JSON.stringify(pinned.jwks()))
    await pinned.stop()

    const trust: TrustEntry[] = [
      entry({
        id: 'k8s-prod-billing',
        issuer: k8s.url,
        subject: 'system:serviceaccount:prod:billing',
        claims: { 'kubernetes.io/namespace': 'prod' },
        clients: ['billing-api'],
        // Pods reuse one projected token for its whole life.
        single_use_jti: false,
      }),
      entry({
        id: 'gha-deploy',
        issuer: github.url,
        audience: GHA_AUDIENCE,
        subject: 'repo:octo-org@1001/app@2002:ref:refs/heads/main',
        claims: {
          repository_id: '2002',
          job_workflow_ref: 'octo-org/app/.github/workflows/*.yml@refs/heads/main',
        },
        clients: ['deploy-bot', 'ci-reader'],
      }),
      entry({
        id: 'gha-owner',
        issuer: github.url,
        audience: GHA_AUDIENCE,
        subject: 'repo:octo-org/*',
        clients: ['org-wide'],
      }),
      entry({ id: 'rotating', issuer: rotating.url, subject: 'svc:*', clients: ['misc-client'] }),
      entry({ id: 'down', issuer: down.url, subject: 'svc:*', clients: ['misc-client'] }),
      entry({ id: 'pinned', issuer: pinned.url, jwks_file: pinnedFile, subject: 'svc:*', clients: ['misc-client'] }),
      // The loopback issuer without the opt-in: no schema would take plain http so, built by hand.
      {
        ...entry({ id: 'private-http', issuer: privateNet.url, subject: 'svc:*', clients: ['misc-client'] }),
        allow_private_network: false,
      },
      // https, so the schema takes it; the host name resolves to loopback.
      entry({
        id: 'private-https',
        issuer: privateNet.url.replace('http://127.0.0.1', 'https://localhost'),
        allow_private_network: false,
        subject: 'svc:*',
        clients: ['misc-client'],
      }),
    ]
    server = await startTestServer({
      clock,
      // Many refusals from one address by design: keep the failure limit (tested on its own) out of the way.
      config: { authFailureLimit: 10_000, authFailureLimitPerAddress: 1_000_000 },
      clients: [],
      entries: [
        federatedClient('billing-api', ['billing:read', 'billing:write'], 'https://billing.example.com'),
        federatedClient('deploy-bot', ['deploy'], 'https://deploy.example.com'),
        federatedClient('ci-reader', ['read'], 'https://api.example.com'),
        federatedClient('org-wide', ['org'], 'https://org.example.com'),
        federatedClient('misc-client', ['misc'], 'https://misc.example.com'),
      ],
      trust: { entries: trust },
    })
  })
  afterAll(async () => {
    await server?.close()
    await Promise.all(issuers.filter((issuer) => issuer !== pinned).map((issuer) => issuer.stop()))
    if (pinnedDir) await rm(pinnedDir, { recursive: true, force: true })
  })

  const podToken = (overrides: Record<string, unknown> = {}) =>
    k8s.issueToken({
      ...kubernetesClaims({
        issuer: k8s.url,
        audience: [server.issuer, 'https://kubernetes.default.svc'],
        namespace: 'prod',
        serviceAccount: 'billing',
        podName: 'billing-7d9f-abcde',
        node: 'node-1',
        now: clock(),
      }),
      ...overrides,
    })

  const workflowClaims = (input: Partial<Parameters<typeof githubActionsClaims>[0]> = {}) =>
    githubActionsClaims({
      issuer: github.url,
      audience: GHA_AUDIENCE,
      owner: 'octo-org',
      ownerId: '1001',
      repo: 'app',
      repoId: '2002',
      immutableSubject: true,
      now: clock(),
      ...input,
    })

  const workflowToken = (input: Partial<Parameters<typeof githubActionsClaims>[0]> = {}) =>
    github.issueToken(workflowClaims(input))

  /** A generic OIDC workload token from `issuer`. */
  const genericToken = (
    issuer: TestIssuer,
    options: { iss?: string; kid?: string; claims?: Record<string, unknown> } = {},
  ) =>
    issuer.issueToken(
      {
        iss: options.iss ?? issuer.url,
        sub: 'svc:worker',
        aud: server.issuer,
        iat: clock(),
        exp: clock() + 300,
        jti: randomUUID(),
        ...options.claims,
      },
      options.kid !== undefined ? { kid: options.kid } : {},
    )

  const tokenRequest = (assertion: string, clientId?: string) =>
    fetch(`${server.issuer}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': FORM },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        ...(clientId !== undefined && { client_id: clientId }),
        client_assertion_type: JWT_BEARER,
        client_assertion: assertion,
      }),
    })

  async function accessToken(res: Response): Promise<Record<string, unknown>> {
    const text = await res.text()
    expect({ status: res.status, text }).toMatchObject({ status: 200 })
    const body = JSON.parse(text) as { access_token: string; scope?: string }
    return { ...decodeJwt(body.access_token), response_scope: body.scope }
  }

  const refusals = () =>
    server.deps.logLines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((record) => record.msg === 'client assertion refused')

  /** Runs `request`, expects a 401 invalid_client, and returns the one refusal it logged. */
  async function refused(request: () => Promise<Response>): Promise<Record<string, unknown>> {
    const before = refusals().length
    await expectError(await request(), 401, 'invalid_client')
    const logged = refusals().slice(before)
    expect(logged).toHaveLength(1)
    return logged[0] as Record<string, unknown>
  }

  describe('Kubernetes projected service-account token', () => {
    it('gets a token for the mapped client, with the client scopes and audience (RFC 7523 section 2.2)', async () => {
      const claims = await accessToken(await tokenRequest(podToken(), 'billing-api'))
      expect(claims).toMatchObject({
        client_id: 'billing-api',
        sub: 'billing-api',
        aud: 'https://billing.example.com',
        scope: 'billing:read billing:write',
        iss: server.issuer,
      })
      // Nothing of the platform identity becomes the token's subject.
      expect(JSON.stringify(claims)).not.toContain('system:serviceaccount')
    })

    it('the same pod token works twice: the entry allows reuse (single_use_jti false)', async () => {
      const token = podToken()
      await accessToken(await tokenRequest(token, 'billing-api'))
      await accessToken(await tokenRequest(token, 'billing-api'))
    })

    it('a namespace claim other than the entry asks for is refused: claim_mismatch', async () => {
      const claims = kubernetesClaims({
        issuer: k8s.url,
        audience: [server.issuer],
        namespace: 'prod',
        serviceAccount: 'billing',
        podName: 'billing-1',
        now: clock(),
      })
      const token = k8s.issueToken({
        ...claims,
        'kubernetes.io': { ...(claims['kubernetes.io'] as object), namespace: 'staging' },
      })
      const record = await refused(() => tokenRequest(token, 'billing-api'))
      expect(record).toMatchObject({
        method: 'federation',
        reason: 'claim_mismatch',
        client_id: 'billing-api',
        entry: 'k8s-prod-billing',
      })
    })

    it('another service account of the namespace is refused: subject_mismatch', async () => {
      const token = k8s.issueToken(
        kubernetesClaims({
          issuer: k8s.url,
          audience: [server.issuer],
          namespace: 'prod',
          serviceAccount: 'payroll',
          podName: 'payroll-1',
          now: clock(),
        }),
      )
      expect(await refused(() => tokenRequest(token, 'billing-api'))).toMatchObject({ reason: 'subject_mismatch' })
    })
  })

  describe('GitHub Actions OIDC token', () => {
    it('the immutable subject form with repository_id and a job_workflow_ref glob gets a token', async () => {
      const claims = await accessToken(await tokenRequest(workflowToken(), 'deploy-bot'))
      expect(claims).toMatchObject({ client_id: 'deploy-bot', sub: 'deploy-bot', aud: 'https://deploy.example.com' })
      expect(claims.scope).toBe('deploy')
    })

    it('a jti authenticates once (RFC 7519 section 4.1.7): the second use is refused, jti_replayed', async () => {
      const token = workflowToken()
      await accessToken(await tokenRequest(token, 'deploy-bot'))
      const record = await refused(() => tokenRequest(token, 'deploy-bot'))
      expect(record).toMatchObject({ method: 'federation', reason: 'jti_replayed', entry: 'gha-deploy' })
    })

    it('one identity mapped to two clients: client_id chooses, and each gets its own scopes', async () => {
      const deploy = await accessToken(await tokenRequest(workflowToken(), 'deploy-bot'))
      const reader = await accessToken(await tokenRequest(workflowToken(), 'ci-reader'))
      expect(deploy).toMatchObject({ client_id: 'deploy-bot', scope: 'deploy', aud: 'https://deploy.example.com' })
      expect(reader).toMatchObject({ client_id: 'ci-reader', scope: 'read', aud: 'https://api.example.com' })
    })

    it('a client the entry does not list is refused: client_not_mapped', async () => {
      const record = await refused(() => tokenRequest(workflowToken(), 'billing-api'))
      expect(record).toMatchObject({ method: 'federation', reason: 'client_not_mapped', client_id: 'billing-api' })
    })

    it('another repository id under the same names is refused (the immutable subject pins ids)', async () => {
      // A repository deleted and re-created under the same name has a new id.
      const token = workflowToken({ repoId: '9999' })
      expect(await refused(() => tokenRequest(token, 'deploy-bot'))).toMatchObject({ reason: 'subject_mismatch' })
    })

    it('a workflow outside the job_workflow_ref glob is refused: claim_mismatch', async () => {
      const claims = workflowClaims()
      const token = github.issueToken({
        ...claims,
        job_workflow_ref: 'evil-org/tools/.github/workflows/x.yml@refs/heads/main',
      })
      expect(await refused(() => tokenRequest(token, 'deploy-bot'))).toMatchObject({ reason: 'claim_mismatch' })
    })

    it('subject glob repo:octo-org/* admits the owner repositories only', async () => {
      const own = workflowToken({ immutableSubject: false })
      await accessToken(await tokenRequest(own, 'org-wide'))
      for (const owner of ['octo-org-evil', 'other-org']) {
        const token = workflowToken({ owner, ownerId: '666', repo: 'x', repoId: '777', immutableSubject: false })
        expect(decodeJwt(token).sub).toMatch(new RegExp(`^repo:${owner}/x:`))
        const record = await refused(() => tokenRequest(token, 'org-wide'))
        expect(record).toMatchObject({ reason: 'subject_mismatch', entry: 'gha-owner', client_id: 'org-wide' })
      }
    })

    it('a wrong audience is refused; the log names entry, iss, sub and aud, never the token', async () => {
      const token = workflowToken({ audience: 'https://someone-else.example' })
      const record = await refused(() => tokenRequest(token, 'deploy-bot'))
      expect(record).toMatchObject({
        method: 'federation',
        reason: 'aud_invalid',
        client_id: 'deploy-bot',
        entry: 'gha-deploy',
        iss: github.url,
        sub: 'repo:octo-org@1001/app@2002:ref:refs/heads/main',
        aud: 'https://someone-else.example',
      })
      expect(record.attempts).toEqual(expect.arrayContaining([{ entry: 'gha-deploy', reason: 'aud_invalid' }]))
      const [, payload, signature] = token.split('.')
      const log = server.deps.logLines.join('\n')
      expect(log).not.toContain(payload)
      expect(log).not.toContain(signature)
    })
  })

  describe('issuer keys', () => {
    it('a rotated key (new kid) costs one JWK Set fetch; random kids within the cooldown cost none', async () => {
      await accessToken(await tokenRequest(genericToken(rotating), 'misc-client'))
      expect(rotating.requests('/jwks')).toBe(1)
      expect(rotating.requests(DISCOVERY)).toBe(1)

      clock.advance(PAST_COOLDOWN)
      rotating.rotateKey()
      await accessToken(await tokenRequest(genericToken(rotating), 'misc-client'))
      expect(rotating.requests('/jwks')).toBe(2)

      for (let i = 0; i < 5; i++) {
        const record = await refused(() =>
          tokenRequest(genericToken(rotating, { kid: `made-up-${randomUUID()}` }), 'misc-client'),
        )
        expect(record).toMatchObject({ reason: 'unknown_key', entry: 'rotating' })
      }
      expect(rotating.requests('/jwks')).toBe(2)
      expect(rotating.requests(DISCOVERY)).toBe(2)
      // The rotated key still works from the cache.
      await accessToken(await tokenRequest(genericToken(rotating), 'misc-client'))
      expect(rotating.requests('/jwks')).toBe(2)
    })

    it('discovery down before any key was fetched: 503 with Retry-After, never a token; back after the cooldown', async () => {
      const token = genericToken(down)
      const first = await tokenRequest(token, 'misc-client')
      const retryAfter = first.headers.get('retry-after')
      await expectError(first, 503, 'temporarily_unavailable')
      expect(retryAfter).toMatch(/^[1-9][0-9]*$/)
      expect(down.requests(DISCOVERY)).toBe(1)
      expect(down.requests('/jwks')).toBe(0)

      // Back up, but within the cooldown: still 503, and no new fetch.
      down.setDown(false)
      await expectError(await tokenRequest(token, 'misc-client'), 503, 'temporarily_unavailable')
      expect(down.requests(DISCOVERY)).toBe(1)

      // After the cooldown the same token works: a 503 never used its jti up.
      clock.advance(PAST_COOLDOWN)
      const claims = await accessToken(await tokenRequest(token, 'misc-client'))
      expect(claims.client_id).toBe('misc-client')
      expect(down.requests(DISCOVERY)).toBe(2)
      expect(down.requests('/jwks')).toBe(1)
    })

    it('a pinned jwks_file entry verifies with the issuer stopped (no network at all)', async () => {
      const claims = await accessToken(await tokenRequest(genericToken(pinned), 'misc-client'))
      expect(claims.client_id).toBe('misc-client')
      expect(pinned.requests(DISCOVERY)).toBe(0)
      expect(pinned.requests('/jwks')).toBe(0)
    })

    it('a loopback issuer without allow_private_network: 503, and no request reaches it', async () => {
      for (const iss of [privateNet.url, privateNet.url.replace('http://127.0.0.1', 'https://localhost')]) {
        const res = await tokenRequest(genericToken(privateNet, { iss }), 'misc-client')
        const retryAfter = res.headers.get('retry-after')
        await expectError(res, 503, 'temporarily_unavailable')
        expect(retryAfter).toMatch(/^[1-9][0-9]*$/)
      }
      expect(privateNet.requests(DISCOVERY)).toBe(0)
      expect(privateNet.requests('/jwks')).toBe(0)
      // The client is told to retry; the operator is told why, with the entry to fix.
      const warning = server.deps.logLines
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .filter((record) => record.msg === 'trust entry keys unavailable')
        .at(-1)
      expect(warning).toMatchObject({ reason: 'keys_unavailable', client_id: 'misc-client' })
      expect(String(warning?.problem)).toMatch(/no address a trust entry may reach/)
    })
  })

  describe('routing and unknown parties', () => {
    it('a platform token without client_id is refused (RFC 7521 section 4.2: it cannot name the client)', async () => {
      const record = await refused(() => tokenRequest(podToken()))
      expect(record).toMatchObject({ method: 'federation', reason: 'client_id_missing' })
    })

    it('a platform token of an issuer no entry names is refused: issuer_unknown', async () => {
      const record = await refused(() => tokenRequest(genericToken(stranger), 'misc-client'))
      expect(record).toMatchObject({ method: 'federation', reason: 'issuer_unknown', iss: stranger.url })
      expect(stranger.requests(DISCOVERY) + stranger.requests('/jwks')).toBe(0)
    })

    it('a platform token for a client that is not registered is refused', async () => {
      const record = await refused(() => tokenRequest(podToken(), 'nobody-here'))
      expect(record).toMatchObject({ method: 'federation', reason: 'unknown_client' })
    })

    it('a final valid control still gets a token', async () => {
      await accessToken(await tokenRequest(podToken(), 'billing-api'))
    })
  })
})
