import { existsSync, readFileSync } from 'node:fs'
import { parseEnv } from 'node:util'

export type Env = Record<string, string | undefined>

/** The environment over a `.env` file in the working directory, if any (real variables win). */
export function readEnv(env: Env = process.env, dotenvPath = '.env'): Env {
  const fromFile = existsSync(dotenvPath) ? parseEnv(readFileSync(dotenvPath, 'utf8')) : {}
  return { ...fromFile, ...env }
}
