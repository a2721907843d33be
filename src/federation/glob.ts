/**
 * The glob patterns of trust entries (`subject` and `claims` values): whole-string matches where
 *
 * - `*` matches any run of characters, the empty run included, **`/` and `:` included**;
 * - `?` matches exactly one character (a Unicode code point);
 * - `\` makes the next character literal (`\*`, `\?`, `\\`); a lone `\` at the end matches itself;
 * - every other character matches only itself. Nothing is a regular expression: `.`, `[`, `(`, `+`,
 *   `$` and the like are plain text.
 *
 * A pattern without `*` or `?` is an exact comparison.
 *
 * Because `*` crosses separators, write the fixed part of a pattern up to a separator the platform
 * never puts inside a name. For GitHub Actions `sub` claims (`repo:OWNER/REPO:ref:refs/heads/BRANCH`):
 *
 * - `repo:octo-org/*` — every repository of `octo-org`, any ref: `octo-org-evil/x` does not match, as
 *   the `/` right after the owner is literal and owner names hold no `/`;
 * - `repo:octo-org/app:*` — the `app` repository only; `repo:octo-org/app*` would also take
 *   `repo:octo-org/app-fork:...`, so end the repository name with its `:`;
 * - `repo:octo-org/app:ref:refs/heads/main` — one branch, exactly; prefer it, with a `claims` condition on
 *   `repository_owner_id` / `repository_id` (immutable, unlike names, which can be re-registered).
 *
 * The matcher is the linear-space two-pointer wildcard algorithm: a mismatch backtracks only to the
 * last `*`, so a match costs at most O(pattern × value) steps, never exponential time (no ReDoS).
 */

type Token = { kind: 'literal'; char: string } | { kind: 'one' } | { kind: 'any' }

export type GlobMatcher = (value: string) => boolean

function tokenize(pattern: string): Token[] {
  const chars = Array.from(pattern)
  const tokens: Token[] = []
  for (let i = 0; i < chars.length; i++) {
    const char = chars[i] as string
    if (char === '\\' && i + 1 < chars.length) {
      i += 1
      tokens.push({ kind: 'literal', char: chars[i] as string })
    } else if (char === '*') {
      // Consecutive stars match what one does.
      if (tokens.at(-1)?.kind !== 'any') tokens.push({ kind: 'any' })
    } else if (char === '?') {
      tokens.push({ kind: 'one' })
    } else {
      tokens.push({ kind: 'literal', char })
    }
  }
  return tokens
}

/** True when `pattern` holds an unescaped `*` or `?`; otherwise it is compared exactly. */
export function hasWildcards(pattern: string): boolean {
  return tokenize(pattern).some((token) => token.kind !== 'literal')
}

/** Compiles `pattern` into a whole-string matcher (see the module comment for the syntax). */
export function compileGlob(pattern: string): GlobMatcher {
  const tokens = tokenize(pattern)
  if (tokens.every((token) => token.kind === 'literal')) {
    const exact = tokens.map((token) => (token as { char: string }).char).join('')
    return (value) => value === exact
  }
  return (value) => matchTokens(tokens, Array.from(value))
}

function matchTokens(tokens: readonly Token[], value: readonly string[]): boolean {
  let t = 0
  let v = 0
  // Where the last `*` was, and how much of the value it has swallowed so far.
  let starToken = -1
  let starValue = 0
  while (v < value.length) {
    const token = tokens[t]
    if (token !== undefined && token.kind === 'any') {
      starToken = t
      starValue = v
      t += 1
    } else if (token !== undefined && (token.kind === 'one' || token.char === value[v])) {
      t += 1
      v += 1
    } else if (starToken >= 0) {
      // Let the last `*` take one more character and retry what follows it.
      t = starToken + 1
      starValue += 1
      v = starValue
    } else {
      return false
    }
  }
  while (tokens[t]?.kind === 'any') t += 1
  return t === tokens.length
}
