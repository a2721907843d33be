import { readFileSync, readdirSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'
import {
  invalidClient,
  methodNotAllowed,
  payloadTooLarge,
  serverError,
  temporarilyUnavailable,
  unreadableBody,
  unsupportedGrantType,
} from '../../src/errors.js'
import { BODY_LIMIT } from '../../src/http/read-form.js'

/** RFC 6749 §5.2: error_description = 1*( %x20-21 / %x23-5B / %x5D-7E ) */
const DESCRIPTION = /^[\x20-\x21\x23-\x5B\x5D-\x7E]+$/

const SRC = fileURLToPath(new URL('../../src', import.meta.url))
const ERRORS_MODULE = join(SRC, 'errors.ts')

/**
 * Values interpolated into descriptions, and why each stays within the character set: anything else
 * interpolated (say, a request value) makes this test fail until it is looked at.
 */
const INTERPOLATED = {
  name: 'a parameter name written in the source (form.ts single())',
  limit: 'a number (payloadTooLarge)',
  allow: 'a method list written in the source (methodNotAllowed)',
  CLIENT_ASSERTION_TYPE: 'the jwt-bearer URN of RFC 7523 section 2.2, a constant (client-assertion.ts)',
}

interface Description {
  where: string
  /** The literal text; for a template, its literal parts joined by `x`. */
  text: string
  interpolated: string[]
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return sourceFiles(path)
    return path.endsWith('.ts') ? [path] : []
  })
}

/** The local names a file imports from src/errors.ts (aliases included). */
function namesFromErrorsModule(file: string, source: ts.SourceFile): Map<string, string> {
  const names = new Map<string, string>()
  for (const statement of source.statements) {
    if (!ts.isImportDeclaration(statement) || !ts.isStringLiteral(statement.moduleSpecifier)) continue
    const target = resolve(dirname(file), statement.moduleSpecifier.text).replace(/\.js$/, '.ts')
    const bindings = statement.importClause?.namedBindings
    if (target !== ERRORS_MODULE || !bindings || !ts.isNamedImports(bindings)) continue
    for (const element of bindings.elements) names.set(element.name.text, (element.propertyName ?? element.name).text)
  }
  return names
}

/**
 * The helpers of src/errors.ts that pass their first parameter through as the description, found
 * from their code: `(description) => new OAuthError(code, status, description, …)`.
 */
function descriptionHelpers(): Set<string> {
  const source = ts.createSourceFile(ERRORS_MODULE, readFileSync(ERRORS_MODULE, 'utf8'), ts.ScriptTarget.Latest, true)
  const helpers = new Set<string>()
  for (const statement of source.statements) {
    if (!ts.isVariableStatement(statement)) continue
    for (const declaration of statement.declarationList.declarations) {
      const fn = declaration.initializer
      if (!fn || !ts.isArrowFunction(fn) || !ts.isNewExpression(fn.body) || fn.parameters.length === 0) continue
      const description = fn.body.arguments?.[2]
      const first = fn.parameters[0]!.name
      if (description && ts.isIdentifier(description) && ts.isIdentifier(first) && description.text === first.text) {
        helpers.add((declaration.name as ts.Identifier).text)
      }
    }
  }
  return helpers
}

/** Every description written in src: the third argument of `new OAuthError`, the first of a helper above. */
function collectDescriptions(): { descriptions: Description[]; unchecked: string[] } {
  const helpers = descriptionHelpers()
  const descriptions: Description[] = []
  const unchecked: string[] = []
  for (const file of sourceFiles(SRC)) {
    const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true)
    const imported = namesFromErrorsModule(file, source)
    const isErrorsModule = file === ERRORS_MODULE
    const resolveName = (name: string) => (isErrorsModule ? name : imported.get(name))

    const record = (argument: ts.Expression | undefined, node: ts.Node): void => {
      const where = `${file.slice(SRC.length + 1)}:${source.getLineAndCharacterOfPosition(node.getStart()).line + 1}`
      if (argument === undefined) {
        unchecked.push(`${where}: no description`)
      } else if (ts.isStringLiteral(argument) || ts.isNoSubstitutionTemplateLiteral(argument)) {
        descriptions.push({ where, text: argument.text, interpolated: [] })
      } else if (ts.isTemplateExpression(argument)) {
        const parts = [argument.head.text, ...argument.templateSpans.map((span) => span.literal.text)]
        const interpolated = argument.templateSpans.map((span) => span.expression.getText(source))
        descriptions.push({ where, text: parts.join('x'), interpolated })
      } else if (!(isErrorsModule && ts.isIdentifier(argument) && argument.text === 'description')) {
        // A helper's own parameter (errors.ts) is checked where the helper is called.
        unchecked.push(`${where}: ${argument.getText(source)}`)
      }
    }

    const visit = (node: ts.Node): void => {
      if (
        ts.isNewExpression(node) &&
        ts.isIdentifier(node.expression) &&
        resolveName(node.expression.text) === 'OAuthError'
      ) {
        record(node.arguments?.[2], node)
      }
      if (ts.isCallExpression(node) && ts.isIdentifier(node.expression)) {
        const name = resolveName(node.expression.text)
        if (name !== undefined && helpers.has(name)) record(node.arguments[0], node)
      }
      ts.forEachChild(node, visit)
    }
    visit(source)
  }
  return { descriptions, unchecked }
}

describe('client-facing error descriptions (RFC 6749 §5.2)', () => {
  const { descriptions, unchecked } = collectDescriptions()

  it('finds the descriptions in the source', () => {
    expect(descriptions.length).toBeGreaterThan(25)
    expect(descriptions.map((d) => d.text)).toEqual(
      expect.arrayContaining(['grant_type is required', 'client authentication failed', 'internal server error']),
    )
    expect([...descriptionHelpers()]).toEqual(
      expect.arrayContaining(['invalidRequest', 'unauthorizedClient', 'invalidScope', 'invalidTarget']),
    )
  })

  it('writes every description as a literal, so it can be checked here', () => {
    expect(unchecked).toEqual([])
  })

  it('keeps every description within %x20-21 / %x23-5B / %x5D-7E', () => {
    const outside = descriptions
      .filter((d) => !DESCRIPTION.test(d.text))
      .map((d) => `${d.where}: ${JSON.stringify(d.text)}`)
    expect(outside).toEqual([])
  })

  it('interpolates only values known to stay within the character set', () => {
    const unknown = descriptions.flatMap((d) =>
      d.interpolated.filter((name) => !(name in INTERPOLATED)).map((name) => `${d.where}: ${name}`),
    )
    expect(unknown).toEqual([])
  })

  it('builds descriptions within the character set from the values the server passes', () => {
    const built = [
      payloadTooLarge(BODY_LIMIT),
      methodNotAllowed('POST'),
      methodNotAllowed('GET, HEAD'),
      unreadableBody('aborted (ECONNRESET)'),
      unsupportedGrantType(),
      invalidClient('unknown client or wrong secret'),
      temporarilyUnavailable('denylist down'),
      serverError(new Error('boom §')),
    ]
    for (const error of built) expect(error.message).toMatch(DESCRIPTION)
  })
})
