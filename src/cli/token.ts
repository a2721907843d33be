import { systemClock, type Clock } from '../clock.js'
import { createKeyStore, keyRetention } from '../keys/key-store.js'
import { readKeysDir } from '../keys/keys-dir.js'
import { verifyOwnToken } from '../oauth/verify-token.js'
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
  npm run --silent token -- revoke --token ACCESS_TOKEN
  npm run --silent token -- revoke --jti JTI --exp EXP_EPOCH_SECONDS
`

/**
 * Incident response: revoke a token from the command line, writing the same Redis denylist the
 * servers and resource servers read. The token's signature is checked against KEYS_DIR first, so a
 * typo or a foreign token does not silently "succeed".
 */
export async function run(argv: string[], io: CliIo = processIo, clock: Clock = systemClock): Promise<number> {
  return runCommand(
    io,
    USAGE,
    {
      async revoke(args) {
        const flags = parseFlags(args, { token: { type: 'string' }, jti: { type: 'string' }, exp: { type: 'string' } })
        if ((flags.token === undefined) === (flags.jti === undefined))
          throw new UsageError('give --token, or --jti with --exp')
        if (flags.token !== undefined && flags.exp !== undefined)
          throw new UsageError('--exp goes with --jti; a token carries its own')
        if (flags.jti !== undefined && (flags.exp === undefined || !/^\d{1,12}$/.test(flags.exp))) {
          throw new UsageError('--jti needs --exp, the token expiry in epoch seconds')
        }
        if (flags.jti === '') throw new UsageError('--jti must not be empty')
        const config = cliConfig(io)
        const { redis } = config
        if (!redis) {
          throw new CliFailure(
            `${NO_REDIS}: without Redis the denylist lives inside the server process, and a script cannot reach it`,
          )
        }

        let jti = flags.jti ?? '' // with no --token, --jti is set (checked above)
        let exp = Number(flags.exp)
        if (flags.token !== undefined) {
          const { records } = await readKeysDir(config.keysDir, config.keysPassphrase)
          if (records.length === 0) throw new CliFailure(`no readable keys in ${config.keysDir}`)
          const claims = await verifyOwnToken(
            {
              keys: createKeyStore(records, clock, { retention: keyRetention(config.clockTolerance) }),
              clock,
              issuer: config.issuer,
            },
            flags.token,
            config.clockTolerance,
          )
          if (!claims)
            throw new CliFailure(
              `not a valid, unexpired token of ${config.issuer} signed by a key in ${config.keysDir}: nothing to revoke`,
            )
          ;({ jti, exp } = claims)
        }
        const until = exp + config.clockTolerance
        if (until <= clock())
          throw new CliFailure('the token has expired (beyond the clock tolerance): nothing to revoke')

        await withRedisDenylist({ ...config, redis }, clock, io, (denylist) => denylist.revokeToken(jti, until))
        return { revoked: { jti, until } }
      },
    },
    argv,
  )
}

if (isMain(import.meta.url)) process.exitCode = await run(process.argv.slice(2))
