import { describe, expect, it } from 'vitest'
import { invalidTarget } from '../../../src/errors.js'
import { formDecode, parseForm, rejectRepeatedParams, single } from '../../../src/oauth/form.js'
import { thrown } from '../../helpers/oauth-error.js'

const bytes = (text: string) => new TextEncoder().encode(text)

describe('formDecode', () => {
  it.each([
    ['a+b', 'a b'],
    ['a%20b', 'a b'],
    ['a%2Bb', 'a+b'],
    ['%3A%25%26%3D', ':%&='],
    ['r%C3%A9ad', 'réad'],
    ['%F0%9F%98%80', '\u{1F600}'],
    ['plain', 'plain'],
    ['', ''],
  ])('decodes %j to %j', (input, expected) => {
    expect(formDecode(input)).toBe(expected)
  })

  it.each(['%ZZ', '%', '%2', 'a%G0', '%FF%FE', '%ED%A0%80', '%C0%AF', '%E2%82', '%80'])(
    'refuses the broken encoding %j with invalid_request',
    (input) => {
      expect(thrown(() => formDecode(input))).toMatchObject({ code: 'invalid_request', status: 400 })
    },
  )
})

describe('parseForm', () => {
  it('reads every parameter in order, decoding names and values', () => {
    const params = parseForm(bytes('grant_type=client_credentials&scope=read+write&resource=urn%3Aapi%3Ab&na%6De=v'))
    expect([...params]).toEqual([
      ['grant_type', ['client_credentials']],
      ['scope', ['read write']],
      ['resource', ['urn:api:b']],
      ['name', ['v']],
    ])
  })

  it('keeps every value of a repeated parameter instead of letting the last win', () => {
    expect(parseForm(bytes('scope=a&scope=b&scope=a')).get('scope')).toEqual(['a', 'b', 'a'])
  })

  it('keeps array-style names literally, without building arrays', () => {
    const params = parseForm(bytes('scope[]=a&scope[]=b&x%5B0%5D=c'))
    expect([...params]).toEqual([
      ['scope[]', ['a', 'b']],
      ['x[0]', ['c']],
    ])
  })

  it('treats parameters without a value as omitted (RFC 6749 §3.1)', () => {
    const params = parseForm(bytes('scope=&grant_type&audience=&client_id=svc-a'))
    expect([...params]).toEqual([['client_id', ['svc-a']]])
  })

  it('counts an empty value and a real one as a single parameter', () => {
    expect(parseForm(bytes('scope=&scope=read')).get('scope')).toEqual(['read'])
  })

  it('splits on the first = only', () => {
    expect(parseForm(bytes('token=a.b=c==')).get('token')).toEqual(['a.b=c=='])
  })

  it('skips empty pairs and reads an empty body as no parameters', () => {
    expect([...parseForm(bytes('&&a=1&&'))]).toEqual([['a', ['1']]])
    expect(parseForm(new Uint8Array()).size).toBe(0)
  })

  it('refuses a body that is not UTF-8 with invalid_request', () => {
    expect(thrown(() => parseForm(new Uint8Array([0x61, 0x3d, 0xff, 0xfe])))).toMatchObject({
      code: 'invalid_request',
      status: 400,
    })
    expect(thrown(() => parseForm(new Uint8Array([0x61, 0x3d, 0xed, 0xa0, 0x80])))).toMatchObject({
      code: 'invalid_request',
    })
  })

  it('refuses a broken escape in a name or a value with invalid_request', () => {
    expect(thrown(() => parseForm(bytes('a=%ZZ'))).code).toBe('invalid_request')
    expect(thrown(() => parseForm(bytes('%ZZ=a'))).code).toBe('invalid_request')
    expect(thrown(() => parseForm(bytes('ok=1&a=%ED%A0%80'))).code).toBe('invalid_request')
  })
})

describe('rejectRepeatedParams', () => {
  it('accepts parameters that each appear once', () => {
    expect(() => rejectRepeatedParams(parseForm(bytes('a=1&b=2&c=3')))).not.toThrow()
  })

  it('refuses any repeated parameter, known or not, with invalid_request', () => {
    for (const body of ['grant_type=x&grant_type=x', 'scope[]=a&scope[]=b', 'unknown=1&unknown=2']) {
      expect(thrown(() => rejectRepeatedParams(parseForm(bytes(body))))).toMatchObject({
        code: 'invalid_request',
        status: 400,
      })
    }
  })

  it('uses the override for a named parameter and the default for others', () => {
    const overrides = { resource: () => invalidTarget('one resource') }
    expect(thrown(() => rejectRepeatedParams(parseForm(bytes('resource=a&resource=b')), overrides)).code).toBe(
      'invalid_target',
    )
    expect(thrown(() => rejectRepeatedParams(parseForm(bytes('scope=a&scope=b')), overrides)).code).toBe(
      'invalid_request',
    )
  })
})

describe('single', () => {
  const params = parseForm(bytes('a=1&r=x&r=y'))

  it('returns the one value, or undefined when absent', () => {
    expect(single(params, 'a')).toBe('1')
    expect(single(params, 'missing')).toBeUndefined()
  })

  it('refuses a repeated parameter with invalid_request by default', () => {
    expect(thrown(() => single(params, 'r'))).toMatchObject({ code: 'invalid_request', status: 400 })
  })

  it('throws the onRepeat error for a repeated parameter', () => {
    expect(thrown(() => single(params, 'r', () => invalidTarget('one only'))).code).toBe('invalid_target')
  })
})
