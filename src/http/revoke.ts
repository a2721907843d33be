import type { Context } from 'hono'
import { RevocationLimitError } from '../denylist/denylist.js'
import { invalidRequest, tooManyRevocations } from '../errors.js'
import { single } from '../oauth/form.js'
import { verifyOwnToken } from '../oauth/verify-token.js'
import { auditOf } from '../observability/audit.js'
import { authenticatedForm } from './authenticated-form.js'
import type { AppEnv, Deps } from './types.js'

/** RFC 7009 §2.2: 200 with an empty body; the client ignores the content. */
const EMPTY_OK = { 'Cache-Control': 'no-store', Pragma: 'no-cache' }

/**
 * POST /oauth/revoke — RFC 7009. The token is self-contained, so revoking it means denylisting its
 * `jti` until `exp` + T, the last moment any verifier would still accept it; after that the entry has
 * nothing left to refuse.
 */
export function revokeHandler(deps: Deps) {
  return async (c: Context<AppEnv>) => {
    const { params, client } = await authenticatedForm(c, deps)
    const token = single(params, 'token')
    if (token === undefined) throw invalidRequest('token is required')
    // RFC 7009 §2.1: token_type_hint is only a hint; there is one token type here, so it is ignored.

    const tolerance = deps.config.clockTolerance
    const claims = await verifyOwnToken(
      { keys: deps.keys, clock: deps.clock, issuer: deps.config.issuer },
      token,
      tolerance,
    )
    // RFC 7009 §2.2: invalid, expired or unknown tokens still get 200; there is nothing to revoke.
    if (!claims) return c.body(null, 200, EMPTY_OK)
    // RFC 7009 §2.1: a client may revoke only its own tokens. For another client's token the request
    // is refused and the client told so; nothing is revoked.
    if (claims.client_id !== client.id) throw invalidRequest('the token was not issued to this client')

    await revokeCounted(deps, claims.jti, claims.exp + tolerance, client.id)
    c.set('jti', claims.jti)
    const requestId = c.get('requestId')
    deps.log.info({ client_id: client.id, jti: claims.jti, exp: claims.exp, request_id: requestId }, 'token revoked')
    auditOf(deps).emit('token.revoked', { client_id: client.id, jti: claims.jti }, requestId)
    return c.body(null, 200, EMPTY_OK)
  }
}

/**
 * Each client may hold only so many live revocations, so that none can fill the table every
 * client shares; past its limit it gets 429 until its oldest revocation expires. Revoking a token
 * that is already revoked is not a new entry and still gets 200.
 */
async function revokeCounted(
  deps: Pick<Deps, 'denylist' | 'config'>,
  jti: string,
  until: number,
  clientId: string,
): Promise<void> {
  try {
    await deps.denylist.revokeToken(jti, until, { clientId, limit: deps.config.revocationsPerClient })
  } catch (error) {
    if (error instanceof RevocationLimitError) throw tooManyRevocations(error.retryAfter, error.message)
    throw error
  }
}
