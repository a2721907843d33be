import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'

// `tokensmith/verifier` and `tokensmith/revocation-feed` run inside resource servers, which install
// neither the authorization server's dependencies (pino, zod, ...) nor need its modules (config,
// deps). Each may import only its own files and the packages listed here. prom-client, an optional
// peer, is imported for its types only; `metrics.ts` and `revocation-feed-metrics.ts` load it (require)
// when an application passes a registry.
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')

const VERIFIER = readdirSync(join(root, 'src/verifier'))
  .filter((name) => name.endsWith('.ts'))
  .map((name) => `src/verifier/${name}`)

/** `revocation-feed.ts` and everything it imports. */
const REVOCATION_FEED = [
  'revocation-feed.ts',
  'revocation-feed-connection.ts',
  'revocation-feed-load.ts',
  'revocation-feed-messages.ts',
  'revocation-feed-metrics.ts',
  'revocation-feed-subscriber.ts',
  'revocation-table.ts',
  'protocol.ts',
  'redis-client.ts',
  'redis-target.ts',
  'redis-error.ts',
  'denylist.ts',
].map((name) => `src/denylist/${name}`)

interface Import {
  specifier: string
  typeOnly: boolean
}

/** Every import and re-export of a file, dynamic `import()` and `import('x').T` types included. */
function importsOf(file: string): Import[] {
  const source = ts.createSourceFile(file, readFileSync(join(root, file), 'utf8'), ts.ScriptTarget.Latest, true)
  const found: Import[] = []
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.importClause
      const named = clause?.namedBindings
      const allNamedTypes =
        clause !== undefined &&
        clause.name === undefined &&
        named !== undefined &&
        ts.isNamedImports(named) &&
        named.elements.length > 0 &&
        named.elements.every((element) => element.isTypeOnly)
      found.push({ specifier: node.moduleSpecifier.text, typeOnly: clause?.isTypeOnly === true || allNamedTypes })
    } else if (
      ts.isExportDeclaration(node) &&
      node.moduleSpecifier !== undefined &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      found.push({ specifier: node.moduleSpecifier.text, typeOnly: node.isTypeOnly })
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [argument] = node.arguments
      found.push({
        specifier: argument !== undefined && ts.isStringLiteral(argument) ? argument.text : '<computed>',
        typeOnly: false,
      })
    } else if (
      ts.isImportTypeNode(node) &&
      ts.isLiteralTypeNode(node.argument) &&
      ts.isStringLiteral(node.argument.literal)
    ) {
      found.push({ specifier: node.argument.literal.text, typeOnly: true })
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  return found
}

/** The repository path a relative specifier names (`./x.js` is the source `./x.ts`). */
function target(file: string, specifier: string): string {
  return relative(root, resolve(root, dirname(file), specifier.replace(/\.js$/, '.ts')))
}

/** Imports that break the boundary, as `file -> specifier` lines. */
function violations(files: string[], allowed: (imported: Import, resolved: string | undefined) => boolean): string[] {
  return files.flatMap((file) =>
    importsOf(file)
      .filter((imported) => {
        const resolved = imported.specifier.startsWith('.') ? target(file, imported.specifier) : undefined
        return !allowed(imported, resolved)
      })
      .map((imported) => `${file} -> ${imported.specifier}`),
  )
}

const isNodeBuiltin = (specifier: string) => specifier.startsWith('node:')
const isPackage = (specifier: string, name: string) => specifier === name || specifier.startsWith(`${name}/`)
const isPromClientTypes = (imported: Import) => imported.typeOnly && isPackage(imported.specifier, 'prom-client')

describe('resource-server import boundary', () => {
  it('reads the imports it checks', () => {
    expect(VERIFIER).toContain('src/verifier/index.ts')
    expect(importsOf('src/denylist/revocation-feed.ts').map((i) => i.specifier)).toContain('./protocol.js')
    expect(importsOf('src/denylist/redis.ts')).toContainEqual({ specifier: '../clock.js', typeOnly: true })
  })

  it('the verifier imports only its own files, hono, jose and node builtins', () => {
    const allowed = (imported: Import, resolved: string | undefined) =>
      resolved !== undefined
        ? VERIFIER.includes(resolved)
        : isNodeBuiltin(imported.specifier) ||
          isPackage(imported.specifier, 'hono') ||
          isPackage(imported.specifier, 'jose') ||
          isPromClientTypes(imported)
    expect(violations(VERIFIER, allowed)).toEqual([])
  })

  it('the revocation feed imports only its own files, verifier types, ioredis and node builtins', () => {
    const allowed = (imported: Import, resolved: string | undefined) =>
      resolved !== undefined
        ? REVOCATION_FEED.includes(resolved) || (imported.typeOnly && VERIFIER.includes(resolved))
        : isNodeBuiltin(imported.specifier) || isPackage(imported.specifier, 'ioredis') || isPromClientTypes(imported)
    expect(violations(REVOCATION_FEED, allowed)).toEqual([])
  })

  it('prom-client is loaded at run time only by the two metrics files', () => {
    const loaders = [...VERIFIER, ...REVOCATION_FEED].filter((file) =>
      /createRequire|require\(/.test(readFileSync(join(root, file), 'utf8')),
    )
    expect(loaders.sort()).toEqual(['src/denylist/revocation-feed-metrics.ts', 'src/verifier/metrics.ts'])
  })
})
