import type { Context } from 'hono'
import type { Client } from '../clients/registry.js'
import type { OAuthError } from '../errors.js'
import { authenticateAssertion } from '../oauth/assertion-auth.js'
import { authenticateSecret, extractClientCredentials } from '../oauth/client-auth.js'
import { rejectRepeatedParams, type FormParams } from '../oauth/form.js'
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
  const client =
    credentials?.method === 'private_key_jwt'
      ? await authenticateAssertion(deps, credentials)
      : authenticateSecret(deps, credentials)
  c.set('clientId', client.id)
  return { params, client }
}
