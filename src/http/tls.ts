import { X509Certificate, createPrivateKey } from 'node:crypto'
import { readFile, stat } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import type { SecureContextOptions, Server as TlsServer } from 'node:tls'
import type { Logger } from '../observability/logger.js'
import { watchForChanges, type Watcher } from '../storage/watch.js'

/**
 * HTTPS served by this process: TLS_CERT_FILE and TLS_KEY_FILE read, checked as a pair, reloaded
 * on change, and Strict-Transport-Security on every response. Without them the server speaks plain
 * HTTP to a TLS-terminating proxy in front (RFC 9700 §4.13); either way clients talk TLS (RFC 6749 §1.6).
 */

export interface TlsFiles {
  certFile: string
  keyFile: string
}

/** A certificate chain and the private key of its first certificate, checked to belong together. */
export interface TlsPair {
  cert: Buffer
  key: Buffer
  /** The leaf (the file's first certificate). */
  certificate: X509Certificate
}

/**
 * RFC 6797 §6.1: one year. No includeSubDomains: a server that answers on one host name should not
 * decide for every host of its domain (an operator who wants it sets it at the proxy or DNS
 * apex). Sent only over TLS: RFC 6797 §7.2 says a host must not send it over plain HTTP.
 */
export const STRICT_TRANSPORT_SECURITY = 'max-age=31536000'

/** TLS 1.2 or later (RFC 6749 §1.6 names TLS 1.2): Node's default, written down so that it stays. */
export function secureContextOptions(pair: Pick<TlsPair, 'cert' | 'key'>): SecureContextOptions {
  return { cert: pair.cert, key: pair.key, minVersion: 'TLSv1.2' }
}

const code = (error: unknown) => (error as NodeJS.ErrnoException).code ?? (error as Error).message

async function read(variable: string, file: string): Promise<Buffer> {
  try {
    return await readFile(file)
  } catch (error) {
    throw new Error(`${variable} ${file} cannot be read (${code(error)})`)
  }
}

/** RFC 7468 §2 labels, and the RFC 1421 §4.6.1.1 `Proc-Type` header of legacy PEM: does the key say it is encrypted? */
function isEncryptedPem(text: string): boolean {
  const label = /^-----BEGIN ([A-Z0-9 ]+)-----$/m.exec(text)?.[1] ?? ''
  return label.split(' ').includes('ENCRYPTED') || /^Proc-Type: *4, *ENCRYPTED/m.test(text)
}

/**
 * Reads both files (through symlinks: a Kubernetes secret volume links each name to its current
 * version) and checks them: a PEM certificate, a PEM private key that is not encrypted, and the key
 * of that certificate. A problem throws an Error naming the file and never quoting either file.
 */
export async function readTlsPair(files: TlsFiles): Promise<TlsPair> {
  const [cert, key] = await Promise.all([read('TLS_CERT_FILE', files.certFile), read('TLS_KEY_FILE', files.keyFile)])
  let certificate: X509Certificate
  try {
    certificate = new X509Certificate(cert)
  } catch {
    throw new Error(`TLS_CERT_FILE ${files.certFile} does not hold a PEM certificate`)
  }
  // Only the PEM headers are looked at, never the key itself.
  if (isEncryptedPem(key.toString('latin1'))) {
    throw new Error(
      `TLS_KEY_FILE ${files.keyFile} holds an encrypted private key; give it unencrypted and readable only by the server's user`,
    )
  }
  let privateKey: ReturnType<typeof createPrivateKey>
  try {
    privateKey = createPrivateKey(key)
  } catch {
    throw new Error(`TLS_KEY_FILE ${files.keyFile} does not hold a PEM private key`)
  }
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new Error(
      `TLS_KEY_FILE ${files.keyFile} is not the private key of the certificate in TLS_CERT_FILE ${files.certFile}`,
    )
  }
  return { cert, key, certificate }
}

/** Change detection for both files, through symlinks: inode, size, times and mode. */
export async function tlsFilesSignature(files: TlsFiles): Promise<string> {
  const one = async (file: string) => {
    const info = await stat(file).catch(() => undefined)
    return info ? `${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}:${info.mode}` : 'gone'
  }
  return `cert:${await one(files.certFile)}|key:${await one(files.keyFile)}`
}

const octal = (mode: number) => `0${(mode & 0o7777).toString(8)}`

/**
 * Why the key file is exposed, or undefined: readable (or writable) by others. Group access is the
 * operator's choice (a Kubernetes secret with defaultMode 0440 and an fsGroup), as for key files.
 */
export async function keyFileExposure(keyFile: string): Promise<string | undefined> {
  const { mode } = await stat(keyFile)
  if ((mode & 0o006) === 0) return undefined
  return `TLS_KEY_FILE is readable by others (mode ${octal(mode)}); run chmod 600 on it (in Kubernetes, defaultMode: 0400 on the secret volume)`
}

/**
 * Reads and checks the pair, logs what is now served (subject, expiry, fingerprint: nothing secret)
 * and warns about an exposed key file or a certificate outside its validity period. Throws like
 * readTlsPair; at start-up that stops the process.
 */
export async function loadTls(files: TlsFiles, log: Logger, now = new Date()): Promise<TlsPair> {
  const pair = await readTlsPair(files)
  const exposure = await keyFileExposure(files.keyFile).catch(() => undefined)
  if (exposure) log.warn({ file: files.keyFile }, exposure)
  const { certificate } = pair
  const validTo = new Date(certificate.validTo)
  const validFrom = new Date(certificate.validFrom)
  if (now > validTo || now < validFrom) {
    log.warn(
      { file: files.certFile, validFrom: validFrom.toISOString(), validTo: validTo.toISOString() },
      'TLS certificate is not valid now; clients will refuse it',
    )
  }
  log.info(
    {
      file: files.certFile,
      subject: certificate.subject,
      validTo: validTo.toISOString(),
      fingerprint256: certificate.fingerprint256,
    },
    'TLS certificate loaded',
  )
  return pair
}

/**
 * Hot reload of the pair: within `intervalMs` of a change to either file (or at once on SIGHUP via
 * `check`), new connections get the new certificate; open ones keep theirs. A broken pair (a file
 * unreadable, not PEM, or a key of another certificate, as in the middle of replacing the two
 * files one by one) is logged naming the file and the last good pair stays in force.
 * `initial` is the files' signature when what the server holds was read: the first poll reloads
 * nothing, and a change made since is not missed.
 */
export function watchTls(
  server: Pick<TlsServer, 'setSecureContext'>,
  files: TlsFiles,
  options: { intervalMs: number; log: Logger; initial?: string | undefined },
): Watcher {
  return watchForChanges({
    name: 'TLS_CERT_FILE/TLS_KEY_FILE',
    intervalMs: options.intervalMs,
    log: options.log,
    initial: options.initial,
    signature: () => tlsFilesSignature(files),
    reload: async () => {
      const pair = await loadTls(files, options.log)
      server.setSecureContext(secureContextOptions(pair))
    },
  })
}

/**
 * Start-up: the pair to serve with (throws, naming the file, when it is broken: the process stops)
 * and `watch`, to call once the server listens.
 */
export async function openTls(
  files: TlsFiles,
  log: Logger,
): Promise<{ pair: TlsPair; watch(server: Pick<TlsServer, 'setSecureContext'>, intervalMs: number): Watcher }> {
  const initial = await tlsFilesSignature(files)
  const pair = await loadTls(files, log)
  return { pair, watch: (server, intervalMs) => watchTls(server, files, { intervalMs, log, initial }) }
}

/** What Node itself answers to a request it cannot parse, plus the HSTS header. */
function clientErrorResponse(error: NodeJS.ErrnoException): string {
  const [status, reason] =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large']
      : error.code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW'
        ? [413, 'Payload Too Large']
        : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'Request Timeout']
          : [400, 'Bad Request']
  return `HTTP/1.1 ${status} ${reason}\r\nStrict-Transport-Security: ${STRICT_TRANSPORT_SECURITY}\r\nConnection: close\r\n\r\n`
}

/**
 * Strict-Transport-Security on every response of an HTTPS server (RFC 6797 §6.1, §7.1), set at the
 * Node server rather than in the app so that nothing answers without it: not a 404 or a 405, not
 * an error the app renders, and not what Node answers on its own before the app sees a request (431
 * for oversized headers, 408 for a slow sender, 400 for garbage), which this replaces with the same
 * answer plus the header.
 */
export function sendStrictTransportSecurity(server: TlsServer): void {
  server.prependListener('request', (_request: IncomingMessage, response: ServerResponse) => {
    response.setHeader('Strict-Transport-Security', STRICT_TRANSPORT_SECURITY)
  })
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    // As Node does: answer only when nothing of a response went out yet on this socket.
    const inFlight = (socket as Duplex & { _httpMessage?: { _headerSent?: boolean } })._httpMessage
    if (socket.writable && !inFlight?._headerSent) socket.write(clientErrorResponse(error))
    socket.destroy(error)
  })
}
