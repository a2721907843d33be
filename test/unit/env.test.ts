import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ConfigError, loadConfig } from '../../src/config.js'
import { parseDotenv, readEnv } from '../../src/env.js'
import { tempDir } from '../helpers/cli.js'

const NAMES = ['PORT', 'ISSUER', 'KEYS_PASSPHRASE', 'REDIS_URL', 'HOST']
const SECRET = 'correct horse battery staple'

const parse = (text: string) => parseDotenv(text, NAMES)

/** The problems parseDotenv reports for `text` (fails the test if it accepts it). */
function problemsOf(text: string): string[] {
  try {
    parse(text)
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError)
    return (error as ConfigError).problems
  }
  throw new Error('accepted')
}

describe('.env parsing', () => {
  it('skips blank lines and comment lines, indented or not', () => {
    expect(parse('\n   \n# a comment\n  # indented comment\nPORT=3001\n\t\n')).toEqual({ PORT: '3001' })
  })

  it('reads NAME=value, with blanks around = and at both ends of an unquoted value removed', () => {
    expect(parse('PORT=3001\nHOST = 0.0.0.0  \nISSUER=  https://a.example\t')).toEqual({
      PORT: '3001',
      HOST: '0.0.0.0',
      ISSUER: 'https://a.example',
    })
  })

  it('accepts an export prefix, as in a file a shell also sources', () => {
    expect(parse('export PORT=3001\nexport  HOST=::1')).toEqual({ PORT: '3001', HOST: '::1' })
  })

  it('reads an empty value as empty', () => {
    expect(parse('KEYS_PASSPHRASE=\nISSUER=""\nHOST=\'\'')).toEqual({ KEYS_PASSPHRASE: '', ISSUER: '', HOST: '' })
  })

  it('keeps a # that does not follow a blank as part of an unquoted value', () => {
    expect(parse('KEYS_PASSPHRASE=PASS#word-and-more')).toEqual({ KEYS_PASSPHRASE: 'PASS#word-and-more' })
  })

  it('refuses an unquoted value that a comment may have cut or lengthened', () => {
    for (const line of [
      `KEYS_PASSPHRASE=${SECRET} # the passphrase`,
      'KEYS_PASSPHRASE=#not-a-comment',
      'PORT=3000\t# web',
      'PORT= # empty?',
    ]) {
      const problems = problemsOf(line)
      expect(problems).toHaveLength(1)
      expect(problems[0]).toMatch(
        /^\.env line 1: (KEYS_PASSPHRASE|PORT): an unquoted value may not start with # or hold " #"/,
      )
    }
  })

  it('takes a single-quoted value literally', () => {
    expect(parse(`KEYS_PASSPHRASE='  a # b \\n "c" $D  '`)).toEqual({ KEYS_PASSPHRASE: '  a # b \\n "c" $D  ' })
  })

  it('reads the escapes \\\\, \\" and \\n in a double-quoted value, and nothing else', () => {
    expect(parse(String.raw`KEYS_PASSPHRASE=" a\\b \"c\" d\ne # f 'g' "`)).toEqual({
      KEYS_PASSPHRASE: ' a\\b "c" d\ne # f \'g\' ',
    })
    expect(problemsOf(String.raw`KEYS_PASSPHRASE="C:\keys\x"`)).toEqual([
      String.raw`.env line 1: KEYS_PASSPHRASE: in double quotes a backslash must start \\, \" or \n`,
    ])
  })

  it('refuses a quote that is not closed on its line', () => {
    expect(problemsOf(`KEYS_PASSPHRASE='${SECRET}\nPORT=1`)).toEqual([
      '.env line 1: KEYS_PASSPHRASE: the single quote is not closed on this line',
    ])
    expect(problemsOf(`KEYS_PASSPHRASE="${SECRET}\\"`)).toEqual([
      '.env line 1: KEYS_PASSPHRASE: the double quote is not closed on this line',
    ])
  })

  it('refuses text after a closing quote', () => {
    expect(problemsOf(`KEYS_PASSPHRASE='${SECRET}' # comment`)).toEqual([
      '.env line 1: KEYS_PASSPHRASE: text after the closing quote',
    ])
    expect(problemsOf(`KEYS_PASSPHRASE="${SECRET}"x`)).toEqual([
      '.env line 1: KEYS_PASSPHRASE: text after the closing quote',
    ])
  })

  it('refuses a line without = instead of joining it to the next one', () => {
    expect(problemsOf(`PORT=3001\nTODO: x\nKEYS_PASSPHRASE=${SECRET}`)).toEqual([
      '.env line 2: expected NAME=value, a comment starting with # or a blank line',
    ])
  })

  it('refuses text before = that is not a variable name', () => {
    expect(problemsOf(`TODO: set the pass=${SECRET}`)).toEqual([
      '.env line 1: expected NAME=value: the text before = is not a variable name',
    ])
    expect(problemsOf('=3000')).toHaveLength(1)
  })

  it('refuses a name that is not a configuration variable and suggests the closest one', () => {
    expect(problemsOf('ISUER=https://a.example')).toEqual([
      '.env line 1: ISUER is not a configuration variable; did you mean ISSUER?',
    ])
    expect(problemsOf('port=3000')).toEqual(['.env line 1: port is not a configuration variable; did you mean PORT?'])
    expect(problemsOf('NODE_ENV=production')).toEqual(['.env line 1: NODE_ENV is not a configuration variable'])
  })

  it('refuses a variable set twice', () => {
    expect(problemsOf('PORT=3000\n\nPORT=3001')).toEqual(['.env line 3: PORT is already set on line 1'])
  })

  it('reads CRLF line ends and a byte order mark', () => {
    expect(parse('\uFEFFPORT=3001\r\nHOST=::1\r\n')).toEqual({ PORT: '3001', HOST: '::1' })
  })

  it('reports every bad line, one problem each, and never a value', () => {
    const problems = problemsOf(`ISUER=x\nKEYS_PASSPHRASE="${SECRET}\n${SECRET}\nREDIS_URL=redis://:${SECRET}@h # db`)
    expect(problems.map((p) => p.split(':')[0])).toEqual(['.env line 1', '.env line 2', '.env line 3', '.env line 4'])
    for (const problem of problems) {
      expect(problem).not.toContain('correct horse')
      expect(problem).not.toContain('\n')
    }
  })
})

describe('readEnv', () => {
  it('lets real environment variables win over the file', () => {
    const file = join(tempDir(), '.env')
    writeFileSync(file, 'PORT=3001\nHOST=0.0.0.0\n')
    expect(readEnv({ PORT: '4000', OTHER: 'x' }, file)).toEqual({ PORT: '4000', HOST: '0.0.0.0', OTHER: 'x' })
  })

  it('reads only the environment when there is no file', () => {
    expect(readEnv({ PORT: '4000' }, join(tempDir(), '.env'))).toEqual({ PORT: '4000' })
  })

  it('checks names against the configuration variables', () => {
    const file = join(tempDir(), '.env')
    writeFileSync(file, 'ISSUER=https://a.example\nISUER=https://b.example\n')
    expect(() => readEnv({}, file)).toThrow(
      `${file} line 2: ISUER is not a configuration variable; did you mean ISSUER?`,
    )
  })

  it('reads .env.example, which gives the defaults', () => {
    expect(loadConfig(readEnv({}, '.env.example'))).toEqual(loadConfig({}))
  })

  it('stops with a configuration error when the file cannot be read', () => {
    const dir = join(tempDir(), '.env')
    mkdirSync(dir)
    expect(() => readEnv({}, dir)).toThrow(ConfigError)
  })
})
