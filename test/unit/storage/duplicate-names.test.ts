import { describe, expect, it } from 'vitest'
import { findDuplicateName } from '../../../src/storage/duplicate-names.js'

describe('findDuplicateName', () => {
  it.each([
    ['{}'],
    ['[]'],
    ['{"a": 1, "b": {"a": 2}, "c": [{"a": 3}, {"a": 4}]}'],
    ['{"a": "a", "b": "a"}'], // equal values are not names
    ['{"a": ["a", "a"]}'],
    ['{"a\\"": 1, "a": 2}'],
    ['{"x": "{\\"y\\": 1, \\"y\\": 2}"}'], // braces and quotes inside a string are text
    ['  {\n  "clients" :\t[ ]\n}\n'],
  ])('finds nothing in %s', (text) => {
    JSON.parse(text)
    expect(findDuplicateName(text)).toBeUndefined()
  })

  it.each([
    ['{"clients": [], "clients": []}', { name: 'clients', path: '' }],
    [
      '{"clients": [{"client_id": "a", "scopes": ["admin"], "scopes": ["read"]}]}',
      { name: 'scopes', path: 'clients[0]' },
    ],
    [
      '{"clients": [{}, {"secrets": [{"sha256": "x"}, {"sha256": "y", "sha256": "z"}]}]}',
      { name: 'sha256', path: 'clients[1].secrets[1]' },
    ],
    ['{"a": {"b": [1, [2, {"c": 1, "c": 2}]]}}', { name: 'c', path: 'a.b[1][1]' }],
    ['{"scopes": 1, "\\u0073copes": 2}', { name: 'scopes', path: '' }], // the same name, escaped
    ['{"__proto__": 1, "__proto__": 2}', { name: '__proto__', path: '' }],
  ])('finds the duplicate in %s', (text, expected) => {
    JSON.parse(text)
    expect(findDuplicateName(text)).toEqual(expected)
  })

  it('finds a duplicate among many names, and none among many distinct ones', () => {
    const names = Array.from({ length: 40 }, (_, i) => `"n${i}": ${i}`)
    expect(findDuplicateName(`{"o": {${names.join(', ')}}}`)).toBeUndefined()
    expect(findDuplicateName(`{"o": {${names.join(', ')}, "n3": 0}}`)).toEqual({ name: 'n3', path: 'o' })
    expect(findDuplicateName(`{"o": {${names.join(', ')}}, "p": [{${names.join(', ')}}, {"a": 1, "a": 2}]}`)).toEqual({
      name: 'a',
      path: 'p[1]',
    })
  })

  it('reads names with escaped quotes and backslashes', () => {
    const distinct = '{"a\\\\": 1, "a\\\\\\"": 2, "\\"": 3}' // a\  a\"  "
    const same = '{"a\\\\": 1, "a\\u005c": 2}' // a\ twice, once escaped as \u005c
    JSON.parse(distinct)
    JSON.parse(same)
    expect(findDuplicateName(distinct)).toBeUndefined()
    expect(findDuplicateName(same)).toEqual({ name: 'a\\', path: '' })
  })
})
