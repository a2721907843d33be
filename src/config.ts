import { z } from 'zod'
import { LOG_LEVELS } from './observability/logger.js'
import { SIGNING_ALGS } from './keys/algorithms.js'

/**
 * Configuration from the environment, validated once at start-up. Each variable is declared once,
 * with what is allowed in words, so a bad value stops the process with one line naming the
 * variable, the problem and what is allowed. `.env.example` and the README list the same names
 * (test/unit/config.test.ts checks).
 */

const isLoopback = (host: string) =>
  host === 'localhost' || host === '[::1]' || host.startsWith('127.') || host.endsWith('.localhost')

const integer = (min: number, max: number) => z.coerce.number().int().min(min).max(max)

// RFC 8414 §2: the issuer is an https URL with no query or fragment. Plain http only on loopback,
// so the embedded defaults work on a laptop and production cannot forget TLS.
const issuerUrl = z.string().refine((value) => {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return false
  }
  if (url.search || url.hash || value.endsWith('/') || url.username || url.password) return false
  return url.protocol === 'https:' || (url.protocol === 'http:' && isLoopback(url.hostname))
})

const spec = {
  PORT: { schema: integer(0, 65535), allowed: 'a TCP port from 0 to 65535', default: '3000' },
  HOST: { schema: z.string().min(1), allowed: 'an interface address or host name to listen on', default: '127.0.0.1' },
  ISSUER: {
    schema: issuerUrl,
    allowed: 'an https URL without query, fragment or trailing slash (http only for localhost)',
    default: undefined, // derived from PORT
  },
  KEYS_DIR: { schema: z.string().min(1), allowed: 'a directory path', default: './keys' },
  CLIENTS_FILE: { schema: z.string().min(1), allowed: 'a file path', default: './clients.json' },
  ACCESS_TOKEN_TTL: {
    schema: integer(60, 3600),
    allowed: 'an integer number of seconds from 60 to 3600',
    default: '300',
  },
  SIGNING_ALG: { schema: z.enum(SIGNING_ALGS), allowed: SIGNING_ALGS.join(', '), default: 'ES256' },
  LOG_LEVEL: { schema: z.enum(LOG_LEVELS), allowed: LOG_LEVELS.join(', '), default: 'info' },
} as const

export const CONFIG_VARIABLES = Object.keys(spec) as (keyof typeof spec)[]

export interface Config {
  port: number
  host: string
  issuer: string
  keysDir: string
  clientsFile: string
  accessTokenTtl: number
  signingAlg: (typeof SIGNING_ALGS)[number]
  logLevel: (typeof LOG_LEVELS)[number]
}

export class ConfigError extends Error {
  readonly problems: string[]
  constructor(problems: string[]) {
    super(problems.join('\n'))
    this.name = 'ConfigError'
    this.problems = problems
  }
}

type Env = Record<string, string | undefined>

/** Parses and validates; throws ConfigError with one line per bad variable. */
export function loadConfig(env: Env): Config {
  const problems: string[] = []
  const read = <K extends keyof typeof spec>(name: K): z.output<(typeof spec)[K]['schema']> | undefined => {
    const { schema, allowed, default: fallback } = spec[name]
    const raw = env[name] === undefined || env[name] === '' ? fallback : env[name]
    if (raw === undefined) return undefined
    const parsed = schema.safeParse(raw)
    if (parsed.success) return parsed.data as z.output<(typeof spec)[K]['schema']>
    problems.push(`${name}=${JSON.stringify(raw)} is not valid: allowed is ${allowed}`)
    return undefined
  }

  const port = read('PORT')
  const host = read('HOST')
  const issuer = read('ISSUER') ?? (env.ISSUER ? undefined : `http://localhost:${port ?? 3000}`)
  const keysDir = read('KEYS_DIR')
  const clientsFile = read('CLIENTS_FILE')
  const accessTokenTtl = read('ACCESS_TOKEN_TTL')
  const signingAlg = read('SIGNING_ALG')
  const logLevel = read('LOG_LEVEL')
  if (problems.length > 0) throw new ConfigError(problems)

  return {
    port: port!,
    host: host!,
    issuer: issuer!,
    keysDir: keysDir!,
    clientsFile: clientsFile!,
    accessTokenTtl: accessTokenTtl!,
    signingAlg: signingAlg!,
    logLevel: logLevel!,
  }
}
