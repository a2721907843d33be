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
  RELOAD_INTERVAL: {
    schema: integer(1, 60),
    allowed: 'an integer number of seconds from 1 to 60',
    default: '1',
  },
  KEY_ACTIVATION_DELAY: {
    schema: integer(0, 7 * 86400),
    allowed: 'an integer number of seconds from 0 to 604800',
    default: '900',
  },
  KEYS_PASSPHRASE: {
    schema: z.string().min(12),
    allowed: 'at least 12 characters (unset: key files are not encrypted)',
    default: undefined,
    secret: true,
  },
  REDIS_URL: {
    schema: z.string().regex(/^rediss?:\/\/[^\s]+$/),
    allowed: 'a redis:// or rediss:// URL (unset: in-memory denylist, single instance only)',
    default: undefined,
    secret: true, // may hold a password: never echoed
  },
  REDIS_KEY_PREFIX: {
    schema: z.string().regex(/^[A-Za-z0-9:._-]{1,64}$/),
    allowed: '1-64 characters of A-Z a-z 0-9 : . _ -',
    default: 'tokensmith:',
  },
  CLOCK_TOLERANCE: {
    schema: integer(0, 300),
    allowed: 'an integer number of seconds from 0 to 300',
    default: '30',
  },
  REVOCATIONS_PER_CLIENT: {
    schema: integer(1, 1_000_000),
    allowed: 'an integer from 1 to 1000000',
    default: '10000',
  },
  PUBLISH_SCOPES: {
    schema: z.enum(['true', 'false']).transform((value) => value === 'true'),
    allowed: 'true or false',
    default: 'false',
  },
} as const satisfies Record<string, { schema: z.ZodType; allowed: string; default: string | undefined; secret?: boolean }>

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
  /** Seconds between checks of KEYS_DIR and CLIENTS_FILE for changes (SIGHUP checks at once). */
  reloadInterval: number
  /** Seconds between `keys rotate` and the new key signing: verifiers must have fetched it first. */
  keyActivationDelay: number
  /** Unset: key files hold plain PKCS#8; set: encrypted PKCS#8. Never logged. */
  keysPassphrase: string | undefined
  /** Unset: the in-memory denylist, which serves one instance only. */
  redisUrl: string | undefined
  redisKeyPrefix: string
  /** T: the clock skew verifiers allow. Revocations outlive exp by T (checklist decision 5). */
  clockTolerance: number
  /** Live revocations one client may hold in the shared denylist; past it revocation answers 429. */
  revocationsPerClient: number
  /** Whether the metadata's scopes_supported lists the union of every client's scopes (RFC 8414 §2). */
  publishScopes: boolean
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
    const secret = 'secret' in spec[name] && spec[name].secret
    const raw = env[name] === undefined || env[name] === '' ? fallback : env[name]
    if (raw === undefined) return undefined
    const parsed = schema.safeParse(raw)
    if (parsed.success) return parsed.data as z.output<(typeof spec)[K]['schema']>
    problems.push(`${name}=${secret ? '(hidden)' : JSON.stringify(raw)} is not valid: allowed is ${allowed}`)
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
  const reloadInterval = read('RELOAD_INTERVAL')
  const keyActivationDelay = read('KEY_ACTIVATION_DELAY')
  const keysPassphrase = read('KEYS_PASSPHRASE')
  const redisUrl = read('REDIS_URL')
  const redisKeyPrefix = read('REDIS_KEY_PREFIX')
  const clockTolerance = read('CLOCK_TOLERANCE')
  const revocationsPerClient = read('REVOCATIONS_PER_CLIENT')
  const publishScopes = read('PUBLISH_SCOPES')
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
    reloadInterval: reloadInterval!,
    keyActivationDelay: keyActivationDelay!,
    keysPassphrase,
    redisUrl,
    redisKeyPrefix: redisKeyPrefix!,
    clockTolerance: clockTolerance!,
    revocationsPerClient: revocationsPerClient!,
    publishScopes: publishScopes!,
  }
}
