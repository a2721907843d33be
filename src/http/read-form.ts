import { IncomingMessage } from 'node:http'
import type { Context } from 'hono'
import { invalidRequest, payloadTooLarge, unreadableBody } from '../errors.js'
import { parseForm, type FormParams } from '../oauth/form.js'

/** The token, revocation and introspection endpoints read at most 16 KiB (README, Security: input limits). */
export const BODY_LIMIT = 16 * 1024

/**
 * RFC 6749 §3.2, RFC 7009 §2.1, RFC 7662 §2.1: parameters come as
 * application/x-www-form-urlencoded, UTF-8. Multipart, JSON or no content type is refused before
 * any byte is parsed; a body over the limit is refused as soon as the limit is passed, without
 * reading the rest.
 */
export async function readForm(c: Context): Promise<FormParams> {
  const declared = c.req.header('content-length')
  if (declared !== undefined && Number(declared) > BODY_LIMIT) throw payloadTooLarge(BODY_LIMIT)

  const contentType = c.req.header('content-type')
  if (!contentType) throw invalidRequest('Content-Type must be application/x-www-form-urlencoded')
  const [mediaType, ...parameters] = contentType.split(';').map((part) => part.trim().toLowerCase())
  if (mediaType !== 'application/x-www-form-urlencoded') {
    throw invalidRequest('Content-Type must be application/x-www-form-urlencoded')
  }
  const charset = parameters
    .find((p) => p.startsWith('charset='))
    ?.slice('charset='.length)
    .replace(/"/g, '')
  if (charset !== undefined && charset !== 'utf-8') throw invalidRequest('only UTF-8 form bodies are accepted')

  const incoming = nodeRequest(c)
  return parseForm(incoming ? await readIncoming(incoming, BODY_LIMIT) : await readBody(c.req.raw, BODY_LIMIT))
}

/**
 * The Node request behind the context when @hono/node-server serves it (`c.env.incoming`); undefined
 * in-process (`app.request()`), where there is only the web Request. Reading the body from Node's
 * stream spares the web Request, AbortSignal and stream objects that the first touch of
 * `c.req.raw.body` makes @hono/node-server build.
 */
function nodeRequest(c: Context): IncomingMessage | undefined {
  const incoming = (c.env as { incoming?: unknown } | undefined)?.incoming
  return incoming instanceof IncomingMessage ? incoming : undefined
}

/**
 * The request stream carries nothing but the client's bytes, so a failure while reading it (Node's
 * `aborted`/ECONNRESET when the socket closes mid-body, after a chunked-framing error or at the
 * request timeout) is the client's doing: an `invalid_request`, not a fault of ours.
 */
async function readChunk(reader: ReadableStreamDefaultReader<Uint8Array>) {
  try {
    return await reader.read()
  } catch (error) {
    throw unreadableBody(`request body stream failed: ${describeStreamError(error)}`, error)
  }
}

/** `aborted (ECONNRESET)`: the message and code only, never a stack. */
function describeStreamError(error: unknown): string {
  if (!(error instanceof Error)) return String(error).slice(0, 200)
  const code = (error as NodeJS.ErrnoException).code
  return `${error.message.slice(0, 200)}${code ? ` (${code})` : ''}`
}

/**
 * Collects Node's request stream up to `limit` bytes. Past the limit it stops reading (the stream
 * is paused, and @hono/node-server drains or closes the connection after the answer).
 */
function readIncoming(incoming: IncomingMessage, limit: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const settle = () => {
      incoming.off('data', onData)
      incoming.off('end', onEnd)
      incoming.off('error', onError)
      incoming.off('close', onClose)
    }
    const onData = (chunk: Buffer) => {
      size += chunk.byteLength
      if (size <= limit) return void chunks.push(chunk)
      settle()
      incoming.pause()
      reject(payloadTooLarge(limit))
    }
    const onEnd = () => {
      settle()
      resolve(chunks.length === 1 && chunks[0] ? chunks[0] : Buffer.concat(chunks, size))
    }
    const onError = (error: unknown) => {
      settle()
      reject(unreadableBody(`request body stream failed: ${describeStreamError(error)}`, error))
    }
    // Destroyed without an error: the connection went away before the body ended.
    const onClose = () => onError(incoming.errored ?? new Error('the connection closed before the body ended'))
    if (incoming.destroyed) return onClose()
    incoming.on('data', onData)
    incoming.on('end', onEnd)
    incoming.on('error', onError)
    incoming.on('close', onClose)
  })
}

/** The web Request's body (in-process requests), up to `limit` bytes. */
async function readBody(request: Request, limit: number): Promise<Uint8Array> {
  if (!request.body) return new Uint8Array()
  const reader = request.body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { done, value } = await readChunk(reader)
    if (done) break
    size += value.byteLength
    if (size > limit) {
      await reader.cancel().catch(() => {})
      throw payloadTooLarge(limit)
    }
    chunks.push(value)
  }
  return Buffer.concat(chunks, size)
}
