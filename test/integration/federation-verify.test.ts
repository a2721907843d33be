/**
 * Workload identity federation against real loopback OIDC issuers: Kubernetes- and GitHub-shaped tokens,
 * discovery, key rotation, outages, pinned key sets, replays and forgeries.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import {
  createIssuerKeys,
  DiscoveryError,
  discoveryUrl,
  ISSUER_KEYS_DEFAULTS,
  jwksUriFromDiscovery,
} from '../../src/federation/issuer-keys.js'
import { trustEntrySchema, type TrustEntry } from '../../src/federation/trust-entry.js'
import {
  explainWorkloadAssertion,
  peekIssuer,
  verifyWorkloadAssertion,
  WorkloadKeysUnavailable,
  WorkloadRejected,
  type FederationDeps,
  type WorkloadRejectReason,
} from '../../src/federation/verify-workload.js'
import { createMemoryReplayCache, type ReplayCache } from '../../src/oauth/replay-cache.js'
import { useCleanups } from '../helpers/cleanups.js'
import { githubActionsClaims, kubernetesClaims, startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js'

const TOKENSMITH = 'https://tokensmith.example'
const TOLERANCE = 30
const defer = useCleanups()

/** A clock the test moves; starts at the real time so the issuers' default claims fit. */
function testClock() {
  let now = Math.floor(Date.now() / 1000)
  const advance = (seconds: number) => {
    now += seconds
  }
  return { clock: () => now, advance, now: () => now }
}

function makeDeps(overrides: Partial<FederationDeps> & { clock: () => number }): FederationDeps {
  return {
    clockTolerance: TOLERANCE,
    issuer: TOKENSMITH,
    replay: createMemoryReplayCache({ clock: overrides.clock }),
    keys: createIssuerKeys({ clock: overrides.clock }),
    ...overrides,
  }
}

const entry = (fields: Record<string, unknown>): TrustEntry =>
  trustEntrySchema.parse({ allow_private_network: true, ...fields })

async function rejection(promise: Promise<unknown>): Promise<WorkloadRejected> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  )
  expect(error).toBeInstanceOf(WorkloadRejected)
  return error as WorkloadRejected
}

async function reason(promise: Promise<unknown>): Promise<WorkloadRejectReason> {
  return (await rejection(promise)).reason
}

async function freshIssuer(options?: Parameters<typeof startIssuer>[0]): Promise<TestIssuer> {
  const issuer = await startIssuer(options)
  defer(() => issuer.stop())
  return issuer
}

describe('Kubernetes and GitHub Actions tokens', () => {
  let k8s: TestIssuer
  let github: TestIssuer
  const time = testClock()
  let deps: FederationDeps
  let entries: TrustEntry[]

  const podToken = (overrides: Record<string, unknown> = {}, namespace = 'prod', serviceAccount = 'billing') =>
    k8s.issueToken({
      ...kubernetesClaims({
        issuer: k8s.url,
        audience: [TOKENSMITH, 'https://kubernetes.default.svc'],
        namespace,
        serviceAccount,
        podName: 'billing-7d9f-abcde',
        node: 'node-1',
        now: time.now(),
      }),
      ...overrides,
    })

  const workflowToken = (input: Partial<Parameters<typeof githubActionsClaims>[0]> = {}) =>
    github.issueToken(
      githubActionsClaims({
        issuer: github.url,
        audience: 'tokensmith',
        owner: 'octo-org',
        ownerId: '1001',
        repo: 'app',
        repoId: '2002',
        now: time.now(),
        ...input,
      }),
    )

  beforeAll(async () => {
    k8s = await startIssuer({ alg: 'ES256' })
    github = await startIssuer({ alg: 'RS256' })
    deps = makeDeps({ clock: time.clock })
    entries = [
      entry({
        id: 'k8s-prod',
        issuer: k8s.url,
        subject: 'system:serviceaccount:prod:*',
        claims: { 'kubernetes.io/namespace': 'prod', 'kubernetes.io/serviceaccount/name': 'billing' },
        clients: ['billing-api'],
        // Pods reuse one projected token for its whole life.
        single_use_jti: false,
      }),
      entry({
        id: 'gha-octo-org',
        issuer: github.url,
        audience: 'tokensmith',
        subject: 'repo:octo-org/*',
        claims: { repository_owner_id: '1001', ref: 'refs/heads/main' },
        clients: ['deployer'],
      }),
    ]
  })
  afterAll(async () => {
    await k8s.stop()
    await github.stop()
  })

  it('accepts a Kubernetes service-account token mapped to its client', async () => {
    const token = podToken()
    const { entry: matched, claims } = await verifyWorkloadAssertion(deps, entries, token, 'billing-api')
    expect(matched.id).toBe('k8s-prod')
    expect(claims.sub).toBe('system:serviceaccount:prod:billing')
    expect(peekIssuer(token)).toBe(k8s.url)
    // single_use_jti false: the pod presents the same token again.
    await expect(verifyWorkloadAssertion(deps, entries, token, 'billing-api')).resolves.toBeTruthy()
  })

  it('accepts a GitHub Actions token of the owner, once per jti', async () => {
    const token = workflowToken()
    const { entry: matched, claims } = await verifyWorkloadAssertion(deps, entries, token, 'deployer')
    expect(matched.id).toBe('gha-octo-org')
    expect(claims.repository).toBe('octo-org/app')
    expect(await reason(verifyWorkloadAssertion(deps, entries, token, 'deployer'))).toBe('jti_replayed')
    // The immutable-id subject form matches a pattern written for it.
    const immutable = [entry({ ...entries[1], id: 'gha-ids', subject: 'repo:octo-org@1001/app@2002:*' })]
    const byIds = workflowToken({ immutableSubject: true })
    await expect(verifyWorkloadAssertion(deps, immutable, byIds, 'deployer')).resolves.toBeTruthy()
  })

  it('refuses a token for another audience', async () => {
    expect(
      await reason(verifyWorkloadAssertion(deps, entries, workflowToken({ audience: TOKENSMITH }), 'deployer')),
    ).toBe('aud_invalid')
    const k8sOnly = podToken({ aud: ['https://kubernetes.default.svc'] })
    expect(await reason(verifyWorkloadAssertion(deps, entries, k8sOnly, 'billing-api'))).toBe('aud_invalid')
    const audString = podToken({ aud: TOKENSMITH })
    await expect(verifyWorkloadAssertion(deps, entries, audString, 'billing-api')).resolves.toBeTruthy()
  })

  it('keeps repo:owner/* to that owner', async () => {
    for (const owner of ['octo-org-evil', 'evil']) {
      const error = await rejection(verifyWorkloadAssertion(deps, entries, workflowToken({ owner }), 'deployer'))
      expect(error.reason).toBe('subject_mismatch')
      expect(error.entry).toBe('gha-octo-org')
    }
  })

  it('refuses a token whose claim conditions are unmet', async () => {
    // A namespace the subject pattern cannot see: the `kubernetes.io/namespace` condition catches it.
    const prod = podToken({}, 'prod', 'billing')
    const claims = JSON.parse(Buffer.from(prod.split('.')[1] ?? '', 'base64url').toString()) as Record<string, unknown>
    const moved = k8s.issueToken({
      ...claims,
      'kubernetes.io': { ...(claims['kubernetes.io'] as object), namespace: 'staging' },
    })
    expect(await reason(verifyWorkloadAssertion(deps, entries, moved, 'billing-api'))).toBe('claim_mismatch')
    expect(await reason(verifyWorkloadAssertion(deps, entries, podToken({}, 'prod', 'other'), 'billing-api'))).toBe(
      'claim_mismatch',
    )
    expect(
      await reason(verifyWorkloadAssertion(deps, entries, workflowToken({ ref: 'refs/heads/dev' }), 'deployer')),
    ).toBe('claim_mismatch')
    // A number or boolean claim is compared by its JSON text; an object or array never matches.
    const typed = [entry({ ...entries[1], id: 'typed', claims: { repository_owner_id: '1001', run_attempt: '1' } })]
    const numeric = github.issueToken({
      ...githubActionsClaims({
        issuer: github.url,
        audience: 'tokensmith',
        owner: 'octo-org',
        ownerId: '1001',
        repo: 'app',
        repoId: '2002',
        now: time.now(),
      }),
      run_attempt: 1,
    })
    await expect(verifyWorkloadAssertion(deps, typed, numeric, 'deployer')).resolves.toBeTruthy()
    const arrayed = github.issueToken({
      ...githubActionsClaims({
        issuer: github.url,
        audience: 'tokensmith',
        owner: 'octo-org',
        ownerId: '1001',
        repo: 'app',
        repoId: '2002',
        now: time.now(),
      }),
      run_attempt: ['1'],
    })
    expect(await reason(verifyWorkloadAssertion(deps, typed, arrayed, 'deployer'))).toBe('claim_mismatch')
  })

  it('reads claim names holding "/" written with ~1', async () => {
    const slashed = [entry({ ...entries[0], id: 'slashed', claims: { 'example.com~1team': 'payments' } })]
    const token = podToken({ 'example.com/team': 'payments' })
    await expect(verifyWorkloadAssertion(deps, slashed, token, 'billing-api')).resolves.toBeTruthy()
    const other = podToken({ 'example.com/team': 'growth' })
    expect(await reason(verifyWorkloadAssertion(deps, slashed, other, 'billing-api'))).toBe('claim_mismatch')
  })

  it('tells an unknown issuer from a client the identity may not be', async () => {
    expect(await reason(verifyWorkloadAssertion(deps, entries, podToken(), 'deployer'))).toBe('client_not_mapped')
    const stranger = podToken({ iss: 'https://stranger.example' })
    const error = await rejection(verifyWorkloadAssertion(deps, entries, stranger, 'billing-api'))
    expect(error.reason).toBe('issuer_unknown')
    expect(error.iss).toBe('https://stranger.example')
    expect(error.sub).toBe('system:serviceaccount:prod:billing')
    expect(error.aud).toEqual([TOKENSMITH, 'https://kubernetes.default.svc'])
    expect(JSON.stringify({ ...error, message: error.message })).not.toContain(stranger)
  })

  it('refuses forged headers before any key is used: alg none, HS256 with the public key, jku, no kid', async () => {
    const claims = kubernetesClaims({
      issuer: k8s.url,
      audience: TOKENSMITH,
      namespace: 'prod',
      serviceAccount: 'billing',
      podName: 'p',
      now: time.now(),
    })
    const check = (token: string) => reason(verifyWorkloadAssertion(deps, entries, token, 'billing-api'))
    expect(await check(k8s.issueToken(claims, { alg: 'none' }))).toBe('alg_not_allowed')
    expect(await check(k8s.issueToken(claims, { alg: 'HS256' }))).toBe('alg_not_allowed')
    // Judged on the header alone: no key is looked up (an unknown kid would otherwise be the answer).
    const fetches = k8s.requests('/jwks')
    expect(await check(k8s.issueToken(claims, { alg: 'HS256', kid: 'never-published' }))).toBe('alg_not_allowed')
    expect(await check(k8s.issueToken(claims, { alg: 'none', kid: 'never-published' }))).toBe('alg_not_allowed')
    expect(k8s.requests('/jwks')).toBe(fetches)
    expect(await check(k8s.issueToken(claims, { headerExtras: { jku: `${k8s.url}/jwks` } }))).toBe('forbidden_header')
    expect(await check(k8s.issueToken(claims, { headerExtras: { jwk: k8s.jwks().keys[0] } }))).toBe('forbidden_header')
    expect(await check(k8s.issueToken(claims, { headerExtras: { kid: undefined } }))).toBe('format')
    expect(await check(k8s.issueToken(claims, { kid: 'no-such-key' }))).toBe('unknown_key')
    const good = k8s.issueToken(claims)
    const tampered = `${good.slice(0, good.lastIndexOf('.') + 1)}${'A'.repeat(86)}`
    expect(await check(tampered)).toBe('bad_signature')
    expect(await check('not a jwt')).toBe('format')
    expect(await check(`${good}.${good}`)).toBe('format')
  })

  it('refuses a token signed by another issuer with a kid this one publishes', async () => {
    const claims = kubernetesClaims({
      issuer: k8s.url,
      audience: TOKENSMITH,
      namespace: 'prod',
      serviceAccount: 'billing',
      podName: 'p',
      now: time.now(),
    })
    // github's key signs, k8s's kid names it: the signature fails (RS256 vs the ES256 key: no key matches).
    const forged = github.issueToken(claims, { kid: k8s.kid() })
    expect(['bad_signature', 'unknown_key']).toContain(
      await reason(verifyWorkloadAssertion(deps, entries, forged, 'billing-api')),
    )
  })

  it('checks exp, nbf, iat and max_token_age with the clock tolerance', async () => {
    const check = (overrides: Record<string, unknown>) =>
      reason(verifyWorkloadAssertion(deps, entries, podToken(overrides), 'billing-api'))
    const now = time.now()
    expect(await check({ exp: undefined })).toBe('exp_missing')
    expect(await check({ exp: 'soon' })).toBe('exp_missing')
    expect(await check({ exp: now - TOLERANCE - 1 })).toBe('expired')
    expect(await check({ nbf: now + TOLERANCE + 60 })).toBe('nbf_in_future')
    expect(await check({ iat: undefined })).toBe('iat_missing')
    expect(await check({ iat: now + TOLERANCE + 60 })).toBe('iat_in_future')
    expect(await check({ iat: now - 3600 - TOLERANCE - 1 })).toBe('too_old')
    // Within the tolerance: accepted.
    await expect(
      verifyWorkloadAssertion(
        deps,
        entries,
        podToken({ exp: now - 5, iat: now - 3600 - 5, nbf: now + 5 }),
        'billing-api',
      ),
    ).resolves.toBeTruthy()
    // The entry's own max_token_age.
    const short = [entry({ ...entries[0], id: 'short', max_token_age: 60 })]
    expect(await reason(verifyWorkloadAssertion(deps, short, podToken({ iat: now - 120 }), 'billing-api'))).toBe(
      'too_old',
    )
  })

  it('takes the first entry that passes, and reports every attempt when none does', async () => {
    const two = [
      entry({ ...entries[0], id: 'wrong-ns', claims: { 'kubernetes.io/namespace': 'staging' } }),
      entry({ ...entries[0], id: 'right-ns' }),
    ]
    const { entry: matched } = await verifyWorkloadAssertion(deps, two, podToken(), 'billing-api')
    expect(matched.id).toBe('right-ns')
    const error = await rejection(verifyWorkloadAssertion(deps, two, podToken({}, 'prod', 'other'), 'billing-api'))
    expect(error.attempts).toEqual([
      { entry: 'wrong-ns', reason: 'claim_mismatch' },
      { entry: 'right-ns', reason: 'claim_mismatch' },
    ])
  })

  it('lets a replay-store failure through unchanged (a 503 upstream, never a token)', async () => {
    const broken: ReplayCache = { useOnce: async () => Promise.reject(new Error('store down')) }
    await expect(
      verifyWorkloadAssertion({ ...deps, replay: broken }, entries, workflowToken(), 'deployer'),
    ).rejects.toThrow('store down')
  })

  it('scopes single-use jtis by issuer', async () => {
    const jti = 'shared-jti-value'
    const fromGithub = github.issueToken({
      ...githubActionsClaims({
        issuer: github.url,
        audience: 'tokensmith',
        owner: 'octo-org',
        ownerId: '1001',
        repo: 'app',
        repoId: '2002',
        now: time.now(),
      }),
      jti,
    })
    const singleUseK8s = [entry({ ...entries[0], id: 'k8s-once', single_use_jti: true }), entries[1] as TrustEntry]
    await verifyWorkloadAssertion(deps, singleUseK8s, podToken({ jti }), 'billing-api')
    await expect(verifyWorkloadAssertion(deps, singleUseK8s, fromGithub, 'deployer')).resolves.toBeTruthy()
    expect(await reason(verifyWorkloadAssertion(deps, singleUseK8s, podToken({ jti }), 'billing-api'))).toBe(
      'jti_replayed',
    )
    expect(
      await reason(verifyWorkloadAssertion(deps, singleUseK8s, podToken({ jti: 'x'.repeat(257) }), 'billing-api')),
    ).toBe('jti_invalid')
  })

  it('explains every check it makes', async () => {
    const ok = await explainWorkloadAssertion(deps, entries, podToken(), 'billing-api')
    expect(ok.ok).toBe(true)
    expect(ok.entry).toBe('k8s-prod')
    expect(ok.checks.map((check) => `${check.entry}/${check.check}:${check.ok}`)).toEqual([
      '(token)/format:true',
      '(token)/header:true',
      '(token)/issuer:true',
      'k8s-prod/client:true',
      'k8s-prod/keys:true',
      'k8s-prod/signature:true',
      'k8s-prod/aud:true',
      'k8s-prod/exp:true',
      'k8s-prod/expired:true',
      'k8s-prod/nbf:true',
      'k8s-prod/iat:true',
      'k8s-prod/iat_not_future:true',
      'k8s-prod/max_token_age:true',
      'k8s-prod/subject:true',
      'k8s-prod/claim:kubernetes.io/namespace:true',
      'k8s-prod/claim:kubernetes.io/serviceaccount/name:true',
      'k8s-prod/jti:true',
    ])
    // Every failing check is listed, not just the first; the jti is never used up.
    const bad = await explainWorkloadAssertion(deps, entries, podToken({ aud: ['other'] }, 'staging', 'x'))
    expect(bad.ok).toBe(false)
    expect(bad.entry).toBeUndefined()
    expect(bad.checks.filter((check) => !check.ok).map((check) => check.check)).toEqual([
      'aud',
      'subject',
      'claim:kubernetes.io/namespace',
      'claim:kubernetes.io/serviceaccount/name',
    ])
    const once = workflowToken()
    for (let i = 0; i < 2; i++) expect((await explainWorkloadAssertion(deps, entries, once, 'deployer')).ok).toBe(true)
    await expect(verifyWorkloadAssertion(deps, entries, once, 'deployer')).resolves.toBeTruthy()
    const unmapped = await explainWorkloadAssertion(deps, entries, podToken(), 'deployer')
    expect(unmapped.checks.at(-1)).toMatchObject({ entry: 'k8s-prod', check: 'client', ok: false })
    const garbage = await explainWorkloadAssertion(deps, entries, 'x.y')
    expect(garbage).toEqual({ ok: false, checks: [expect.objectContaining({ check: 'format', ok: false })] })
  })

  it('property: header and claim mutations never verify unless they keep the valid shape', async () => {
    const base = {
      ...kubernetesClaims({
        issuer: k8s.url,
        audience: TOKENSMITH,
        namespace: 'prod',
        serviceAccount: 'billing',
        podName: 'p',
        now: time.now(),
      }),
    }
    const now = time.now()
    /** Each breaks the token; `null` removes the member. */
    const claimMutations: Record<string, unknown>[] = [
      { iss: `${k8s.url}/` },
      { iss: null },
      { aud: 'https://tokensmith.example/' },
      { aud: [] },
      { aud: [['https://tokensmith.example']] },
      { exp: null },
      { exp: now - 3600 },
      { exp: `${now + 60}` },
      { nbf: now + 3600 },
      { iat: null },
      { iat: now + 3600 },
      { iat: now - 86_400 },
      { sub: 'system:serviceaccount:staging:billing' },
      { sub: null },
      { sub: 42 },
      { 'kubernetes.io': { namespace: 'staging', serviceaccount: { name: 'billing' } } },
      { 'kubernetes.io': { namespace: 'prod', serviceaccount: { name: ['billing'] } } },
      { 'kubernetes.io': null },
    ]
    const headerMutations: IssueOptionsLike[] = [
      { alg: 'none' },
      { alg: 'HS256' },
      { alg: 'ES384' },
      { kid: 'rotated-away' },
      { headerExtras: { kid: undefined } },
      { headerExtras: { kid: 7 } },
      { headerExtras: { jku: 'https://attacker.example/jwks' } },
      { headerExtras: { x5u: 'https://attacker.example/cert' } },
      { headerExtras: { crit: ['exp'] } },
    ]
    const apply = (claims: Record<string, unknown>, patch: Record<string, unknown>) => {
      const out = { ...claims }
      for (const [name, value] of Object.entries(patch)) {
        if (value === null) delete out[name]
        else out[name] = value
      }
      return out
    }
    await fc.assert(
      fc.asyncProperty(
        fc.subarray(claimMutations),
        fc.option(fc.constantFrom(...headerMutations), { nil: undefined }),
        fc.boolean(),
        async (claimPatches, headerPatch, tamper) => {
          const claims = claimPatches.reduce(apply, base)
          let token = k8s.issueToken(claims, headerPatch ?? {})
          if (tamper) token = `${token.slice(0, -4)}${token.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`
          const valid = claimPatches.length === 0 && headerPatch === undefined && !tamper
          const outcome = await verifyWorkloadAssertion(deps, entries, token, 'billing-api').then(
            () => 'accepted',
            (error: unknown) => (error instanceof WorkloadRejected ? 'rejected' : error),
          )
          expect(outcome).toBe(valid ? 'accepted' : 'rejected')
        },
      ),
      { numRuns: 150 },
    )
  })
})

type IssueOptionsLike = Parameters<TestIssuer['issueToken']>[1] & {}

describe('issuer keys', () => {
  it('fetches a rotated key once, and an unknown kid within the cooldown not at all', async () => {
    const issuer = await freshIssuer()
    const time = testClock()
    const deps = makeDeps({ clock: time.clock })
    const entries = [
      entry({ id: 'rotating', issuer: issuer.url, subject: '*', clients: ['worker'], single_use_jti: false }),
    ]
    const token = () =>
      issuer.issueToken(
        kubernetesClaims({
          issuer: issuer.url,
          audience: TOKENSMITH,
          namespace: 'a',
          serviceAccount: 'b',
          podName: 'c',
          now: time.now(),
        }),
      )

    await verifyWorkloadAssertion(deps, entries, token(), 'worker')
    await verifyWorkloadAssertion(deps, entries, token(), 'worker')
    expect(issuer.requests('/.well-known/openid-configuration')).toBe(1)
    expect(issuer.requests('/jwks')).toBe(1)

    issuer.rotateKey()
    time.advance(ISSUER_KEYS_DEFAULTS.cooldown)
    await verifyWorkloadAssertion(deps, entries, token(), 'worker')
    await verifyWorkloadAssertion(deps, entries, token(), 'worker')
    expect(issuer.requests('/jwks')).toBe(2)
    expect(issuer.requests('/.well-known/openid-configuration')).toBe(2)

    // A second unknown kid right after: no fetch, refused.
    const bogus = issuer.issueToken(
      kubernetesClaims({
        issuer: issuer.url,
        audience: TOKENSMITH,
        namespace: 'a',
        serviceAccount: 'b',
        podName: 'c',
        now: time.now(),
      }),
      { kid: 'never-published' },
    )
    expect(await reason(verifyWorkloadAssertion(deps, entries, bogus, 'worker'))).toBe('unknown_key')
    expect(await reason(verifyWorkloadAssertion(deps, entries, bogus, 'worker'))).toBe('unknown_key')
    expect(issuer.requests('/jwks')).toBe(2)
  })

  it('keeps the cache across a reload with the same entry', async () => {
    const issuer = await freshIssuer()
    const time = testClock()
    const deps = makeDeps({ clock: time.clock })
    const fields = { id: 'reloaded', issuer: issuer.url, subject: '*', clients: ['worker'], single_use_jti: false }
    const token = issuer.issueToken(
      kubernetesClaims({
        issuer: issuer.url,
        audience: TOKENSMITH,
        namespace: 'a',
        serviceAccount: 'b',
        podName: 'c',
        now: time.now(),
      }),
    )
    await verifyWorkloadAssertion(deps, [entry(fields)], token, 'worker')
    await verifyWorkloadAssertion(deps, [entry({ ...fields, subject: 'system:*' })], token, 'worker')
    expect(issuer.requests('/jwks')).toBe(1)
    deps.keys.retain([])
    await verifyWorkloadAssertion(deps, [entry(fields)], token, 'worker')
    expect(issuer.requests('/jwks')).toBe(2)
  })

  it('answers "unavailable", never a token, while discovery is down', async () => {
    const issuer = await freshIssuer()
    const time = testClock()
    const deps = makeDeps({ clock: time.clock })
    const entries = [entry({ id: 'down', issuer: issuer.url, subject: '*', clients: ['worker'] })]
    issuer.setDown(true)
    const token = issuer.issueToken(
      kubernetesClaims({
        issuer: issuer.url,
        audience: TOKENSMITH,
        namespace: 'a',
        serviceAccount: 'b',
        podName: 'c',
        now: time.now(),
      }),
    )
    const error = await verifyWorkloadAssertion(deps, entries, token, 'worker').catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(WorkloadKeysUnavailable)
    expect((error as WorkloadKeysUnavailable).entry).toBe('down')
    expect((error as WorkloadKeysUnavailable).retryAfter).toBeGreaterThan(0)
    const explained = await explainWorkloadAssertion(deps, entries, token, 'worker')
    expect(explained.ok).toBe(false)
    expect(explained.checks.at(-1)).toMatchObject({ check: 'keys', ok: false })

    // Back up (after the cooldown): accepted; down again: the cached set still serves.
    issuer.setDown(false)
    time.advance(ISSUER_KEYS_DEFAULTS.cooldown)
    await expect(verifyWorkloadAssertion(deps, entries, token, 'worker')).resolves.toBeTruthy()
  })

  it('refuses keys from a discovery document naming another issuer', async () => {
    const issuer = await freshIssuer()
    const time = testClock()
    const deps = makeDeps({ clock: time.clock })
    const entries = [entry({ id: 'mismatch', issuer: issuer.url, subject: '*', clients: ['worker'] })]
    issuer.setDiscovery({ issuer: 'https://accounts.example' })
    const token = issuer.issueToken(
      kubernetesClaims({
        issuer: issuer.url,
        audience: TOKENSMITH,
        namespace: 'a',
        serviceAccount: 'b',
        podName: 'c',
        now: time.now(),
      }),
    )
    await expect(verifyWorkloadAssertion(deps, entries, token, 'worker')).rejects.toBeInstanceOf(
      WorkloadKeysUnavailable,
    )
    expect(issuer.requests('/jwks')).toBe(0)
  })

  it('refuses to fetch keys from loopback unless the entry allows private networks', async () => {
    const issuer = await freshIssuer()
    const time = testClock()
    const deps = makeDeps({ clock: time.clock })
    // https to a loopback address: the guard refuses before connecting.
    const entries = [
      trustEntrySchema.parse({
        id: 'public-only',
        issuer: issuer.url.replace('http:', 'https:'),
        subject: '*',
        clients: ['worker'],
      }),
    ]
    const token = issuer.issueToken(
      kubernetesClaims({
        issuer: entries[0]?.issuer ?? '',
        audience: TOKENSMITH,
        namespace: 'a',
        serviceAccount: 'b',
        podName: 'c',
        now: time.now(),
      }),
    )
    await expect(verifyWorkloadAssertion(deps, entries, token, 'worker')).rejects.toBeInstanceOf(
      WorkloadKeysUnavailable,
    )
    expect(issuer.requests('/.well-known/openid-configuration')).toBe(0)
  })

  it('uses a jwks_uri directly, without discovery', async () => {
    const issuer = await freshIssuer({ discovery: false })
    const time = testClock()
    const deps = makeDeps({ clock: time.clock })
    const entries = [
      entry({ id: 'direct', issuer: issuer.url, jwks_uri: `${issuer.url}/jwks`, subject: '*', clients: ['worker'] }),
    ]
    const token = issuer.issueToken(
      kubernetesClaims({
        issuer: issuer.url,
        audience: TOKENSMITH,
        namespace: 'a',
        serviceAccount: 'b',
        podName: 'c',
        now: time.now(),
      }),
    )
    await expect(verifyWorkloadAssertion(deps, entries, token, 'worker')).resolves.toBeTruthy()
    expect(issuer.requests('/.well-known/openid-configuration')).toBe(0)
  })

  describe('pinned jwks_file', () => {
    let dir: string
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'federation-'))
    })
    afterAll(() => rm(dir, { recursive: true, force: true }))

    it('verifies with the issuer stopped, and follows the file when it changes', async () => {
      const issuer = await startIssuer()
      const time = testClock()
      await writeFile(join(dir, 'cluster.jwks.json'), JSON.stringify(issuer.jwks()))
      const deps = makeDeps({
        clock: time.clock,
        keys: createIssuerKeys({ clock: time.clock, resolvePath: (path) => join(dir, path) }),
      })
      const entries = [
        entry({
          id: 'pinned',
          issuer: 'https://kubernetes.default.svc.cluster.local',
          jwks_file: 'cluster.jwks.json',
          allow_private_network: false,
          subject: '*',
          clients: ['worker'],
          single_use_jti: false,
        }),
      ]
      const claims = kubernetesClaims({
        issuer: 'https://kubernetes.default.svc.cluster.local',
        audience: TOKENSMITH,
        namespace: 'a',
        serviceAccount: 'b',
        podName: 'c',
        now: time.now(),
      })
      const oldToken = issuer.issueToken(claims)
      issuer.rotateKey({ dropOld: true })
      const newToken = issuer.issueToken(claims)
      const requests = issuer.requests('/jwks') + issuer.requests('/.well-known/openid-configuration')
      await issuer.stop()

      await expect(verifyWorkloadAssertion(deps, entries, oldToken, 'worker')).resolves.toBeTruthy()
      expect(await reason(verifyWorkloadAssertion(deps, entries, newToken, 'worker'))).toBe('unknown_key')
      await writeFile(join(dir, 'cluster.jwks.json'), JSON.stringify(issuer.jwks()))
      await expect(verifyWorkloadAssertion(deps, entries, newToken, 'worker')).resolves.toBeTruthy()
      expect(await reason(verifyWorkloadAssertion(deps, entries, oldToken, 'worker'))).toBe('unknown_key')
      expect(requests).toBe(0)

      await writeFile(join(dir, 'cluster.jwks.json'), '{ not json')
      await expect(verifyWorkloadAssertion(deps, entries, newToken, 'worker')).rejects.toBeInstanceOf(
        WorkloadKeysUnavailable,
      )
    })
  })
})

describe('discovery documents', () => {
  const publicEntry = trustEntrySchema.parse({
    id: 'idp',
    issuer: 'https://idp.example/tenant',
    subject: '*',
    clients: ['worker'],
  })
  const privateEntry = entry({ id: 'lab', issuer: 'http://10.0.0.5:8080', subject: '*', clients: ['worker'] })

  it('is fetched from the issuer without its trailing slash (OpenID Connect Discovery 1.0 §4.1)', () => {
    expect(discoveryUrl('https://idp.example/tenant').href).toBe(
      'https://idp.example/tenant/.well-known/openid-configuration',
    )
    expect(discoveryUrl('https://idp.example/tenant/').href).toBe(
      'https://idp.example/tenant/.well-known/openid-configuration',
    )
  })

  it('must name the entry issuer exactly and an https jwks_uri', () => {
    const document = { issuer: 'https://idp.example/tenant', jwks_uri: 'https://keys.idp.example/jwks' }
    expect(jwksUriFromDiscovery(document, publicEntry).href).toBe('https://keys.idp.example/jwks')
    const refused: unknown[] = [
      null,
      [],
      'text',
      { ...document, issuer: 'https://idp.example/tenant/' },
      { ...document, issuer: 'https://IDP.example/tenant' },
      { jwks_uri: document.jwks_uri },
      { ...document, jwks_uri: undefined },
      { ...document, jwks_uri: 42 },
      { ...document, jwks_uri: 'not a url' },
      { ...document, jwks_uri: 'http://keys.idp.example/jwks' },
      { ...document, jwks_uri: 'file:///etc/passwd' },
      { ...document, jwks_uri: 'https://user:pw@keys.idp.example/jwks' },
    ]
    for (const bad of refused) expect(() => jwksUriFromDiscovery(bad, publicEntry)).toThrow(DiscoveryError)
    // Plain http only for an entry that allows private networks.
    const lab = { issuer: 'http://10.0.0.5:8080', jwks_uri: 'http://10.0.0.5:8080/keys' }
    expect(jwksUriFromDiscovery(lab, privateEntry).href).toBe('http://10.0.0.5:8080/keys')
  })
})
