import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { Clock } from '../clock.js'
import type { Denylist } from '../denylist/denylist.js'
import { removeFile, withFileLock } from '../storage/atomic-file.js'
import type { SigningAlg } from './algorithms.js'
import { generateKeyRecord, type KeyRecord, type Tombstone } from './key-file.js'
import { keyTimelines, type KeyState, type KeyTimes } from './key-states.js'
import { keysDirAccessProblem, readKeysDir, rewriteKeyFile, writeKeyRecord, type KeysDirContents } from './keys-dir.js'

/**
 * The signing-key rotation policy, as `keys list|rotate|prune|revoke` apply it to KEYS_DIR (OIDC
 * Core §10.1.1; RFC 7517 §5 for the published set). Every change is a new file or an atomic
 * rewrite, under one lock, and the servers pick it up within a second (or on SIGHUP); the states
 * follow from the timestamps written here (see key-states.ts):
 * - rotate: a key of the signing algorithm is scheduled to sign after the activation delay, so
 *   every verifier's JWKS cache has fetched it first; `immediate` makes it sign at once. Either
 *   way the key promoted is, when possible, one that has long been published.
 * - one published, unscheduled standby key of the signing algorithm is kept at all times, so an
 *   emergency rotation switches to a key verifiers already hold;
 * - prune removes keys whose last token has expired, and tombstones whose tokens have;
 * - revoke unpublishes a compromised key at once (a tombstone keeps its metadata), moves signing
 *   to another key if it was signing, and has its tokens refused through the denylist until the
 *   last of them would have expired.
 * The planning functions are pure; the file operations below them take the clock as a dependency.
 */

/** KEYS_DIR and what the rules need of the configuration. */
export interface KeysDirSettings {
  dir: string
  passphrase?: string | undefined
  /** How long a retired key stays published and a revoked key's tokens stay refused (keyRetention). */
  retention: number
  /** KEY_PUBLISH_MIN: how long each server publishes a key before it signs with it (key-store.ts). */
  publishMin: number
}

export interface RotationDeps {
  clock: Clock
  /** Something the operator should know that does not stop the command. */
  warn(message: string): void
}

/** A key as the rotation rules see it. */
export interface RotationKey extends KeyTimes {
  alg: SigningAlg
}

/** A key in `keys list`: its state now (as the files give it) and the times that decide it. */
export interface ListedKey {
  kid: string
  alg: SigningAlg
  state: KeyState
  created: number
  activates: number | null
  /**
   * The earliest instant a server may sign with it: `activates`, or `created` + KEY_PUBLISH_MIN when
   * later, since no server published it before it was created. A server that first sees the file
   * later (a GitOps sync) signs with it only KEY_PUBLISH_MIN after that; only the server knows when
   * (it logs it). Null for a standby key.
   */
  signsFrom: number | null
  retired: number | null
  unpublishes: number | null
}

/** A revoked key in `keys list`: when it was revoked and when its tombstone may go. */
export interface ListedTombstone {
  kid: string
  alg: SigningAlg
  revoked: number
  prunable: number
}

export interface KeyListing {
  /** KEY_PUBLISH_MIN, which `signsFrom` counts with. */
  publishMin: number
  keys: ListedKey[]
  revoked: ListedTombstone[]
}

/** Until when a key revoked at `revoked` stays denylisted, and its tombstone kept: its last token's end. */
export const revocationEnd = (revoked: number, retention: number) => revoked + retention

/** The earliest instant a server may sign with `key` (ListedKey.signsFrom). */
export const earliestSigning = (key: KeyTimes, publishMin: number) =>
  key.activates === null ? null : Math.max(key.activates, key.created + publishMin)

/** Every key with its state at `now`, oldest first; then every tombstone. */
export function describeKeys(
  contents: { records: readonly RotationKey[]; tombstones: readonly Tombstone[] },
  now: number,
  settings: Pick<KeysDirSettings, 'retention' | 'publishMin'>,
): KeyListing {
  const { retention, publishMin } = settings
  const timelines = new Map(keyTimelines(contents.records, now, retention).map((t) => [t.kid, t]))
  return {
    publishMin,
    keys: contents.records
      .flatMap((r) => {
        const timeline = timelines.get(r.kid)
        if (!timeline) return [] // keyTimelines has one for every key
        const { state, retired, unpublishes } = timeline
        const { kid, alg, created, activates } = r
        return [
          { kid, alg, state, created, activates, signsFrom: earliestSigning(r, publishMin), retired, unpublishes },
        ]
      })
      .sort((a, b) => a.created - b.created || (a.kid < b.kid ? -1 : 1)),
    revoked: contents.tombstones.map((t) => ({
      kid: t.kid,
      alg: t.alg,
      revoked: t.revoked,
      prunable: revocationEnd(t.revoked, retention),
    })),
  }
}

/**
 * The algorithm of the most recently created key: after a rotation to EdDSA, a later rotation
 * that names no algorithm continues the migration instead of undoing it.
 */
export function newestAlg(keys: readonly RotationKey[]): SigningAlg | undefined {
  return [...keys].sort((a, b) => b.created - a.created)[0]?.alg
}

/**
 * When a rotation at `now` asks the new key to sign. Routine: after `delay`, once every verifier's
 * cache has had time to fetch it (RFC 7517 §5: a verifier looks keys up in the set it holds), and
 * never sooner than servers would sign with it anyway (`publishMin`, counted from now: the earliest
 * they can publish it), so that the file says when it signs. Immediate: now.
 */
export const requestedActivation = (now: number, delay: number, immediate: boolean, publishMin = 0) =>
  immediate ? now : now + Math.max(delay, publishMin)

/**
 * The key of `alg` to promote for an activation requested at `requested`, or undefined when a new
 * one must be made: the one published longest. Waiting is read from the times themselves
 * (keyTimelines would call a lone standby "current", its fallback, once revoke has left the
 * current key out). A routine rotation takes only a standby key and leaves keys already scheduled
 * alone (rotating twice schedules twice); an immediate one also takes a scheduled key.
 */
export function waitingKey<K extends RotationKey>(
  keys: readonly K[],
  alg: SigningAlg,
  now: number,
  requested: number,
): K | undefined {
  const immediate = requested === now
  return keys
    .filter((k) => k.alg === alg && (k.activates === null || (immediate && k.activates > now)))
    .sort((a, b) => a.created - b.created)[0]
}

/**
 * The second `chosen` activates at for a request of `requested`: that second, or the first later
 * one that follows every key already active and that no other key activates at. Two keys
 * activating in the same second are told apart by creation time and kid, which could keep another
 * key signing instead of the one reported (three immediate rotations within one second did).
 */
export function activationSecond(keys: readonly KeyTimes[], chosen: KeyTimes | undefined, requested: number): number {
  const others = keys.flatMap((k) => (k === chosen || k.activates === null ? [] : [k.activates]))
  let activates = Math.max(requested, ...others.filter((t) => t <= requested).map((t) => t + 1))
  while (others.includes(activates)) activates++
  return activates
}

/**
 * What keeps exactly one standby key of the signing algorithm `alg`: the standby keys of another
 * algorithm (they never signed anything) to remove after an algorithm migration, and whether a
 * new standby key is needed.
 */
export function standbyChanges<K extends RotationKey>(
  keys: readonly K[],
  alg: SigningAlg,
): { remove: K[]; create: boolean } {
  const standby = keys.filter((k) => k.activates === null)
  return { remove: standby.filter((k) => k.alg !== alg), create: !standby.some((k) => k.alg === alg) }
}

/**
 * The kids `prune` removes at `now`: expired keys (retired for longer than the retention, so every
 * token they signed has expired) and tombstones whose revocation has run its course.
 */
export function prunableKids(
  contents: { records: readonly KeyTimes[]; tombstones: readonly Tombstone[] },
  now: number,
  retention: number,
): string[] {
  const expired = keyTimelines(contents.records, now, retention)
    .filter((t) => t.state === 'expired')
    .map((t) => t.kid)
  const spent = contents.tombstones.filter((t) => revocationEnd(t.revoked, retention) <= now).map((t) => t.kid)
  return [...expired, ...spent]
}

/** KEYS_DIR for a command: a missing directory holds no keys; a file that cannot be used stops the command. */
export async function readKeysForCommand(settings: KeysDirSettings): Promise<KeysDirContents> {
  const contents = await readKeysDir(settings.dir, settings.passphrase).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return { records: [], tombstones: [], problems: [], exposed: [], unencrypted: [] }
    throw error
  })
  if (contents.problems.length > 0) {
    throw new Error(`cannot use KEYS_DIR: ${contents.problems.map((p) => `${p.file}: ${p.problem}`).join('; ')}`)
  }
  return contents
}

/**
 * Read-modify-write of KEYS_DIR under one lock, so concurrent commands never interleave. Refused
 * in a directory someone else can write (the server would refuse to load it too), and when it is
 * not ours: files written here (0600) would be unreadable to the server's user.
 */
export async function withKeysDirLock<T>(
  settings: KeysDirSettings,
  change: (contents: KeysDirContents) => Promise<T>,
): Promise<T> {
  await mkdir(settings.dir, { recursive: true, mode: 0o700 })
  const access = await keysDirAccessProblem(settings.dir)
  if (access) throw new Error(access.message)
  return withFileLock(join(settings.dir, '.keys'), async () => change(await readKeysForCommand(settings)))
}

/** Every key and tombstone with its state now. Listing only reads; it still warns of why servers would refuse the directory. */
export async function listKeys(settings: KeysDirSettings, deps: RotationDeps): Promise<KeyListing> {
  const access = await keysDirAccessProblem(settings.dir).catch(() => undefined)
  if (access) deps.warn(access.message)
  return describeKeys(await readKeysForCommand(settings), deps.clock(), settings)
}

export interface RotateRequest {
  /** The algorithm to sign with; by default the newest key's, else `defaultAlg`. */
  alg?: SigningAlg | undefined
  defaultAlg: SigningAlg
  /** KEY_ACTIVATION_DELAY: how long a routine rotation publishes the key before it signs. */
  activationDelay: number
  /** Sign with the new key now (a suspected compromise, or a test). */
  immediate: boolean
}

export interface RotateResult extends KeyListing {
  rotated: { kid: string; alg: SigningAlg; activates: number }
}

/** Schedules the next signing key (see the module comment) and restores the standby key. */
export async function rotateKeys(
  settings: KeysDirSettings,
  deps: RotationDeps,
  request: RotateRequest,
): Promise<RotateResult> {
  return withKeysDirLock(settings, async (contents) => {
    const now = deps.clock()
    const alg = request.alg ?? newestAlg(contents.records) ?? request.defaultAlg
    const requested = requestedActivation(now, request.activationDelay, request.immediate, settings.publishMin)
    if (!request.immediate && request.activationDelay < settings.publishMin) {
      deps.warn(
        `KEY_ACTIVATION_DELAY (${request.activationDelay}) is shorter than KEY_PUBLISH_MIN (${settings.publishMin}); the new key activates after KEY_PUBLISH_MIN, when servers would first sign with it`,
      )
    }
    const rotated = await promoteOrCreate(settings, deps, contents.records, now, alg, requested)
    await ensureStandby(settings, await readKeysForCommand(settings), now, alg)
    return {
      rotated: { kid: rotated.kid, alg, activates: rotated.activates },
      ...describeKeys(await readKeysForCommand(settings), now, settings),
    }
  })
}

/** Removes the files of expired keys and spent tombstones; returns their kids. */
export async function pruneKeys(settings: KeysDirSettings, deps: Pick<RotationDeps, 'clock'>): Promise<string[]> {
  return withKeysDirLock(settings, async (contents) => {
    const pruned = prunableKids(contents, deps.clock(), settings.retention)
    for (const kid of pruned) await removeFile(join(settings.dir, `${kid}.json`))
    return pruned
  })
}

export interface RevokeResult<D> {
  kid: string
  /** When the key was revoked: now, or the earlier revocation of a key already revoked. */
  revoked: number
  /** Until when its tokens are refused. */
  until: number
  /** What `denylistKey` returned. */
  denylisted: D
}

/**
 * Revokes a compromised key: its file becomes a tombstone (no private key, not published); if it
 * was signing, another key signs from now, by preference one verifiers already have; a standby
 * key is restored. Then `denylistKey` refuses the tokens it signed until the last of them would
 * have expired. A key already revoked is only denylisted again (the write is idempotent), so a
 * failed denylist write is retried by running the command again.
 */
export async function revokeKey<D>(
  settings: KeysDirSettings,
  deps: RotationDeps,
  kid: string,
  denylistKey: (kid: string, until: number) => Promise<D>,
): Promise<RevokeResult<D>> {
  const now = deps.clock()
  const revoked = await withKeysDirLock(settings, async (contents) => {
    const record = contents.records.find((r) => r.kid === kid)
    const tombstone = contents.tombstones.find((t) => t.kid === kid)
    if (!record && !tombstone) throw new Error(`no key ${kid} in ${settings.dir}`)
    if (record) {
      const timeline = keyTimelines(contents.records, now, settings.retention).find((t) => t.kid === kid)
      if (timeline?.state === 'current') {
        const others = contents.records.filter((r) => r.kid !== kid)
        await promoteOrCreate(settings, deps, others, now, record.alg, now)
      }
      const { privateKey: _dropped, ...metadata } = record.stored
      await rewriteKeyFile(settings.dir, { ...metadata, revoked: now })
      await ensureStandby(settings, await readKeysForCommand(settings), now, record.alg)
    }
    return tombstone?.revoked ?? now
  })
  const until = revocationEnd(revoked, settings.retention)
  return { kid, revoked, until, denylisted: await denylistKey(kid, until) }
}

/**
 * Refuses the tokens of every revoked key through the denylist (by kid) until its revocation ends.
 * `keys revoke` writes this itself; every server repeats it whenever it loads the keys, which also
 * covers an in-memory denylist. Idempotent. Returns the kids it could not write (Redis down, or not
 * connected yet at start-up).
 */
export async function denylistRevokedKeys(
  denylist: Pick<Denylist, 'revokeKey'>,
  tombstones: readonly Tombstone[],
  retention: number,
): Promise<string[]> {
  const failed: string[] = []
  for (const tombstone of tombstones) {
    await denylist
      .revokeKey(tombstone.kid, revocationEnd(tombstone.revoked, retention))
      .catch(() => failed.push(tombstone.kid))
  }
  return failed
}

/**
 * Makes a key of `alg` sign from `requested` (see waitingKey and activationSecond): rewrites the
 * chosen key's schedule, or writes a new key when none was waiting. Returns the key and when it
 * activates.
 */
async function promoteOrCreate(
  settings: KeysDirSettings,
  deps: RotationDeps,
  records: readonly KeyRecord[],
  now: number,
  alg: SigningAlg,
  requested: number,
): Promise<{ kid: string; activates: number }> {
  const chosen = waitingKey(records, alg, now, requested)
  const activates = activationSecond(records, chosen, requested)
  if (chosen) {
    await rewriteKeyFile(settings.dir, { ...chosen.stored, activates })
    return { kid: chosen.kid, activates }
  }
  if (requested === now) {
    deps.warn(
      `no published ${alg} key was waiting; verifiers that cached the JWKS recently will refuse the new key's tokens until they refetch it`,
    )
  }
  const record = await generateKeyRecord(alg, now, activates, settings.passphrase)
  await writeKeyRecord(settings.dir, record)
  return { kid: record.kid, activates }
}

/** Applies standbyChanges: removes standby keys of another algorithm, writes a new standby key if needed. */
async function ensureStandby(
  settings: KeysDirSettings,
  contents: KeysDirContents,
  now: number,
  alg: SigningAlg,
): Promise<void> {
  const { remove, create } = standbyChanges(contents.records, alg)
  for (const other of remove) await removeFile(join(settings.dir, `${other.kid}.json`))
  if (create) await writeKeyRecord(settings.dir, await generateKeyRecord(alg, now, null, settings.passphrase))
}
