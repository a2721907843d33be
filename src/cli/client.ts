import {
  createClientInFile,
  deleteClientFromFile,
  describeClient,
  rotateClientSecretInFile,
  updateClientInFile,
} from '../clients/admin.js'
import { readClientsFile } from '../clients/clients-file.js'
import { CLIENT_ID, SCOPE_TOKEN } from '../clients/registry.js'
import { MAX_GRACE } from '../clients/rotation.js'
import { generateSecret } from '../clients/secret.js'
import { systemClock, type Clock } from '../clock.js'
import type { Config } from '../config.js'
import { clientRevocationLifetime } from '../denylist/client-revocations.js'
import {
  CliFailure,
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
  npm run --silent client -- create --id ID --scope "a b" --audience AUD [--audience AUD2] [--ttl SECONDS] [--resource-server]
  npm run --silent client -- list
  npm run --silent client -- delete --id ID
  npm run --silent client -- rotate-secret --id ID [--grace SECONDS | --revoke-tokens]
  npm run --silent client -- update --id ID [--scope "a b"] [--audience AUD ...] [--ttl SECONDS] [--resource-server | --no-resource-server]
`

/** What `create` and `update` both take. */
const CLIENT_FLAGS = {
  id: { type: 'string' },
  scope: { type: 'string' },
  audience: { type: 'string', multiple: true },
  ttl: { type: 'string' },
  'resource-server': { type: 'boolean' },
} as const

function parseTtl(value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  const ttl = /^\d{1,4}$/.test(value) ? Number(value) : Number.NaN // plain decimal digits, like the settings
  if (!Number.isInteger(ttl) || ttl < 60 || ttl > 3600) throw new UsageError('--ttl must be an integer from 60 to 3600')
  return ttl
}

function parseScopes(value: string): string[] {
  const scopes = [...new Set(value.split(' ').filter(Boolean))]
  if (scopes.length === 0) throw new UsageError('--scope needs at least one scope')
  if (!scopes.every((s) => SCOPE_TOKEN.test(s)))
    throw new UsageError('--scope has characters RFC 6749 section 3.3 does not allow')
  return scopes
}

function parseGrace(value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  const grace = /^\d{1,7}$/.test(value) ? Number(value) : Number.NaN
  if (!(grace <= MAX_GRACE)) throw new UsageError(`--grace must be an integer number of seconds from 0 to ${MAX_GRACE}`)
  return grace
}

function requireId(id: string | undefined): string {
  if (id === undefined) throw new UsageError('--id is required')
  if (!CLIENT_ID.test(id)) throw new UsageError('--id must match ^[A-Za-z0-9._-]{3,64}$')
  return id
}

/**
 * Every token issued to the client up to `revokedAt` is refused until the longest-lived of them
 * has expired. With REDIS_URL the entry is written here, for every server and resource server at
 * once; every server also writes it when it loads CLIENTS_FILE (the only way into an in-memory
 * denylist). `iat` has whole seconds, so a token issued in the very second `revokedAt` is refused
 * too. Throws when the Redis write fails.
 */
async function denylistClient(config: Config, clientId: string, revokedAt: number, clock: Clock, io: CliIo) {
  const until = revokedAt + clientRevocationLifetime(config.clockTolerance)
  const { redisUrl } = config
  if (!redisUrl) {
    return {
      revoked_at: revokedAt,
      until,
      denylisted: 'each server, when it loads CLIENTS_FILE (in-memory denylist; REDIS_URL is not set)',
    }
  }
  await withRedisDenylist({ ...config, redisUrl }, clock, io, (denylist) =>
    denylist.revokeClient(clientId, revokedAt, until),
  )
  return { revoked_at: revokedAt, until, denylisted: 'redis' }
}

/**
 * Client administration in CLIENTS_FILE: flags in, one JSON document out. The rules (a secret
 * shown once, rotation with a grace period, tokens ended on delete) are in src/clients/admin.ts.
 */
export async function run(argv: string[], io: CliIo = processIo, clock: Clock = systemClock): Promise<number> {
  const file = () => cliConfig(io).clientsFile
  return runCommand(
    io,
    USAGE,
    {
      async create(args) {
        const flags = parseFlags(args, CLIENT_FLAGS)
        const id = requireId(flags.id)
        const scopes = parseScopes(flags.scope ?? '')
        const audiences = [...new Set(flags.audience ?? [])]
        if (audiences.length === 0) throw new UsageError('--audience is required')
        const accessTokenTtl = parseTtl(flags.ttl)
        const resourceServer = flags['resource-server'] ?? false
        const { clientSecret } = await createClientInFile(
          file(),
          id,
          { scopes, audiences, accessTokenTtl, resourceServer },
          { clock, generateSecret },
        )
        io.stderr(`created client ${id}; the secret is shown only now, store it safely\n`)
        return { client_id: id, client_secret: clientSecret }
      },

      async list(args) {
        parseFlags(args, {})
        return { clients: (await readClientsFile(file())).clients.map(describeClient) }
      },

      async delete(args) {
        const id = requireId(parseFlags(args, { id: { type: 'string' } }).id)
        const config = cliConfig(io)
        const tokensRevoked = await deleteClientFromFile(config.clientsFile, id, {
          clock,
          denylistClient: (clientId, revokedAt) =>
            denylistClient(config, clientId, revokedAt, clock, io).catch((error: Error) => {
              throw new CliFailure(
                `client ${id} is deleted, but the denylist write failed (${error.message}); each server writes it when it loads CLIENTS_FILE and Redis answers`,
              )
            }),
        })
        return { deleted: id, tokens_revoked: tokensRevoked }
      },

      async 'rotate-secret'(args) {
        const flags = parseFlags(args, {
          id: { type: 'string' },
          grace: { type: 'string' },
          'revoke-tokens': { type: 'boolean' },
        })
        const id = requireId(flags.id)
        const revokeTokens = flags['revoke-tokens'] ?? false
        if (revokeTokens && flags.grace !== undefined)
          throw new UsageError('--revoke-tokens ends the previous secret at once; it takes no --grace')
        const grace = parseGrace(flags.grace)
        const config = cliConfig(io)
        const rotated = await rotateClientSecretInFile(
          config.clientsFile,
          id,
          { grace, revokeTokens },
          {
            clock,
            generateSecret,
            denylistClient: (clientId, revokedAt) =>
              denylistClient(config, clientId, revokedAt, clock, io).catch((error: Error) => {
                throw new CliFailure(
                  `nothing changed: the denylist write failed (${error.message}); run this command again when Redis answers`,
                )
              }),
          },
        )
        const { previousExpires, rotatedAt, tokensRevoked } = rotated
        io.stderr(
          `new secret for ${id}; the previous one works until ${previousExpires === null ? 'never (there was none)' : new Date(previousExpires * 1000).toISOString()}\n`,
        )
        if (tokensRevoked) {
          io.stderr(
            `every token issued to ${id} up to ${new Date(rotatedAt * 1000).toISOString()} is revoked, one issued within that second too: wait a second before fetching a new one\n`,
          )
        }
        return {
          client_id: id,
          client_secret: rotated.clientSecret,
          previous_secret_expires: previousExpires,
          ...(tokensRevoked && { tokens_revoked: tokensRevoked }),
        }
      },

      async update(args) {
        const flags = parseFlags(args, { ...CLIENT_FLAGS, 'no-resource-server': { type: 'boolean' } })
        const id = requireId(flags.id)
        if (flags['resource-server'] && flags['no-resource-server'])
          throw new UsageError('--resource-server and --no-resource-server exclude each other')
        const scopes = flags.scope === undefined ? undefined : parseScopes(flags.scope)
        const audiences = flags.audience && [...new Set(flags.audience)]
        const accessTokenTtl = parseTtl(flags.ttl)
        const resourceServer = flags['resource-server'] ? true : flags['no-resource-server'] ? false : undefined
        if ([scopes, audiences, accessTokenTtl, resourceServer].every((v) => v === undefined))
          throw new UsageError('nothing to update')
        return describeClient(
          await updateClientInFile(file(), id, { scopes, audiences, accessTokenTtl, resourceServer }),
        )
      },
    },
    argv,
  )
}

if (isMain(import.meta.url)) process.exitCode = await run(process.argv.slice(2))
