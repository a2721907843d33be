import { readFile } from 'node:fs/promises'
import type { JWK } from 'jose'
import {
  CLIENT_KEY_ALGS,
  DEFAULT_CLIENT_KEY_ALG,
  createAssertionClientInFile,
  createClientInFile,
  deleteClientFromFile,
  describeClient,
  generateClientKey,
  readClientJwks,
  rotateClientSecretInFile,
  updateClientInFile,
  type ClientKeyAlg,
  type ClientKeys,
} from '../clients/admin.js'
import { readClientsFile } from '../clients/clients-file.js'
import { CLIENT_ID, SCOPE_TOKEN, jwksUriProblem } from '../clients/registry.js'
import { MAX_GRACE } from '../clients/rotation.js'
import { generateSecret } from '../clients/secret.js'
import { systemClock, type Clock } from '../clock.js'
import type { Config } from '../config.js'
import { clientRevocationLifetime } from '../denylist/client-revocations.js'
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

/** The largest `--quota`, as the registry allows it. */
const MAX_QUOTA = 1_000_000

const USAGE = `usage:
  npm run --silent client -- create --id ID --scope "a b" --audience AUD [--audience AUD2] [--ttl SECONDS] [--resource-server]
      [--quota N] [--require-dpop] [--jwks FILE | --jwks-uri URL | --generate-key [--alg ALG] | --federated] [--require-typ]
  npm run --silent client -- list
  npm run --silent client -- delete --id ID
  npm run --silent client -- rotate-secret --id ID [--grace SECONDS | --revoke-tokens]
  npm run --silent client -- update --id ID [--scope "a b"] [--audience AUD ...] [--ttl SECONDS] [--resource-server | --no-resource-server]
      [--quota N | --no-quota] [--require-dpop | --no-require-dpop]
      [--jwks FILE | --jwks-uri URL | --generate-key [--alg ALG]] [--require-typ | --no-require-typ]

Limits, for any client (update --no-quota, --no-require-dpop remove them):
  --quota N         at most N tokens (1 to ${MAX_QUOTA}) issued to it per calendar minute, over every instance (counted
                    in Redis when one is configured); past it 429 with Retry-After. Default: no quota
  --require-dpop    refuse its token requests without a DPoP proof (RFC 9449 section 5): every token is sender-constrained

A client authenticates with a secret (shown once), or with private_key_jwt (RFC 7523 section 2.2):
  --jwks FILE       its public keys: a JWK Set or one JWK (never a private key); a key without kid gets its RFC 7638 thumbprint
  --jwks-uri URL    where it publishes its public keys (https; http only on loopback)
  --generate-key    a new key pair: the public key is registered, the private JWK printed once (--alg ${CLIENT_KEY_ALGS.join(', ')}; default ${DEFAULT_CLIENT_KEY_ALG})
  --federated       no keys: only a workload identity trust entry naming it authenticates it (npm run --silent trust -- add ... --client ID)
  --require-typ     refuse assertions without typ "client-authentication+jwt" (RFC 10070)
update --jwks, --jwks-uri or --generate-key replaces the keys of a private_key_jwt client. To roll keys over without
downtime, give a --jwks FILE holding the old and the new public key, then, once the client signs with the new one,
one holding the new key alone. A client changes between secret and private_key_jwt by delete and create.
`

/** What `create` and `update` both take. */
const CLIENT_FLAGS = {
  id: { type: 'string' },
  scope: { type: 'string' },
  audience: { type: 'string', multiple: true },
  ttl: { type: 'string' },
  'resource-server': { type: 'boolean' },
  jwks: { type: 'string' },
  'jwks-uri': { type: 'string' },
  'generate-key': { type: 'boolean' },
  alg: { type: 'string' },
  'require-typ': { type: 'boolean' },
  quota: { type: 'string' },
  'require-dpop': { type: 'boolean' },
} as const

/** The key options as parsed: `federated` only on create. */
interface KeyFlags {
  jwks?: string | undefined
  'jwks-uri'?: string | undefined
  'generate-key'?: boolean | undefined
  alg?: string | undefined
  federated?: boolean | undefined
}

/** A private_key_jwt client's keys as the flags give them, and the private JWK when one was generated. */
interface ChosenKeys {
  keys: ClientKeys
  privateJwk?: JWK
}

/**
 * The keys of a private_key_jwt client (RFC 7523 §2.2) from `--jwks`, `--jwks-uri`, `--generate-key`
 * or `--federated`: one of them, or none (undefined). A `--jwks` file's problems are failures
 * (exit 1), naming the file and key; nothing is written then.
 */
async function chooseKeys(flags: KeyFlags, io: CliIo): Promise<ChosenKeys | undefined> {
  const given = (['jwks', 'jwks-uri', 'generate-key', 'federated'] as const).filter((name) => flags[name] !== undefined)
  if (given.length > 1) {
    throw new UsageError(
      `${given.map((name) => `--${name}`).join(' and ')} exclude each other: choose one source of keys`,
    )
  }
  if (flags.alg !== undefined && !flags['generate-key']) throw new UsageError('--alg goes with --generate-key')
  if (flags.jwks !== undefined) return { keys: { jwks: await readJwksFile(flags.jwks, io) } }
  const uri = flags['jwks-uri']
  if (uri !== undefined) {
    const problem = jwksUriProblem(uri)
    if (problem) throw new UsageError(`--jwks-uri ${problem}`)
    return { keys: { jwksUri: uri } }
  }
  if (flags['generate-key']) {
    const { publicJwk, privateJwk } = await generateClientKey(parseAlg(flags.alg))
    return { keys: { jwks: { keys: [{ ...publicJwk }] } }, privateJwk }
  }
  if (flags.federated) return { keys: { federated: true } }
  return undefined
}

function parseAlg(value: string | undefined): ClientKeyAlg {
  if (value === undefined) return DEFAULT_CLIENT_KEY_ALG
  const alg = CLIENT_KEY_ALGS.find((known) => known === value)
  if (!alg) throw new UsageError(`--alg must be one of ${CLIENT_KEY_ALGS.join(', ')}`)
  return alg
}

/** The public JWK Set in `path` (see readClientJwks); says which keys were given their thumbprint as kid. */
async function readJwksFile(path: string, io: CliIo) {
  let json: unknown
  try {
    json = JSON.parse(await readFile(path, 'utf8'))
  } catch (error) {
    throw new CliFailure(`--jwks ${path}: ${(error as Error).message}`)
  }
  const { jwks, kidsAdded } = await readClientJwks(json).catch((error: Error) => {
    throw new CliFailure(`--jwks ${path}: ${error.message}; nothing was changed`)
  })
  for (const kid of kidsAdded) {
    io.stderr(`--jwks: a key without kid is registered with kid ${kid} (its RFC 7638 thumbprint); sign with that kid\n`)
  }
  return jwks
}

/** `require_typ` from --require-typ / --no-require-typ (update), undefined when neither is given. */
function parseRequireTyp(flags: { 'require-typ'?: boolean | undefined; 'no-require-typ'?: boolean | undefined }) {
  if (flags['require-typ'] && flags['no-require-typ'])
    throw new UsageError('--require-typ and --no-require-typ exclude each other')
  return flags['require-typ'] ? true : flags['no-require-typ'] ? false : undefined
}

/** `--quota N`: tokens per minute, plain decimal digits from 1 to MAX_QUOTA. */
function parseQuota(value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  const quota = /^\d{1,7}$/.test(value) ? Number(value) : Number.NaN
  if (!(quota >= 1 && quota <= MAX_QUOTA))
    throw new UsageError(`--quota must be an integer number of tokens per minute from 1 to ${MAX_QUOTA}`)
  return quota
}

/** An update's flag pair (`--x` / `--no-x`): true, false, or undefined when neither is given. */
function flagPair(on: boolean | undefined, off: boolean | undefined, name: string): boolean | undefined {
  if (on && off) throw new UsageError(`--${name} and --no-${name} exclude each other`)
  return on ? true : off ? false : undefined
}

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
 * has expired. With Redis (REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES) the entry is
 * written here, for every server and resource server at once; every server also writes it when it
 * loads CLIENTS_FILE (the only way into an in-memory denylist). `iat` has whole seconds, so a token issued in the very second `revokedAt` is refused
 * too. Throws when the Redis write fails.
 */
async function denylistClient(config: Config, clientId: string, revokedAt: number, clock: Clock, io: CliIo) {
  const until = revokedAt + clientRevocationLifetime(config.clockTolerance)
  const { redis } = config
  if (!redis) {
    return {
      revoked_at: revokedAt,
      until,
      denylisted: `each server, when it loads CLIENTS_FILE (in-memory denylist; ${NO_REDIS})`,
    }
  }
  await withRedisDenylist({ ...config, redis }, clock, io, (denylist) =>
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
        const flags = parseFlags(args, { ...CLIENT_FLAGS, federated: { type: 'boolean' } })
        const id = requireId(flags.id)
        const scopes = parseScopes(flags.scope ?? '')
        const audiences = [...new Set(flags.audience ?? [])]
        if (audiences.length === 0) throw new UsageError('--audience is required')
        const accessTokenTtl = parseTtl(flags.ttl)
        const resourceServer = flags['resource-server'] ?? false
        const quota = parseQuota(flags.quota)
        const requireDpop = flags['require-dpop'] ?? false
        const settings = { scopes, audiences, accessTokenTtl, resourceServer, quota, requireDpop }
        const chosen = await chooseKeys(flags, io)
        if (!chosen) {
          if (flags['require-typ'])
            throw new UsageError(
              '--require-typ is for private_key_jwt clients (--jwks, --jwks-uri, --generate-key or --federated)',
            )
          const { clientSecret } = await createClientInFile(file(), id, settings, { clock, generateSecret })
          io.stderr(`created client ${id}; the secret is shown only now, store it safely\n`)
          return { client_id: id, client_secret: clientSecret }
        }
        const entry = await createAssertionClientInFile(file(), id, settings, {
          keys: chosen.keys,
          requireTyp: flags['require-typ'] ?? false,
        })
        if (chosen.privateJwk) {
          io.stderr(`created client ${id}; the private key (private_jwk) is shown only now, store it safely\n`)
        } else if ('federated' in chosen.keys) {
          io.stderr(
            `created client ${id} without keys: only a workload identity trust entry naming it authenticates it (npm run --silent trust -- add ... --client ${id})\n`,
          )
        }
        return { ...describeClient(entry), ...(chosen.privateJwk && { private_jwk: chosen.privateJwk }) }
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
        const flags = parseFlags(args, {
          ...CLIENT_FLAGS,
          'no-resource-server': { type: 'boolean' },
          'no-require-typ': { type: 'boolean' },
          'no-quota': { type: 'boolean' },
          'no-require-dpop': { type: 'boolean' },
        })
        const id = requireId(flags.id)
        if (flags['resource-server'] && flags['no-resource-server'])
          throw new UsageError('--resource-server and --no-resource-server exclude each other')
        const scopes = flags.scope === undefined ? undefined : parseScopes(flags.scope)
        const audiences = flags.audience && [...new Set(flags.audience)]
        const accessTokenTtl = parseTtl(flags.ttl)
        const resourceServer = flags['resource-server'] ? true : flags['no-resource-server'] ? false : undefined
        const requireTyp = parseRequireTyp(flags)
        if (flags.quota !== undefined && flags['no-quota'])
          throw new UsageError('--quota and --no-quota exclude each other')
        const quota = flags['no-quota'] ? null : parseQuota(flags.quota)
        const requireDpop = flagPair(flags['require-dpop'], flags['no-require-dpop'], 'require-dpop')
        const chosen = await chooseKeys(flags, io)
        const changes = [scopes, audiences, accessTokenTtl, resourceServer, requireTyp, quota, requireDpop, chosen]
        if (changes.every((v) => v === undefined)) throw new UsageError('nothing to update')
        const entry = await updateClientInFile(file(), id, {
          scopes,
          audiences,
          accessTokenTtl,
          resourceServer,
          requireTyp,
          quota,
          requireDpop,
          keys: chosen?.keys,
        })
        if (chosen?.privateJwk) {
          io.stderr(
            `new key for ${id} replaces its keys; the private key (private_jwk) is shown only now, store it safely\n`,
          )
        }
        return { ...describeClient(entry), ...(chosen?.privateJwk && { private_jwk: chosen.privateJwk }) }
      },
    },
    argv,
  )
}

if (isMain(import.meta.url)) process.exitCode = await run(process.argv.slice(2))
