import { updateClientsFile, readClientsFile } from '../src/clients/clients-file.js'
import { CLIENT_ID, SCOPE_TOKEN, type ClientEntry } from '../src/clients/registry.js'
import { digestSecret, generateSecret } from '../src/clients/secret.js'
import { systemClock, type Clock } from '../src/clock.js'
import type { Config } from '../src/config.js'
import { clientRevocationLifetime } from '../src/denylist/client-revocations.js'
import { createRedisDenylist } from '../src/denylist/redis.js'
import { createLogger } from '../src/observability/logger.js'
import { CliFailure, UsageError, cliConfig, isMain, parseFlags, processIo, runCommand, waitForRedis, type CliIo } from './lib/cli.js'

const USAGE = `usage:
  npm run --silent client -- create --id ID --scope "a b" --audience AUD [--audience AUD2] [--ttl SECONDS] [--resource-server]
  npm run --silent client -- list
  npm run --silent client -- delete --id ID
  npm run --silent client -- rotate-secret --id ID [--grace SECONDS | --revoke-tokens]
  npm run --silent client -- update --id ID [--scope "a b"] [--audience AUD ...] [--ttl SECONDS] [--resource-server | --no-resource-server]
`

/** How long a rotated-out secret keeps working by default: a day to roll the new one out. */
export const DEFAULT_GRACE = 24 * 3600

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
  if (!scopes.every((s) => SCOPE_TOKEN.test(s))) throw new UsageError('--scope has characters RFC 6749 section 3.3 does not allow')
  return scopes
}

function findClient(clients: ClientEntry[], id: string): ClientEntry {
  const entry = clients.find((c) => c.client_id === id)
  if (!entry) throw new CliFailure(`no client ${id}`)
  return entry
}

function requireId(id: string | undefined): string {
  if (id === undefined) throw new UsageError('--id is required')
  if (!CLIENT_ID.test(id)) throw new UsageError('--id must match ^[A-Za-z0-9._-]{3,64}$')
  return id
}

/** Public view of a client: no secret, no digest (checklist SK-1). */
const describe = (entry: ClientEntry) => ({
  client_id: entry.client_id,
  scopes: entry.scopes,
  audiences: entry.audiences,
  access_token_ttl: entry.access_token_ttl ?? null,
  grant_types: entry.grant_types,
  resource_server: entry.resource_server,
  secrets: entry.secrets.map((secret) => ({ created: secret.created, expires: secret.expires })),
  ...(entry.tokens_revoked_at !== undefined && { tokens_revoked_at: entry.tokens_revoked_at }),
})

/**
 * Every token issued to the client up to `revokedAt` is refused until the longest-lived of them
 * has expired. With REDIS_URL the entry is written here, for every server and resource server at
 * once; every server also writes it when it loads CLIENTS_FILE (the only way into an in-memory
 * denylist). `iat` has whole seconds, so a token issued in the very second `revokedAt` is refused
 * too. Throws when the Redis write fails.
 */
async function denylistClient(config: Config, clientId: string, revokedAt: number, clock: Clock, io: CliIo) {
  const until = revokedAt + clientRevocationLifetime(config.clockTolerance)
  if (!config.redisUrl) {
    return { revoked_at: revokedAt, until, denylisted: 'each server, when it loads CLIENTS_FILE (in-memory denylist; REDIS_URL is not set)' }
  }
  const log = createLogger('warn', { write: (line: string) => void io.stderr(line) })
  const denylist = createRedisDenylist({ url: config.redisUrl, keyPrefix: config.redisKeyPrefix, clock, log })
  try {
    await waitForRedis(denylist)
    await denylist.revokeClient(clientId, revokedAt, until)
  } finally {
    await denylist.close()
  }
  return { revoked_at: revokedAt, until, denylisted: 'redis' }
}

export async function run(argv: string[], io: CliIo = processIo, clock: Clock = systemClock): Promise<number> {
  const file = () => cliConfig(io).clientsFile
  return runCommand(io, USAGE, {
    async create(args) {
      const flags = parseFlags(args, CLIENT_FLAGS)
      const id = requireId(flags.id)
      const scopes = parseScopes(flags.scope ?? '')
      const audiences = [...new Set(flags.audience ?? [])]
      if (audiences.length === 0) throw new UsageError('--audience is required')
      const ttl = parseTtl(flags.ttl)

      const secret = generateSecret()
      const entry: ClientEntry = {
        client_id: id,
        secrets: [{ sha256: digestSecret(secret).toString('base64url'), created: clock(), expires: null }],
        scopes,
        audiences,
        ...(ttl !== undefined && { access_token_ttl: ttl }),
        grant_types: ['client_credentials'],
        resource_server: flags['resource-server'] ?? false,
      }
      await updateClientsFile(file(), (current) => {
        if (current.clients.some((c) => c.client_id === id)) throw new CliFailure(`client ${id} already exists`)
        return { file: { clients: [...current.clients, entry] }, result: undefined }
      })
      io.stderr(`created client ${id}; the secret is shown only now, store it safely\n`)
      return { client_id: id, client_secret: secret }
    },

    async list(args) {
      parseFlags(args, {})
      return { clients: (await readClientsFile(file())).clients.map(describe) }
    },

    /**
     * Removes the client and ends its tokens (see denylistClient). The file changes first: the
     * client gets no new token even while Redis is down, and the servers write the denylist entry
     * themselves when they load the file.
     */
    async delete(args) {
      const id = requireId(parseFlags(args, { id: { type: 'string' } }).id)
      const config = cliConfig(io)
      const now = clock()
      await updateClientsFile(config.clientsFile, (current) => {
        findClient(current.clients, id)
        return { file: { clients: current.clients.filter((c) => c.client_id !== id) }, result: undefined }
      })
      const tokensRevoked = await denylistClient(config, id, now, clock, io).catch((error: Error) => {
        throw new CliFailure(`client ${id} is deleted, but the denylist write failed (${error.message}); each server writes it when it loads CLIENTS_FILE and Redis answers`)
      })
      return { deleted: id, tokens_revoked: tokensRevoked }
    },

    /**
     * A new secret, shown once; the newest old one keeps working for the grace period so clients
     * can roll over without downtime. At most two secrets are live: any older one ends now.
     *
     * --revoke-tokens (a leaked secret or token): the old secrets end now, and every token issued
     * to the client up to now is refused (see denylistClient); `tokens_revoked_at` in the file
     * tells each server to denylist them too. The denylist is written before the file, so a new
     * secret is never handed out while the old tokens still work; if that write fails nothing
     * has changed and the command can simply be run again.
     */
    async 'rotate-secret'(args) {
      const flags = parseFlags(args, { id: { type: 'string' }, grace: { type: 'string' }, 'revoke-tokens': { type: 'boolean' } })
      const id = requireId(flags.id)
      const revokeTokens = flags['revoke-tokens'] ?? false
      if (revokeTokens && flags.grace !== undefined) throw new UsageError('--revoke-tokens ends the previous secret at once; it takes no --grace')
      if (flags.grace !== undefined && !/^\d{1,7}$/.test(flags.grace)) throw new UsageError('--grace must be an integer number of seconds from 0 to 2592000')
      const grace = revokeTokens ? 0 : flags.grace === undefined ? DEFAULT_GRACE : Number(flags.grace)
      if (grace > 30 * 86400) throw new UsageError('--grace must be an integer number of seconds from 0 to 2592000')
      const config = cliConfig(io)
      const secret = generateSecret()
      const now = clock()
      let tokensRevoked: Awaited<ReturnType<typeof denylistClient>> | undefined
      if (revokeTokens) {
        findClient((await readClientsFile(config.clientsFile)).clients, id)
        tokensRevoked = await denylistClient(config, id, now, clock, io).catch((error: Error) => {
          throw new CliFailure(`nothing changed: the denylist write failed (${error.message}); run this command again when Redis answers`)
        })
      }
      const previousExpires = await updateClientsFile(config.clientsFile, (current) => {
        const entry = findClient(current.clients, id)
        const live = entry.secrets.filter((s) => s.expires === null || s.expires > now).sort((a, b) => b.created - a.created)
        const previous = live[0] && { ...live[0], expires: Math.min(live[0].expires ?? Infinity, now + grace) }
        const secrets = [...(previous ? [previous] : []), { sha256: digestSecret(secret).toString('base64url'), created: now, expires: null }]
        const next: ClientEntry = { ...entry, secrets, ...(revokeTokens && { tokens_revoked_at: now }) }
        return {
          file: { clients: current.clients.map((c) => (c.client_id === id ? next : c)) },
          result: previous?.expires ?? null,
        }
      })
      io.stderr(`new secret for ${id}; the previous one works until ${previousExpires === null ? 'never (there was none)' : new Date(previousExpires * 1000).toISOString()}\n`)
      if (tokensRevoked) {
        io.stderr(`every token issued to ${id} up to ${new Date(now * 1000).toISOString()} is revoked, one issued within that second too: wait a second before fetching a new one\n`)
      }
      return { client_id: id, client_secret: secret, previous_secret_expires: previousExpires, ...(tokensRevoked && { tokens_revoked: tokensRevoked }) }
    },

    async update(args) {
      const flags = parseFlags(args, { ...CLIENT_FLAGS, 'no-resource-server': { type: 'boolean' } })
      const id = requireId(flags.id)
      if (flags['resource-server'] && flags['no-resource-server']) throw new UsageError('--resource-server and --no-resource-server exclude each other')
      const scopes = flags.scope === undefined ? undefined : parseScopes(flags.scope)
      const audiences = flags.audience && [...new Set(flags.audience)]
      const ttl = parseTtl(flags.ttl)
      const resourceServer = flags['resource-server'] ? true : flags['no-resource-server'] ? false : undefined
      if ([scopes, audiences, ttl, resourceServer].every((v) => v === undefined)) throw new UsageError('nothing to update')
      const updated = await updateClientsFile(file(), (current) => {
        const entry = findClient(current.clients, id)
        const next: ClientEntry = {
          ...entry,
          ...(scopes && { scopes }),
          ...(audiences && { audiences }),
          ...(ttl !== undefined && { access_token_ttl: ttl }),
          ...(resourceServer !== undefined && { resource_server: resourceServer }),
        }
        return { file: { clients: current.clients.map((c) => (c.client_id === id ? next : c)) }, result: next }
      })
      return describe(updated)
    },
  }, argv)
}

if (isMain(import.meta.url)) process.exitCode = await run(process.argv.slice(2))
