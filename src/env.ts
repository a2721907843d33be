import { existsSync, readFileSync } from 'node:fs'
import { CONFIG_VARIABLES, ConfigError } from './config.js'

export type Env = Record<string, string | undefined>

/**
 * The environment over a `.env` file in the working directory, if any (real variables win). The
 * file is read strictly (see parseDotenv): a mistake stops start-up with its line number instead of
 * silently dropping or cutting a setting. Throws ConfigError with one line per problem.
 */
export function readEnv(env: Env = process.env, dotenvPath = '.env'): Env {
  if (!existsSync(dotenvPath)) return { ...env }
  let text: string
  try {
    text = readFileSync(dotenvPath, 'utf8')
  } catch (error) {
    throw new ConfigError([`${dotenvPath}: cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`])
  }
  return { ...parseDotenv(text, CONFIG_VARIABLES, dotenvPath), ...env }
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/
const ESCAPES: Record<string, string> = { '\\': '\\', '"': '"', n: '\n' }

/**
 * Parses a `.env` file. Every line is one of:
 * - blank, or a comment: its first non-blank character is `#`;
 * - `NAME=value`, optionally after `export ` (files shared with a shell), blanks allowed around `=`.
 *   NAME must be one of `names`, at most once in the file.
 *
 * Values:
 * - unquoted: the rest of the line, blanks at both ends removed. It may not start with `#` or hold
 *   a blank followed by `#`: other parsers read that as a comment, so either reading would
 *   surprise someone; quote the value or put the comment on its own line. Any other `#` is
 *   part of the value (`PASS#word` is 9 characters).
 * - `'single-quoted'`: literal, no escapes, on one line.
 * - `"double-quoted"`: on one line; `\\`, `\"` and `\n` (newline) are the only escapes.
 * Nothing but blanks may follow a closing quote. No variable expansion.
 *
 * Throws ConfigError with one `<file> line N: <problem>` per bad line. A problem never quotes the
 * line or its value, which may be a secret; it names the variable when the name is well formed.
 */
export function parseDotenv(text: string, names: readonly string[], file = '.env'): Record<string, string> {
  const values: Record<string, string> = {}
  const seenOn = new Map<string, number>()
  const problems: string[] = []
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/)
  for (const [index, line] of lines.entries()) {
    const number = index + 1
    const parsed = parseLine(line, names)
    if (parsed === undefined) continue
    if (typeof parsed === 'string') {
      problems.push(`${file} line ${number}: ${parsed}`)
      continue
    }
    const earlier = seenOn.get(parsed.name)
    if (earlier !== undefined) {
      problems.push(`${file} line ${number}: ${parsed.name} is already set on line ${earlier}`)
      continue
    }
    seenOn.set(parsed.name, number)
    values[parsed.name] = parsed.value
  }
  if (problems.length > 0) throw new ConfigError(problems)
  return values
}

/** undefined for a blank or comment line, a problem as a string, or the setting. */
function parseLine(line: string, names: readonly string[]): { name: string; value: string } | string | undefined {
  const trimmed = line.trim()
  if (trimmed === '' || trimmed.startsWith('#')) return undefined
  const equals = line.indexOf('=')
  if (equals === -1) return 'expected NAME=value, a comment starting with # or a blank line'
  const name = line
    .slice(0, equals)
    .trim()
    .replace(/^export\s+/, '')
  if (!NAME.test(name)) return 'expected NAME=value: the text before = is not a variable name'
  if (!names.includes(name)) {
    const suggestion = closest(name, names)
    return `${name} is not a configuration variable${suggestion ? `; did you mean ${suggestion}?` : ''}`
  }
  const value = parseValue(line.slice(equals + 1).trim())
  return typeof value === 'string' ? { name, value } : `${name}: ${value.problem}`
}

function parseValue(raw: string): string | { problem: string } {
  const quote = raw[0]
  if (quote === "'") {
    const end = raw.indexOf("'", 1)
    if (end === -1) return { problem: 'the single quote is not closed on this line' }
    return raw.slice(end + 1).trim() === '' ? raw.slice(1, end) : { problem: 'text after the closing quote' }
  }
  if (quote === '"') {
    let value = ''
    for (let i = 1; i < raw.length; i++) {
      const char = raw.charAt(i)
      if (char === '"') {
        return raw.slice(i + 1).trim() === '' ? value : { problem: 'text after the closing quote' }
      }
      if (char === '\\') {
        const escaped = ESCAPES[raw[i + 1] ?? '']
        if (escaped === undefined) return { problem: 'in double quotes a backslash must start \\\\, \\" or \\n' }
        value += escaped
        i++
      } else {
        value += char
      }
    }
    return { problem: 'the double quote is not closed on this line' }
  }
  if (raw.startsWith('#') || /\s#/.test(raw)) {
    return {
      problem:
        'an unquoted value may not start with # or hold " #" (no comments after a value): quote it, or put the comment on its own line',
    }
  }
  return raw
}

/** The known name nearest to a mistyped one (case aside, at most two edits), if any. */
function closest(name: string, names: readonly string[]): string | undefined {
  let best: { name: string; distance: number } | undefined
  for (const candidate of names) {
    const distance = editDistance(name.toUpperCase(), candidate)
    if (distance <= 2 && distance < candidate.length / 2 && (!best || distance < best.distance)) {
      best = { name: candidate, distance }
    }
  }
  return best?.name
}

function editDistance(a: string, b: string): number {
  // Levenshtein, one row of the table at a time: `previous` holds the edits from the first i - 1
  // characters of `a` to each prefix of `b`.
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  let distance = b.length
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    let diagonal = i - 1
    let left = i
    // `above` is previous[j + 1]; b[j] is the character that column adds.
    for (const [j, above] of previous.slice(1).entries()) {
      left = Math.min(above + 1, left + 1, diagonal + (a[i - 1] === b[j] ? 0 : 1))
      diagonal = above
      current.push(left)
    }
    previous = current
    distance = left
  }
  return distance
}
