import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { tempDir } from '../helpers/cli.js'
import { freePort } from '../helpers/free-port.js'
import { spawnServer, type SpawnServerOptions } from '../helpers/spawn-server.js'

const PASSPHRASE = 'correct horse battery staple'

/**
 * The output lines of a start that must fail, after checking it exited 1. Fails the test if the
 * server listens instead.
 */
async function failedStart(env: Record<string, string>, options: SpawnServerOptions): Promise<string[]> {
  const outcome = await spawnServer(env, options).catch((error: Error) => error)
  if (!(outcome instanceof Error)) {
    outcome.kill('SIGKILL')
    await outcome.exited
    throw new Error(`the server started:\n${outcome.output.join('\n')}`)
  }
  const [first, ...lines] = outcome.message.split('\n')
  expect(first).toBe('server exited with 1:')
  return lines
}

/** The README's promise: one line per problem, no stack trace. */
function expectConfigurationLines(lines: string[]) {
  expect(lines.length).toBeGreaterThan(0)
  for (const line of lines) expect(line).toMatch(/^tokensmith: configuration: /)
}

describe('start-up configuration errors', () => {
  it('stops with the line number, writing no key, when a stray line precedes KEYS_PASSPHRASE in .env', async () => {
    const dir = tempDir()
    writeFileSync(
      join(dir, '.env'),
      [
        '# local settings',
        'KEYS_DIR=./keys',
        'CLIENTS_FILE=./clients.json',
        'TODO: x',
        `KEYS_PASSPHRASE=${PASSPHRASE}`,
        '',
      ].join('\n'),
    )
    const lines = await failedStart({ REDIS_URL: '' }, { cwd: dir })
    expectConfigurationLines(lines)
    expect(lines).toHaveLength(1)
    expect(lines[0]).toContain('.env line 4')
    expect(lines.join('\n')).not.toContain('horse')
    // Before, the TODO line swallowed the passphrase and plain-text keys were written.
    expect(existsSync(join(dir, 'keys')) ? readdirSync(join(dir, 'keys')) : []).toEqual([])
  })

  it('stops on a misspelt variable name in .env, naming the one meant', async () => {
    const dir = tempDir()
    writeFileSync(join(dir, '.env'), 'KEYS_DIR=./keys\nCLIENTS_FILE=./clients.json\nISUER=https://auth.example.com\n')
    const lines = await failedStart({ REDIS_URL: '' }, { cwd: dir })
    expectConfigurationLines(lines)
    expect(lines).toEqual([expect.stringMatching(/^tokensmith: configuration: \.env line 3: ISUER .*ISSUER/)])
  })

  it('stops with one line, never the URL, when REDIS_URL has a name where the database number goes', async () => {
    const dir = tempDir()
    const url = `redis://:hunter2-secret@127.0.0.1:${await freePort()}/tokensmith`
    const lines = await failedStart(
      { KEYS_DIR: join(dir, 'keys'), CLIENTS_FILE: join(dir, 'clients.json'), REDIS_URL: url },
      { cwd: dir },
    )
    expectConfigurationLines(lines)
    expect(lines).toEqual([expect.stringMatching(/^tokensmith: configuration: REDIS_URL=\(hidden\) is not valid/)])
    expect(lines.join('\n')).not.toContain('hunter2')
  })

  it('warns at start-up when it listens beyond loopback with an http issuer', async () => {
    const dir = tempDir()
    const port = await freePort()
    const server = await spawnServer(
      {
        HOST: '0.0.0.0',
        PORT: String(port),
        ISSUER: `http://localhost:${port}`,
        KEYS_DIR: join(dir, 'keys'),
        CLIENTS_FILE: join(dir, 'clients.json'),
        REDIS_URL: '',
        LOG_LEVEL: 'warn',
      },
      { cwd: dir },
    )
    try {
      const warnings = server.output
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as { level: number; msg: string })
        .filter((entry) => entry.level === 40)
      expect(warnings.map((entry) => entry.msg)).toContainEqual(expect.stringMatching(/in clear/))
    } finally {
      server.kill()
      await server.exited
    }
  })
})

describe('scripts', () => {
  it('report a .env mistake as a configuration failure and exit 1', () => {
    const dir = tempDir()
    writeFileSync(join(dir, '.env'), `CLIENTS_FILE=./clients.json\nTODO: x\nKEYS_PASSPHRASE=${PASSPHRASE}\n`)
    const script = fileURLToPath(new URL('../../src/cli/client.ts', import.meta.url))
    const { status, stdout, stderr } = spawnSync(
      process.execPath,
      ['--import', import.meta.resolve('tsx'), script, 'list'],
      {
        cwd: dir,
        encoding: 'utf8',
      },
    )
    expect(status).toBe(1)
    expect(stdout).toBe('')
    expect(stderr).toMatch(/^error: configuration: \.env line 2: [^\n]*\n$/)
    expect(stderr).not.toContain('horse')
  })
})
