import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { CONFIG_VARIABLES, ConfigError, loadConfig } from '../../src/config.js'

const names = (text: string, pattern: RegExp) => [...text.matchAll(pattern)].map((m) => m[1]!).sort()

describe('configuration', () => {
  it('has embedded defaults for every variable', () => {
    expect(loadConfig({})).toEqual({
      port: 3000,
      host: '127.0.0.1',
      issuer: 'http://localhost:3000',
      keysDir: './keys',
      clientsFile: './clients.json',
      accessTokenTtl: 300,
      signingAlg: 'ES256',
      logLevel: 'info',
      reloadInterval: 1,
      keyActivationDelay: 900,
      keysPassphrase: undefined,
      redisUrl: undefined,
      redisKeyPrefix: 'tokensmith:',
      clockTolerance: 30,
      revocationsPerClient: 10000,
      publishScopes: false,
    })
  })

  it('derives the default issuer from PORT', () => {
    expect(loadConfig({ PORT: '8080' }).issuer).toBe('http://localhost:8080')
  })

  it('treats an empty value as unset', () => {
    expect(loadConfig({ ISSUER: '', PORT: '' }).issuer).toBe('http://localhost:3000')
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

  it('never echoes REDIS_URL, which may hold a password', () => {
    expect(() => loadConfig({ REDIS_URL: 'http://:hunter2@redis:6379' })).toThrow(
      /^REDIS_URL=\(hidden\) is not valid: allowed is a redis:\/\/ or rediss:\/\/ URL/,
    )
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
