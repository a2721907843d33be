import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { systemClock, type Clock } from '../src/clock.js'
import type { Config } from '../src/config.js'
import { createRedisDenylist } from '../src/denylist/redis.js'
import { isSigningAlg, SIGNING_ALGS, type SigningAlg } from '../src/keys/algorithms.js'
import { generateKeyRecord, type KeyRecord } from '../src/keys/key-file.js'
import { keyTimelines, type KeyTimeline } from '../src/keys/key-states.js'
import { keyRetention } from '../src/keys/key-store.js'
import { keysDirAccessProblem, readKeysDir, rewriteKeyFile, writeKeyRecord, type KeysDirContents } from '../src/keys/keys-dir.js'
import { createLogger } from '../src/observability/logger.js'
import { removeFile, withFileLock } from '../src/storage/atomic-file.js'
import { CliFailure, UsageError, cliConfig, isMain, parseFlags, processIo, runCommand, waitForRedis, type CliIo } from './lib/cli.js'

const USAGE = `usage:
  npm run --silent keys -- list
  npm run --silent keys -- rotate [--now] [--alg ES256|EdDSA|RS256|PS256]
  npm run --silent keys -- prune
  npm run --silent keys -- revoke --kid KID
`

/**
 * Signing-key administration. Every change is a new file or an atomic rewrite in KEYS_DIR, under
 * a lock, and the servers pick it up within a second (or on SIGHUP). States follow from the
 * timestamps written here; see src/keys/key-states.ts.
 */
export async function run(argv: string[], io: CliIo = processIo, clock: Clock = systemClock): Promise<number> {
  return runCommand(io, USAGE, {
    async list(args) {
      parseFlags(args, {})
      const config = cliConfig(io)
      // Listing only reads; it still says why the servers refuse this directory.
      const access = await keysDirAccessProblem(config.keysDir).catch(() => undefined)
      if (access) io.stderr(`warning: ${access.message}\n`)
      return describeKeys(await readDir(config), clock(), config)
    },

    async rotate(args) {
      const flags = parseFlags(args, { now: { type: 'boolean' }, alg: { type: 'string' } })
      if (flags.alg !== undefined && !isSigningAlg(flags.alg)) throw new UsageError(`--alg must be one of ${SIGNING_ALGS.join(', ')}`)
      const config = cliConfig(io)
      return locked(config, async (contents) => {
        const now = clock()
        const alg = (flags.alg as SigningAlg | undefined) ?? newestAlg(contents) ?? config.signingAlg
        // Routine: the new key signs only after every verifier's cache has had time to fetch it.
        // --now: at once, preferring a key that has long been published (a standby or scheduled one).
        const activates = flags.now ? now : now + config.keyActivationDelay
        const rotated = await promoteOrCreate(config, contents, now, alg, activates, io)
        await ensureStandby(config, await readDir(config), now, alg)
        return { rotated: { kid: rotated.kid, alg, activates: rotated.activates }, ...describeKeys(await readDir(config), now, config) }
      })
    },

    async prune(args) {
      parseFlags(args, {})
      const config = cliConfig(io)
      return locked(config, async (contents) => {
        const now = clock()
        const retention = keyRetention(config.clockTolerance)
        const expired = keyTimelines(contents.records, now, retention).filter((t) => t.state === 'expired').map((t) => t.kid)
        const spent = contents.tombstones.filter((t) => t.revoked + retention <= now).map((t) => t.kid)
        for (const kid of [...expired, ...spent]) await removeFile(join(config.keysDir, `${kid}.json`))
        return { pruned: [...expired, ...spent] }
      })
    },

    async revoke(args) {
      const { kid } = parseFlags(args, { kid: { type: 'string' } })
      if (!kid) throw new UsageError('--kid is required')
      const config = cliConfig(io)
      const now = clock()
      const result = await locked(config, async (contents) => {
        const record = contents.records.find((r) => r.kid === kid)
        const tombstone = contents.tombstones.find((t) => t.kid === kid)
        if (!record && !tombstone) throw new CliFailure(`no key ${kid} in ${config.keysDir}`)
        if (record) {
          const timeline = keyTimelines(contents.records, now, keyRetention(config.clockTolerance)).find((t) => t.kid === kid)!
          // A compromised signing key is replaced at once, by a key verifiers already have if possible.
          if (timeline.state === 'current') {
            await promoteOrCreate(config, { ...contents, records: contents.records.filter((r) => r.kid !== kid) }, now, record.alg, now, io)
          }
          const { privateKey: _dropped, ...metadata } = record.stored
          await rewriteKeyFile(config.keysDir, { ...metadata, revoked: now })
          await ensureStandby(config, await readDir(config), now, record.alg)
        }
        return tombstone?.revoked ?? now
      })
      // Tokens already issued with the key are refused through the denylist (by kid) until the
      // last of them would have expired, at every server and every resource server on the feed.
      const until = result + keyRetention(config.clockTolerance)
      const denylisted = await denylistKey(config, kid, until, clock, io)
      if (!denylisted.ok) throw new CliFailure(denylisted.message)
      return { revoked: { kid, unpublished: true, denylisted: denylisted.where, until } }
    },
  }, argv)
}

async function readDir(config: Config): Promise<KeysDirContents> {
  const contents = await readKeysDir(config.keysDir, config.keysPassphrase).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return { records: [], tombstones: [], problems: [], exposed: [], unencrypted: [] }
    throw error
  })
  if (contents.problems.length > 0) {
    throw new CliFailure(`cannot use KEYS_DIR: ${contents.problems.map((p) => `${p.file}: ${p.problem}`).join('; ')}`)
  }
  return contents
}

/**
 * Read-modify-write of KEYS_DIR under one lock, so concurrent admin runs never interleave. Refused
 * in a directory someone else can write (the server would refuse to load it too), and when it is
 * not ours: files this run writes (0600) would be unreadable to the server's user.
 */
async function locked<T>(config: Config, change: (contents: KeysDirContents) => Promise<T>): Promise<T> {
  await mkdir(config.keysDir, { recursive: true, mode: 0o700 })
  const access = await keysDirAccessProblem(config.keysDir)
  if (access) throw new CliFailure(access.message)
  return withFileLock(join(config.keysDir, '.keys'), async () => change(await readDir(config)))
}

function describeKeys(contents: KeysDirContents, now: number, config: Config) {
  const timelines = new Map<string, KeyTimeline>(
    keyTimelines(contents.records, now, keyRetention(config.clockTolerance)).map((t) => [t.kid, t]),
  )
  return {
    keys: contents.records
      .map((r) => ({ kid: r.kid, alg: r.alg, state: timelines.get(r.kid)!.state, created: r.created, activates: r.activates, retired: timelines.get(r.kid)!.retired, unpublishes: timelines.get(r.kid)!.unpublishes }))
      .sort((a, b) => a.created - b.created || (a.kid < b.kid ? -1 : 1)),
    revoked: contents.tombstones.map((t) => ({ kid: t.kid, alg: t.alg, revoked: t.revoked, prunable: t.revoked + keyRetention(config.clockTolerance) })),
  }
}

/**
 * The algorithm of the most recently created key: after `rotate --alg EdDSA`, a later plain
 * `rotate` continues the migration instead of undoing it.
 */
function newestAlg(contents: KeysDirContents): SigningAlg | undefined {
  return [...contents.records].sort((a, b) => b.created - a.created)[0]?.alg
}

/**
 * Makes a key of `alg` sign from `requested`: the longest-published standby or scheduled key when
 * there is one (verifiers have had the most time to cache it), else a new key. Returns when it
 * activates: `requested`, or the first later second that follows every key already active and
 * that no other key activates at. Two keys activating in the same second are told apart by
 * creation time and kid, which could keep another key signing instead of the one reported (three
 * `rotate --now` within one second did).
 */
async function promoteOrCreate(config: Config, contents: KeysDirContents, now: number, alg: SigningAlg, requested: number, io: CliIo): Promise<{ kid: string; activates: number }> {
  // Waiting means not yet active, read from the times themselves: keyTimelines would call a lone
  // standby "current" (its fallback) once revoke has left the current key out.
  // A routine rotation leaves keys already scheduled alone (rotating twice schedules twice);
  // an immediate one takes whichever waiting key has been published longest.
  const immediate = requested === now
  const waiting = contents.records
    .filter((r) => r.alg === alg && (r.activates === null || (immediate && r.activates > now)))
    .sort((a, b) => a.created - b.created)
  const chosen: KeyRecord | undefined = waiting[0]
  const others = contents.records.filter((r) => r !== chosen && r.activates !== null).map((r) => r.activates!)
  let activates = Math.max(requested, ...others.filter((t) => t <= requested).map((t) => t + 1))
  while (others.includes(activates)) activates++
  if (chosen) {
    await rewriteKeyFile(config.keysDir, { ...chosen.stored, activates })
    return { kid: chosen.kid, activates }
  }
  if (requested === now) {
    io.stderr(`warning: no published ${alg} key was waiting; verifiers that cached the JWKS recently will refuse the new key's tokens until they refetch it\n`)
  }
  const record = await generateKeyRecord(alg, now, activates, config.keysPassphrase)
  await writeKeyRecord(config.keysDir, record)
  return { kid: record.kid, activates }
}

/**
 * Keeps one published, unscheduled standby key of the signing algorithm, so the next emergency
 * rotation switches to a key verifiers already hold. Standby keys of another algorithm never
 * signed anything and are removed after an algorithm migration.
 */
async function ensureStandby(config: Config, contents: KeysDirContents, now: number, alg: SigningAlg): Promise<void> {
  const standby = contents.records.filter((r) => r.activates === null)
  for (const other of standby.filter((r) => r.alg !== alg)) await removeFile(join(config.keysDir, `${other.kid}.json`))
  if (standby.some((r) => r.alg === alg)) return
  await writeKeyRecord(config.keysDir, await generateKeyRecord(alg, now, null, config.keysPassphrase))
}

async function denylistKey(config: Config, kid: string, until: number, clock: Clock, io: CliIo) {
  if (!config.redisUrl) {
    return { ok: true as const, where: 'each server, on reload (in-memory denylist; REDIS_URL is not set)' }
  }
  const log = createLogger('warn', { write: (line: string) => void io.stderr(line) })
  const denylist = createRedisDenylist({ url: config.redisUrl, keyPrefix: config.redisKeyPrefix, clock, log })
  try {
    await waitForRedis(denylist)
    await denylist.revokeKey(kid, until)
    return { ok: true as const, where: 'redis' }
  } catch (error) {
    return { ok: false as const, message: `key ${kid} is unpublished, but the denylist write failed (${(error as Error).message}); run this command again when Redis is back` }
  } finally {
    await denylist.close()
  }
}

if (isMain(import.meta.url)) process.exitCode = await run(process.argv.slice(2))
