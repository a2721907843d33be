import type { Context } from 'hono'
import type { Client } from '../clients/registry.js'
import { invalidRequest } from '../errors.js'
import { single } from '../oauth/form.js'
import { verifyOwnToken } from '../oauth/verify-token.js'
import { auditOf } from '../observability/audit.js'
import type { AccessTokenClaims } from '../verifier/types.js'
import { authenticatedForm } from './authenticated-form.js'
import { NO_STORE } from './render-error.js'
import type { AppEnv, Deps } from './types.js'

const INACTIVE = '{"active":false}'

/**
 * RFC 7662 §2.1 leaves it to the server who may introspect what. Here: a client its own tokens, and
 * a client flagged as a resource server the tokens meant for one of its audiences; nobody else's.
 */
function mayIntrospect(caller: Client, claims: Pick<AccessTokenClaims, 'client_id' | 'aud'>): boolean {
  if (claims.client_id === caller.id) return true
  const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud]
  return caller.resourceServer && audiences.some((aud) => caller.audiences.includes(aud))
}

/**
 * POST /oauth/introspect — RFC 7662. Starts from the safe answer `{"active":false}` for anything
 * invalid, expired, revoked, signed by an unknown key or not the caller's to see (§2.2); the claims
 * only when every check passed. A denylist that cannot answer makes it 503, never `active:true`.
 */
export function introspectHandler(deps: Deps) {
  const audit = auditOf(deps)
  /** The `token.introspected` event: the caller, the token's jti when it verified, and the answer. */
  const introspected = (
    client: Client,
    claims: { jti: string } | undefined,
    active: boolean,
    requestId: string | undefined,
  ) =>
    audit.emit(
      'token.introspected',
      { client_id: client.id, ...(claims !== undefined && { jti: claims.jti }), active },
      requestId,
    )
  return async (c: Context<AppEnv>) => {
    const { params, client } = await authenticatedForm(c, deps)
    const requestId = c.get('requestId')
    const token = single(params, 'token')
    if (token === undefined) throw invalidRequest('token is required')

    const claims = await verifyOwnToken(
      { keys: deps.keys, clock: deps.clock, issuer: deps.config.issuer },
      token,
      deps.config.clockTolerance,
    )
    // The server's own clock is the authority here: expired means inactive, with no tolerance.
    if (!claims || claims.exp <= deps.clock() || !mayIntrospect(client, claims)) {
      introspected(client, claims, false, requestId)
      return c.body(INACTIVE, 200, NO_STORE)
    }
    // By jti, by signing key, or by client (deleted, or its tokens revoked up to some instant).
    const revocation = { jti: claims.jti, kid: claims.kid, client_id: claims.client_id, iat: claims.iat }
    if (await deps.denylist.isRevoked(revocation)) {
      introspected(client, claims, false, requestId)
      return c.body(INACTIVE, 200, NO_STORE)
    }
    introspected(client, claims, true, requestId)

    c.set('jti', claims.jti)
    const { kid: _kid, ...visible } = claims
    // RFC 7662 §2.2 token_type as the token endpoint answered it (RFC 9449 §5.1): DPoP for a bound token,
    // whose `cnf` is echoed (RFC 9449 §6.2).
    const tokenType = visible.cnf === undefined ? 'Bearer' : 'DPoP'
    return c.body(JSON.stringify({ active: true, token_type: tokenType, ...visible }), 200, NO_STORE)
  }
}
