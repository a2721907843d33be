import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { describe, expect, it } from 'vitest'
import { freePort } from '../helpers/free-port.js'
import { waitFor } from '../helpers/wait-for.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const packageJson = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))

/** `npm ci` builds dist/ through the `prepare` script; these tests look at what it built. */
describe('the production build', () => {
  it('npm start serves compiled JavaScript: the serving process runs dist/main.js with no TypeScript loader', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tokensmith-start-'))
    const port = await freePort()
    const npm = spawn('npm', ['start'], {
      cwd: root,
      env: { ...process.env, PORT: String(port), KEYS_DIR: join(dir, 'keys'), CLIENTS_FILE: join(dir, 'clients.json') },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    })
    let output = ''
    npm.stdout!.on('data', (chunk) => (output += chunk))
    npm.stderr!.on('data', (chunk) => (output += chunk))
    try {
      const pid = await waitFor(() => {
        const line = output.split('\n').find((l) => l.includes('tokensmith listening'))
        if (!line) throw new Error(`not listening yet:\n${output}`)
        return JSON.parse(line).pid as number
      }, 30_000)
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean)
      expect(argv.slice(1)).toEqual(['dist/main.js'])
      expect(readFileSync(`/proc/${pid}/environ`, 'utf8')).not.toMatch(/NODE_OPTIONS=[^\0]*tsx/)
      const health = await fetch(`http://127.0.0.1:${port}/healthz`)
      expect(health.status).toBe(200)
    } finally {
      if (npm.pid !== undefined) process.kill(-npm.pid, 'SIGTERM')
    }
  }, 40_000)

  it.each(Object.entries(packageJson.exports as Record<string, { types: string; default: string }>))(
    'exports %s as compiled JavaScript with its .d.ts types, importable by a consumer',
    (name, target) => {
      expect(target.default).toMatch(/^\.\/dist\/.+\.js$/)
      expect(target.types).toMatch(/^\.\/dist\/.+\.d\.ts$/)
      expect(existsSync(join(root, target.types))).toBe(true)
      // A consumer's plain node process, no loader: resolve through package.json "exports" and import.
      const specifier = `tokensmith${name.slice(1)}`
      const script = `const url = import.meta.resolve(${JSON.stringify(specifier)}); const m = await import(url); console.log(JSON.stringify({ url, names: Object.keys(m).sort() }))`
      const result = JSON.parse(
        execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' }),
      )
      expect(result.url).toBe(pathToFileURL(join(root, target.default)).href)
      expect(result.names.length).toBeGreaterThan(0)
      const types = readFileSync(join(root, target.types), 'utf8')
      for (const exported of result.names) expect(types).toContain(exported)
    },
  )

  it('the package keeps the compiler strict', () => {
    const tsconfig = JSON.parse(readFileSync(join(root, 'tsconfig.json'), 'utf8'))
    expect(tsconfig.compilerOptions.strict).toBe(true)
    const build = JSON.parse(readFileSync(join(root, 'tsconfig.build.json'), 'utf8'))
    expect(build.extends).toBe('./tsconfig.json')
    expect(build.compilerOptions.strict).toBeUndefined()
  })
})
