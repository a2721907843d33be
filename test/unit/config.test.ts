import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import {
  CONFIG_VARIABLES,
  ConfigError,
  MAX_WORKERS,
  cleartextWarning,
  hashTagOf,
  isLoopbackHost,
  loadConfig,
} from '../../src/config.js'

const names = (text: string, pattern: RegExp) => [...text.matchAll(pattern)].map((m) => m[1]!).sort()

describe('configuration', () => {
  it('has embedded defaults for every variable', () => {
    expect(loadConfig({})).toEqual({
      port: 3000,
      host: '127.0.0.1',
      issuer: 'http://localhost:3000',
      keysDir: './keys',
      clientsFile: './clients.json',
      trustFile: './trust.json',
      clientAssertionMaxLifetime: 300,
      accessTokenTtl: 300,
      signingAlg: 'ES256',
      logLevel: 'info',
      reloadInterval: 1,
      keyActivationDelay: 900,
      keyPublishMin: 900,
      keysPassphrase: undefined,
      redisUrl: undefined,
      redisSentinels: undefined,
      redisSentinelName: undefined,
      redisClusterNodes: undefined,
      redisUsername: undefined,
      redisPasswordFile: undefined,
      redisSentinelPasswordFile: undefined,
      redisTls: false,
      redisTlsCaFile: undefined,
      redisKeyPrefix: 'tokensmith:',
      redisWaitReplicas: 0,
      redisWaitMs: 500,
      redis: undefined,
      clockTolerance: 30,
      revocationsPerClient: 10000,
      authFailureLimit: 10,
      authFailureLimitPerAddress: 100,
      trustProxy: undefined,
      tlsCertFile: undefined,
      tlsKeyFile: undefined,
      dpopNonce: false,
      metricsPort: undefined,
      metricsToken: undefined,
      publishScopes: false,
      workers: 1,
    })
  })

  it('derives the default issuer from PORT', () => {
    expect(loadConfig({ PORT: '8080' }).issuer).toBe('http://localhost:8080')
  })

  it('treats an empty value as unset', () => {
    expect(loadConfig({ ISSUER: '', PORT: '' }).issuer).toBe('http://localhost:3000')
  })

  it('treats an empty value as unset for every variable', () => {
    expect(loadConfig(Object.fromEntries(CONFIG_VARIABLES.map((name) => [name, ''])))).toEqual(loadConfig({}))
  })

  it.each([
    ['ACCESS_TOKEN_TTL', '5'],
    ['ACCESS_TOKEN_TTL', '3601'],
    ['ACCESS_TOKEN_TTL', '1.5'],
    ['ACCESS_TOKEN_TTL', 'abc'],
    ['PORT', '70000'],
    ['SIGNING_ALG', 'HS256'],
    ['SIGNING_ALG', 'none'],
    ['LOG_LEVEL', 'loud'],
    ['CLOCK_TOLERANCE', '-1'],
    ['CLOCK_TOLERANCE', '301'],
    ['REDIS_KEY_PREFIX', 'has space'],
    ['ISSUER', 'http://auth.example.com'],
    ['ISSUER', 'https://auth.example.com/'],
    ['ISSUER', 'https://auth.example.com?x=1'],
    ['ISSUER', 'https://auth.example.com#f'],
    ['ISSUER', 'not a url'],
    ['PORT', '0'],
    // RFC 8414 §2: no query or fragment, not even an empty one.
    ['ISSUER', 'https://auth.example.com?'],
    ['ISSUER', 'https://auth.example.com#'],
    // http only for loopback, and a DNS name that starts with 127. is not loopback.
    ['ISSUER', 'http://127.evil.example'],
    ['ISSUER', 'http://localhost.evil.example'],
    ['ISSUER', 'http://10.0.0.1:3000'],
    ['ISSUER', 'https://user:pw@auth.example.com'],
    ['ISSUER', 'https://auth.example.com:443'],
    ['ISSUER', 'HTTPS://AUTH.EXAMPLE.COM'],
    ['ISSUER', 'https://auth.example.com/a/../b'],
    ['WORKERS', '0'],
    ['WORKERS', '65'],
    ['WORKERS', 'all'],
    ['WORKERS', 'AUTO'],
  ])('refuses %s=%s with one line naming the variable, the value and what is allowed', (name, value) => {
    let error: unknown
    try {
      loadConfig({ [name]: value })
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(ConfigError)
    const problems = (error as ConfigError).problems
    expect(problems).toHaveLength(1)
    expect(problems[0]).toContain(`${name}=${JSON.stringify(value)}`)
    expect(problems[0]).toMatch(/allowed is .+/)
    expect(problems[0]).not.toContain('\n')
  })

  // Each spelling means an allowed number to Number(), which the old parsing used.
  const INTEGER_SETTINGS = {
    WORKERS: 2,
    PORT: 3000,
    ACCESS_TOKEN_TTL: 120,
    RELOAD_INTERVAL: 30,
    KEY_ACTIVATION_DELAY: 0,
    CLOCK_TOLERANCE: 30,
    REVOCATIONS_PER_CLIENT: 120,
  }
  const spellings = (n: number) => [
    `${n}e0`,
    `0x${n.toString(16)}`,
    ` ${n}`,
    `${n} `,
    `+${n}`,
    `${n}.0`,
    ...(n === 0 ? ['-0'] : []),
  ]
  it.each(Object.entries(INTEGER_SETTINGS).flatMap(([name, n]) => spellings(n).map((value) => [name, value])))(
    'refuses %s=%j: an integer setting takes plain decimal digits only',
    (name, value) => {
      expect(() => loadConfig({ [name]: value })).toThrow(`${name}=${JSON.stringify(value)} is not valid`)
    },
  )

  it('accepts plain decimal digits for every integer setting', () => {
    const config = loadConfig({
      PORT: '65535',
      ACCESS_TOKEN_TTL: '120',
      RELOAD_INTERVAL: '60',
      KEY_ACTIVATION_DELAY: '0',
      CLOCK_TOLERANCE: '300',
      REVOCATIONS_PER_CLIENT: '1',
    })
    expect(config).toMatchObject({
      port: 65535,
      accessTokenTtl: 120,
      reloadInterval: 60,
      keyActivationDelay: 0,
      clockTolerance: 300,
      revocationsPerClient: 1,
    })
  })

  describe('WORKERS', () => {
    const redis = { REDIS_URL: 'redis://127.0.0.1:6379' }

    it('takes a number of processes up to the bound, or auto for one per CPU', () => {
      expect(loadConfig({ WORKERS: '1' }).workers).toBe(1)
      expect(loadConfig({ ...redis, WORKERS: '4' }).workers).toBe(4)
      expect(loadConfig({ ...redis, WORKERS: String(MAX_WORKERS) }).workers).toBe(MAX_WORKERS)
      expect(loadConfig({ ...redis, WORKERS: 'auto' }).workers).toBe(Math.min(availableParallelism(), MAX_WORKERS))
    })

    it.each(['2', '64', 'auto'])('refuses WORKERS=%s without a shared denylist, in one line saying why', (value) => {
      let error: unknown
      try {
        loadConfig({ WORKERS: value })
      } catch (e) {
        error = e
      }
      expect(error).toBeInstanceOf(ConfigError)
      const problems = (error as ConfigError).problems
      expect(problems).toEqual([
        expect.stringMatching(new RegExp(`^WORKERS="${value}" needs a shared denylist: .*in-memory denylist`)),
      ])
      expect(problems[0]).not.toContain('\n')
    })

    it('refuses only the bad REDIS_URL when REDIS_URL is set but not valid', () => {
      expect(() => loadConfig({ WORKERS: '2', REDIS_URL: 'http://redis' })).toThrow(
        /^REDIS_URL=\(hidden\) is not valid[^\n]*$/,
      )
    })
  })

  it('names the canonical form of an issuer written differently', () => {
    expect(() => loadConfig({ ISSUER: 'HTTPS://A.EXAMPLE:443/x/../y' })).toThrow('write "https://a.example/y"')
    expect(() => loadConfig({ ISSUER: 'https://auth.example.com/' })).toThrow('write "https://auth.example.com"')
  })

  it('counts only 127.0.0.0/8, ::1, localhost and *.localhost as loopback', () => {
    for (const host of [
      '127.0.0.1',
      '127.1.2.3',
      '::1',
      '[::1]',
      '0:0:0:0:0:0:0:1',
      'localhost',
      'LOCALHOST',
      'app.localhost',
    ]) {
      expect(isLoopbackHost(host), host).toBe(true)
    }
    for (const host of [
      '127.evil.example',
      '127.0.0.1.nip.io',
      'localhost.evil.example',
      '0.0.0.0',
      '::',
      '10.0.0.1',
      '::ffff:127.0.0.1',
      'example.com',
    ]) {
      expect(isLoopbackHost(host), host).toBe(false)
    }
  })

  it.each([
    ['a database name instead of a number', 'redis://:s3cret-pw@127.0.0.1:6379/tokensmith'],
    ['a negative database number', 'redis://:s3cret-pw@127.0.0.1:6379/-1'],
    ['a database number past 2^31 - 1', 'redis://:s3cret-pw@127.0.0.1:6379/2147483648'],
    ['two path segments', 'redis://:s3cret-pw@127.0.0.1:6379/0/1'],
    ['no host', 'redis://:s3cret-pw@/0'],
    ['an empty host', 'redis:///0'],
    ['an upper-case scheme, which ioredis would not encrypt', 'REDISS://:s3cret-pw@redis.example:6380'],
    ['another scheme', 'http://:s3cret-pw@redis:6379'],
    [
      'a query option ioredis would apply over the client settings',
      'redis://:s3cret-pw@127.0.0.1:6379/0?enableOfflineQueue=true',
    ],
    ['the database number as a query option', 'redis://:s3cret-pw@127.0.0.1:6379?db=2'],
    ['a family other than 4 or 6', 'redis://:s3cret-pw@127.0.0.1:6379?family=5'],
    ['a fragment', 'redis://:s3cret#pw@127.0.0.1:6379'],
    ['white space', 'redis://:s3cret pw@127.0.0.1:6379'],
  ])('refuses a REDIS_URL with %s, without echoing it', (_why, url) => {
    let error: unknown
    try {
      loadConfig({ REDIS_URL: url })
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(ConfigError)
    const problems = (error as ConfigError).problems
    expect(problems).toHaveLength(1)
    expect(problems[0]).toMatch(/^REDIS_URL=\(hidden\) is not valid/)
    expect(problems[0]).not.toContain('s3cret')
    expect(problems[0]).not.toContain('\n')
  })

  it('accepts a REDIS_URL with a host, an optional database number and family=4 or 6', () => {
    for (const url of [
      'redis://127.0.0.1',
      'redis://127.0.0.1:6379/',
      'rediss://user:pw@redis.example:6380/15',
      'redis://[::1]:6379/0?family=6',
      'redis://redis?family=4',
    ]) {
      expect(loadConfig({ REDIS_URL: url }).redisUrl).toBe(url)
    }
  })

  it('never echoes REDIS_URL, which may hold a password', () => {
    expect(() => loadConfig({ REDIS_URL: 'http://:hunter2@redis:6379' })).toThrow(
      /^REDIS_URL=\(hidden\) is not valid \([^)]*\): allowed is a redis:\/\/ or rediss:\/\/ URL/,
    )
    expect(() => loadConfig({ REDIS_URL: 'http://:hunter2@redis:6379' })).not.toThrow(/hunter2/)
    expect(loadConfig({ REDIS_URL: 'redis://:pw@127.0.0.1:6380/2' }).redisUrl).toBe('redis://:pw@127.0.0.1:6380/2')
  })

  it('reports every bad variable, one line each', () => {
    expect(() => loadConfig({ PORT: 'x', LOG_LEVEL: 'y' })).toThrow(ConfigError)
    try {
      loadConfig({ PORT: 'x', LOG_LEVEL: 'y' })
    } catch (error) {
      expect((error as ConfigError).problems.map((p) => p.split('=')[0])).toEqual(['PORT', 'LOG_LEVEL'])
    }
  })

  it('accepts https issuers and http on loopback', () => {
    expect(loadConfig({ ISSUER: 'https://auth.example.com' }).issuer).toBe('https://auth.example.com')
    expect(loadConfig({ ISSUER: 'http://127.0.0.1:4000' }).issuer).toBe('http://127.0.0.1:4000')
    expect(loadConfig({ ISSUER: 'https://example.com/tenants/a' }).issuer).toBe('https://example.com/tenants/a')
    for (const issuer of [
      'http://[::1]:4000',
      'http://localhost:4000',
      'http://auth.localhost:4000',
      'http://127.0.0.2:4000',
    ]) {
      expect(loadConfig({ ISSUER: issuer }).issuer).toBe(issuer)
    }
  })

  describe('the clear-text warning', () => {
    it('warns when the server listens beyond loopback with an http issuer', () => {
      for (const host of ['0.0.0.0', '::', '10.0.0.5', 'auth.internal']) {
        expect(cleartextWarning({ host, issuer: 'http://localhost:3000' }), host).toMatch(/in clear/)
      }
    })

    it('is quiet on loopback or with an https issuer', () => {
      for (const host of ['127.0.0.1', '::1', 'localhost']) {
        expect(cleartextWarning({ host, issuer: 'http://localhost:3000' }), host).toBeUndefined()
      }
      expect(cleartextWarning({ host: '0.0.0.0', issuer: 'https://auth.example.com' })).toBeUndefined()
    })
  })

  it('.env.example and the README list exactly the variables of the schema', () => {
    const example = readFileSync('.env.example', 'utf8')
    expect(names(example, /^([A-Z][A-Z0-9_]*)=/gm)).toEqual([...CONFIG_VARIABLES].sort())
    const readme = readFileSync('README.md', 'utf8')
    const table = readme.slice(readme.indexOf('## Configuration'))
    const section = table.slice(0, table.indexOf('\n## ', 5))
    expect(names(section, /^\| `([A-Z][A-Z0-9_]*)` \|/gm)).toEqual([...CONFIG_VARIABLES].sort())
  })
})

describe('TRUST_PROXY and TLS files', () => {
  it.each([
    ['2', { hops: 2 }],
    ['10.0.0.1', { ranges: ['10.0.0.1'] }],
    ['10.0.0.0/8, ::1, fd00::/8', { ranges: ['10.0.0.0/8', '::1', 'fd00::/8'] }],
  ])('reads TRUST_PROXY=%s', (value, expected) => {
    expect(loadConfig({ TRUST_PROXY: value }).trustProxy).toEqual(expected)
  })

  it.each(['0', '11', 'proxy.example.com', '10.0.0.0/33', '10.0.0.1,', '::1/129', '1.2.3.4/8/9'])(
    'refuses TRUST_PROXY=%s with a message naming the variable',
    (value) => {
      expect(() => loadConfig({ TRUST_PROXY: value })).toThrow(/^TRUST_PROXY=/m)
    },
  )

  it('takes TLS_CERT_FILE and TLS_KEY_FILE together or not at all', () => {
    expect(() => loadConfig({ TLS_CERT_FILE: 'cert.pem' })).toThrow(/TLS_CERT_FILE and TLS_KEY_FILE go together/)
    expect(() => loadConfig({ TLS_KEY_FILE: 'key.pem' })).toThrow(/TLS_CERT_FILE and TLS_KEY_FILE go together/)
    expect(loadConfig({ TLS_CERT_FILE: 'c.pem', TLS_KEY_FILE: 'k.pem' })).toMatchObject({
      tlsCertFile: 'c.pem',
      tlsKeyFile: 'k.pem',
    })
  })
})

describe('Redis topologies', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tokensmith-config-'))
  const file = (name: string, content: string) => {
    const path = join(dir, name)
    writeFileSync(path, content, { mode: 0o600 })
    return path
  }
  const problemsOf = (env: Record<string, string>): string[] => {
    try {
      loadConfig(env)
    } catch (error) {
      if (error instanceof ConfigError) return error.problems
      throw error
    }
    return []
  }
  const CA = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n'
  const cluster = { REDIS_CLUSTER_NODES: '10.0.0.1:6379, 10.0.0.2:6380' }
  const sentinel = { REDIS_SENTINELS: 'sentinel-a:26379,[::1]:26380', REDIS_SENTINEL_NAME: 'tokensmith' }

  it('takes a single node from REDIS_URL, with TLS for rediss:// and the CA from its file', () => {
    expect(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379' }).redis).toEqual({
      kind: 'single',
      url: 'redis://127.0.0.1:6379',
    })
    const ca = file('ca.pem', CA)
    expect(loadConfig({ REDIS_URL: 'rediss://redis.internal:6380', REDIS_TLS_CA_FILE: ca }).redis).toEqual({
      kind: 'single',
      url: 'rediss://redis.internal:6380',
      tls: { ca: CA.slice(0, -1) },
    })
  })

  it('takes a Sentinel group with its name, user, passwords from files (one trailing newline dropped) and TLS', () => {
    const password = file('password', 'data secret\n\n')
    const sentinelPassword = file('sentinel-password', 'sentinel secret\r\n')
    const ca = file('ca-sentinel.pem', CA)
    expect(
      loadConfig({
        ...sentinel,
        REDIS_USERNAME: 'tokensmith',
        REDIS_PASSWORD_FILE: password,
        REDIS_SENTINEL_PASSWORD_FILE: sentinelPassword,
        REDIS_TLS: 'true',
        REDIS_TLS_CA_FILE: ca,
      }).redis,
    ).toEqual({
      kind: 'sentinel',
      sentinels: [
        { host: 'sentinel-a', port: 26379 },
        { host: '::1', port: 26380 },
      ],
      name: 'tokensmith',
      username: 'tokensmith',
      password: 'data secret\n',
      sentinelPassword: 'sentinel secret',
      tls: { ca: CA.slice(0, -1) },
    })
  })

  it('takes Cluster seed nodes, and TLS with the system CAs when no CA file is given', () => {
    expect(loadConfig({ ...cluster, REDIS_TLS: 'true' }).redis).toEqual({
      kind: 'cluster',
      nodes: [
        { host: '10.0.0.1', port: 6379 },
        { host: '10.0.0.2', port: 6380 },
      ],
      tls: {},
    })
  })

  it('allows at most one topology', () => {
    expect(problemsOf({ REDIS_URL: 'redis://r:6379', ...cluster })).toEqual([
      'REDIS_URL and REDIS_CLUSTER_NODES are all set: set exactly one (a single node, a Sentinel group or a Cluster)',
    ])
    expect(problemsOf({ ...sentinel, ...cluster })[0]).toMatch(/^REDIS_SENTINELS and REDIS_CLUSTER_NODES are all set/)
  })

  it('refuses settings that do not fit the topology, each with what to do', () => {
    expect(problemsOf({ REDIS_SENTINELS: 's:26379' })).toEqual([
      expect.stringMatching(/^REDIS_SENTINELS is set but REDIS_SENTINEL_NAME is not: set it/),
    ])
    expect(problemsOf({ ...cluster, REDIS_SENTINEL_NAME: 'x' })).toEqual([
      expect.stringMatching(/^REDIS_SENTINEL_NAME is set but REDIS_SENTINELS is not/),
    ])
    expect(problemsOf({ REDIS_URL: 'redis://r:6379', REDIS_PASSWORD_FILE: '/p', REDIS_TLS: 'true' })).toEqual([
      expect.stringMatching(
        /^REDIS_PASSWORD_FILE is set but REDIS_URL carries its own: write redis:\/\/user:password@/,
      ),
      expect.stringMatching(/^REDIS_TLS=true is set but REDIS_URL carries its own/),
    ])
    expect(problemsOf({ REDIS_USERNAME: 'u' })).toEqual([
      expect.stringMatching(/^REDIS_USERNAME is set but no Redis is: set REDIS_SENTINELS or REDIS_CLUSTER_NODES/),
    ])
    expect(problemsOf({ REDIS_URL: 'redis://r:6379', REDIS_TLS_CA_FILE: '/ca.pem' })).toEqual([
      'REDIS_TLS_CA_FILE is set but REDIS_URL is redis:// (no TLS): write rediss://',
    ])
    expect(problemsOf({ ...cluster, REDIS_TLS_CA_FILE: '/ca.pem' })).toEqual([
      'REDIS_TLS_CA_FILE is set but REDIS_TLS is not true: set REDIS_TLS=true to use TLS',
    ])
  })

  it.each(['10.0.0.1', '10.0.0.1:0', '10.0.0.1:65536', 'a:1,,b:2', 'a b:1', '::1:6379'])(
    'refuses REDIS_CLUSTER_NODES=%s, naming the variable',
    (value) => {
      expect(problemsOf({ REDIS_CLUSTER_NODES: value })).toEqual([expect.stringMatching(/^REDIS_CLUSTER_NODES="/)])
    },
  )

  it('names the variable and the file of an unreadable or empty password file, never the content', () => {
    const missing = join(dir, 'missing')
    expect(problemsOf({ ...cluster, REDIS_PASSWORD_FILE: missing })).toEqual([
      `REDIS_PASSWORD_FILE=${JSON.stringify(missing)} cannot be read (ENOENT)`,
    ])
    const empty = file('empty', '\n')
    expect(problemsOf({ ...sentinel, REDIS_SENTINEL_PASSWORD_FILE: empty })).toEqual([
      `REDIS_SENTINEL_PASSWORD_FILE=${JSON.stringify(empty)} is empty`,
    ])
    if (process.getuid?.() !== 0) {
      const unreadable = file('unreadable', 'hunter2-secret')
      chmodSync(unreadable, 0o000)
      expect(problemsOf({ ...cluster, REDIS_PASSWORD_FILE: unreadable })).toEqual([
        `REDIS_PASSWORD_FILE=${JSON.stringify(unreadable)} cannot be read (EACCES)`,
      ])
    }
    const notPem = file('not-a-ca', 'hunter2-secret\n')
    const problems = problemsOf({ ...cluster, REDIS_TLS: 'true', REDIS_TLS_CA_FILE: notPem })
    expect(problems).toEqual([`REDIS_TLS_CA_FILE=${JSON.stringify(notPem)} holds no PEM certificate`])
    expect(problems.join('\n')).not.toContain('hunter2')
  })

  it('defaults REDIS_KEY_PREFIX to {tokensmith}: on a Cluster, to the earlier tokensmith: elsewhere, and takes braces only as a non-empty hash tag', () => {
    // Unchanged without a Cluster, so an upgraded deployment keeps reading the revocations it holds.
    expect(loadConfig({}).redisKeyPrefix).toBe('tokensmith:')
    expect(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379' }).redisKeyPrefix).toBe('tokensmith:')
    expect(loadConfig({ ...sentinel }).redisKeyPrefix).toBe('tokensmith:')
    expect(loadConfig({ ...cluster }).redisKeyPrefix).toBe('{tokensmith}:')
    expect(hashTagOf('{tokensmith}:')).toBe('tokensmith')
    expect(hashTagOf('app:{t}:x')).toBe('t')
    expect(hashTagOf('{}x{y}')).toBeUndefined() // the first { with an empty tag: the whole key is hashed
    expect(loadConfig({ REDIS_KEY_PREFIX: 'app-{prod}:' }).redisKeyPrefix).toBe('app-{prod}:')
    expect(loadConfig({ REDIS_KEY_PREFIX: 'tokensmith:' }).redisKeyPrefix).toBe('tokensmith:')
    expect(loadConfig({ REDIS_KEY_PREFIX: '}{a}:' }).redisKeyPrefix).toBe('}{a}:') // the tag follows the first {
    for (const prefix of ['{}:', '{tokensmith:', 'tokensmith}:', '{}{a}:', 'a b', '{x}'.repeat(30)])
      expect(problemsOf({ REDIS_KEY_PREFIX: prefix })).toEqual([expect.stringMatching(/^REDIS_KEY_PREFIX=/)])
  })

  it('stops start-up with a Cluster and a prefix without hash tag, saying how to write one', () => {
    expect(problemsOf({ ...cluster, REDIS_KEY_PREFIX: 'tokensmith:' })).toEqual([
      'REDIS_KEY_PREFIX="tokensmith:" has no hash tag, which a Redis Cluster needs so that every key and the channel hash to one slot: write it as {tokensmith}: for example',
    ])
    expect(problemsOf({ ...sentinel, REDIS_KEY_PREFIX: 'tokensmith:' })).toEqual([])
  })

  it.each([
    ['REDIS_SENTINELS', sentinel],
    ['REDIS_CLUSTER_NODES', cluster],
  ])('lets WORKERS be more than 1 with %s', (_name, env) => {
    expect(loadConfig({ ...env, WORKERS: '4' }).workers).toBe(4)
  })
})
