import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { CliIo } from '../../src/cli/cli.js'

export function tempDir(prefix = 'tokensmith-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
}

/** Runs a script's `run(argv, io)` in-process and returns what it printed and its exit code. */
export async function runCli(
  run: (argv: string[], io: CliIo) => Promise<number>,
  argv: string[],
  env: Record<string, string>,
) {
  let stdout = ''
  let stderr = ''
  const code = await run(argv, {
    stdout: (text) => {
      stdout += text
    },
    stderr: (text) => {
      stderr += text
    },
    env,
  })
  return { code, stdout, stderr, json: () => JSON.parse(stdout) }
}
