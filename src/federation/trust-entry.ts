import { z } from 'zod'
import { CLIENT_ID } from '../clients/registry.js'

/**
 * Workload identity federation: TRUST_FILE says which external platform tokens (a Kubernetes
 * projected service-account token, a GitHub Actions OIDC token, a SPIFFE JWT-SVID, any OIDC workload
 * token) authenticate as which clients. The workload sends its platform JWT as the `client_assertion`
 * of RFC 7521 §4.2 (`client_assertion_type` jwt-bearer, RFC 7523 §2.2) with `client_id`; the entry
 * that matches decides whether that client may be had. Scopes, audiences and TTL come from the client.
 *
 * The file: `{ "trust": [ entry, ... ] }`. An entry:
 * - `id`: the entry's name, unique in the file (logs, metrics and `trust -- remove` use it);
 * - `issuer`: the platform token's `iss`, compared exactly (RFC 7519 §4.1.1, StringOrURI);
 * - keys: `jwks_file` (a pinned JWK Set, for issuers that cannot be reached), else `jwks_uri`, else
 *   OpenID Connect discovery at `issuer` + `/.well-known/openid-configuration` (OpenID Connect
 *   Discovery 1.0 §4), whose `issuer` must equal the entry's;
 * - `ca_file`, `bearer_token_file`: for an in-cluster Kubernetes API server as issuer (its own CA,
 *   and the pod's service-account token to read its discovery document and keys);
 * - `allow_private_network`: fetch discovery and keys from loopback, private and link-local
 *   addresses too (refused by default, so a trust entry is no way to reach internal services);
 * - `audience`: what the platform token's `aud` must contain; unset, tokensmith's issuer identifier;
 * - `subject`: the `sub`, exact or a glob (see glob.ts: `*` any run of characters, `?` one);
 * - `claims`: further conditions, claim path to exact value or glob; a path reaches into objects
 *   with `/` (`kubernetes.io/namespace`), and a claim name holding `/` is written with `~1`
 *   (RFC 6901 §3);
 * - `clients`: the client ids this identity may authenticate as; the request's `client_id` picks one;
 * - `single_use_jti`: a `jti`, when present, authenticates once (true by default; false for
 *   platforms whose workloads reuse one token for its whole life, as Kubernetes pods do);
 * - `max_token_age`: seconds since the token's `iat` after which it is refused (`iat` required).
 */

/** The entry names `trust -- add --id` takes, and what a log line or metric label can hold safely. */
export const TRUST_ENTRY_ID = /^[A-Za-z0-9._-]{1,64}$/

/** Default `max_token_age`: an hour, longer than any platform token is meant to live. */
export const DEFAULT_MAX_TOKEN_AGE = 3600

/** A URL the server fetches: https, or http only when the entry allows private networks (checked below). */
const fetchUrl = z
  .string()
  .max(2048)
  .superRefine((value, ctx) => {
    let url: URL
    try {
      url = new URL(value)
    } catch {
      ctx.addIssue({ code: 'custom', message: 'must be an absolute URL' })
      return
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      ctx.addIssue({ code: 'custom', message: 'must be an https URL' })
    }
    if (url.username || url.password) ctx.addIssue({ code: 'custom', message: 'must not hold a user name or password' })
    if (url.hash || value.includes('#')) ctx.addIssue({ code: 'custom', message: 'must not have a fragment' })
  })

/** A subject or claim pattern: exact text, or a glob. */
const pattern = z.string().min(1).max(1024)

export const trustEntrySchema = z
  .object({
    id: z.string().regex(TRUST_ENTRY_ID, 'must match ^[A-Za-z0-9._-]{1,64}$'),
    issuer: fetchUrl,
    jwks_uri: fetchUrl.optional(),
    jwks_file: z.string().min(1).max(4096).optional(),
    ca_file: z.string().min(1).max(4096).optional(),
    bearer_token_file: z.string().min(1).max(4096).optional(),
    allow_private_network: z.boolean().default(false),
    audience: z.string().min(1).max(512).optional(),
    subject: pattern,
    claims: z.record(z.string().min(1).max(256), pattern).default({}),
    clients: z
      .array(z.string().regex(CLIENT_ID, 'each must match ^[A-Za-z0-9._-]{3,64}$'))
      .min(1, 'needs at least one client id'),
    single_use_jti: z.boolean().default(true),
    max_token_age: z.number().int().min(60).max(86_400).default(DEFAULT_MAX_TOKEN_AGE),
  })
  .strict()
  .superRefine((entry, ctx) => {
    if (entry.jwks_file !== undefined && entry.jwks_uri !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['jwks_file'], message: 'use jwks_file or jwks_uri, not both' })
    }
    // Plain http is for a test issuer on this machine or a private network the entry opted into. A
    // pinned jwks_file fetches nothing, so its issuer may be any URL.
    if (entry.jwks_file === undefined && !entry.allow_private_network) {
      const field = entry.jwks_uri !== undefined ? 'jwks_uri' : 'issuer'
      if (entry[field]?.startsWith('http:')) {
        ctx.addIssue({ code: 'custom', path: [field], message: 'plain http only with allow_private_network' })
      }
    }
    if (new Set(entry.clients).size !== entry.clients.length) {
      ctx.addIssue({ code: 'custom', path: ['clients'], message: 'lists a client twice' })
    }
  })

export const trustFileSchema = z
  .object({ trust: z.array(trustEntrySchema) })
  .strict()
  .superRefine((file, ctx) => {
    const seen = new Set<string>()
    file.trust.forEach((entry, index) => {
      if (seen.has(entry.id)) {
        ctx.addIssue({ code: 'custom', path: ['trust', index, 'id'], message: `entry ${entry.id} is listed twice` })
      }
      seen.add(entry.id)
    })
  })

export type TrustEntry = z.infer<typeof trustEntrySchema>
export type TrustFile = z.infer<typeof trustFileSchema>

/** The loaded TRUST_FILE, replaced as a whole on reload (like the client registry). */
export interface TrustStore {
  readonly entries: readonly TrustEntry[]
  /** What the file was when read (as the watcher's signature gives it; 'missing' for no file). */
  readonly source?: string
}
