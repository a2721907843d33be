import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { run as clientCli } from '../../../src/cli/client.js'
import { UsageError, parseFlags, runCommand } from '../../../src/cli/cli.js'
import { runCli, tempDir } from '../../helpers/cli.js'

// Names every object inherits: looked up as plain properties they would run as commands or count as flags.
const INHERITED = ['constructor', 'toString', 'valueOf', 'hasOwnProperty', '__proto__']

describe('runCommand', () => {
  it.each(INHERITED)('takes %s for an unknown command: usage error, exit 2', async (name) => {
    let stdout = ''
    let stderr = ''
    const io = {
      stdout: (t: string) => {
        stdout += t
      },
      stderr: (t: string) => {
        stderr += t
      },
      env: {},
    }
    const code = await runCommand(
      io,
      'usage: test\n',
      {
        async list() {
          return {}
        },
      },
      [name],
    )
    expect({ code, stdout, stderr }).toEqual({
      code: 2,
      stdout: '',
      stderr: `error: unknown command ${name}\nusage: test\n`,
    })
  })
})

describe('parseFlags', () => {
  it.each(INHERITED)('refuses --%s, which is no flag of ours', (name) => {
    expect(() => parseFlags([`--${name}`], { id: { type: 'string' } })).toThrow(UsageError)
  })

  it.each(INHERITED)('takes --%s after a string flag as its value, like any other dash-led word', (name) => {
    expect(parseFlags(['--id', `--${name}`], { id: { type: 'string' } })).toEqual({ id: `--${name}` })
  })
})

describe('client CLI', () => {
  it.each(INHERITED)('client %s is an unknown command: exit 2, usage on stderr, nothing written', async (name) => {
    const file = join(tempDir(), 'clients.json')
    const out = await runCli(clientCli, [name], { CLIENTS_FILE: file })
    expect(out.code).toBe(2)
    expect(out.stdout).toBe('')
    expect(out.stderr).toMatch(new RegExp(`^error: unknown command ${name}\\nusage:\\n`))
  })
})

describe('isMain', () => {
  it('recognises the script when argv[1] reaches it through a symlink (a linked checkout, an npm bin link)', async () => {
    const { isMain } = await import('../../../src/cli/cli.js')
    const { mkdtempSync, symlinkSync, writeFileSync, rmSync } = await import('node:fs')
    const { tmpdir } = await import('node:os')
    const { pathToFileURL } = await import('node:url')
    const dir = mkdtempSync(join(tmpdir(), 'tokensmith-ismain-'))
    const real = join(dir, 'real.mjs')
    const link = join(dir, 'link.mjs')
    writeFileSync(real, '')
    symlinkSync(real, link)
    const saved = process.argv[1]
    try {
      process.argv[1] = link
      expect(isMain(pathToFileURL(real).href)).toBe(true)
      process.argv[1] = real
      expect(isMain(pathToFileURL(real).href)).toBe(true)
      expect(isMain(pathToFileURL(join(dir, 'other.mjs')).href)).toBe(false)
    } finally {
      process.argv[1] = saved as string
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
