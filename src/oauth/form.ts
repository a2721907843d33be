import { invalidRequest, type OAuthError } from '../errors.js'

/**
 * Strict application/x-www-form-urlencoded parsing (RFC 6749 Appendix B). Hono's parser is lenient
 * where OAuth is strict: it lets the last duplicate win and turns `x[]` into arrays. Here every
 * value is kept so duplicates can be refused (RFC 6749 §3.1, §3.2), and any broken encoding is an
 * `invalid_request`, never a 500.
 */
export type FormParams = ReadonlyMap<string, readonly string[]>

const utf8 = new TextDecoder('utf-8', { fatal: true })

const ENCODED = /[%+]/

/** Decodes one form-urlencoded component: `+` is a space, `%XX` are UTF-8 bytes. */
export function formDecode(component: string): string {
  // Most components hold neither and decode to themselves: skip the work.
  if (!ENCODED.test(component)) return component
  try {
    return decodeURIComponent(component.replace(/\+/g, ' '))
  } catch {
    throw invalidRequest('malformed percent-encoding in request')
  }
}

export function parseForm(body: Uint8Array): FormParams {
  let text: string
  try {
    text = utf8.decode(body)
  } catch {
    throw invalidRequest('request body is not valid UTF-8')
  }
  const params = new Map<string, string[]>()
  for (const pair of text.split('&')) {
    if (pair === '') continue
    const eq = pair.indexOf('=')
    const name = formDecode(eq === -1 ? pair : pair.slice(0, eq))
    const value = eq === -1 ? '' : formDecode(pair.slice(eq + 1))
    // RFC 6749 §3.1: parameters sent without a value are treated as omitted.
    if (value === '') continue
    const values = params.get(name)
    if (values) values.push(value)
    else params.set(name, [value])
  }
  return params
}

/**
 * RFC 6749 §3.1: request parameters must not be included more than once, known or not
 * (`scope[]=a&scope[]=b` is refused too). `overrides` picks another error for some names.
 */
export function rejectRepeatedParams(params: FormParams, overrides: Record<string, () => OAuthError> = {}): void {
  for (const [name, values] of params) {
    if (values.length > 1) throw (overrides[name] ?? (() => invalidRequest('a request parameter is repeated')))()
  }
}

/**
 * The one value of a parameter, or undefined. RFC 6749 §3.1: parameters must not be included
 * more than once; `onRepeat` lets RFC 8707 answer `invalid_target` for a repeated `resource`.
 */
export function single(
  params: FormParams,
  name: string,
  onRepeat: () => OAuthError = () => invalidRequest(`parameter ${name} is repeated`),
): string | undefined {
  const values = params.get(name)
  if (values && values.length > 1) throw onRepeat()
  return values?.[0]
}
