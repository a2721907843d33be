import { CLIENT_ID, type Client } from '../clients/registry.js'
import type { Deps } from '../deps.js'
import { OAuthError, temporarilyUnavailable } from '../errors.js'
import type { TrustEntry, TrustStore } from '../federation/trust-entry.js'
import { resolveEntryPath } from '../federation/trust-file.js'
import { createIssuerKeys, type IssuerKeys } from '../federation/issuer-keys.js'
import {
  loggedNames,
  peekIssuer,
  verifyWorkloadAssertion,
  WorkloadKeysUnavailable,
  WorkloadRejected,
} from '../federation/verify-workload.js'
import { metricsEnabled, metricsOf } from '../observability/metrics.js'
import { BEARER_AUTH_DEFAULTS } from '../verifier/options.js'
import { BearerError } from '../verifier/errors.js'
import { createRemoteKeySource, type KeySource } from '../verifier/key-source.js'
import { AssertionRejected, verifyClientAssertion } from './client-assertion.js'
import type { AssertionCredentials } from './client-auth.js'
import { ReplayCacheFullError } from './replay-cache.js'

/**
 * Client authentication by JWT assertion (RFC 7521 §4.2, RFC 7523 §2.2), two ways:
 * - private_key_jwt: the client signed the assertion with its own key; `iss` = `sub` = its id;
 * - workload identity federation: a platform (Kubernetes, GitHub Actions, SPIFFE, an OIDC provider)
 *   signed it, and a TRUST_FILE entry maps that identity to the `client_id` the request names.
 * The unverified `iss` only routes: another issuer than the client id means a platform token; the client
 * id itself (or an unreadable assertion) the client's own. Either way every refusal is the one public `invalid_client` (RFC 6749 §5.2), and the
 * stable reason code goes to the log; keys or a replay store that cannot be reached are 503.
 */

/** The remote key sets the assertion checks keep between requests (and across registry reloads). */
export interface AssertionKeySources {
  /** A client's `jwks_uri`, fetched with the limits resource servers use (README, Resource servers). */
  client(uri: string, clientId: string): KeySource
  /** Trust entries' issuers: discovery, `jwks_uri` or a pinned file. */
  issuers: IssuerKeys
  /** The trust store the issuer keys were last pruned to (see IssuerKeys.retain). */
  trust?: TrustStore
}

const keySources = new WeakMap<Deps, AssertionKeySources>()

/** One set of key sources per server (deps), made on first use. */
export function assertionKeySourcesOf(deps: Deps): AssertionKeySources {
  let sources = keySources.get(deps)
  if (!sources) {
    const byUri = new Map<string, KeySource>()
    const { clock } = deps
    // Fetches are counted under the client or entry whose request made the source (sources are shared by URI).
    const metrics = metricsEnabled(deps.config) ? metricsOf(deps) : undefined
    sources = {
      client(uri, clientId) {
        let source = byUri.get(uri)
        if (!source) {
          source = createRemoteKeySource({
            ...BEARER_AUTH_DEFAULTS.jwks,
            url: new URL(uri),
            fetch,
            clock,
            ...(metrics && { onFetch: (outcome) => metrics.remoteKeysFetched('client_jwks_uri', clientId, outcome) }),
          })
          byUri.set(uri, source)
        }
        return source
      },
      issuers: createIssuerKeys({
        clock,
        resolvePath: (path) => resolveEntryPath(deps.config.trustFile, path),
        ...(metrics && {
          onFetch: (entry, outcome) => metrics.remoteKeysFetched('trust_entry', entry.id, outcome),
        }),
      }),
    }
    keySources.set(deps, sources)
  }
  return sources
}

/** The issuer keys, pruned to the entries of the trust store in force whenever it was reloaded. */
function issuerKeysFor(deps: Deps): IssuerKeys {
  const sources = assertionKeySourcesOf(deps)
  if (deps.trust !== undefined && sources.trust !== deps.trust) {
    sources.issuers.retain(deps.trust.entries)
    sources.trust = deps.trust
  }
  return sources.issuers
}

/** What the log gets for a refused assertion: stable codes and the assertion's names, never the assertion. */
interface Refusal {
  method: 'private_key_jwt' | 'federation'
  reason: string
  client_id?: string
  [field: string]: unknown
}

/**
 * The one public `invalid_client` of a refused assertion (RFC 6749 §5.2), holding for the audit trail
 * (the `auth.failed` event, src/http/authenticated-form.ts) what was refused: the method, the stable
 * reason code and, for federation, the trust entry whose refusal it is. Never sent to the client.
 */
export class AssertionRefusedError extends OAuthError {
  readonly method: 'private_key_jwt' | 'federation'
  readonly reason: string
  readonly trustEntry: string | undefined
  /** The client the assertion claimed (its `client_id`, else its `sub`), cut to 128 characters. */
  readonly clientId: string | undefined
  constructor(refusal: Refusal) {
    super('invalid_client', 401, 'client authentication failed', { detail: `${refusal.method}: ${refusal.reason}` })
    this.method = refusal.method
    this.reason = refusal.reason
    this.clientId = refusal.client_id
    this.trustEntry = typeof refusal.entry === 'string' ? refusal.entry : undefined
  }
}

/**
 * The details of a refusal (the assertion's names, every trust entry tried) at info: the warning is
 * the `auth.failed` audit event the endpoint writes for the same failure, with the same reason code.
 */
function refuse(deps: Pick<Deps, 'log'>, refusal: Refusal, requestId: string | undefined): OAuthError {
  deps.log.info({ ...refusal, request_id: requestId }, 'client assertion refused')
  return new AssertionRefusedError(refusal)
}

/** A 503 for keys or a replay record that cannot be had now: the assertion cannot be judged, so no token and no 401. */
function unavailable(detail: string, cause: unknown, retryAfter = 1): OAuthError {
  const error = temporarilyUnavailable(detail, cause)
  error.headers['Retry-After'] = String(Math.max(1, Math.ceil(retryAfter)))
  return error
}

/** A client authenticated by assertion: how, and for federation the trust entry that admitted it. */
export interface AssertionAuthentication {
  client: Client
  method: 'private_key_jwt' | 'federation'
  /** Federation: the entry that mapped the platform identity to the client. */
  entry?: TrustEntry
}

/**
 * Authenticates the client of a JWT client assertion, or throws `invalid_client`
 * (AssertionRefusedError) or a 503. `requestId` is the request's id, for its log records.
 */
export async function authenticateAssertion(
  deps: Deps,
  credentials: AssertionCredentials,
  requestId: string | undefined,
): Promise<AssertionAuthentication> {
  const issuer = peekIssuer(credentials.assertion)
  // RFC 7521 §4.2: client_id may be left out; the client's own assertion names it as `sub` (= `iss`).
  const clientId = credentials.clientId ?? (issuer !== undefined && CLIENT_ID.test(issuer) ? issuer : undefined)
  if (clientId === undefined) {
    throw refuse(
      deps,
      { method: 'federation', reason: 'client_id_missing', ...loggedNames(credentials.assertion) },
      requestId,
    )
  }
  // Another issuer than the client itself: a platform token. Unreadable: the client's own checks say why.
  const method = issuer !== undefined && issuer !== clientId ? 'federation' : 'private_key_jwt'
  const client = deps.clients.get(clientId)
  if (!client) {
    throw refuse(
      deps,
      {
        method,
        reason: 'unknown_client',
        client_id: clientId.slice(0, 128),
        ...loggedNames(credentials.assertion),
      },
      requestId,
    )
  }
  if (method === 'private_key_jwt') {
    await privateKeyJwt(deps, client, credentials.assertion, requestId)
    return { client, method }
  }
  return { client, method, entry: await federated(deps, client, credentials.assertion, requestId) }
}

async function privateKeyJwt(
  deps: Deps,
  client: Client,
  assertion: string,
  requestId: string | undefined,
): Promise<void> {
  const settings = client.assertion
  const keys =
    settings?.jwks ??
    (settings?.jwksUri !== undefined ? assertionKeySourcesOf(deps).client(settings.jwksUri, client.id) : undefined)
  if (!settings || !keys)
    throw refuse(deps, { method: 'private_key_jwt', reason: 'no_client_keys', client_id: client.id }, requestId)
  try {
    await verifyClientAssertion(
      {
        clock: deps.clock,
        clockTolerance: deps.config.clockTolerance,
        maxLifetime: deps.config.clientAssertionMaxLifetime,
        issuer: deps.config.issuer,
        replay: deps.denylist.replayCache('client-assertion'),
      },
      assertion,
      { clientId: client.id, keys, requireTyp: settings.requireTyp },
    )
  } catch (error) {
    if (error instanceof AssertionRejected) {
      throw refuse(deps, { method: 'private_key_jwt', reason: error.reason, client_id: client.id }, requestId)
    }
    throw serverSide(error, `private_key_jwt keys of client ${client.id}`)
  }
}

/** The trust entry that admitted the workload, or throws. */
async function federated(
  deps: Deps,
  client: Client,
  assertion: string,
  requestId: string | undefined,
): Promise<TrustEntry> {
  try {
    const { entry } = await verifyWorkloadAssertion(
      {
        clock: deps.clock,
        clockTolerance: deps.config.clockTolerance,
        issuer: deps.config.issuer,
        replay: deps.denylist.replayCache('federation'),
        keys: issuerKeysFor(deps),
      },
      deps.trust?.entries ?? [],
      assertion,
      client.id,
    )
    return entry
  } catch (error) {
    if (error instanceof WorkloadRejected) {
      throw refuse(
        deps,
        {
          method: 'federation',
          reason: error.reason,
          client_id: client.id,
          ...(error.entry !== undefined && { entry: error.entry }),
          attempts: error.attempts,
          iss: error.iss,
          sub: error.sub,
          aud: error.aud,
        },
        requestId,
      )
    }
    if (error instanceof WorkloadKeysUnavailable) {
      // The operator's to fix (an issuer down, a private address the entry does not allow, a pinned
      // file unreadable): said at warn with the cause, while the client is told to retry.
      const cause = causeChain(error.cause)
      deps.log.warn(
        {
          method: 'federation',
          reason: 'keys_unavailable',
          client_id: client.id,
          entry: error.entry,
          problem: cause,
          request_id: requestId,
        },
        'trust entry keys unavailable',
      )
      throw unavailable(`federation: keys of trust entry ${error.entry} unavailable`, error, error.retryAfter)
    }
    throw serverSide(error, 'federation')
  }
}

/** The messages of an error and its causes, innermost last: the reason an operator can act on. */
function causeChain(error: unknown): string | undefined {
  const messages: string[] = []
  for (let at = error; at instanceof Error && messages.length < 5; at = at.cause) messages.push(at.message)
  return messages.length > 0 ? messages.join(': ') : undefined
}

/** A failure of ours (keys out of reach, replay store full) as a 503; anything else unchanged. */
function serverSide(error: unknown, what: string): unknown {
  if (error instanceof BearerError && error.status === 503) {
    return unavailable(`${what} unavailable`, error, error.retryAfter)
  }
  if (error instanceof ReplayCacheFullError) return unavailable('client assertion replay cache full', error, 5)
  return error
}
