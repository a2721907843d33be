import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Counter, Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'

import { parseSamples, run, usageReport } from '../../../src/cli/clients.js'
import type { CliIo } from '../../../src/cli/cli.js'
import { runCli, tempDir } from '../../helpers/cli.js'

const SCRAPE = join(import.meta.dirname, 'fixtures/metrics-scrape.txt')

const EXPECTED = {
  clients: [
    { client_id: 'ci-deployer', tokens_issued: 300, by_auth_method: { federation: 300 } },
    { client_id: 'billing', tokens_issued: 125, by_auth_method: { client_secret_basic: 120, client_secret_post: 5 } },
    { client_id: 'reports', tokens_issued: 4, by_auth_method: { private_key_jwt: 4 } },
    { client_id: '', tokens_issued: 2, by_auth_method: { client_secret_basic: 2 } },
    { client_id: 'idle', tokens_issued: 0, by_auth_method: { client_secret_basic: 0 } },
  ],
  auth_failures: [
    { reason: 'unknown_client_or_wrong_secret', auth_method: 'client_secret_basic', count: 17 },
    // Summed over trust entries.
    { reason: 'subject_mismatch', auth_method: 'federation', count: 7 },
    { reason: 'no_credentials', auth_method: 'none', count: 3 },
    { reason: 'jti_replayed', auth_method: 'private_key_jwt', count: 1 },
  ],
}

/** A fake fetch serving `body`, recording what it was asked. */
function serving(body: string, status = 200) {
  const calls: { url: string; authorization: string | null }[] = []
  const fetchImpl = (async (input: Parameters<typeof fetch>[0], init?: RequestInit) => {
    calls.push({ url: String(input), authorization: new Headers(init?.headers).get('authorization') })
    return new Response(body, { status })
  }) as typeof fetch
  return { calls, fetchImpl }
}

const withFetch =
  (fetchImpl: typeof fetch) =>
  (argv: string[], io: CliIo): Promise<number> =>
    run(argv, io, fetchImpl)

describe('clients usage', () => {
  it('reads a saved scrape: tokens per client, most first, and failures per reason and method', async () => {
    const result = await runCli(run, ['usage', '--file', SCRAPE], {})
    expect(result.code).toBe(0)
    expect(result.stderr).toBe('')
    expect(result.json()).toEqual(EXPECTED)
    // One JSON document on stdout.
    expect(result.stdout.trim().startsWith('{')).toBe(true)
  })

  it('scrapes --url with the token as a Bearer credential', async () => {
    const { calls, fetchImpl } = serving(await import('node:fs/promises').then((fs) => fs.readFile(SCRAPE, 'utf8')))
    const result = await runCli(
      withFetch(fetchImpl),
      ['usage', '--url', 'http://127.0.0.1:9464/metrics', '--token', 'T'.repeat(32)],
      {},
    )
    expect(result.code).toBe(0)
    expect(result.json()).toEqual(EXPECTED)
    expect(calls).toEqual([{ url: 'http://127.0.0.1:9464/metrics', authorization: `Bearer ${'T'.repeat(32)}` }])
  })

  it('takes the token from METRICS_TOKEN, and sends none without either', async () => {
    const { calls, fetchImpl } = serving('')
    await runCli(withFetch(fetchImpl), ['usage', '--url', 'http://127.0.0.1:9464/metrics'], {
      METRICS_TOKEN: 'from-env',
    })
    await runCli(withFetch(fetchImpl), ['usage', '--url', 'http://127.0.0.1:9464/metrics'], {})
    expect(calls.map((call) => call.authorization)).toEqual(['Bearer from-env', null])
  })

  it('an empty scrape is an empty report', async () => {
    const { fetchImpl } = serving('# nothing here\n')
    const result = await runCli(withFetch(fetchImpl), ['usage', '--url', 'https://as.example.test/metrics'], {})
    expect(result.json()).toEqual({ clients: [], auth_failures: [] })
  })

  it('fails (exit 1) when the endpoint refuses, hinting at the token on 404', async () => {
    const { fetchImpl } = serving('Not Found', 404)
    const result = await runCli(withFetch(fetchImpl), ['usage', '--url', 'http://127.0.0.1:3000/metrics'], {})
    expect(result.code).toBe(1)
    expect(result.stdout).toBe('')
    expect(result.stderr).toBe('error: scrape answered HTTP 404 (wrong or missing --token?)\n')
  })

  it('fails (exit 1) when the endpoint cannot be reached or the file read', async () => {
    const unreachable = (async () => {
      throw new TypeError('fetch failed')
    }) as typeof fetch
    const down = await runCli(withFetch(unreachable), ['usage', '--url', 'http://127.0.0.1:1/metrics?x=secret'], {})
    expect(down.code).toBe(1)
    expect(down.stderr).toBe('error: cannot scrape http://127.0.0.1:1/metrics: fetch failed\n')
    const missing = await runCli(run, ['usage', '--file', join(tempDir(), 'nope.txt')], {})
    expect(missing.code).toBe(1)
    expect(missing.stderr).toMatch(/^error: cannot read .*nope\.txt: ENOENT\n$/)
  })

  it.each([
    [['usage'], 'give --url or --file'],
    [['usage', '--url', 'http://a/metrics', '--file', 'x'], 'give --url or --file'],
    [['usage', '--file', 'x', '--token', 't'], '--token goes with --url'],
    [['usage', '--url', 'ftp://a/metrics'], '--url must be http(s)'],
    [['usage', '--url', 'not a url'], '--url must be an absolute http(s) URL'],
    [['usage', '--url', 'http://a/metrics', '--token', ''], '--token must not be empty'],
    [['usage', '--bogus'], "Unknown option '--bogus'"],
    [['nope'], 'unknown command nope'],
  ])('%j is a usage error (exit 2)', async (argv, message) => {
    const { calls, fetchImpl } = serving('')
    const result = await runCli(withFetch(fetchImpl), argv, {})
    expect(result.code).toBe(2)
    expect(result.stderr).toContain(`error: ${message}`)
    expect(result.stderr).toContain('npm run --silent clients -- usage --url')
    expect(calls).toEqual([])
  })
})

describe('the text-format reader', () => {
  it('reads what prom-client writes, escaped label values included', async () => {
    const registry = new Registry()
    const issued = new Counter({
      name: 'tokensmith_tokens_issued_total',
      help: 'x',
      labelNames: ['client_id', 'auth_method'],
      registers: [registry],
    })
    issued.inc({ client_id: 'we"ird\\id\nx', auth_method: 'client_secret_basic' }, 3)
    issued.inc({ client_id: 'plain', auth_method: 'private_key_jwt' }, 1.5)
    expect(usageReport(await registry.metrics()).clients).toEqual([
      { client_id: 'we"ird\\id\nx', tokens_issued: 3, by_auth_method: { client_secret_basic: 3 } },
      { client_id: 'plain', tokens_issued: 1.5, by_auth_method: { private_key_jwt: 1.5 } },
    ])
  })

  it('skips comments, other metrics, timestamps and lines that do not parse', () => {
    const names = new Set(['a_total'])
    const text = [
      '# TYPE a_total counter',
      'a_total{x="1"} 2 1700000000000',
      'a_total{x="unterminated} 5',
      'a_total{x="2"} NaN',
      'b_total{x="1"} 9',
      'a_total 4',
    ].join('\n')
    expect(parseSamples(text, names).map(({ labels, value }) => ({ labels: { ...labels }, value }))).toEqual([
      { labels: { x: '1' }, value: 2 },
      { labels: {}, value: 4 },
    ])
  })

  it('the saved sample is what a file argument reads', () => {
    const dir = tempDir()
    const file = join(dir, 'scrape.txt')
    writeFileSync(file, 'tokensmith_tokens_issued_total{client_id="a",auth_method="none"} 1\n')
    return runCli(run, ['usage', '--file', file], {}).then((result) =>
      expect(result.json()).toEqual({
        clients: [{ client_id: 'a', tokens_issued: 1, by_auth_method: { none: 1 } }],
        auth_failures: [],
      }),
    )
  })
})
