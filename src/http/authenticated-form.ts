import type { Context } from 'hono'
import type { Client } from '../clients/registry.js'
import { invalidClient, OAuthError } from '../errors.js'
import { authLimiterOf } from '../limits/auth-failures.js'
import { AssertionRefusedError, authenticateAssertion } from '../oauth/assertion-auth.js'
import { authenticateSecret, type ClientCredentials, extractClientCredentials } from '../oauth/client-auth.js'
import { rejectRepeatedParams, type FormParams } from '../oauth/form.js'
import { type AuditEvents, type AuthMethod, auditOf } from '../observability/audit.js'
import { clientAddress } from './client-address.js'
import { readForm } from './read-form.js'
import type { AppEnv, Deps } from './types.js'

/** An authenticated request: its form, its client, and how the client authenticated. */
export interface AuthenticatedForm {
  params: FormParams
  client: Client
  /** How the client authenticated (RFC 8414 §2 method names, plus federation for trust entries). */
  authMethod: AuthMethod
  /** Federation: the id of the trust entry that admitted the workload. */
  trustEntry?: string
}

/**
 * The first steps of every client-facing endpoint (token RFC 6749 §3.2, revocation RFC 7009 §2.1,
 * introspection RFC 7662 §2.1): read the form strictly, refuse repeated parameters, then
 * authenticate the client before anything else is looked at: an unauthenticated caller learns
 * nothing about tokens or parameters. A client authenticates with a secret (RFC 6749 §2.3.1) or a JWT
 * assertion (RFC 7523 §2.2: its own key, or a federated workload's platform token). Each failed
 * authentication is one `auth.failed` audit event, before it is counted against the limits.
 */
export async function authenticatedForm(
  c: Context<AppEnv>,
  deps: Deps,
  repeatErrors: Record<string, () => OAuthError> = {},
): Promise<AuthenticatedForm> {
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
  const requestId = c.get('requestId')
  limits?.limiter.check(claimedId, limits.address)
  let authenticated: AuthenticatedForm
  try {
    if (credentials?.method === 'private_key_jwt') {
      const { client, method, entry } = await authenticateAssertion(deps, credentials, requestId)
      authenticated = { params, client, authMethod: method, ...(entry !== undefined && { trustEntry: entry.id }) }
    } else if (credentials !== undefined) {
      authenticated = { params, client: authenticateSecret(deps, credentials), authMethod: credentials.method }
    } else {
      throw invalidClient('no client authentication')
    }
  } catch (error) {
    // Only failed authentication counts (401 invalid_client), whatever the method; a 503 does not.
    if (error instanceof OAuthError && error.code === 'invalid_client') {
      auditOf(deps).emit('auth.failed', authFailure(error, credentials, address), requestId)
      if (limits) await limits.limiter.recordFailure(claimedId, limits.address, requestId)
    }
    throw error
  }
  c.set('clientId', authenticated.client.id)
  return authenticated
}

/**
 * The `auth.failed` event of an `invalid_client`: the claimed id (the caller's text, cut), the
 * method and a stable reason code. A secret's failure is one code whichever of the id or the secret
 * was wrong (RFC 6749 §5.2 tells the client no more, and neither does the log); an assertion's is
 * the reason of its refusal (src/oauth/assertion-auth.ts).
 */
function authFailure(
  error: OAuthError,
  credentials: ClientCredentials | undefined,
  address: string | undefined,
): AuditEvents['auth.failed'] {
  const refusal = error instanceof AssertionRefusedError ? error : undefined
  // An assertion may name its client only inside (RFC 7521 §4.2: client_id is optional).
  const claimed = (credentials?.clientId ?? refusal?.clientId)?.slice(0, 128)
  const method = refusal?.method ?? credentials?.method ?? 'none'
  const reason =
    refusal?.reason ??
    (credentials === undefined
      ? 'no_credentials'
      : credentials.method === 'private_key_jwt'
        ? 'assertion_refused'
        : 'unknown_client_or_wrong_secret')
  return {
    ...(claimed !== undefined && { client_id: claimed }),
    auth_method: method,
    reason,
    address: address ?? 'unknown',
    ...(refusal?.trustEntry !== undefined && { trust_entry: refusal.trustEntry }),
  }
}
