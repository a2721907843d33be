import type { Context } from 'hono'
import type { Client } from '../clients/registry.js'
import { OAuthError } from '../errors.js'
import { authLimiterOf } from '../limits/auth-failures.js'
import { authenticateAssertion } from '../oauth/assertion-auth.js'
import { authenticateSecret, extractClientCredentials } from '../oauth/client-auth.js'
import { rejectRepeatedParams, type FormParams } from '../oauth/form.js'
import { clientAddress } from './client-address.js'
import { readForm } from './read-form.js'
import type { AppEnv, Deps } from './types.js'

/**
 * The first steps of every client-facing endpoint (token RFC 6749 §3.2, revocation RFC 7009 §2.1,
 * introspection RFC 7662 §2.1): read the form strictly, refuse repeated parameters, then
 * authenticate the client before anything else is looked at: an unauthenticated caller learns
 * nothing about tokens or parameters. A client authenticates with a secret (RFC 6749 §2.3.1) or a JWT
 * assertion (RFC 7523 §2.2: its own key, or a federated workload's platform token).
 */
export async function authenticatedForm(
  c: Context<AppEnv>,
  deps: Deps,
  repeatErrors: Record<string, () => OAuthError> = {},
): Promise<{ params: FormParams; client: Client }> {
  const params = await readForm(c)
  rejectRepeatedParams(params, repeatErrors)
  const credentials = extractClientCredentials(c.req.header('authorization'), params)
  // The claimed id goes to the request log for failures too (failed logins are worth watching), cut
  // short: it is the caller's text.
  if (credentials?.clientId !== undefined) c.set('clientId', credentials.clientId.slice(0, 128))
  // RFC 6749 §2.3.1: brute force is refused before any secret or signature is checked. An assertion
  // without client_id names no client yet: only its address's count applies. A request made in this
  // process (`app.request()`, no socket) has no address and is not limited.
  const address = clientAddress(c, deps.config.trustProxy)
  const limits = address === undefined ? undefined : { limiter: authLimiterOf(deps), address }
  const claimedId = credentials?.clientId
  limits?.limiter.check(claimedId, limits.address)
  let client: Client
  try {
    client =
      credentials?.method === 'private_key_jwt'
        ? await authenticateAssertion(deps, credentials)
        : authenticateSecret(deps, credentials)
  } catch (error) {
    // Only failed authentication counts (401 invalid_client), whatever the method; a 503 does not.
    if (limits && error instanceof OAuthError && error.code === 'invalid_client')
      await limits.limiter.recordFailure(claimedId, limits.address)
    throw error
  }
  c.set('clientId', client.id)
  return { params, client }
}
