import { systemClock, type Clock } from '../clock.js'
import type { Config } from '../config.js'
import { isSigningAlg, SIGNING_ALGS } from '../keys/algorithms.js'
import { keyRetention } from '../keys/key-store.js'
import {
  listKeys,
  pruneKeys,
  revokeKey,
  rotateKeys,
  type KeysDirSettings,
  type RotationDeps,
} from '../keys/rotation.js'
import {
  CliFailure,
  NO_REDIS,
  UsageError,
  cliConfig,
  isMain,
  parseFlags,
  processIo,
  runCommand,
  withRedisDenylist,
  type CliIo,
} from './cli.js'

const USAGE = `usage:
  npm run --silent keys -- list
  npm run --silent keys -- rotate [--now] [--alg ES256|EdDSA|RS256|PS256]
  npm run --silent keys -- prune
  npm run --silent keys -- revoke --kid KID
`

const settings = (config: Config): KeysDirSettings => ({
  dir: config.keysDir,
  passphrase: config.keysPassphrase,
  retention: keyRetention(config.clockTolerance),
  publishMin: config.keyPublishMin,
})

/**
 * Signing-key administration in KEYS_DIR: flags in, one JSON document out. The rotation policy
 * (scheduled and immediate rotation, the standby key, prune, revoke) is in src/keys/rotation.ts.
 */
export async function run(argv: string[], io: CliIo = processIo, clock: Clock = systemClock): Promise<number> {
  const deps: RotationDeps = { clock, warn: (message) => io.stderr(`warning: ${message}\n`) }
  return runCommand(
    io,
    USAGE,
    {
      async list(args) {
        parseFlags(args, {})
        return listKeys(settings(cliConfig(io)), deps)
      },

      async rotate(args) {
        const flags = parseFlags(args, { now: { type: 'boolean' }, alg: { type: 'string' } })
        const { alg } = flags
        if (alg !== undefined && !isSigningAlg(alg))
          throw new UsageError(`--alg must be one of ${SIGNING_ALGS.join(', ')}`)
        const config = cliConfig(io)
        return rotateKeys(settings(config), deps, {
          alg,
          defaultAlg: config.signingAlg,
          activationDelay: config.keyActivationDelay,
          immediate: flags.now ?? false,
        })
      },

      async prune(args) {
        parseFlags(args, {})
        return { pruned: await pruneKeys(settings(cliConfig(io)), deps) }
      },

      async revoke(args) {
        const { kid } = parseFlags(args, { kid: { type: 'string' } })
        if (!kid) throw new UsageError('--kid is required')
        const config = cliConfig(io)
        const revoked = await revokeKey(settings(config), deps, kid, (kid, until) =>
          denylistKey(config, kid, until, clock, io),
        )
        return { revoked: { kid, unpublished: true, denylisted: revoked.denylisted, until: revoked.until } }
      },
    },
    argv,
  )
}

/**
 * Tokens already issued with a revoked key are refused through the denylist (by kid) until the
 * last of them would have expired, at every server and every resource server on the feed. Without
 * Redis (REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES) each server denylists the tombstones it
 * loads.
 */
async function denylistKey(config: Config, kid: string, until: number, clock: Clock, io: CliIo): Promise<string> {
  const { redis } = config
  if (!redis) return `each server, on reload (in-memory denylist; ${NO_REDIS})`
  try {
    await withRedisDenylist({ ...config, redis }, clock, io, (denylist) => denylist.revokeKey(kid, until))
    return 'redis'
  } catch (error) {
    throw new CliFailure(
      `key ${kid} is unpublished, but the denylist write failed (${(error as Error).message}); run this command again when Redis is back`,
    )
  }
}

if (isMain(import.meta.url)) process.exitCode = await run(process.argv.slice(2))
