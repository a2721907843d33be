/**
 * A real OIDC issuer on loopback for the federation suites: a discovery document (OpenID Connect
 * Discovery 1.0 §4) at `/.well-known/openid-configuration`, its JWK Set at `/jwks`, and tokens signed
 * with its current key, shaped like the platforms' own (Kubernetes projected service-account tokens,
 * GitHub Actions OIDC tokens).
 */
import { randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

import type { JWK } from 'jose'

import { b64u, forge, makeKey, signInput, type TestKey } from './forge.js'

export type IssuerAlg = 'ES256' | 'RS256'

export interface StartIssuerOptions {
  alg?: IssuerAlg
  /** Serve the discovery document (default true); without it, only `/jwks`. */
  discovery?: boolean
}

export interface IssueOptions {
  /** The `kid` header; default the current key's. */
  kid?: string
  /** Header members added or, with `undefined`, removed (`jku`, `typ`, …). */
  headerExtras?: Record<string, unknown>
  /**
   * The `alg` header. `none` gives an empty-ish signature (`AA`); `HS256` signs with the current public
   * JWK's JSON text as HMAC secret (the key-confusion forgery); any other is signed with the current key.
   */
  alg?: string
}

export interface TestIssuer {
  /** `http://127.0.0.1:PORT`, no trailing slash: the issuer identifier. */
  url: string
  issueToken(claims: Record<string, unknown>, options?: IssueOptions): string
  /** A new current key with a new `kid`; the old one stays published unless `dropOld`. Returns the kid. */
  rotateKey(options?: { dropOld?: boolean }): string
  /** The published JWK Set. */
  jwks(): { keys: JWK[] }
  /** The current key's `kid`. */
  kid(): string
  /** Fields merged into (or, `undefined`, removed from) the discovery document. */
  setDiscovery(patch: Record<string, unknown> | undefined): void
  /** While down, every request is answered 503. */
  setDown(down: boolean): void
  /** Requests received for `path` so far. */
  requests(path: string): number
  stop(): Promise<void>
}

export async function startIssuer(options: StartIssuerOptions = {}): Promise<TestIssuer> {
  const alg = options.alg ?? 'ES256'
  const serveDiscovery = options.discovery ?? true
  let generation = 1
  const newKey = () => makeKey(alg, `${alg.toLowerCase()}-${generation++}-${randomUUID().slice(0, 8)}`)
  let published: TestKey[] = [newKey()]
  let current = published[0] as TestKey
  let down = false
  let patch: Record<string, unknown> | undefined
  const counts = new Map<string, number>()
  let url = ''

  const send = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body)
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
    res.end(text)
  }

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname
    counts.set(path, (counts.get(path) ?? 0) + 1)
    if (down) return send(res, 503, { error: 'down' })
    if (path === '/.well-known/openid-configuration' && serveDiscovery) {
      const document: Record<string, unknown> = {
        issuer: url,
        jwks_uri: `${url}/jwks`,
        response_types_supported: ['id_token'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: [alg],
      }
      for (const [name, value] of Object.entries(patch ?? {})) {
        if (value === undefined) delete document[name]
        else document[name] = value
      }
      return send(res, 200, document)
    }
    if (path === '/jwks') return send(res, 200, { keys: published.map((key) => key.publicJwk) })
    return send(res, 404, { error: 'not_found' })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  return {
    url,
    issueToken(claims, issue = {}) {
      const headerAlg = issue.alg ?? current.alg
      const header: Record<string, unknown> = { alg: headerAlg, kid: issue.kid ?? current.kid, typ: 'JWT' }
      for (const [name, value] of Object.entries(issue.headerExtras ?? {})) {
        if (value === undefined) delete header[name]
        else header[name] = value
      }
      if (headerAlg === 'none') return forge({ header, payload: claims, signature: 'AA' })
      if (headerAlg.startsWith('HS')) {
        const secret = Buffer.from(JSON.stringify(current.publicJwk))
        const input = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(claims))}`
        return `${input}.${b64u(signInput(headerAlg, secret, input))}`
      }
      return forge({ header, payload: claims, signAlg: current.alg, key: current.privateKey })
    },
    rotateKey({ dropOld = false } = {}) {
      current = newKey()
      published = dropOld ? [current] : [...published, current]
      return current.kid
    },
    jwks: () => ({ keys: published.map((key) => key.publicJwk) }),
    kid: () => current.kid,
    setDiscovery(next) {
      patch = next
    },
    setDown(next) {
      down = next
    },
    requests: (path) => counts.get(path) ?? 0,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

export interface KubernetesClaimsInput {
  issuer: string
  /** The token's audiences (`serviceAccountToken.audience` of the projected volume). */
  audience: string | string[]
  namespace: string
  serviceAccount: string
  podName: string
  node?: string
  /** Epoch seconds; default now. */
  now?: number
  /** Seconds; default 3600 (the kubelet's default expirationSeconds). */
  lifetime?: number
}

/**
 * Claims of a Kubernetes projected service-account token (bound token, KEP-1205; `jti` and the node
 * claims since 1.29, KEP-4193).
 */
export function kubernetesClaims(input: KubernetesClaimsInput): Record<string, unknown> {
  const now = input.now ?? Math.floor(Date.now() / 1000)
  const claims: Record<string, unknown> = {
    aud: Array.isArray(input.audience) ? input.audience : [input.audience],
    exp: now + (input.lifetime ?? 3600),
    iat: now,
    iss: input.issuer,
    jti: randomUUID(),
    'kubernetes.io': {
      namespace: input.namespace,
      ...(input.node !== undefined && { node: { name: input.node, uid: randomUUID() } }),
      pod: { name: input.podName, uid: randomUUID() },
      serviceaccount: { name: input.serviceAccount, uid: randomUUID() },
    },
    nbf: now,
    sub: `system:serviceaccount:${input.namespace}:${input.serviceAccount}`,
  }
  return claims
}

export interface GitHubActionsClaimsInput {
  /** `https://token.actions.githubusercontent.com` on GitHub; the loopback issuer's URL in tests. */
  issuer: string
  audience: string
  owner: string
  ownerId: string
  /** The repository name, without the owner. */
  repo: string
  repoId: string
  /** Default `refs/heads/main`. */
  ref?: string
  /** Default `deploy`. */
  workflow?: string
  eventName?: string
  environment?: string
  /** `sub` in the immutable form `repo:OWNER@OWNER_ID/REPO@REPO_ID:…` (GitHub's opt-in). */
  immutableSubject?: boolean
  now?: number
  /** Seconds; GitHub's tokens live about 5 to 10 minutes. */
  lifetime?: number
}

/** Claims of a GitHub Actions OIDC token ("About security hardening with OpenID Connect", GitHub docs). */
export function githubActionsClaims(input: GitHubActionsClaimsInput): Record<string, unknown> {
  const now = input.now ?? Math.floor(Date.now() / 1000)
  const ref = input.ref ?? 'refs/heads/main'
  const workflow = input.workflow ?? 'deploy'
  const repository = `${input.owner}/${input.repo}`
  const context = input.environment !== undefined ? `environment:${input.environment}` : `ref:${ref}`
  const subjectRepo = input.immutableSubject
    ? `${input.owner}@${input.ownerId}/${input.repo}@${input.repoId}`
    : repository
  const workflowRef = `${repository}/.github/workflows/${workflow}.yml@${ref}`
  const sha = randomUUID().replaceAll('-', '').padEnd(40, '0').slice(0, 40)
  return {
    jti: randomUUID(),
    sub: `repo:${subjectRepo}:${context}`,
    aud: input.audience,
    ref,
    ref_type: ref.startsWith('refs/tags/') ? 'tag' : 'branch',
    ref_protected: 'true',
    sha,
    repository,
    repository_id: input.repoId,
    repository_owner: input.owner,
    repository_owner_id: input.ownerId,
    repository_visibility: 'private',
    run_id: '1234567890',
    run_number: '42',
    run_attempt: '1',
    actor: 'octocat',
    actor_id: '583231',
    workflow,
    workflow_ref: workflowRef,
    workflow_sha: sha,
    job_workflow_ref: workflowRef,
    job_workflow_sha: sha,
    head_ref: '',
    base_ref: '',
    event_name: input.eventName ?? 'push',
    ...(input.environment !== undefined && { environment: input.environment }),
    runner_environment: 'github-hosted',
    iss: input.issuer,
    nbf: now - 5,
    exp: now + (input.lifetime ?? 300),
    iat: now - 5,
  }
}
