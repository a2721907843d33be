import { readFileSync } from 'node:fs'
import { BlockList, isIP } from 'node:net'
import { availableParallelism } from 'node:os'
import { z } from 'zod'
import { LOG_LEVELS } from './observability/logger.js'
import { SIGNING_ALGS } from './keys/algorithms.js'
import { BEARER_AUTH_DEFAULTS } from './verifier/options.js'
import type { Env } from './env.js'
import type { HostPort, RedisTarget } from './denylist/redis-target.js'

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

/**
 * Seconds verifiers may cache the key set (`Cache-Control: max-age` of /.well-known/jwks.json);
 * key rotation publishes new keys well before they sign (KEY_ACTIVATION_DELAY, KEY_PUBLISH_MIN).
 */
export const JWKS_MAX_AGE = 300

/**
 * The Redis Cluster hash tag of `key` by the cluster spec's rule (the text between the first `{`
 * and the first `}` after it, when not empty), or undefined: the whole key is hashed then.
 * https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/#hash-tags
 */
export function hashTagOf(key: string): string | undefined {
  const open = key.indexOf('{')
  if (open === -1) return undefined
  const close = key.indexOf('}', open + 1)
  return close > open + 1 ? key.slice(open + 1, close) : undefined
}

/** Why `value` is not an acceptable REDIS_KEY_PREFIX, or undefined when it is. */
export function keyPrefixProblem(value: string): string | undefined {
  if (!/^[A-Za-z0-9:._{}-]{1,64}$/.test(value)) return 'it has a character outside the allowed ones, or a bad length'
  // A brace without a complete tag would let the id after the prefix form the tag, so keys of one
  // prefix could land in different slots.
  if (/[{}]/.test(value) && hashTagOf(value) === undefined) return 'its braces do not make a non-empty hash tag'
  return undefined
}

/** Why `value` is not a list `host:port,host:port`, or undefined when it is. */
export function hostPortsProblem(value: string): string | undefined {
  const items = value.split(',').map((item) => item.trim())
  for (const item of items) {
    const match = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):([0-9]{1,5})$/.exec(item)
    if (!match) return item === '' ? 'an empty item' : `${JSON.stringify(item)} is not host:port`
    const port = Number(match[2])
    if (port < 1 || port > 65535) return `${JSON.stringify(item)} has a port outside 1-65535`
  }
  return undefined
}

/** `host:port,...` as a list; an IPv6 host loses its brackets. */
export function parseHostPorts(value: string): HostPort[] {
  return value.split(',').map((item) => {
    const at = item.trim().lastIndexOf(':')
    const host = item.trim().slice(0, at)
    return { host: host.replace(/^\[(.*)\]$/, '$1'), port: Number(item.trim().slice(at + 1)) }
  })
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
  /**
   * Seconds a key must have been published by this instance (in its JWKS) before it signs there,
   * whatever its `activates` says (a key file synced late by GitOps). Default: the JWKS max-age
   * plus the 10-minute JWKS cache of verifiers that ignore it (RFC 7517 §5, RFC 9111 §5.2.2.1).
   * 0: no such rule (a key signs at its `activates`).
   */
  keyPublishMin: {
    name: 'KEY_PUBLISH_MIN',
    schema: integer(0, 86400),
    allowed: 'an integer number of seconds from 0 to 86400 (0: a key signs at its activates time)',
    default: String(JWKS_MAX_AGE + BEARER_AUTH_DEFAULTS.jwks.cacheMaxAge),
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
  /** Sentinels that know the master (Redis Sentinel); with REDIS_SENTINEL_NAME. Instead of REDIS_URL. */
  redisSentinels: {
    name: 'REDIS_SENTINELS',
    schema: checked(hostPortsProblem).transform(parseHostPorts).optional(),
    allowed: 'host:port,host:port,... of the sentinels (IPv6 as [addr]:port)',
  },
  /** The master group name the sentinels monitor. */
  redisSentinelName: {
    name: 'REDIS_SENTINEL_NAME',
    schema: z
      .string()
      .regex(/^[\x21-\x7E]{1,128}$/)
      .optional(),
    allowed: 'the master group name of the sentinels (1-128 visible ASCII characters)',
  },
  /** Seed nodes of a Redis Cluster. Instead of REDIS_URL. */
  redisClusterNodes: {
    name: 'REDIS_CLUSTER_NODES',
    schema: checked(hostPortsProblem).transform(parseHostPorts).optional(),
    allowed: 'host:port,host:port,... of some Redis Cluster nodes (IPv6 as [addr]:port)',
  },
  /** ACL user of the data nodes, with REDIS_SENTINELS or REDIS_CLUSTER_NODES (REDIS_URL carries its own). */
  redisUsername: {
    name: 'REDIS_USERNAME',
    schema: z
      .string()
      .regex(/^[\x21-\x7E]{1,256}$/)
      .optional(),
    allowed: '1-256 visible ASCII characters (unset: the default user)',
  },
  /** File holding the data nodes' password, read at start-up; never logged. */
  redisPasswordFile: {
    name: 'REDIS_PASSWORD_FILE',
    schema: z.string().min(1).optional(),
    allowed: 'a file path (unset: no password)',
  },
  /** File holding the sentinels' password, read at start-up; never logged. */
  redisSentinelPasswordFile: {
    name: 'REDIS_SENTINEL_PASSWORD_FILE',
    schema: z.string().min(1).optional(),
    allowed: 'a file path (unset: the sentinels need no password)',
  },
  /** TLS to every sentinel and node (REDIS_URL says rediss:// instead). */
  redisTls: {
    name: 'REDIS_TLS',
    schema: z.enum(['true', 'false']).transform((value) => value === 'true'),
    allowed: 'true or false',
    default: 'false',
  },
  /** PEM CA bundle that Redis TLS certificates are checked against; unset: the system's CAs. */
  redisTlsCaFile: {
    name: 'REDIS_TLS_CA_FILE',
    schema: z.string().min(1).optional(),
    allowed: 'a PEM CA bundle file path (unset: the system CAs)',
  },
  /**
   * Prepended to every key and to the channel. On a Cluster it must hold a hash tag (`{tokensmith}`):
   * every key and the channel then hash to one slot, so scripts, MULTI and MGET work there. Unset:
   * see `redisKeyPrefixDefault`.
   */
  redisKeyPrefix: {
    name: 'REDIS_KEY_PREFIX',
    schema: checked(keyPrefixProblem).optional(),
    allowed:
      '1-64 characters of A-Z a-z 0-9 : . _ - { }, where a { or } makes a non-empty hash tag such as {tokensmith} (unset: {tokensmith}: with REDIS_CLUSTER_NODES, tokensmith: otherwise)',
  },
  /**
   * Replicas that must acknowledge each revocation (Redis WAIT, https://redis.io/docs/latest/commands/wait/)
   * before it is answered 200; fewer within REDIS_WAIT_MS is a 503. Unset: see `redisWaitReplicasDefault`.
   */
  redisWaitReplicas: {
    name: 'REDIS_WAIT_REPLICAS',
    schema: integer(0, 5).optional(),
    allowed:
      'an integer from 0 to 5 (0: no wait; unset: 1 with REDIS_SENTINELS or REDIS_CLUSTER_NODES, 0 with REDIS_URL)',
  },
  /** Milliseconds a revocation waits for REDIS_WAIT_REPLICAS replicas (WAIT's timeout). */
  redisWaitMs: {
    name: 'REDIS_WAIT_MS',
    schema: integer(10, 10_000),
    allowed: 'an integer number of milliseconds from 10 to 10000',
    default: '500',
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
    allowed: `an integer from 1 to ${MAX_WORKERS}, or auto (one per CPU, at most ${MAX_WORKERS}); other than 1 needs REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES`,
    default: '1',
  },
} as const satisfies Record<string, Variable>

type Variables = typeof VARIABLES

/** What each variable's schema yields (undefined for one left unset that has no default). */
type Settings = { -readonly [K in keyof Variables]: z.output<Variables[K]['schema']> }

/** The validated configuration: one field per variable. */
export type Config = Omit<Settings, 'issuer' | 'redisKeyPrefix' | 'redisWaitReplicas'> & {
  /** The token `iss` and the base of every endpoint URL (RFC 8414 §2). Unset: `http://localhost:<PORT>` (https with TLS_CERT_FILE). */
  issuer: string
  /**
   * The shared store, from REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES with the passwords and CA
   * read from their files; undefined: the in-memory denylist. Holds secrets: never log it (log
   * `describeRedisTarget`).
   */
  redis: RedisTarget | undefined
  /** REDIS_KEY_PREFIX, or its default for the Redis topology (`redisKeyPrefixDefault`). */
  redisKeyPrefix: string
  /** REDIS_WAIT_REPLICAS, or its default for the Redis topology (`redisWaitReplicasDefault`). */
  redisWaitReplicas: number
}

/**
 * The key prefix when REDIS_KEY_PREFIX is unset. A Cluster needs a hash tag, so there it is
 * `{tokensmith}:`. Elsewhere it stays `tokensmith:`, the prefix of earlier versions: a deployment
 * upgraded without setting REDIS_KEY_PREFIX keeps reading the revocations it already holds (a new
 * default would start it on an empty denylist, and every revoked token would be valid again).
 */
export function redisKeyPrefixDefault(env: { REDIS_CLUSTER_NODES?: string }): string {
  return env.REDIS_CLUSTER_NODES ? '{tokensmith}:' : 'tokensmith:'
}

/**
 * Replicas a revocation waits for when REDIS_WAIT_REPLICAS is unset: 1 with Sentinel or Cluster,
 * which exist to fail over to a replica, and 0 with a single node (REDIS_URL), which may have no
 * replica to wait for.
 */
export function redisWaitReplicasDefault(env: { REDIS_SENTINELS?: string; REDIS_CLUSTER_NODES?: string }): number {
  return env.REDIS_SENTINELS || env.REDIS_CLUSTER_NODES ? 1 : 0
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

/**
 * A secret or a CA bundle from a file, read at start-up: one trailing newline is dropped (files
 * written by `echo` or a Kubernetes Secret). A problem names the variable and the file, never the
 * content.
 */
function readConfigFile(name: string, file: string, problems: string[]): string | undefined {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (error) {
    problems.push(
      `${name}=${JSON.stringify(file)} cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
    )
    return undefined
  }
  const value = text.replace(/\r?\n$/, '')
  if (value === '') problems.push(`${name}=${JSON.stringify(file)} is empty`)
  return value === '' ? undefined : value
}

/**
 * Which Redis, if any: REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES, at most one, with the
 * settings that go with it. Pushes a problem for each setting that does not fit the topology.
 */
function redisTarget(env: Env, values: Record<string, unknown>, problems: string[]): RedisTarget | undefined {
  const url = values.redisUrl as string | undefined
  const sentinels = values.redisSentinels as HostPort[] | undefined
  const clusterNodes = values.redisClusterNodes as HostPort[] | undefined
  const topologies = ['REDIS_URL', 'REDIS_SENTINELS', 'REDIS_CLUSTER_NODES'].filter((name) => env[name])
  if (topologies.length > 1) {
    problems.push(
      `${topologies.join(' and ')} are all set: set exactly one (a single node, a Sentinel group or a Cluster)`,
    )
    return undefined
  }
  const only = (name: string, where: string) => {
    if (env[name]) problems.push(`${name} is set but ${where}`)
  }
  if (!env.REDIS_SENTINELS) {
    only('REDIS_SENTINEL_NAME', 'REDIS_SENTINELS is not: it names the master group of those sentinels')
    only('REDIS_SENTINEL_PASSWORD_FILE', 'REDIS_SENTINELS is not: it is the password of those sentinels')
  }
  if (!env.REDIS_SENTINELS && !env.REDIS_CLUSTER_NODES) {
    const where = env.REDIS_URL
      ? 'REDIS_URL carries its own: write redis://user:password@host:port (or rediss:// for TLS) there'
      : 'no Redis is: set REDIS_SENTINELS or REDIS_CLUSTER_NODES'
    only('REDIS_USERNAME', where)
    only('REDIS_PASSWORD_FILE', where)
    if (env.REDIS_TLS === 'true') problems.push(`REDIS_TLS=true is set but ${where}`)
  }
  if (env.REDIS_TLS_CA_FILE) {
    if (topologies.length === 0)
      problems.push('REDIS_TLS_CA_FILE is set but no Redis is: set REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES')
    else if (url !== undefined && !url.startsWith('rediss://'))
      problems.push('REDIS_TLS_CA_FILE is set but REDIS_URL is redis:// (no TLS): write rediss://')
    else if (url === undefined && env.REDIS_TLS !== 'true')
      problems.push('REDIS_TLS_CA_FILE is set but REDIS_TLS is not true: set REDIS_TLS=true to use TLS')
  }
  const prefix = values.redisKeyPrefix
  if (env.REDIS_CLUSTER_NODES && typeof prefix === 'string' && hashTagOf(prefix) === undefined) {
    problems.push(
      `REDIS_KEY_PREFIX=${JSON.stringify(prefix)} has no hash tag, which a Redis Cluster needs so that every key and the channel hash to one slot: write it as {${prefix.replace(/:$/, '')}}: for example`,
    )
  }
  if (env.REDIS_SENTINELS && !env.REDIS_SENTINEL_NAME)
    problems.push(
      'REDIS_SENTINELS is set but REDIS_SENTINEL_NAME is not: set it to the master group name the sentinels monitor',
    )
  if (problems.length > 0 || topologies.length === 0) return undefined

  const ca = env.REDIS_TLS_CA_FILE ? readConfigFile('REDIS_TLS_CA_FILE', env.REDIS_TLS_CA_FILE, problems) : undefined
  if (ca !== undefined && !ca.includes('-----BEGIN CERTIFICATE-----'))
    problems.push(`REDIS_TLS_CA_FILE=${JSON.stringify(env.REDIS_TLS_CA_FILE)} holds no PEM certificate`)
  const tls =
    url?.startsWith('rediss://') || values.redisTls === true ? { ...(ca === undefined ? {} : { ca }) } : undefined
  if (url !== undefined) return { kind: 'single', url, ...(tls && { tls }) }
  const password = env.REDIS_PASSWORD_FILE
    ? readConfigFile('REDIS_PASSWORD_FILE', env.REDIS_PASSWORD_FILE, problems)
    : undefined
  const auth = {
    ...(typeof values.redisUsername === 'string' && { username: values.redisUsername }),
    ...(password !== undefined && { password }),
    ...(tls && { tls }),
  }
  if (clusterNodes !== undefined) return { kind: 'cluster', nodes: clusterNodes, ...auth }
  const sentinelPassword = env.REDIS_SENTINEL_PASSWORD_FILE
    ? readConfigFile('REDIS_SENTINEL_PASSWORD_FILE', env.REDIS_SENTINEL_PASSWORD_FILE, problems)
    : undefined
  return {
    kind: 'sentinel',
    sentinels: sentinels ?? [],
    name: values.redisSentinelName as string,
    ...auth,
    ...(sentinelPassword !== undefined && { sentinelPassword }),
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
  const shared = Boolean(env.REDIS_URL || env.REDIS_SENTINELS || env.REDIS_CLUSTER_NODES)
  if (typeof workers === 'number' && (workers > 1 || env.WORKERS === 'auto') && !shared) {
    problems.push(
      `WORKERS=${JSON.stringify(env.WORKERS)} needs a shared denylist: without one each worker keeps its own in-memory denylist, and a revocation would reach only the worker that took it; set REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES, or WORKERS=1`,
    )
  }
  const redis = redisTarget(env, values, problems)
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
  return {
    ...settings,
    issuer: settings.issuer ?? `${scheme}://localhost:${settings.port}`,
    redis,
    redisKeyPrefix: settings.redisKeyPrefix ?? redisKeyPrefixDefault(env),
    redisWaitReplicas: settings.redisWaitReplicas ?? redisWaitReplicasDefault(env),
  }
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
