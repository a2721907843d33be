import { updateClientsFile, readClientsFile } from '../src/clients/clients-file.js'
import { CLIENT_ID, SCOPE_TOKEN, type ClientEntry } from '../src/clients/registry.js'
import { digestSecret, generateSecret } from '../src/clients/secret.js'
import { systemClock, type Clock } from '../src/clock.js'
import { CliFailure, UsageError, cliConfig, isMain, parseFlags, processIo, runCommand, type CliIo } from './lib/cli.js'

const USAGE = `usage:
  npm run --silent client -- create --id ID --scope "a b" --audience AUD [--audience AUD2] [--ttl SECONDS] [--resource-server]
  npm run --silent client -- list
  npm run --silent client -- delete --id ID
`

function parseTtl(value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  const ttl = Number(value)
  if (!Number.isInteger(ttl) || ttl < 60 || ttl > 3600) throw new UsageError('--ttl must be an integer from 60 to 3600')
  return ttl
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
})

export async function run(argv: string[], io: CliIo = processIo, clock: Clock = systemClock): Promise<number> {
  const file = () => cliConfig(io).clientsFile
  return runCommand(io, USAGE, {
    async create(args) {
      const flags = parseFlags(args, {
        id: { type: 'string' },
        scope: { type: 'string' },
        audience: { type: 'string', multiple: true },
        ttl: { type: 'string' },
        'resource-server': { type: 'boolean' },
      })
      const id = requireId(flags.id)
      const scopes = [...new Set((flags.scope ?? '').split(' ').filter(Boolean))]
      if (scopes.length === 0) throw new UsageError('--scope needs at least one scope')
      if (!scopes.every((s) => SCOPE_TOKEN.test(s))) throw new UsageError('--scope has characters RFC 6749 §3.3 does not allow')
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

    async delete(args) {
      const id = requireId(parseFlags(args, { id: { type: 'string' } }).id)
      await updateClientsFile(file(), (current) => {
        if (!current.clients.some((c) => c.client_id === id)) throw new CliFailure(`no client ${id}`)
        return { file: { clients: current.clients.filter((c) => c.client_id !== id) }, result: undefined }
      })
      return { deleted: id }
    },
  }, argv)
}

if (isMain(import.meta.url)) process.exitCode = await run(process.argv.slice(2))
