import { randomBytes } from 'node:crypto'
import { access, readFile } from 'node:fs/promises'
import { dirname, isAbsolute, relative, resolve } from 'node:path'
import { readClientsFileIfPresent } from '../clients/clients-file.js'
import { systemClock, type Clock } from '../clock.js'
import { createIssuerKeys } from '../federation/issuer-keys.js'
import { TRUST_ENTRY_ID, trustEntrySchema, type TrustEntry, type TrustFile } from '../federation/trust-entry.js'
import { loadTrustStore, readTrustFile, resolveEntryPath, updateTrustFile } from '../federation/trust-file.js'
import { explainWorkloadAssertion } from '../federation/verify-workload.js'
import { createMemoryReplayCache } from '../oauth/replay-cache.js'
import { CliFailure, UsageError, cliConfig, isMain, parseFlags, processIo, runCommand, type CliIo } from './cli.js'

const USAGE = `usage:
  npm run --silent trust -- add --issuer URL --subject PATTERN --client ID [--client ID2 ...] [--audience AUD]
      [--claim NAME=PATTERN ...] [--jwks-uri URL | --jwks-file FILE] [--allow-private-network] [--id NAME]
      [--ca-file FILE] [--bearer-token-file FILE] [--no-single-use-jti] [--max-token-age SECONDS]
  npm run --silent trust -- list
  npm run --silent trust -- remove --id NAME
  npm run --silent trust -- test --assertion FILE|- [--client ID]
`

const ADD_FLAGS = {
  id: { type: 'string' },
  issuer: { type: 'string' },
  audience: { type: 'string' },
  subject: { type: 'string' },
  client: { type: 'string', multiple: true },
  claim: { type: 'string', multiple: true },
  'jwks-uri': { type: 'string' },
  'jwks-file': { type: 'string' },
  'ca-file': { type: 'string' },
  'bearer-token-file': { type: 'string' },
  'allow-private-network': { type: 'boolean' },
  'no-single-use-jti': { type: 'boolean' },
  'max-token-age': { type: 'string' },
} as const

/** The flag that sets each field of an entry, for messages. */
const FLAG_OF: Record<string, string> = {
  id: '--id',
  issuer: '--issuer',
  jwks_uri: '--jwks-uri',
  jwks_file: '--jwks-file',
  ca_file: '--ca-file',
  bearer_token_file: '--bearer-token-file',
  audience: '--audience',
  subject: '--subject',
  claims: '--claim',
  clients: '--client',
  max_token_age: '--max-token-age',
}

function requireId(id: string | undefined): string {
  if (id === undefined) throw new UsageError('--id is required')
  if (!TRUST_ENTRY_ID.test(id)) throw new UsageError('--id must match ^[A-Za-z0-9._-]{1,64}$')
  return id
}

/** `NAME=PATTERN` flags as the entry's claims; a name given twice is a mistake, not an override. */
function parseClaims(values: readonly string[] | undefined): Record<string, string> {
  const claims: Record<string, string> = {}
  for (const value of values ?? []) {
    const at = value.indexOf('=')
    if (at <= 0) throw new UsageError('--claim must be NAME=PATTERN')
    const name = value.slice(0, at)
    if (Object.hasOwn(claims, name)) throw new UsageError(`--claim ${name} is given twice`)
    claims[name] = value.slice(at + 1)
  }
  return claims
}

function parseMaxTokenAge(value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  const age = /^\d{1,5}$/.test(value) ? Number(value) : Number.NaN // plain decimal digits, like the settings
  if (!(age >= 60 && age <= 86_400)) throw new UsageError('--max-token-age must be an integer from 60 to 86400')
  return age
}

/** An entry name from the issuer's host and a random suffix: `token.actions.githubusercontent.com-3fa9c1`. */
function generateId(issuer: string): string {
  let host = 'issuer'
  try {
    host = new URL(issuer).hostname.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '') || host
  } catch {
    // the schema check below says what is wrong with --issuer
  }
  return `${host.slice(0, 57)}-${randomBytes(3).toString('hex')}`
}

/**
 * A file named on the command line, as the trust file holds it: paths there are relative to the
 * trust file's directory, so a relative one is rewritten from the working directory to that one.
 */
function filePathForTrustFile(trustFile: string, path: string | undefined): string | undefined {
  if (path === undefined || isAbsolute(path)) return path
  return relative(dirname(resolve(trustFile)), resolve(path)) || '.'
}

/** Checks the entry against the schema the server loads with; a problem names the flag. */
function checkEntry(candidate: Record<string, unknown>): TrustEntry {
  const parsed = trustEntrySchema.safeParse(candidate)
  if (parsed.success) return parsed.data
  const issue = parsed.error.issues[0] ?? { path: [], message: 'invalid' }
  const field = String(issue.path[0] ?? '')
  throw new UsageError(`${FLAG_OF[field] ?? (field || 'the entry')} ${issue.message}`)
}

/** Client ids the entry names that CLIENTS_FILE does not have: a warning, the client may come later. */
async function warnAboutClients(clientsFile: string, ids: readonly string[], io: CliIo): Promise<void> {
  let known: Set<string>
  try {
    known = new Set((await readClientsFileIfPresent(clientsFile))?.clients.map((c) => c.client_id))
  } catch (error) {
    io.stderr(`warning: could not check the client ids against CLIENTS_FILE: ${(error as Error).message}\n`)
    return
  }
  for (const id of ids) {
    if (!known.has(id)) io.stderr(`warning: client ${id} is not in ${clientsFile}; the entry is added anyway\n`)
  }
}

/** The JWT in `path` (`-`: stdin), white space around it removed. */
async function readAssertion(path: string): Promise<string> {
  let text: string
  try {
    text = path === '-' ? await readStdin() : await readFile(path, 'utf8')
  } catch (error) {
    throw new CliFailure(`cannot read the assertion: ${(error as Error).message}`)
  }
  const assertion = text.trim()
  if (assertion === '') throw new CliFailure('the assertion file is empty')
  return assertion
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

/**
 * Trust entry administration in TRUST_FILE (workload identity federation, see
 * src/federation/trust-entry.ts): flags in, one JSON document out. `test` explains, check by check,
 * whether a platform token would authenticate, without using it up.
 */
export async function run(argv: string[], io: CliIo = processIo, clock: Clock = systemClock): Promise<number> {
  const file = () => cliConfig(io).trustFile
  // `test` prints its verdict as JSON either way; a token that fails exits 1.
  let refused = false
  const code = await runCommand(
    io,
    USAGE,
    {
      async add(args) {
        const flags = parseFlags(args, ADD_FLAGS)
        if (flags.issuer === undefined) throw new UsageError('--issuer is required')
        if (flags.subject === undefined) throw new UsageError('--subject is required')
        const clients = flags.client ?? []
        if (clients.length === 0) throw new UsageError('--client is required')
        if (flags['jwks-uri'] !== undefined && flags['jwks-file'] !== undefined)
          throw new UsageError('--jwks-uri and --jwks-file exclude each other')
        const id = flags.id === undefined ? generateId(flags.issuer) : requireId(flags.id)
        const claims = parseClaims(flags.claim)
        const maxTokenAge = parseMaxTokenAge(flags['max-token-age'])
        const config = cliConfig(io)
        const trustFile = config.trustFile
        const entry = checkEntry({
          id,
          issuer: flags.issuer,
          ...(flags['jwks-uri'] !== undefined && { jwks_uri: flags['jwks-uri'] }),
          ...(flags['jwks-file'] !== undefined && { jwks_file: filePathForTrustFile(trustFile, flags['jwks-file']) }),
          ...(flags['ca-file'] !== undefined && { ca_file: filePathForTrustFile(trustFile, flags['ca-file']) }),
          ...(flags['bearer-token-file'] !== undefined && {
            bearer_token_file: filePathForTrustFile(trustFile, flags['bearer-token-file']),
          }),
          allow_private_network: flags['allow-private-network'] ?? false,
          // Unset: the platform token's aud must hold tokensmith's issuer identifier.
          ...(flags.audience !== undefined && { audience: flags.audience }),
          subject: flags.subject,
          claims,
          clients,
          single_use_jti: !(flags['no-single-use-jti'] ?? false),
          ...(maxTokenAge !== undefined && { max_token_age: maxTokenAge }),
        })
        const exists = (file: TrustFile) => file.trust.some((e) => e.id === entry.id)
        const duplicate = () => new CliFailure(`trust entry ${entry.id} already exists`)
        if (exists(await readTrustFile(trustFile))) throw duplicate() // before any warning
        for (const flag of ['jwks-file', 'ca-file', 'bearer-token-file'] as const) {
          const path = flags[flag]
          if (
            path !== undefined &&
            !(await access(path).then(
              () => true,
              () => false,
            ))
          )
            io.stderr(`warning: --${flag} ${path} cannot be read now; the server reads it when a token arrives\n`)
        }
        await warnAboutClients(config.clientsFile, entry.clients, io)
        await updateTrustFile(trustFile, (current) => {
          if (exists(current)) throw duplicate() // added by another run meanwhile
          return { file: { trust: [...current.trust, entry] }, result: undefined }
        })
        io.stderr(`added trust entry ${entry.id}\n`)
        return entry
      },

      async list(args) {
        parseFlags(args, {})
        return { trust: (await readTrustFile(file())).trust }
      },

      async remove(args) {
        const id = requireId(parseFlags(args, { id: { type: 'string' } }).id)
        return updateTrustFile(file(), (current) => {
          const removed = current.trust.find((e) => e.id === id)
          if (!removed) throw new CliFailure(`no trust entry ${id}`)
          return { file: { trust: current.trust.filter((e) => e !== removed) }, result: removed }
        })
      },

      async test(args) {
        const flags = parseFlags(args, { assertion: { type: 'string' }, client: { type: 'string' } })
        if (flags.assertion === undefined) throw new UsageError('--assertion is required (a file, or - for stdin)')
        const config = cliConfig(io)
        const store = await loadTrustStore(config.trustFile)
        if (store.entries.length === 0) io.stderr(`warning: ${config.trustFile} has no trust entries\n`)
        const assertion = await readAssertion(flags.assertion)
        // A replay cache of its own, dropped on exit: testing a token never uses up its jti at the server.
        const verdict = await explainWorkloadAssertion(
          {
            clock,
            clockTolerance: config.clockTolerance,
            issuer: config.issuer,
            replay: createMemoryReplayCache({ clock }),
            keys: createIssuerKeys({ clock, resolvePath: (path) => resolveEntryPath(config.trustFile, path) }),
          },
          store.entries,
          assertion,
          flags.client,
        )
        refused = !verdict.ok
        return { ok: verdict.ok, entry: verdict.entry ?? null, checks: verdict.checks }
      },
    },
    argv,
  )
  return code === 0 && refused ? 1 : code
}

if (isMain(import.meta.url)) process.exitCode = await run(process.argv.slice(2))
