import type { Clock } from './clock.js'
import {
  MISSING,
  clientsFileSignature,
  clientsFileWritableByOthers,
  loadClientRegistry,
} from './clients/clients-file.js'
import type { ClientRegistry } from './clients/registry.js'
import { createClientRevocationSync } from './denylist/client-revocations.js'
import type { Config } from './config.js'
import type { Deps } from './deps.js'
import { createMemoryDenylist } from './denylist/memory.js'
import type { Denylist } from './denylist/denylist.js'
import { createKeyStore, keyRetention } from './keys/key-store.js'
import {
  ensureKeys,
  keysDirAccessProblem,
  keysDirSignature,
  readKeysDir,
  type KeysDirContents,
} from './keys/keys-dir.js'
import { reloadProblem } from './keys/reload.js'
import type { Logger } from './observability/logger.js'
import { watchForChanges, type Watcher } from './storage/watch.js'
import { denylistRevokedKeys } from './keys/rotation.js'

/**
 * Loads keys and clients and assembles the dependencies. Throws (and main exits non-zero) when the
 * server could not work correctly: unreadable clients file, no usable signing key.
 */
export async function buildDeps(config: Config, log: Logger, clock: Clock): Promise<Deps> {
  const contents = await prepareKeys(config, log, clock)
  const keys = createKeyStore(contents.records, clock, { retention: keyRetention(config.clockTolerance) })
  log.info({ kid: keys.signingKey().kid, alg: keys.signingKey().alg, published: keys.size }, 'signing keys loaded')

  await warnIfClientsFileWritable(config.clientsFile, log)
  const clients = await loadClientRegistry(config.clientsFile)
  if (clients.size === 0) {
    log.warn({ file: config.clientsFile }, 'no clients registered; create one with: npm run --silent client -- create')
  } else {
    log.info({ clients: clients.size }, 'clients loaded')
  }
  const denylist = await createDenylist(config, log, clock)
  const deps: Deps = {
    config,
    clock,
    keys,
    clients,
    denylist,
    log,
    lifecycle: { shuttingDown: false },
    readiness: new Map(),
  }
  return deps
}

/**
 * KEYS_DIR made ready to serve from: created with a first key when empty (by exactly one of the
 * processes starting on it), then read. Throws when no key can sign.
 */
export async function prepareKeys(config: Config, log: Logger, clock: Clock): Promise<KeysDirContents> {
  const contents = await ensureKeys(config.keysDir, config.signingAlg, {
    clock,
    log,
    passphrase: config.keysPassphrase,
  })
  // A key that cannot be read (a wrong KEYS_PASSPHRASE, a corrupt file) stops start-up: serving
  // without it could mean signing with the wrong key or not verifying tokens still in use.
  if (contents.problems.length > 0) {
    throw new Error(
      `cannot use KEYS_DIR ${config.keysDir}: ${contents.problems.map(({ file, problem }) => `${file}: ${problem}`).join('; ')}`,
    )
  }
  if (contents.records.length === 0) throw new Error(`no usable signing key in ${config.keysDir}`)
  return contents
}

/**
 * What a cluster primary checks before it forks: the keys (made once, so that workers do not race
 * to create the first ones) and the clients file, so that a mistake stops start-up with its
 * message instead of every worker failing in turn.
 */
export async function checkBeforeFork(config: Config, log: Logger, clock: Clock): Promise<void> {
  await prepareKeys(config, log, clock)
  await loadClientRegistry(config.clientsFile)
}

/** The problems /readyz reports (see Deps.readiness), created for deps built without them. */
const readiness = (deps: Deps) => (deps.readiness ??= new Map())

/** Whoever can write CLIENTS_FILE, or its directory, can register clients: a warning, not a refusal. */
async function warnIfClientsFileWritable(path: string, log: Logger): Promise<void> {
  for (const exposed of await clientsFileWritableByOthers(path)) {
    log.warn(
      { file: path, path: exposed.path, mode: exposed.mode },
      'CLIENTS_FILE or its directory is writable by others, who could register clients; run chmod o-w on it',
    )
  }
}

/**
 * A private key readable by others is reported as an error at every load (group-readable, 0640 or
 * 0440, is fine: a group the operator chose), and one stored in clear although KEYS_PASSPHRASE is
 * set as a warning (rotate it out to get rid of it).
 */
function reportExposedKeys(contents: KeysDirContents, log: Logger): void {
  for (const file of contents.exposed) {
    log.error({ file }, 'key file is readable by others; run chmod 600 on it')
  }
  for (const file of contents.unencrypted) {
    log.warn({ file }, 'private key is stored unencrypted although KEYS_PASSPHRASE is set; rotate it out')
  }
}

/**
 * Hot reload of KEYS_DIR: within `intervalMs` of a change (or at once on SIGHUP), all or nothing.
 * A reload that would break signing or verification is refused and logged; the last good keys stay.
 * So is every reload while others can write the directory (or it is not ours), and then /readyz
 * answers 503 until that is fixed.
 * The first check runs at once (it denylists revoked keys); a denylist write that fails keeps the
 * new keys in force and fails the reload, so it is tried again at every check until it lands.
 */
export async function watchKeys(deps: Deps, intervalMs = 1000): Promise<Watcher> {
  const dir = deps.config.keysDir
  const watcher = watchForChanges({
    name: dir,
    intervalMs,
    log: deps.log,
    initial: undefined,
    signature: () => keysDirSignature(dir),
    reload: async () => {
      // Whoever can write KEYS_DIR can add a key that signs: nothing in it is loaded until fixed.
      const access = await keysDirAccessProblem(dir)
      if (access) {
        readiness(deps).set('KEYS_DIR', access.summary)
        throw new Error(access.message)
      }
      readiness(deps).delete('KEYS_DIR')
      const contents = await readKeysDir(dir, deps.config.keysPassphrase)
      const problem = reloadProblem(deps.keys, contents)
      if (problem) throw new Error(problem)
      reportExposedKeys(contents, deps.log)
      deps.keys = createKeyStore(contents.records, deps.clock, { retention: keyRetention(deps.config.clockTolerance) })
      deps.log.info({ kid: deps.keys.signingKey().kid, published: deps.keys.size }, 'signing keys reloaded')
      const failed = await denylistRevokedKeys(
        deps.denylist,
        contents.tombstones,
        keyRetention(deps.config.clockTolerance),
      )
      if (failed.length > 0)
        throw new Error(`keys applied, but revoked key ${failed.join(', ')} is not in the denylist yet; retrying`)
    },
  })
  await watcher.check()
  return watcher
}

/**
 * Redis when REDIS_URL is set, and then only Redis: an unreachable Redis makes revocation and
 * introspection answer 503 until it is back, never a silent switch to memory that would split
 * state between instances (README, Revocation). The Redis client is loaded only then: ioredis and its
 * dependencies are about 10 MiB of resident memory that a process without REDIS_URL never uses.
 */
export async function createDenylist(config: Config, log: Logger, clock: Clock): Promise<Denylist> {
  if (config.redisUrl) {
    log.info({ keyPrefix: config.redisKeyPrefix }, 'denylist: Redis')
    const { createRedisDenylist } = await import('./denylist/redis.js')
    return createRedisDenylist({ url: config.redisUrl, keyPrefix: config.redisKeyPrefix, clock, log })
  }
  log.warn(
    'denylist: in memory, for a single instance only; revocations are lost on restart. Set REDIS_URL to share them.',
  )
  return createMemoryDenylist({ clock })
}

/**
 * Hot reload of the client registry: a changed CLIENTS_FILE applies within `intervalMs` (or at
 * once through `check()`, called on SIGHUP). A broken file is logged and the last good registry
 * stays in force; requests in flight keep the registry they started with. So does a file that was
 * loaded and then vanished (a slip, not a way to remove every client: that is {"clients": []}),
 * and /readyz answers 503 until it is back. A file missing from the start means no clients yet.
 */
export async function watchClients(deps: Deps, intervalMs = 1000): Promise<Watcher> {
  const path = deps.config.clientsFile
  // Deleted clients and revoked client tokens go to the denylist at every load, this first one
  // included; a failed write fails the load, so it is retried at every check until it lands. The
  // first load is the registry buildDeps read, and the file as it was then; deps built otherwise
  // (tests) have the file read now, for the denylist only.
  const revocations = createClientRevocationSync(deps)
  let first: ClientRegistry | undefined
  try {
    first = deps.clients.source !== undefined ? deps.clients : await loadClientRegistry(path)
  } catch {
    // A broken file: the first check reads it again, and logs why it is refused.
  }
  let loaded = first?.source !== MISSING
  const settled =
    first !== undefined &&
    (await revocations.apply(first).then(
      () => true,
      () => false,
    ))
  return watchForChanges({
    name: path,
    intervalMs,
    log: deps.log,
    initial: settled ? first?.source : undefined,
    signature: () => clientsFileSignature(path),
    reload: async () => {
      const clients = await loadClientRegistry(path)
      const missing = clients.source === MISSING
      if (missing && loaded) {
        readiness(deps).set('CLIENTS_FILE', 'CLIENTS_FILE is missing')
        throw new Error(
          `${path} was loaded and is gone; the clients loaded last stay in force until it is back (to remove every client, write {"clients": []})`,
        )
      }
      readiness(deps).delete('CLIENTS_FILE')
      loaded ||= !missing
      await warnIfClientsFileWritable(path, deps.log)
      // The registry replaced is released here (the denylist sync moves on to this one below).
      deps.clients = clients
      deps.log.info({ clients: clients.size }, 'clients reloaded')
      await revocations.apply(clients)
    },
  })
}
