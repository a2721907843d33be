import type { Context } from 'hono'
import { GRANT_TYPES } from '../clients/registry.js'
import { JWKS_MAX_AGE } from '../config.js'
import { SUPPORTED_ALGORITHMS } from '../verifier/algorithms.js'
import { DPOP_ALGORITHMS } from '../verifier/dpop.js'
import type { AppEnv, Deps } from './types.js'

/** RFC 9110 §13.1.2: If-None-Match compares weakly (a `W/` prefix is ignored); `*` matches any. */
function matchesEtag(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false
  return header.split(',').some((raw) => {
    const tag = raw.trim()
    return tag === '*' || tag.replace(/^W\//, '') === etag
  })
}

interface PreparedJwks {
  etag: string
  body: Buffer
  /** RFC 9110 §15.4.5: a 304 carries the ETag and Cache-Control a 200 would have. */
  notModified: Record<string, string>
  ok: Record<string, string>
}

function prepareJwks(body: string, etag: string): PreparedJwks {
  const notModified = { ETag: etag, 'Cache-Control': `public, max-age=${JWKS_MAX_AGE}` }
  const bytes = Buffer.from(body, 'utf8')
  const ok = {
    ...notModified,
    'Content-Type': 'application/jwk-set+json; charset=utf-8',
    'Content-Length': String(bytes.length),
  }
  return { etag, body: bytes, notModified, ok }
}

/**
 * GET /.well-known/jwks.json — RFC 7517 §5; public members only, revalidated with ETag. The answer
 * is prepared once per key set (the key store serializes it once per change) and sent as it is:
 * plain header objects, which @hono/node-server writes without building web Headers.
 */
export function jwksHandler(deps: Deps) {
  let prepared: PreparedJwks | undefined
  return (c: Context<AppEnv>): Response => {
    const { body, etag } = deps.keys.jwks()
    if (prepared?.etag !== etag) prepared = prepareJwks(body, etag)
    if (matchesEtag(c.req.header('if-none-match'), etag))
      return new Response(null, { status: 304, headers: prepared.notModified })
    return new Response(prepared.body, { status: 200, headers: prepared.ok })
  }
}

/**
 * Client authentication at the token, revocation and introspection endpoints alike: a secret (RFC 6749
 * §2.3.1) or a JWT assertion (RFC 7523 §2.2; federated workloads use the same wire shape), signed with
 * one of the asymmetric algorithms only (never `none` or HS*, RFC 8725 §3.1).
 */
const AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt']
const AUTH_SIGNING_ALGS = [...SUPPORTED_ALGORITHMS]

/** GET /.well-known/oauth-authorization-server — RFC 8414 §2, §3. */
export function metadataHandler(deps: Deps) {
  return (c: Context<AppEnv>) => {
    const issuer = deps.config.issuer
    const metadata = {
      issuer,
      token_endpoint: `${issuer}/oauth/token`,
      jwks_uri: `${issuer}/.well-known/jwks.json`,
      revocation_endpoint: `${issuer}/oauth/revoke`,
      revocation_endpoint_auth_methods_supported: AUTH_METHODS,
      revocation_endpoint_auth_signing_alg_values_supported: AUTH_SIGNING_ALGS,
      introspection_endpoint: `${issuer}/oauth/introspect`,
      introspection_endpoint_auth_methods_supported: AUTH_METHODS,
      introspection_endpoint_auth_signing_alg_values_supported: AUTH_SIGNING_ALGS,
      grant_types_supported: GRANT_TYPES,
      // RFC 8414 §2 calls this required; there is no authorization endpoint, so none.
      response_types_supported: [],
      token_endpoint_auth_methods_supported: AUTH_METHODS,
      token_endpoint_auth_signing_alg_values_supported: AUTH_SIGNING_ALGS,
      // RFC 8414 §2: RECOMMENDED, not required. The union of every client's scopes tells anyone what
      // the deployment protects, so it is published only when PUBLISH_SCOPES=true.
      ...(deps.config.publishScopes && { scopes_supported: deps.clients.scopes }),
      // Not in RFC 8414 but widely read (RFC 9068 §4 verifiers): what access tokens are signed with.
      // Every published key's algorithm, so that during an algorithm migration a verifier configured
      // from here still accepts the tokens of the key being retired (and of the next one).
      access_token_signing_alg_values_supported: deps.keys.publishedAlgorithms(),
      // RFC 9449 §5.1: the algorithms a DPoP proof may be signed with (asymmetric only).
      dpop_signing_alg_values_supported: DPOP_ALGORITHMS,
    }
    return c.body(JSON.stringify(metadata), 200, {
      'Content-Type': 'application/json; charset=utf-8',
      'Cache-Control': 'public, max-age=300',
    })
  }
}
