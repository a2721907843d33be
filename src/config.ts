import { BlockList, isIP } from 'node:net'
import { availableParallelism } from 'node:os'
import { z } from 'zod'
import { LOG_LEVELS } from './observability/logger.js'
import { SIGNING_ALGS } from './keys/algorithms.js'
import type { Env } from './env.js'

/**
 * Configuration from the environment, validated once at start-up. Each variable is declared once,
 * in VARIABLES below, with what is allowed in words, so a bad value stops the process with one line
 * naming the variable, the problem and what is allowed.
 */

const ipv6Loopback = new BlockList()
ipv6Loopback.addAddress('::1', 'ipv6')

/**
 * True for names that can only reach this machine: IP literals in 127.0.0.0/8, ::1 (bracketed or
 * not), `localhost` and `*.localhost` (RFC 6761 §6.3). Anything else may resolve to another host:
 * `127.evil.example` is a DNS name like any other.
 */
export function isLoopbackHost(host: string): boolean {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host
  const name = bare.toLowerCase()
  if (name === 'localhost' || name.endsWith('.localhost')) return true
  if (isIP(bare) === 4) return bare.startsWith('127.')
  if (isIP(bare) === 6) return ipv6Loopback.check(bare, 'ipv6')
  return false
}

// Plain decimal digits only: Number() would also take '3e3', '0x0DF0', ' 3552' and '+80'.
const integer = (min: number, max: number) =>
  z
    .string()
    .regex(/^[0-9]+$/)
    .transform(Number)
    .pipe(z.number().int().min(min).max(max))

/** Why `value` is not an acceptable issuer, or undefined when it is. */
export function issuerProblem(value: string): string | undefined {
  // RFC 8414 §2: no query or fragment, not even an empty one (new URL() drops a bare '?' or '#').
  if (value.includes('?') || value.includes('#')) return 'it has a query or fragment'
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return 'it is not a URL'
  }
  if (url.username || url.password) return 'it holds a user name or password'
  // Plain http only on loopback, so the embedded defaults work on a laptop and production cannot
  // forget TLS.
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname))) {
    return url.protocol === 'http:' ? 'http is only for a loopback host' : 'it is not an https URL'
  }
  // Verifiers compare iss as a string (RFC 8414 §3.3, RFC 9068 §4): the configured value is what
  // tokens and metadata say, so it must already be the one spelling URL parsers produce.
  const canonical = url.href.replace(/\/+$/, '')
  if (value !== canonical) return `not in canonical form: write ${JSON.stringify(canonical)}`
  return undefined
}

/**
 * Why `value` is not an acceptable REDIS_URL, or undefined when it is. Never quotes the value, which
 * may hold a password.
 */
export function redisUrlProblem(value: string): string | undefined {
  // ioredis turns TLS on only for a lower-case "rediss://"; "REDISS://" would connect in clear.
  if (!/^rediss?:\/\//.test(value)) return 'it does not start with redis:// or rediss://'
  if (/\s/.test(value)) return 'it contains white space'
  if (value.includes('#')) return 'it has a fragment; write a # in the password as %23'
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return 'it is not a URL'
  }
  if (!url.hostname) return 'it has no host'
  // ioredis reads the path as the database number; a name there became SELECT NaN and a crash.
  const db = url.pathname.slice(1)
  if (url.pathname !== '' && url.pathname !== '/' && !(/^[0-9]+$/.test(db) && Number(db) <= 2 ** 31 - 1)) {
    return 'the path is not a database number such as /0'
  }
  // ioredis turns every query item into a client option that wins over the ones the denylist sets
  // (timeouts, offline queue, retries), so only the address family is allowed.
  for (const [key, option] of url.searchParams) {
    if (key !== 'family' || (option !== '4' && option !== '6')) {
      return 'its query may only be family=4 or family=6; the database number goes in the path'
    }
  }
  return undefined
}

/** Who may set X-Forwarded-For: the last `hops` proxies, or proxies at these addresses and ranges. */
export type TrustProxy = { hops: number } | { ranges: readonly string[] }

/** One TRUST_PROXY item: an IP address or a CIDR range. */
function proxyRangeProblem(item: string): string | undefined {
  const [address = '', prefix, extra] = item.split('/')
  const family = isIP(address)
  if (family === 0 || extra !== undefined) return `${JSON.stringify(item)} is not an IP address or CIDR range`
  if (prefix === undefined) return undefined
  const max = family === 4 ? 32 : 128
  if (!/^[0-9]{1,3}$/.test(prefix) || Number(prefix) > max) return `${JSON.stringify(item)} has a bad prefix length`
  return undefined
}

/** Why `value` is not an acceptable TRUST_PROXY, or undefined when it is. */
export function trustProxyProblem(value: string): string | undefined {
  if (/^[0-9]+$/.test(value)) {
    return Number(value) >= 1 && Number(value) <= 10 ? undefined : 'a hop count is from 1 to 10'
  }
  const items = value.split(',').map((item) => item.trim())
  if (items.some((item) => item === '')) return 'an empty item'
  for (const item of items) {
    const problem = proxyRangeProblem(item)
    if (problem) return problem
  }
  return undefined
}

function parseTrustProxy(value: string): TrustProxy {
  if (/^[0-9]+$/.test(value)) return { hops: Number(value) }
  return { ranges: value.split(',').map((item) => item.trim()) }
}

/** More processes than this only contend for the same cores and Redis connections. */
export const MAX_WORKERS = 64

const checked = (problem: (value: string) => string | undefined) =>
  z.string().superRefine((value, ctx) => {
    const message = problem(value)
    if (message !== undefined) ctx.addIssue({ code: 'custom', message })
  })

/** One configuration variable: where it is read, how it is parsed, and what to say when it is wrong. */
interface Variable {
  /** The environment variable (and `.env` name). */
  name: string
  /** Parses the raw text. Ends in `.optional()` when the variable may stay unset (no default). */
  schema: z.ZodType
  /** What is allowed, in words: the end of the error message for a bad value. */
  allowed: string
  /** The raw text used when the variable is unset or empty. */
  default?: string
  /** The value may hold a password: an error says `(hidden)` instead. */
  secret?: boolean
}

/**
 * Every configuration variable, once. The key is the `Config` field; the field's type is what the
 * schema yields and its documentation is the comment here. `.env.example` and the README's
 * configuration table list the same names (test/unit/config.test.ts checks).
 */
const VARIABLES = {
  port: { name: 'PORT', schema: integer(1, 65535), allowed: 'a TCP port from 1 to 65535', default: '3000' },
  host: {
    name: 'HOST',
    schema: z.string().min(1),
    allowed: 'an interface address or host name to listen on',
    default: '127.0.0.1',
  },
  // No default here: unset, it is http://localhost:<PORT> (see Config).
  issuer: {
    name: 'ISSUER',
    schema: checked(issuerProblem).optional(),
    allowed: 'an https URL in canonical form without query, fragment or trailing slash (http only for a loopback host)',
  },
  keysDir: { name: 'KEYS_DIR', schema: z.string().min(1), allowed: 'a directory path', default: './keys' },
  clientsFile: { name: 'CLIENTS_FILE', schema: z.string().min(1), allowed: 'a file path', default: './clients.json' },
  /** Workload identity federation: which platform tokens authenticate as which clients (src/federation/). */
  trustFile: { name: 'TRUST_FILE', schema: z.string().min(1), allowed: 'a file path', default: './trust.json' },
  accessTokenTtl: {
    name: 'ACCESS_TOKEN_TTL',
    schema: integer(60, 3600),
    allowed: 'an integer number of seconds from 60 to 3600',
    default: '300',
  },
  signingAlg: { name: 'SIGNING_ALG', schema: z.enum(SIGNING_ALGS), allowed: SIGNING_ALGS.join(', '), default: 'ES256' },
  logLevel: { name: 'LOG_LEVEL', schema: z.enum(LOG_LEVELS), allowed: LOG_LEVELS.join(', '), default: 'info' },
  /** Seconds between checks of KEYS_DIR and CLIENTS_FILE for changes (SIGHUP checks at once). */
  reloadInterval: {
    name: 'RELOAD_INTERVAL',
    schema: integer(1, 60),
    allowed: 'an integer number of seconds from 1 to 60',
    default: '1',
  },
  /** Seconds between `keys rotate` and the new key signing: verifiers must have fetched it first. */
  keyActivationDelay: {
    name: 'KEY_ACTIVATION_DELAY',
    schema: integer(0, 7 * 86400),
    allowed: 'an integer number of seconds from 0 to 604800',
    default: '900',
  },
  /** Unset: key files hold plain PKCS#8; set: encrypted PKCS#8. Never logged. */
  keysPassphrase: {
    name: 'KEYS_PASSPHRASE',
    schema: z.string().min(12).optional(),
    allowed: 'at least 12 characters (unset: key files are not encrypted)',
    secret: true,
  },
  /** Unset: the in-memory denylist, which serves one instance only. May hold a password: never echoed. */
  redisUrl: {
    name: 'REDIS_URL',
    schema: checked(redisUrlProblem).optional(),
    allowed:
      'a redis:// or rediss:// URL: a host, an optional database number as the path, no query but family=4 or 6 (unset: in-memory denylist, single instance only)',
    secret: true,
  },
  redisKeyPrefix: {
    name: 'REDIS_KEY_PREFIX',
    schema: z.string().regex(/^[A-Za-z0-9:._-]{1,64}$/),
    allowed: '1-64 characters of A-Z a-z 0-9 : . _ -',
    default: 'tokensmith:',
  },
  /** T: the clock skew verifiers allow. Revocations outlive exp by T, so no verifier accepts a revoked token late. */
  clockTolerance: {
    name: 'CLOCK_TOLERANCE',
    schema: integer(0, 300),
    allowed: 'an integer number of seconds from 0 to 300',
    default: '30',
  },
  /**
   * How far ahead of now an RFC 7523 client assertion's `exp` may lie: a longer-lived assertion is
   * refused (RFC 7523 §3 item 4 lets the server limit it), so a stolen one is of use for minutes only.
   */
  clientAssertionMaxLifetime: {
    name: 'CLIENT_ASSERTION_MAX_LIFETIME',
    schema: integer(30, 3600),
    allowed: 'an integer number of seconds from 30 to 3600',
    default: '300',
  },
  /** Live revocations one client may hold in the shared denylist; past it revocation answers 429. */
  revocationsPerClient: {
    name: 'REVOCATIONS_PER_CLIENT',
    schema: integer(1, 1_000_000),
    allowed: 'an integer from 1 to 1000000',
    default: '10000',
  },
  /** Failed client authentications per (client id, source address) per minute; past it 429 (RFC 6749 §2.3.1). */
  authFailureLimit: {
    name: 'AUTH_FAILURE_LIMIT',
    schema: integer(1, 10_000),
    allowed: 'an integer from 1 to 10000 (failures per minute per client id and source address)',
    default: '10',
  },
  /** Failed client authentications per source address per minute, over every client id; past it 429. */
  authFailureLimitPerAddress: {
    name: 'AUTH_FAILURE_LIMIT_PER_ADDRESS',
    schema: integer(1, 1_000_000),
    allowed: 'an integer from 1 to 1000000 (failures per minute per source address)',
    default: '100',
  },
  /**
   * Which peers may say who the client is through X-Forwarded-For (RFC 9700 §4.13, RFC 7239 §5.2).
   * Unset: nobody; the source address is the socket's.
   */
  trustProxy: {
    name: 'TRUST_PROXY',
    schema: checked(trustProxyProblem).transform(parseTrustProxy).optional(),
    allowed:
      'a number of proxy hops from 1 to 10, or a comma-separated list of proxy addresses or CIDR ranges (unset: X-Forwarded-For is ignored)',
  },
  /** PEM certificate chain: with TLS_KEY_FILE, the server speaks HTTPS itself (reloaded on change). */
  tlsCertFile: {
    name: 'TLS_CERT_FILE',
    schema: z.string().min(1).optional(),
    allowed: 'a PEM certificate (chain) file path; set together with TLS_KEY_FILE',
  },
  /** PEM private key of TLS_CERT_FILE. */
  tlsKeyFile: {
    name: 'TLS_KEY_FILE',
    schema: z.string().min(1).optional(),
    allowed: 'a PEM private key file path; set together with TLS_CERT_FILE',
  },
  /** Whether the token endpoint demands a server nonce in DPoP proofs (RFC 9449 §8). */
  dpopNonce: {
    name: 'DPOP_NONCE',
    schema: z.enum(['true', 'false']).transform((value) => value === 'true'),
    allowed: 'true or false',
    default: 'false',
  },
  /** A separate port serving only GET /metrics (Prometheus text format); unset: no metrics port. */
  metricsPort: {
    name: 'METRICS_PORT',
    schema: integer(1, 65535).optional(),
    allowed: 'a TCP port from 1 to 65535, other than PORT (unset: no metrics port)',
  },
  /** With it, GET /metrics is also served on PORT to `Authorization: Bearer <METRICS_TOKEN>`. Never logged. */
  metricsToken: {
    name: 'METRICS_TOKEN',
    schema: z
      .string()
      .regex(/^[\x21-\x7E]{32,256}$/)
      .optional(),
    allowed: '32 to 256 visible ASCII characters (unset: /metrics is not served on PORT)',
    secret: true,
  },
  /** Whether the metadata's scopes_supported lists the union of every client's scopes (RFC 8414 §2). */
  publishScopes: {
    name: 'PUBLISH_SCOPES',
    schema: z.enum(['true', 'false']).transform((value) => value === 'true'),
    allowed: 'true or false',
    default: 'false',
  },
  /** Server processes on the one port: 1 serves from this process; more run a cluster primary that forks them. */
  workers: {
    name: 'WORKERS',
    schema: z.union([
      z.literal('auto').transform(() => Math.min(availableParallelism(), MAX_WORKERS)),
      integer(1, MAX_WORKERS),
    ]),
    allowed: `an integer from 1 to ${MAX_WORKERS}, or auto (one per CPU, at most ${MAX_WORKERS}); other than 1 needs REDIS_URL`,
    default: '1',
  },
} as const satisfies Record<string, Variable>

type Variables = typeof VARIABLES

/** What each variable's schema yields (undefined for one left unset that has no default). */
type Settings = { -readonly [K in keyof Variables]: z.output<Variables[K]['schema']> }

/** The validated configuration: one field per variable. */
export type Config = Omit<Settings, 'issuer'> & {
  /** The token `iss` and the base of every endpoint URL (RFC 8414 §2). Unset: `http://localhost:<PORT>` (https with TLS_CERT_FILE). */
  issuer: string
}

/** The names of the environment variables, in the order of the table above. */
export const CONFIG_VARIABLES = Object.values(VARIABLES).map((variable) => variable.name)

export class ConfigError extends Error {
  readonly problems: string[]
  constructor(problems: string[]) {
    super(problems.join('\n'))
    this.name = 'ConfigError'
    this.problems = problems
  }
}

/** Parses and validates; throws ConfigError with one line per bad variable. */
export function loadConfig(env: Env): Config {
  const problems: string[] = []
  const values: Record<string, unknown> = {}
  for (const [field, variable] of Object.entries<Variable>(VARIABLES)) {
    const { name, schema, allowed, secret } = variable
    // An empty value means unset, as in .env.example.
    const raw = env[name] || variable.default
    const parsed = schema.safeParse(raw)
    if (parsed.success) {
      values[field] = parsed.data
      continue
    }
    // Our own checks say why (never quoting the value); zod's generic messages add nothing.
    const why = parsed.error.issues.find((issue) => issue.code === 'custom')?.message
    problems.push(
      `${name}=${secret ? '(hidden)' : JSON.stringify(raw)} is not valid${why ? ` (${why})` : ''}: allowed is ${allowed}`,
    )
  }
  // The in-memory denylist lives in one process: with several, a revocation would reach only the
  // worker that took it, and the others would keep accepting the token. `auto` is refused too, even
  // where it means one CPU, so that one configuration behaves alike on every machine.
  const workers = values.workers
  if (typeof workers === 'number' && (workers > 1 || env.WORKERS === 'auto') && !env.REDIS_URL) {
    problems.push(
      `WORKERS=${JSON.stringify(env.WORKERS)} needs REDIS_URL: without it each worker keeps its own in-memory denylist, and a revocation would reach only the worker that took it; set REDIS_URL or WORKERS=1`,
    )
  }
  if (values.metricsPort !== undefined && values.metricsPort === values.port) {
    problems.push(`METRICS_PORT=${JSON.stringify(env.METRICS_PORT)} is PORT: the metrics port must be another port`)
  }
  if (Boolean(env.TLS_CERT_FILE) !== Boolean(env.TLS_KEY_FILE)) {
    problems.push('TLS_CERT_FILE and TLS_KEY_FILE go together: set both to serve HTTPS, or neither for plain HTTP')
  }
  if (problems.length > 0) throw new ConfigError(problems)

  // No problem: every field holds what its schema yields.
  const settings = values as Settings
  // Serving TLS itself, the server's own URL is https.
  const scheme = settings.tlsCertFile ? 'https' : 'http'
  return { ...settings, issuer: settings.issuer ?? `${scheme}://localhost:${settings.port}` }
}

/**
 * The start-up warning for a server that listens beyond this machine while its issuer is plain
 * http: tokens and client secrets then cross the network in clear unless a TLS proxy is in front
 * (RFC 6749 §1.6, §2.3.1). With TLS_CERT_FILE the server itself speaks HTTPS, so an http issuer is
 * wrong on any host: metadata and tokens would name URLs where nothing answers in clear.
 * Undefined when there is nothing to warn about.
 */
export function cleartextWarning(
  config: Pick<Config, 'host' | 'issuer'> & { tlsCertFile?: string | undefined },
): string | undefined {
  if (new URL(config.issuer).protocol !== 'http:') return undefined
  if (config.tlsCertFile) {
    return 'TLS_CERT_FILE is set, so the server speaks HTTPS, but ISSUER is http: metadata and tokens name URLs that do not answer; set ISSUER to the https URL clients use'
  }
  if (isLoopbackHost(config.host)) return undefined
  return 'HOST is not a loopback address but ISSUER is http: tokens and client secrets cross the network in clear unless a TLS proxy is in front (then set ISSUER to its https URL)'
}
