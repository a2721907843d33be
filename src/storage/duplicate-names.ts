/**
 * RFC 8259 §4: the names within a JSON object SHOULD be unique, and parsers disagree on which of
 * two equal names wins (JSON.parse keeps the last, silently). A file an operator edits by hand, with
 * two "scopes" in one client, would mean one thing to them and another to the server, so such a
 * file is refused instead.
 */

type Frame = { kind: 'object'; names: Set<string>; path: string; name?: string; expectName: boolean } | { kind: 'array'; path: string; index: number }

/** Where a value sits, as `clients[1].scopes`. */
function childPath(frame: Frame | undefined): string {
  if (!frame) return ''
  if (frame.kind === 'array') return `${frame.path}[${frame.index}]`
  return frame.path ? `${frame.path}.${frame.name}` : frame.name!
}

/**
 * The first member name that appears twice in one object of `text`, and where that object is
 * (`clients[0]`; '' for the top level), or undefined. `text` must be valid JSON (parse it first):
 * this only follows strings and nesting. Names are compared after unescaping, so "a" and "\u0061"
 * are the same name.
 */
export function findDuplicateName(text: string): { name: string; path: string } | undefined {
  const stack: Frame[] = []
  for (let i = 0; i < text.length; i++) {
    const char = text[i]
    const top = stack.at(-1)
    if (char === '{' || char === '[') {
      const path = childPath(top)
      stack.push(char === '{' ? { kind: 'object', names: new Set(), path, expectName: true } : { kind: 'array', path, index: 0 })
    } else if (char === '}' || char === ']') {
      stack.pop()
    } else if (char === ',') {
      if (top?.kind === 'object') top.expectName = true
      else if (top?.kind === 'array') top.index++
    } else if (char === '"') {
      let end = i + 1
      while (end < text.length && text[end] !== '"') end += text[end] === '\\' ? 2 : 1
      if (top?.kind === 'object' && top.expectName) {
        const name = JSON.parse(text.slice(i, end + 1)) as string
        if (top.names.has(name)) return { name, path: top.path }
        top.names.add(name)
        top.name = name
        top.expectName = false
      }
      i = end
    }
  }
  return undefined
}
