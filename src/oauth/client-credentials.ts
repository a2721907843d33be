import type { Client } from '../clients/registry.js'
import { SCOPE_TOKEN } from '../clients/registry.js'
import { invalidRequest, invalidScope, invalidTarget, unauthorizedClient, unsupportedGrantType } from '../errors.js'
import { single, type FormParams } from './form.js'

export function checkGrantType(client: Client, params: FormParams): void {
  const grantType = single(params, 'grant_type')
  if (grantType === undefined) throw invalidRequest('grant_type is required')
  // RFC 9700 §2.4: no password grant, and nothing but client credentials here.
  if (grantType !== 'client_credentials') throw unsupportedGrantType()
  if (!client.grantTypes.includes(grantType)) throw unauthorizedClient('client may not use this grant type')
}

/**
 * RFC 6749 §3.3: space-delimited scope-tokens. Omitted means every scope of the client (the
 * documented default); an empty `scope=` is omitted too (RFC 6749 §3.1). A value of spaces only
 * names no scope-token, so it is refused rather than read as "everything". A scope the client may
 * not have fails the whole request: no token is issued for a subset the client did not ask for.
 */
export function resolveScopes(client: Client, requested: string | undefined): readonly string[] {
  if (requested === undefined || requested === '') return client.scopes
  const scopes = [...new Set(requested.split(' ').filter((scope) => scope !== ''))]
  if (scopes.length === 0) throw invalidScope('scope must name at least one scope')
  if (!scopes.every((scope) => SCOPE_TOKEN.test(scope)))
    throw invalidScope('scope has characters RFC 6749 section 3.3 does not allow')
  if (!scopes.every((scope) => client.scopes.includes(scope)))
    throw invalidScope('requested scope is not allowed for this client')
  return scopes
}

/**
 * RFC 8707 §2 allows several `resource` parameters; a token here has one audience, so a repeated
 * `resource` or `audience` is `invalid_target` rather than the generic repeated-parameter error.
 */
export const REPEATED_TARGET = {
  resource: () => invalidTarget('only one resource per token is supported'),
  audience: () => invalidTarget('only one audience per token is supported'),
}

/** RFC 8707 §2: an absolute URI without a fragment. */
function isResourceIndicator(value: string): boolean {
  try {
    const url = new URL(value)
    return !url.hash && !value.includes('#')
  } catch {
    return false
  }
}

/**
 * The token's single audience: `resource` (RFC 8707) or the common `audience` parameter, one of
 * them; it must be one of the client's audiences. Omitted: the client's first audience.
 */
export function resolveAudience(client: Client, params: FormParams): string {
  const resource = single(params, 'resource', REPEATED_TARGET.resource)
  const audience = single(params, 'audience', REPEATED_TARGET.audience)
  if (resource !== undefined && audience !== undefined) throw invalidRequest('use resource or audience, not both')
  if (resource !== undefined && !isResourceIndicator(resource)) {
    throw invalidTarget('resource must be an absolute URI without a fragment')
  }
  const target = resource ?? audience
  if (target !== undefined) {
    if (!client.audiences.includes(target)) throw invalidTarget('the requested resource is not allowed for this client')
    return target
  }
  // The first audience is the default. The registry refuses a client without one; were one to slip
  // through, that is our fault (500), never a token with an empty `aud`.
  const [first] = client.audiences
  if (first === undefined) throw new Error(`client ${client.id} has no audience`)
  return first
}
