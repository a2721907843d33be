import { readFile } from 'node:fs/promises'
import { CliFailure, UsageError, isMain, parseFlags, processIo, runCommand, type CliIo } from './cli.js'

const USAGE = `usage:
  npm run --silent clients -- usage --url http://HOST:PORT/metrics [--token METRICS_TOKEN]
  npm run --silent clients -- usage --file SCRAPE.txt

Tokens issued per client (by authentication method) and failed authentications (by reason and method),
from one instance's /metrics, counted since it started. --token defaults to the METRICS_TOKEN
environment variable; with METRICS_PORT no token is needed. For a whole fleet, ask Prometheus (README,
"Usage per client").
`

/** A scrape larger than this is not a tokensmith /metrics page. */
const MAX_SCRAPE_BYTES = 32 * 1024 * 1024
const FETCH_TIMEOUT_MS = 10_000

const ISSUED = 'tokensmith_tokens_issued_total'
const FAILURES = 'tokensmith_auth_failures_total'

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

export interface ClientUsage {
  client_id: string
  tokens_issued: number
  by_auth_method: Record<string, number>
}

export interface AuthFailures {
  reason: string
  auth_method: string
  count: number
}

export interface UsageReport {
  clients: ClientUsage[]
  auth_failures: AuthFailures[]
}

const ESCAPES: Record<string, string> = { '\\': '\\', '"': '"', n: '\n' }

/** `a="x",b="y\"z"` → { a: 'x', b: 'y"z' } (text format 0.0.4 escapes); undefined when malformed. */
function parseLabels(text: string): Record<string, string> | undefined {
  const labels: Record<string, string> = Object.create(null)
  let i = 0
  while (i < text.length) {
    const name = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"/.exec(text.slice(i))
    if (!name) return /^[\s,]*$/.test(text.slice(i)) ? labels : undefined
    i += name[0].length
    let value = ''
    for (;;) {
      const char = text[i]
      if (char === undefined) return undefined
      i += 1
      if (char === '"') break
      if (char === '\\') {
        const escaped = text[i]
        if (escaped === undefined) return undefined
        value += ESCAPES[escaped] ?? `\\${escaped}`
        i += 1
      } else value += char
    }
    labels[name[1] ?? ''] = value
    const comma = /^\s*,?/.exec(text.slice(i))
    i += comma?.[0].length ?? 0
  }
  return labels
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?\s*$/

/**
 * The samples of `names` in a Prometheus text exposition (format 0.0.4, as prom-client writes it).
 * Comments, other metrics and lines that do not parse are skipped.
 */
export function parseSamples(text: string, names: ReadonlySet<string>): Sample[] {
  const samples: Sample[] = []
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue
    const match = SAMPLE.exec(line.trim())
    if (!match || !names.has(match[1] ?? '')) continue
    const labels = parseLabels(match[2] ?? '')
    const value = Number(match[3])
    if (labels === undefined || !Number.isFinite(value)) continue
    samples.push({ name: match[1] ?? '', labels, value })
  }
  return samples
}

/** Tokens issued per client, most first, and authentication failures per reason and method, most first. */
export function usageReport(text: string): UsageReport {
  const samples = parseSamples(text, new Set([ISSUED, FAILURES]))
  const clients = new Map<string, ClientUsage>()
  const failures = new Map<string, AuthFailures>()
  for (const { name, labels, value } of samples) {
    const method = labels.auth_method ?? ''
    if (name === ISSUED) {
      const id = labels.client_id ?? ''
      const client = clients.get(id) ?? { client_id: id, tokens_issued: 0, by_auth_method: {} }
      client.tokens_issued += value
      client.by_auth_method[method] = (client.by_auth_method[method] ?? 0) + value
      clients.set(id, client)
    } else {
      // Summed over trust entries: this view is per reason and method.
      const reason = labels.reason ?? ''
      const key = JSON.stringify([reason, method])
      const entry = failures.get(key) ?? { reason, auth_method: method, count: 0 }
      entry.count += value
      failures.set(key, entry)
    }
  }
  const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)
  return {
    clients: [...clients.values()]
      .map((client) => ({ ...client, by_auth_method: sortedObject(client.by_auth_method) }))
      .sort((a, b) => b.tokens_issued - a.tokens_issued || byName(a.client_id, b.client_id)),
    auth_failures: [...failures.values()].sort(
      (a, b) => b.count - a.count || byName(a.reason, b.reason) || byName(a.auth_method, b.auth_method),
    ),
  }
}

function sortedObject(record: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
}

async function scrape(url: string, token: string | undefined, fetchImpl: typeof fetch): Promise<string> {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new UsageError('--url must be an absolute http(s) URL')
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new UsageError('--url must be http(s)')
  let response: Response
  try {
    response = await fetchImpl(parsed, {
      headers: { accept: 'text/plain', ...(token !== undefined && { authorization: `Bearer ${token}` }) },
      redirect: 'error',
      signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
    })
  } catch (error) {
    throw new CliFailure(`cannot scrape ${parsed.origin}${parsed.pathname}: ${(error as Error).message}`)
  }
  if (response.status !== 200) {
    await response.body?.cancel()
    // /metrics on PORT answers 404 to a missing or wrong token, so the endpoint is not revealed.
    const hint = response.status === 404 ? ' (wrong or missing --token?)' : ''
    throw new CliFailure(`scrape answered HTTP ${response.status}${hint}`)
  }
  const length = Number(response.headers.get('content-length') ?? 0)
  if (length > MAX_SCRAPE_BYTES) throw new CliFailure('scrape is too large')
  const text = await response.text()
  if (text.length > MAX_SCRAPE_BYTES) throw new CliFailure('scrape is too large')
  return text
}

/**
 * Usage per client from the authorization server's metrics: tokens issued per client and method, and
 * failed authentications per reason and method. Reads one instance's /metrics, or a saved scrape.
 */
export async function run(argv: string[], io: CliIo = processIo, fetchImpl: typeof fetch = fetch): Promise<number> {
  return runCommand(
    io,
    USAGE,
    {
      async usage(args) {
        const flags = parseFlags(args, { url: { type: 'string' }, token: { type: 'string' }, file: { type: 'string' } })
        if ((flags.url === undefined) === (flags.file === undefined)) throw new UsageError('give --url or --file')
        if (flags.file !== undefined && flags.token !== undefined) throw new UsageError('--token goes with --url')
        if (flags.token === '') throw new UsageError('--token must not be empty')
        let text: string
        if (flags.file !== undefined) {
          try {
            text = await readFile(flags.file, 'utf8')
          } catch (error) {
            throw new CliFailure(`cannot read ${flags.file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`)
          }
        } else {
          const token = flags.token ?? (io.env.METRICS_TOKEN || undefined)
          text = await scrape(flags.url ?? '', token, fetchImpl)
        }
        return usageReport(text)
      },
    },
    argv,
  )
}

if (isMain(import.meta.url)) process.exitCode = await run(process.argv.slice(2))
