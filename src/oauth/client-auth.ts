import type { Clock } from '../clock.js'
import { verifyClientSecret, type Client, type ClientRegistry } from '../clients/registry.js'
import { invalidClient, invalidRequest } from '../errors.js'
import { CLIENT_ASSERTION_TYPE } from './client-assertion.js'
import { formDecode, single, type FormParams } from './form.js'

export type ClientAuthMethod = 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt'

/** A client id and secret (RFC 6749 §2.3.1). */
export interface SecretCredentials {
  method: 'client_secret_basic' | 'client_secret_post'
  clientId: string
  secret: string
}

/**
 * A JWT client assertion (RFC 7521 §4.2, RFC 7523 §2.2): signed by the client's own key, or a platform
 * token that a workload identity federation trust entry maps to the client. `client_id` is optional
 * on the wire (RFC 7521 §4.2); without it the assertion's `sub` names the client.
 */
export interface AssertionCredentials {
  method: 'private_key_jwt'
  clientId: string | undefined
  assertion: string
}

export type ClientCredentials = SecretCredentials | AssertionCredentials

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/
const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * RFC 6749 §2.3.1, Appendix B: the Basic credentials are the form-urlencoded id and secret joined
 * by a colon, then base64. Anything that does not decode that way is a malformed request.
 */
function parseBasic(token68: string): { clientId: string; secret: string } {
  const encoded = token68.trim()
  if (encoded === '' || encoded.length % 4 !== 0 || !BASE64.test(encoded)) {
    throw invalidRequest('malformed Basic authorization header')
  }
  let decoded: string
  try {
    decoded = utf8.decode(Buffer.from(encoded, 'base64'))
  } catch {
    throw invalidRequest('malformed Basic authorization header')
  }
  const colon = decoded.indexOf(':')
  if (colon === -1) throw invalidRequest('malformed Basic authorization header')
  return { clientId: formDecode(decoded.slice(0, colon)), secret: formDecode(decoded.slice(colon + 1)) }
}

/**
 * Finds the one client authentication method used (RFC 6749 §2.3: exactly one per request).
 * Returns undefined when the request carries none; an `Authorization` header with another scheme
 * (such as Bearer) is not client authentication (RFC 6749 §5.2).
 */
export function extractClientCredentials(
  authorization: string | undefined,
  params: FormParams,
): ClientCredentials | undefined {
  let basic: { clientId: string; secret: string } | undefined
  if (authorization !== undefined) {
    const space = authorization.indexOf(' ')
    const scheme = space === -1 ? authorization : authorization.slice(0, space)
    if (scheme.toLowerCase() === 'basic') basic = parseBasic(space === -1 ? '' : authorization.slice(space + 1))
  }
  const bodyId = single(params, 'client_id')
  const bodySecret = single(params, 'client_secret')
  const assertion = params.has('client_assertion') || params.has('client_assertion_type')
  if (assertion && bodyId !== undefined && bodyId === '') throw invalidRequest('client_id is empty')

  const methods = Number(basic !== undefined) + Number(bodySecret !== undefined) + Number(assertion)
  if (methods > 1) throw invalidRequest('use exactly one client authentication method')
  if (basic) {
    if (bodyId !== undefined && bodyId !== basic.clientId) {
      throw invalidRequest('client_id in the body differs from the authenticated client')
    }
    return { method: 'client_secret_basic', ...basic }
  }
  if (bodySecret !== undefined) {
    if (bodyId === undefined) throw invalidRequest('client_secret requires client_id')
    return { method: 'client_secret_post', clientId: bodyId, secret: bodySecret }
  }
  if (assertion) return assertionCredentials(params, bodyId)
  return undefined
}

/** RFC 7521 §4.2: both parameters, the jwt-bearer type (RFC 7523 §2.2), one assertion. */
function assertionCredentials(params: FormParams, clientId: string | undefined): AssertionCredentials {
  const type = single(params, 'client_assertion_type')
  if (type === undefined) throw invalidRequest('client_assertion_type is required with client_assertion')
  if (type !== CLIENT_ASSERTION_TYPE) throw invalidRequest(`client_assertion_type must be ${CLIENT_ASSERTION_TYPE}`)
  const assertion = single(params, 'client_assertion')
  if (assertion === undefined || assertion === '') throw invalidRequest('client_assertion is required')
  return { method: 'private_key_jwt', clientId, assertion }
}

/** Throws the one public `invalid_client` whatever failed; the reason is kept for the log. */
export function authenticateSecret(
  deps: { clients: ClientRegistry; clock: Clock },
  credentials: SecretCredentials | undefined,
): Client {
  if (!credentials) throw invalidClient('no client authentication')
  const client = verifyClientSecret(deps.clients, credentials.clientId, credentials.secret, deps.clock)
  if (!client) throw invalidClient('unknown client or wrong secret')
  return client
}
