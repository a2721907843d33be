/**
 * RFC 8259 §4: the names within a JSON object SHOULD be unique, and parsers disagree on which of
 * two equal names wins (JSON.parse keeps the last, silently). A file an operator edits by hand, with
 * two "scopes" in one client, would mean one thing to them and another to the server, so such a
 * file is refused instead.
 */

/**
 * One open object or array. Frames are reused from one nesting to the next, and the path of a
 * value (`clients[1].scopes`) is only spelled out for the duplicate found, so the scan allocates
 * next to nothing per value whatever the size of the file.
 */
interface Frame {
  isObject: boolean
  /** Names seen in this object: an array while small (a linear search is cheaper), then a Set. */
  names: string[]
  many: Set<string> | undefined
  /** The member being read (objects), or the element's index (arrays). */
  name: string
  index: number
  expectName: boolean
}

const SMALL = 16

function hasName(frame: Frame, name: string): boolean {
  if (frame.many) return frame.many.has(name)
  for (const seen of frame.names) if (seen === name) return true
  return false
}

function addName(frame: Frame, name: string): void {
  if (frame.many) frame.many.add(name)
  else if (frame.names.length < SMALL) frame.names.push(name)
  else frame.many = new Set([...frame.names, name])
}

/** Where the object of `frames[depth]` sits, as `clients[1].secrets[0]` ('' for the top level). */
function pathOf(frames: readonly Frame[], depth: number): string {
  let path = ''
  for (const frame of frames.slice(0, depth)) {
    if (!frame.isObject) path = `${path}[${frame.index}]`
    else path = path ? `${path}.${frame.name}` : frame.name
  }
  return path
}

/** Index of the quote that closes the string opened at `open` (escaped quotes skipped). */
function closingQuote(text: string, open: number): number {
  let at = text.indexOf('"', open + 1)
  while (at !== -1) {
    let backslashes = 0
    while (text.charCodeAt(at - 1 - backslashes) === 0x5c) backslashes++
    if (backslashes % 2 === 0) return at
    at = text.indexOf('"', at + 1)
  }
  return text.length
}

/**
 * The first member name that appears twice in one object of `text`, and where that object is
 * (`clients[0]`; '' for the top level), or undefined. `text` must be valid JSON (parse it first):
 * this only follows strings and nesting. Names are compared after unescaping, so "a" and "\u0061"
 * are the same name.
 */
export function findDuplicateName(text: string): { name: string; path: string } | undefined {
  const frames: Frame[] = []
  let depth = 0 // frames[depth - 1] is the innermost open value
  for (let i = 0; i < text.length; i++) {
    const char = text.charCodeAt(i)
    if (char === 0x7b || char === 0x5b) {
      // { [
      let frame = frames[depth]
      if (!frame) {
        frame = { isObject: false, names: [], many: undefined, name: '', index: 0, expectName: false }
        frames.push(frame)
      }
      frame.isObject = char === 0x7b
      frame.names.length = 0
      frame.many = undefined
      frame.name = ''
      frame.index = 0
      frame.expectName = frame.isObject
      depth++
    } else if (char === 0x7d || char === 0x5d) {
      // } ]
      depth--
    } else if (char === 0x2c) {
      // ,
      const top = frames[depth - 1]
      if (top?.isObject) top.expectName = true
      else if (top) top.index++
    } else if (char === 0x22) {
      // "
      const end = closingQuote(text, i)
      const top = frames[depth - 1]
      if (top?.isObject && top.expectName) {
        const raw = text.slice(i + 1, end)
        const name = raw.includes('\\') ? (JSON.parse(`"${raw}"`) as string) : raw
        if (hasName(top, name)) return { name, path: pathOf(frames, depth - 1) }
        addName(top, name)
        top.name = name
        top.expectName = false
      }
      i = end
    }
  }
  return undefined
}
