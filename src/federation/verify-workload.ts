/**
 * Workload identity federation: verifies a platform JWT (a Kubernetes service-account token, a GitHub
 * Actions OIDC token, a SPIFFE JWT-SVID, any OIDC workload token) sent as the `client_assertion` of
 * RFC 7521 §4.2 / RFC 7523 §2.2, against the trust entries (trust-entry.ts) that may map it to the
 * requested client. Modelled on private_key_jwt (src/oauth/client-assertion.ts): a closed set of stable
 * reason codes, no assertion text ever kept.
 */
import { errors as joseErrors, type JWTPayload } from 'jose'

import type { ReplayCache } from '../oauth/replay-cache.js'
import { SUPPORTED_ALGORITHMS } from '../verifier/algorithms.js'
import { assertCompactJws, COMPACT_JWS, readProtectedHeader } from '../verifier/compact-jws.js'
import { BearerError } from '../verifier/errors.js'
import type { JwkSet } from '../verifier/jwk-set.js'
import { verifySignature } from '../verifier/verify-access-token.js'
import { compileGlob, type GlobMatcher } from './glob.js'
import type { IssuerKeys } from './issuer-keys.js'
import type { TrustEntry } from './trust-entry.js'

/**
 * Longest assertion read. Platform tokens outgrow client assertions: a Kubernetes projected token is
 * 1–2 KiB, a GitHub Actions token about 1.5 KiB; 16 KiB leaves room and still bounds the work.
 */
export const MAX_WORKLOAD_ASSERTION_LENGTH = 16_384

/** Longest `jti` recorded (RFC 7519 §4.1.7 sets no limit; the replay cache stores it). */
export const MAX_WORKLOAD_JTI_LENGTH = 256

/** Longest `iss`/`sub`/`aud` value copied into a `WorkloadRejected` for the log. */
const MAX_LOGGED_LENGTH = 256
const MAX_LOGGED_AUDIENCES = 8

/**
 * Why an assertion was refused: a closed set of stable codes for logs and metrics, never assertion text.
 * A missing or ill-formed `kid` header is `format` (every supported platform names its key).
 */
export type WorkloadRejectReason =
  | 'format'
  | 'alg_not_allowed'
  | 'forbidden_header'
  | 'issuer_unknown'
  | 'client_not_mapped'
  | 'unknown_key'
  | 'bad_signature'
  | 'aud_invalid'
  | 'subject_mismatch'
  | 'claim_mismatch'
  | 'exp_missing'
  | 'expired'
  | 'nbf_in_future'
  | 'iat_missing'
  | 'iat_in_future'
  | 'too_old'
  | 'jti_invalid'
  | 'jti_replayed'

/** One trust entry tried, and why it refused. */
export interface WorkloadAttempt {
  entry: string
  reason: WorkloadRejectReason
}

/** A refused workload assertion: the endpoint answers `invalid_client` (RFC 6749 §5.2) and logs the rest. */
export class WorkloadRejected extends Error {
  readonly reason: WorkloadRejectReason
  /** The entry whose refusal `reason` is (the first one tried), if any entry was tried. */
  readonly entry?: string
  readonly attempts: WorkloadAttempt[]
  /** From the payload, verified or not, cut to 256 characters: for the operator's log only. */
  readonly iss?: string
  readonly sub?: string
  readonly aud?: string | string[]
  constructor(
    reason: WorkloadRejectReason,
    extra: {
      entry?: string
      attempts?: WorkloadAttempt[]
      iss?: string
      sub?: string
      aud?: string | string[]
      cause?: unknown
    } = {},
  ) {
    super(`workload assertion rejected: ${reason}`, { cause: extra.cause })
    this.name = 'WorkloadRejected'
    this.reason = reason
    this.entry = extra.entry
    this.attempts = extra.attempts ?? []
    this.iss = extra.iss
    this.sub = extra.sub
    this.aud = extra.aud
  }
}

/**
 * The keys of a matching entry could not be had (discovery or JWK Set down, pinned file unreadable):
 * the assertion cannot be judged. The endpoint answers 503 with `Retry-After`, never a token.
 */
export class WorkloadKeysUnavailable extends Error {
  readonly entry: string
  /** Seconds. */
  readonly retryAfter: number
  constructor(entry: string, retryAfter: number, cause?: unknown) {
    super(`keys of trust entry ${entry} unavailable`, { cause })
    this.name = 'WorkloadKeysUnavailable'
    this.entry = entry
    this.retryAfter = retryAfter
  }
}

export interface FederationDeps {
  /** Epoch seconds. */
  clock: () => number
  /** Seconds of leeway for `exp`, `nbf`, `iat` and `max_token_age` (RFC 7519 §4.1.4, §4.1.5). */
  clockTolerance: number
  /** tokensmith's issuer identifier: the audience of an entry without `audience`. */
  issuer: string
  /** Single-use `jti`s, scoped by the platform issuer. */
  replay: ReplayCache
  keys: IssuerKeys
}

/** One verdict of `explainWorkloadAssertion`; `entry` is `(token)` for checks made before any entry. */
export interface WorkloadCheck {
  entry: string
  check: string
  ok: boolean
  detail?: string
}

/** The `entry` of checks on the assertion itself, before any trust entry is involved. */
export const TOKEN_CHECKS = '(token)'

/** The algorithms a platform may sign with: the asymmetric allowlist (never `none` or HS*, RFC 8725 §3.1). */
const ALGORITHMS = [...SUPPORTED_ALGORITHMS]

const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

const isTime = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value)

const cut = (value: unknown): string | undefined =>
  typeof value === 'string' ? value.slice(0, MAX_LOGGED_LENGTH) : undefined

/** The canonical compact JWS check of src/verifier/compact-jws.ts, with the larger cap of platform tokens. */
function isCompactJws(token: string): boolean {
  try {
    assertCompactJws(token, MAX_WORKLOAD_ASSERTION_LENGTH)
    return true
  } catch {
    return false
  }
}

/** The payload as a JSON object, unverified; undefined when it is not one. */
function decodePayload(token: string): Record<string, unknown> | undefined {
  const segment = token.split('.')[1]
  if (segment === undefined) return undefined
  try {
    const payload: unknown = JSON.parse(strictUtf8.decode(Buffer.from(segment, 'base64url')))
    return isPlainObject(payload) ? payload : undefined
  } catch {
    return undefined
  }
}

/** Unverified `iss` of a compact JWS payload, or undefined: for the integrator to route an assertion to federation vs private_key_jwt. */
export function peekIssuer(assertion: string): string | undefined {
  if (typeof assertion !== 'string' || assertion.length > MAX_WORKLOAD_ASSERTION_LENGTH) return undefined
  if (!COMPACT_JWS.test(assertion)) return undefined
  const iss = decodePayload(assertion)?.iss
  return typeof iss === 'string' && iss.length <= 2048 ? iss : undefined
}

/** RFC 6901 §4-style claim path: `/` separates object members, `~1` is a `/` and `~0` a `~` in a name. */
function claimAt(payload: Record<string, unknown>, path: string): unknown {
  let value: unknown = payload
  for (const raw of path.split('/')) {
    const name = raw.replaceAll('~1', '/').replaceAll('~0', '~')
    if (!isPlainObject(value) || !Object.hasOwn(value, name)) return undefined
    value = value[name]
  }
  return value
}

/** The text a claim pattern is matched against: a string, or a number or boolean by its JSON text. */
function claimText(value: unknown): string | undefined {
  if (typeof value === 'string') return value
  if (typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value))) return JSON.stringify(value)
  return undefined
}

/** Compiled patterns, shared across calls (bounded; trust files are small). */
const globs = new Map<string, GlobMatcher>()
function glob(pattern: string): GlobMatcher {
  let matcher = globs.get(pattern)
  if (matcher === undefined) {
    if (globs.size >= 1024) globs.clear()
    matcher = compileGlob(pattern)
    globs.set(pattern, matcher)
  }
  return matcher
}

/** How a run records its checks and whether it consumes the `jti`. */
interface Run {
  explain: boolean
  record(check: WorkloadCheck): void
}

type EntryOutcome =
  | { kind: 'accepted'; claims: JWTPayload }
  | { kind: 'rejected'; reason: WorkloadRejectReason }
  | { kind: 'unavailable'; retryAfter: number; cause: unknown }

type Verdict =
  | { kind: 'accepted'; entry: TrustEntry; claims: JWTPayload }
  | {
      kind: 'rejected'
      reason: WorkloadRejectReason
      attempts: WorkloadAttempt[]
      unverified: Record<string, unknown> | undefined
    }
  | { kind: 'unavailable'; entry: string; retryAfter: number; cause: unknown }

/** A jose failure of the signature step, as a stable code. */
function joseReason(error: unknown): WorkloadRejectReason {
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return 'bad_signature'
  if (error instanceof joseErrors.JWKSNoMatchingKey) return 'unknown_key'
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return 'alg_not_allowed'
  return 'format'
}

/**
 * The signature, with the entry's keys. jose also judges `exp`/`nbf`/`iat` types and times, but only
 * once the signature verified: its claim errors carry the verified payload, which the checks below
 * judge again with their own reason codes.
 */
async function verifiedPayload(
  assertion: string,
  set: JwkSet,
  now: number,
  tolerance: number,
): Promise<{ payload: JWTPayload } | { reason: WorkloadRejectReason }> {
  try {
    const { payload } = await verifySignature(assertion, set.key, {
      algorithms: ALGORITHMS,
      clockTolerance: tolerance,
      currentDate: new Date(now * 1000),
    })
    return { payload }
  } catch (error) {
    if (error instanceof joseErrors.JWTClaimValidationFailed || error instanceof joseErrors.JWTExpired) {
      return { payload: error.payload }
    }
    return { reason: joseReason(error) }
  }
}

interface ClaimCheck {
  check: string
  reason: WorkloadRejectReason
  /** Undefined when the check passes, else what failed (never the claim's value). */
  fails: () => string | undefined
}

/** The claim checks of one entry, in order (RFC 7519 §4.1, RFC 7523 §3 as far as platform tokens go). */
function claimChecks(deps: FederationDeps, entry: TrustEntry, payload: JWTPayload, now: number): ClaimCheck[] {
  const tolerance = deps.clockTolerance
  const { aud, exp, nbf, iat, sub } = payload
  const audience = entry.audience ?? deps.issuer
  const checks: ClaimCheck[] = [
    {
      // RFC 7519 §4.1.3: `aud` is a string or an array of strings, one of which must be ours.
      check: 'aud',
      reason: 'aud_invalid',
      fails: () => {
        const ok = typeof aud === 'string' ? aud === audience : Array.isArray(aud) && aud.includes(audience)
        return ok ? undefined : `aud does not contain ${audience}`
      },
    },
    {
      check: 'exp',
      reason: 'exp_missing',
      fails: () => (isTime(exp) ? undefined : 'no numeric exp'),
    },
    {
      // RFC 7519 §4.1.4.
      check: 'expired',
      reason: 'expired',
      fails: () => (!isTime(exp) || exp > now - tolerance ? undefined : `expired ${now - exp} s ago`),
    },
    {
      // RFC 7519 §4.1.5.
      check: 'nbf',
      reason: 'nbf_in_future',
      fails: () => (nbf === undefined || (isTime(nbf) && nbf <= now + tolerance) ? undefined : 'nbf in the future'),
    },
    {
      check: 'iat',
      reason: 'iat_missing',
      fails: () => (isTime(iat) ? undefined : 'no numeric iat'),
    },
    {
      check: 'iat_not_future',
      reason: 'iat_in_future',
      fails: () => (!isTime(iat) || iat <= now + tolerance ? undefined : 'iat in the future'),
    },
    {
      check: 'max_token_age',
      reason: 'too_old',
      fails: () =>
        !isTime(iat) || now - iat <= entry.max_token_age + tolerance
          ? undefined
          : `issued ${now - iat} s ago, more than ${entry.max_token_age}`,
    },
    {
      check: 'subject',
      reason: 'subject_mismatch',
      fails: () =>
        typeof sub === 'string' && glob(entry.subject)(sub) ? undefined : `sub does not match ${entry.subject}`,
    },
  ]
  for (const [path, pattern] of Object.entries(entry.claims)) {
    checks.push({
      check: `claim:${path}`,
      reason: 'claim_mismatch',
      fails: () => {
        const text = claimText(claimAt(payload, path))
        return text !== undefined && glob(pattern)(text) ? undefined : `${path} does not match ${pattern}`
      },
    })
  }
  return checks
}

/** Every check of one candidate entry: keys, signature, claims, then the single-use `jti`. */
async function judgeEntry(
  deps: FederationDeps,
  entry: TrustEntry,
  assertion: string,
  kid: string,
  run: Run,
): Promise<EntryOutcome> {
  const record = (check: string, ok: boolean, detail?: string) =>
    run.record({ entry: entry.id, check, ok, ...(detail !== undefined && { detail }) })

  let set: JwkSet
  try {
    set = await deps.keys.forEntry(entry).setFor(kid)
  } catch (error) {
    if (!(error instanceof BearerError)) throw error
    if (error.status === 503) {
      const retryAfter = error.retryAfter ?? 1
      record('keys', false, `keys unavailable, retry after ${retryAfter} s`)
      return { kind: 'unavailable', retryAfter, cause: error }
    }
    record('keys', false, 'no key with this kid')
    return { kind: 'rejected', reason: 'unknown_key' }
  }
  record('keys', true)

  // Read after the key lookup, so a slow fetch does not age the token.
  const now = Math.floor(deps.clock())
  const tolerance = deps.clockTolerance
  const verified = await verifiedPayload(assertion, set, now, tolerance)
  if ('reason' in verified) {
    record('signature', false, verified.reason)
    return { kind: 'rejected', reason: verified.reason }
  }
  record('signature', true)
  const { payload } = verified

  let first: WorkloadRejectReason | undefined
  for (const check of claimChecks(deps, entry, payload, now)) {
    const failure = check.fails()
    record(check.check, failure === undefined, failure)
    if (failure !== undefined) {
      first ??= check.reason
      if (!run.explain) break
    }
  }
  if (first !== undefined) return { kind: 'rejected', reason: first }

  // RFC 7519 §4.1.7: a `jti` authenticates once, remembered until the token could no longer pass `exp`.
  // Scoped by issuer: two platforms choosing the same `jti` never collide (nor with a client id, which
  // holds no ':').
  const { jti, exp } = payload
  if (!entry.single_use_jti) {
    record('jti', true, 'single_use_jti is off')
  } else if (jti === undefined) {
    record('jti', true, 'no jti')
  } else if (typeof jti !== 'string' || jti.length === 0 || jti.length > MAX_WORKLOAD_JTI_LENGTH) {
    record('jti', false, 'jti is not a string of 1 to 256 characters')
    return { kind: 'rejected', reason: 'jti_invalid' }
  } else if (run.explain) {
    record('jti', true, 'well formed; not recorded (explaining never uses a jti up)')
  } else if (!(await deps.replay.useOnce(entry.issuer, jti, (exp as number) + tolerance))) {
    record('jti', false, 'jti already used')
    return { kind: 'rejected', reason: 'jti_replayed' }
  } else {
    record('jti', true)
  }
  return { kind: 'accepted', claims: payload }
}

const HEADER_REASONS: Partial<Record<BearerError['reason'], WorkloadRejectReason>> = {
  alg_not_allowed: 'alg_not_allowed',
  forbidden_header: 'forbidden_header',
}

/** The one decision procedure behind both `verifyWorkloadAssertion` and `explainWorkloadAssertion`. */
async function judge(
  deps: FederationDeps,
  entries: readonly TrustEntry[],
  assertion: string,
  clientId: string | undefined,
  run: Run,
): Promise<Verdict> {
  const token = (check: string, ok: boolean, detail?: string) =>
    run.record({ entry: TOKEN_CHECKS, check, ok, ...(detail !== undefined && { detail }) })
  const refuse = (
    reason: WorkloadRejectReason,
    attempts: WorkloadAttempt[] = [],
    unverified?: Record<string, unknown>,
  ) => ({ kind: 'rejected', reason, attempts, unverified }) as const

  // RFC 7515 §7.1, capped before anything is decoded.
  if (typeof assertion !== 'string' || !isCompactJws(assertion)) {
    token('format', false, `not a canonical compact JWS of at most ${MAX_WORKLOAD_ASSERTION_LENGTH} characters`)
    return refuse('format')
  }
  token('format', true)
  const unverified = decodePayload(assertion)

  // RFC 8725 §3.1, §3.10: `alg` on the allowlist, a `kid`, no key or key URL carried by the token itself.
  let kid: string
  try {
    kid = readProtectedHeader(assertion, SUPPORTED_ALGORITHMS).kid
  } catch (error) {
    if (!(error instanceof BearerError)) throw error
    token('header', false, error.reason)
    return refuse(HEADER_REASONS[error.reason] ?? 'format', [], unverified)
  }
  token('header', true)

  const iss = unverified?.iss
  if (typeof iss !== 'string') {
    token('payload', false, 'payload is not a JSON object with a string iss')
    return refuse('format', [], unverified)
  }
  // RFC 7519 §4.1.1: compared exactly, no normalization.
  const withIssuer = entries.filter((entry) => entry.issuer === iss)
  if (withIssuer.length === 0) {
    token('issuer', false, 'no trust entry has this issuer')
    return refuse('issuer_unknown', [], unverified)
  }
  token('issuer', true, `${withIssuer.length} trust entr${withIssuer.length === 1 ? 'y' : 'ies'}`)

  const candidates: TrustEntry[] = []
  const attempts: WorkloadAttempt[] = []
  for (const entry of withIssuer) {
    if (clientId === undefined) {
      run.record({ entry: entry.id, check: 'client', ok: true, detail: `clients: ${entry.clients.join(', ')}` })
      candidates.push(entry)
    } else if (entry.clients.includes(clientId)) {
      run.record({ entry: entry.id, check: 'client', ok: true })
      candidates.push(entry)
    } else {
      run.record({ entry: entry.id, check: 'client', ok: false, detail: `does not map to ${clientId}` })
      attempts.push({ entry: entry.id, reason: 'client_not_mapped' })
    }
  }
  if (candidates.length === 0) return refuse('client_not_mapped', attempts, unverified)

  let unavailable: { entry: string; retryAfter: number; cause: unknown } | undefined
  const tried: WorkloadAttempt[] = []
  for (const entry of candidates) {
    const outcome = await judgeEntry(deps, entry, assertion, kid, run)
    if (outcome.kind === 'accepted') return { kind: 'accepted', entry, claims: outcome.claims }
    if (outcome.kind === 'unavailable') {
      if (unavailable === undefined || outcome.retryAfter < unavailable.retryAfter) {
        unavailable = { entry: entry.id, retryAfter: outcome.retryAfter, cause: outcome.cause }
      }
    } else {
      tried.push({ entry: entry.id, reason: outcome.reason })
    }
  }
  // An entry that could not be judged might have accepted: the answer is "try again", never a refusal.
  if (unavailable !== undefined) return { kind: 'unavailable', ...unavailable }
  return refuse((tried[0] as WorkloadAttempt).reason, [...tried, ...attempts], unverified)
}

const silent: Run = { explain: false, record: () => {} }

/**
 * Verifies a workload's platform JWT for `clientId` against `entries`; returns the entry that accepted it
 * and the verified claims.
 *
 * In order: a canonical compact JWS of at most 16 KiB (RFC 7515 §7.1); the protected header (`alg` on
 * the asymmetric allowlist, a well-formed `kid`, no `jku`/`x5u`/`jwk`/`x5c`/`crit`/`b64`: keys come from
 * the trust entry, never the token, RFC 8725 §3.10); the candidate entries, those whose `issuer` equals
 * the unverified `iss` exactly and whose `clients` hold `clientId`. Then, per candidate in file order,
 * until one passes: the key by `kid` from the entry's key source, the signature (nothing else in the token
 * is trusted before it verified), `aud` containing the entry's audience (default `deps.issuer`), `exp`
 * required and not past, `nbf` and `iat` not in the future, `iat` required and at most `max_token_age`
 * old (all with `clockTolerance`), `sub` matching `subject`, each `claims` condition matching, and last
 * the `jti`, used once when `single_use_jti` (scope: the issuer; kept until `exp` + tolerance).
 *
 * Throws `WorkloadRejected` when no candidate passes, and `WorkloadKeysUnavailable` when none passed and
 * the keys of at least one could not be had (it might have passed). Whatever `deps.replay` throws
 * propagates unchanged: a server-side failure, to be answered 503.
 */
export async function verifyWorkloadAssertion(
  deps: FederationDeps,
  entries: readonly TrustEntry[],
  assertion: string,
  clientId: string,
): Promise<{ entry: TrustEntry; claims: JWTPayload }> {
  const verdict = await judge(deps, entries, assertion, clientId, silent)
  if (verdict.kind === 'accepted') return { entry: verdict.entry, claims: verdict.claims }
  if (verdict.kind === 'unavailable')
    throw new WorkloadKeysUnavailable(verdict.entry, verdict.retryAfter, verdict.cause)
  throw new WorkloadRejected(verdict.reason, {
    entry: verdict.attempts[0]?.entry,
    attempts: verdict.attempts,
    ...namesOf(verdict.unverified),
  })
}

/** `iss`, `sub` and `aud` of an unverified payload, cut for a log line; never the rest of it. */
function namesOf(payload: Record<string, unknown> | undefined): {
  iss?: string
  sub?: string
  aud?: string | string[]
} {
  const aud = payload?.aud
  return {
    iss: cut(payload?.iss),
    sub: cut(payload?.sub),
    aud: Array.isArray(aud)
      ? aud
          .slice(0, MAX_LOGGED_AUDIENCES)
          .map(cut)
          .filter((value) => value !== undefined)
      : cut(aud),
  }
}

/** The names an operator needs to tell which assertion was refused (unverified): `iss`, `sub`, `aud`. */
export function loggedNames(assertion: string): { iss?: string; sub?: string; aud?: string | string[] } {
  if (typeof assertion !== 'string' || !isCompactJws(assertion)) return {}
  return namesOf(decodePayload(assertion))
}

/**
 * The checks of `verifyWorkloadAssertion`, each verdict recorded, for the offline `trust -- test` command.
 * Without `clientId`, every entry of the issuer is a candidate. Unlike verification, every claim check of
 * an entry is run after a failure (the first failure still decides), and the `jti` is checked for form
 * but never recorded in `deps.replay`.
 */
export async function explainWorkloadAssertion(
  deps: FederationDeps,
  entries: readonly TrustEntry[],
  assertion: string,
  clientId?: string,
): Promise<{ ok: boolean; entry?: string; checks: WorkloadCheck[] }> {
  const checks: WorkloadCheck[] = []
  const verdict = await judge(deps, entries, assertion, clientId, {
    explain: true,
    record: (check) => checks.push(check),
  })
  if (verdict.kind === 'accepted') return { ok: true, entry: verdict.entry.id, checks }
  return { ok: false, checks }
}
