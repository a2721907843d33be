import type { Logger } from './logger.js'

/**
 * Audit events: every security-relevant act is one log record with `event` set and a fixed field set,
 * so it can be searched and alerted on, and the metrics (src/observability/metrics.ts) count the same
 * acts from the same call. Field values are never secrets, tokens, assertions, proofs or headers: the
 * fields are named here, and nothing else is taken.
 */
export interface AuditEvents {
  /** An access token was issued (RFC 6749 §4.4.3). Never the token itself. */
  'token.issued': {
    client_id: string
    auth_method: AuthMethod
    jti: string
    scope: string
    aud: string
    exp: number
    /** RFC 9449 §6.1 thumbprint when the token is DPoP-bound. */
    dpop_jkt?: string
    /** The trust entry that admitted a federated workload. */
    trust_entry?: string
  }
  /** A client authentication failed (RFC 6749 §5.2 invalid_client); `reason` is a stable code. */
  'auth.failed': {
    /** The client id claimed (the caller's text, cut to 128 characters), when there was one. */
    client_id?: string
    auth_method: AuthMethod | 'none'
    reason: string
    address: string
    /** Federation: the entry whose refusal `reason` is. */
    trust_entry?: string
  }
  /** A client revoked one of its tokens (RFC 7009). */
  'token.revoked': { client_id: string; jti: string }
  /** A client introspected a token (RFC 7662); `jti` only when the token verified. */
  'token.introspected': { client_id: string; jti?: string; active: boolean }
  /** A limit answered 429. */
  'limit.tripped': {
    limit: 'auth_client' | 'auth_address' | 'quota'
    client_id?: string
    address?: string
    /** Epoch seconds until which the limit holds. */
    until: number
  }
  /** A signing key changed state, as this server sees it (a rotation by the CLI, the clock reaching `activates`). */
  'key.rotated': { kid: string; alg: string }
  'key.activated': { kid: string; alg: string }
  'key.revoked': { kid: string; alg: string }
  /** A file was reloaded, or refused (the last good state stays). */
  'clients.reloaded': { clients: number }
  'clients.reload_rejected': { problem: string }
  'trust.reloaded': { entries: number }
  'trust.reload_rejected': { problem: string }
  'keys.reloaded': { keys: number }
  'keys.reload_rejected': { problem: string }
}

/** How a client authenticated (RFC 8414 §2 method names, plus federation for trust entries). */
export type AuthMethod = 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt' | 'federation'

export type AuditEventName = keyof AuditEvents

/** Every event name, in the README's order (test/unit/observability/audit.test.ts checks the README lists them). */
export const AUDIT_EVENTS = [
  'token.issued',
  'auth.failed',
  'token.revoked',
  'token.introspected',
  'limit.tripped',
  'key.rotated',
  'key.activated',
  'key.revoked',
  'clients.reloaded',
  'clients.reload_rejected',
  'trust.reloaded',
  'trust.reload_rejected',
  'keys.reloaded',
  'keys.reload_rejected',
] as const satisfies readonly AuditEventName[]

/** Receives every event after it is logged (the metrics count from here). Must not throw. */
export type AuditListener = <E extends AuditEventName>(event: E, fields: AuditEvents[E]) => void

/** Failures and refusals are warnings; everything else is information. */
const LEVEL: Partial<Record<AuditEventName, 'warn'>> = {
  'auth.failed': 'warn',
  'limit.tripped': 'warn',
  'key.revoked': 'warn',
  'clients.reload_rejected': 'warn',
  'trust.reload_rejected': 'warn',
  'keys.reload_rejected': 'warn',
}

export interface Audit {
  /**
   * Writes the event; `requestId`, when given, is the id of the request it was written for (the
   * record's `request_id`; listeners get the fields alone).
   */
  emit<E extends AuditEventName>(event: E, fields: AuditEvents[E], requestId?: string): void
  /** Adds a listener; returns the function that removes it. */
  listen(listener: AuditListener): () => void
}

/**
 * An audit trail writing to `log`, one record per event: `{event, ...fields, request_id?}` with the event
 * name as message.
 */
export function createAudit(log: Logger): Audit {
  const listeners = new Set<AuditListener>()
  return {
    emit(event, fields, requestId) {
      const record: Record<string, unknown> = { event, ...fields }
      if (requestId !== undefined) record.request_id = requestId
      log[LEVEL[event] ?? 'info'](record, event as string)
      for (const listener of listeners) listener(event, fields)
    },
    listen(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
  }
}

const audits = new WeakMap<object, Audit>()

/** The audit trail of a server (its deps), made on first use over its logger. */
export function auditOf(deps: { log: Logger }): Audit {
  let audit = audits.get(deps)
  if (!audit) {
    audit = createAudit(deps.log)
    audits.set(deps, audit)
  }
  return audit
}
