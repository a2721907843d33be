import type { Context } from 'hono'
import { issueAccessToken } from '../oauth/access-token.js'
import { REPEATED_TARGET, checkGrantType, resolveAudience, resolveScopes } from '../oauth/client-credentials.js'
import { createDpopBinder } from '../oauth/dpop-binding.js'
import { checkQuota } from '../limits/quota.js'
import { single } from '../oauth/form.js'
import { auditOf } from '../observability/audit.js'
import { authenticatedForm } from './authenticated-form.js'
import { withRequestId } from './middleware/request-id.js'
import { NO_STORE } from './render-error.js'
import type { AppEnv, Deps } from './types.js'

/**
 * POST /oauth/token — RFC 6749 §4.4 client credentials grant. With a `DPoP` header (RFC 9449 §5), checked
 * after client authentication and the request's own checks, the token is bound to the proof's key
 * (`cnf.jkt`) and answered with `token_type: "DPoP"` (RFC 9449 §5.1) and, with DPOP_NONCE=true, a fresh
 * `DPoP-Nonce` (RFC 9449 §8.2).
 */
export function tokenHandler(deps: Deps) {
  const bindDpop = createDpopBinder({ ...deps, keys: () => deps.keys })
  const audit = auditOf(deps)
  return async (c: Context<AppEnv>): Promise<Response> => {
    const { params, client, authMethod, trustEntry } = await authenticatedForm(c, deps, REPEATED_TARGET)
    const requestId = c.get('requestId')

    checkGrantType(client, params)
    const scopes = resolveScopes(client, single(params, 'scope'))
    const audience = resolveAudience(client, params)
    const dpop = await bindDpop(c.req.header('dpop'), client)
    // Last of the checks that can refuse the request, so a refusal never uses a slot of the quota.
    if (client.quota !== undefined) await checkQuota(deps, client, requestId)

    // One reading of the clock, so the audit event's `exp` is the token's (`iat` + ttl).
    const now = deps.clock()
    const ttl = client.accessTokenTtl ?? deps.config.accessTokenTtl
    const token = await issueAccessToken(
      { clock: () => now, keys: deps.keys, issuer: deps.config.issuer },
      { clientId: client.id, scopes, audience, ttl, ...(dpop !== undefined && { jkt: dpop.jkt }) },
    )
    c.set('jti', token.jti)
    // Never the token: its names only.
    audit.emit(
      'token.issued',
      {
        client_id: client.id,
        auth_method: authMethod,
        jti: token.jti,
        scope: token.scope,
        aud: audience,
        exp: now + ttl,
        ...(dpop !== undefined && { dpop_jkt: dpop.jkt }),
        ...(trustEntry !== undefined && { trust_entry: trustEntry }),
      },
      requestId,
    )

    if (dpop !== undefined) {
      const body = `{"access_token":"${token.accessToken}","token_type":"DPoP","expires_in":${token.expiresIn},"scope":${JSON.stringify(token.scope)}}`
      const headers = dpop.nonce === undefined ? NO_STORE : { ...NO_STORE, 'DPoP-Nonce': dpop.nonce }
      return new Response(body, { status: 200, headers: withRequestId(c, headers) })
    }

    // RFC 6749 §4.4.3 / §5.1: no refresh token for this grant; never cached. The JSON is written
    // out: a compact JWS is base64url and dots and expires_in an integer, so only the scope needs
    // quoting, and JSON.stringify would spend a microsecond scanning the token. The headers go as
    // a plain object, which @hono/node-server writes as it is (c.body() builds web Headers); so
    // X-Request-Id goes into it here rather than being set by its middleware afterwards.
    const body = `{"access_token":"${token.accessToken}","token_type":"Bearer","expires_in":${token.expiresIn},"scope":${JSON.stringify(token.scope)}}`
    return new Response(body, { status: 200, headers: withRequestId(c, NO_STORE) })
  }
}
