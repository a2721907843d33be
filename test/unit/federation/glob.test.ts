import fc from 'fast-check'
import { describe, expect, it } from 'vitest'

import { compileGlob, hasWildcards } from '../../../src/federation/glob.js'

const matches = (pattern: string, value: string) => compileGlob(pattern)(value)

describe('compileGlob', () => {
  it('compares a pattern without wildcards exactly', () => {
    expect(matches('system:serviceaccount:prod:api', 'system:serviceaccount:prod:api')).toBe(true)
    expect(matches('system:serviceaccount:prod:api', 'system:serviceaccount:prod:api2')).toBe(false)
    expect(matches('system:serviceaccount:prod:api', 'system:serviceaccount:prod:ap')).toBe(false)
    expect(matches('abc', 'ABC')).toBe(false)
    expect(matches('', '')).toBe(true)
    expect(matches('', 'a')).toBe(false)
  })

  it('matches the whole string, never a part of it', () => {
    expect(matches('a*', 'ba')).toBe(false)
    expect(matches('*a', 'ab')).toBe(false)
    expect(matches('a?c', 'xabc')).toBe(false)
    expect(matches('a?c', 'abcx')).toBe(false)
  })

  it('lets * take any run, the empty one included', () => {
    expect(matches('*', '')).toBe(true)
    expect(matches('*', 'anything at all')).toBe(true)
    expect(matches('a*b', 'ab')).toBe(true)
    expect(matches('a*b', 'a-x-b')).toBe(true)
    expect(matches('a*b*c', 'a-b-b-c')).toBe(true)
    expect(matches('a*b*c', 'a-c-b')).toBe(false)
    expect(matches('a**b', 'ab')).toBe(true)
  })

  it('lets ? take exactly one character (a code point)', () => {
    expect(matches('a?c', 'abc')).toBe(true)
    expect(matches('a?c', 'ac')).toBe(false)
    expect(matches('a?c', 'abbc')).toBe(false)
    expect(matches('a?c', 'a😀c')).toBe(true)
  })

  it('takes a backslash as making the next character literal', () => {
    expect(matches('a\\*b', 'a*b')).toBe(true)
    expect(matches('a\\*b', 'axb')).toBe(false)
    expect(matches('a\\?b', 'a?b')).toBe(true)
    expect(matches('a\\?b', 'axb')).toBe(false)
    expect(matches('a\\\\b', 'a\\b')).toBe(true)
    expect(matches('a\\', 'a\\')).toBe(true)
    expect(hasWildcards('a\\*b')).toBe(false)
    expect(hasWildcards('a*b')).toBe(true)
  })

  it('takes regular-expression syntax as plain text', () => {
    expect(matches('a.c', 'abc')).toBe(false)
    expect(matches('a.c', 'a.c')).toBe(true)
    expect(matches('[ab]', 'a')).toBe(false)
    expect(matches('[ab]', '[ab]')).toBe(true)
    expect(matches('(a|b)+$', 'a')).toBe(false)
    expect(matches('(a|b)+$', '(a|b)+$')).toBe(true)
    expect(matches('^.*$', 'anything')).toBe(false)
  })

  it('lets * cross "/" and ":" (so a pattern fixes its part up to a separator)', () => {
    expect(matches('repo:owner/*', 'repo:owner/x:ref:refs/heads/main')).toBe(true)
    expect(matches('repo:owner/*', 'repo:owner/x/y')).toBe(true)
  })

  describe('GitHub Actions subjects', () => {
    const everyRepo = 'repo:owner/*'
    it('repo:owner/* matches every repository of owner, and no other owner', () => {
      expect(matches(everyRepo, 'repo:owner/app:ref:refs/heads/main')).toBe(true)
      expect(matches(everyRepo, 'repo:owner-evil/x:ref:refs/heads/main')).toBe(false)
      expect(matches(everyRepo, 'repo:owner-evil/x')).toBe(false)
      expect(matches(everyRepo, 'repo:other/owner/x')).toBe(false)
      expect(matches(everyRepo, 'repo:ownerx/app:ref:refs/heads/main')).toBe(false)
      expect(matches(everyRepo, 'xrepo:owner/app')).toBe(false)
    })

    it('repo:owner/app* also takes repo:owner/app-fork; end the name with ":" instead', () => {
      expect(matches('repo:owner/app*', 'repo:owner/app-fork:ref:refs/heads/main')).toBe(true)
      expect(matches('repo:owner/app:*', 'repo:owner/app-fork:ref:refs/heads/main')).toBe(false)
      expect(matches('repo:owner/app:*', 'repo:owner/app:ref:refs/heads/main')).toBe(true)
      expect(matches('repo:owner/app:*', 'repo:owner/app:environment:prod')).toBe(true)
    })

    it('an exact branch subject takes that branch only', () => {
      const main = 'repo:owner/app:ref:refs/heads/main'
      expect(matches(main, 'repo:owner/app:ref:refs/heads/main')).toBe(true)
      expect(matches(main, 'repo:owner/app:ref:refs/heads/main-evil')).toBe(false)
      expect(matches(main, 'repo:owner/app:pull_request')).toBe(false)
    })
  })

  it('stays fast on patterns that make backtracking regexes explode', () => {
    const pattern = `${'*a'.repeat(30)}*b`
    const value = 'a'.repeat(5000)
    const started = performance.now()
    expect(matches(pattern, value)).toBe(false)
    expect(matches('a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*c', 'a'.repeat(10_000))).toBe(false)
    expect(performance.now() - started).toBeLessThan(2000)
  })

  it('agrees with a reference matcher on random patterns', () => {
    // A direct recursive definition, memoized: the specification, not the implementation.
    const reference = (pattern: string, value: string): boolean => {
      const p = Array.from(pattern)
      const v = Array.from(value)
      const memo = new Map<string, boolean>()
      const go = (i: number, j: number): boolean => {
        const key = `${i},${j}`
        const hit = memo.get(key)
        if (hit !== undefined) return hit
        let result: boolean
        if (i === p.length) result = j === v.length
        else if (p[i] === '*') result = go(i + 1, j) || (j < v.length && go(i, j + 1))
        else if (p[i] === '?') result = j < v.length && go(i + 1, j + 1)
        else if (p[i] === '\\' && i + 1 < p.length) result = j < v.length && p[i + 1] === v[j] && go(i + 2, j + 1)
        else result = j < v.length && p[i] === v[j] && go(i + 1, j + 1)
        memo.set(key, result)
        return result
      }
      return go(0, 0)
    }
    const alphabet = fc.constantFrom('a', 'b', '/', ':', '*', '?', '\\', '.')
    const text = fc.array(alphabet, { maxLength: 12 }).map((chars) => chars.join(''))
    fc.assert(
      fc.property(text, text, (pattern, value) => {
        expect(matches(pattern, value)).toBe(reference(pattern, value))
      }),
      { numRuns: 2000 },
    )
  })
})
