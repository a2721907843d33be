/**
 * Fetches a JWK Set over HTTP with hard limits: no redirect followed, a time limit for the whole
 * exchange, a size cap on the body. A slow, huge or redirected answer costs the resource server no more
 * than those limits.
 */

export interface JwksFetchOptions {
  fetch: typeof fetch
  /** Milliseconds for the whole exchange, body included. */
  timeoutMs: number
  maxBytes: number
}

export class JwksFetchError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'JwksFetchError'
  }
}

/** Rejects as soon as `signal` aborts, whatever `promise` does (some fetch stand-ins ignore signals). */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new JwksFetchError('JWKS fetch timed out', { cause: signal.reason }))
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new JwksFetchError('JWKS fetch timed out', { cause: signal.reason }))
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(error)
      },
    )
  })
}

/** Reads the body as a stream and stops at `maxBytes`, so a 10 MiB answer costs at most one chunk more. */
async function readCapped(response: Response, maxBytes: number, signal: AbortSignal): Promise<Uint8Array> {
  const declared = Number(response.headers.get('content-length') ?? Number.NaN)
  if (declared > maxBytes) {
    void response.body?.cancel().catch(() => {})
    throw new JwksFetchError(`JWKS response exceeds ${maxBytes} bytes`)
  }
  if (response.body === null) return new Uint8Array(0)
  const reader = response.body.getReader()
  const chunks: Uint8Array[] = []
  let total = 0
  try {
    for (;;) {
      const { done, value } = await abortable(reader.read(), signal)
      if (done) break
      total += value.byteLength
      if (total > maxBytes) throw new JwksFetchError(`JWKS response exceeds ${maxBytes} bytes`)
      chunks.push(value)
    }
  } catch (error) {
    void reader.cancel().catch(() => {})
    throw error
  }
  const body = new Uint8Array(total)
  let offset = 0
  for (const chunk of chunks) {
    body.set(chunk, offset)
    offset += chunk.byteLength
  }
  return body
}

/**
 * GETs `url` and returns the parsed JSON. A redirect is an error, never followed (a JWKS moved
 * elsewhere is not the configured one): `redirect: 'manual'` hands the 3xx back and anything but 200
 * is refused.
 */
export async function fetchJwksJson(url: URL, options: JwksFetchOptions): Promise<unknown> {
  const signal = AbortSignal.timeout(options.timeoutMs)
  let response: Response
  try {
    response = await abortable(
      options.fetch(url, {
        method: 'GET',
        redirect: 'manual',
        signal,
        headers: { accept: 'application/jwk-set+json, application/json' },
      }),
      signal,
    )
  } catch (cause) {
    throw cause instanceof JwksFetchError ? cause : new JwksFetchError('JWKS fetch failed', { cause })
  }
  if (response.status !== 200) {
    void response.body?.cancel().catch(() => {})
    throw new JwksFetchError(`JWKS fetch answered ${response.status}`)
  }
  let body: Uint8Array
  try {
    body = await readCapped(response, options.maxBytes, signal)
  } catch (cause) {
    throw cause instanceof JwksFetchError ? cause : new JwksFetchError('JWKS body could not be read', { cause })
  }
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body)) as unknown
  } catch (cause) {
    throw new JwksFetchError('JWKS response is not JSON', { cause })
  }
}
