import type { Clock } from '../clock.js'
import { verifyClientSecret, type Client, type ClientRegistry } from '../clients/registry.js'
import { invalidClient, invalidRequest } from '../errors.js'
import { formDecode, single, type FormParams } from './form.js'

export type ClientAuthMethod = 'client_secret_basic' | 'client_secret_post'

export interface ClientCredentials {
  method: ClientAuthMethod
  clientId: string
  secret: string
}

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
  return undefined // includes client_assertion: private_key_jwt is not supported yet
}

/** Throws the one public `invalid_client` whatever failed; the reason is kept for the log. */
export function authenticateClient(
  deps: { clients: ClientRegistry; clock: Clock },
  credentials: ClientCredentials | undefined,
): Client {
  if (!credentials) throw invalidClient('no client authentication')
  const client = verifyClientSecret(deps.clients, credentials.clientId, credentials.secret, deps.clock)
  if (!client) throw invalidClient('unknown client or wrong secret')
  return client
}
