import { execFileSync } from 'node:child_process'
import { chmodSync, mkdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { SecureContextOptions } from 'node:tls'
import { afterEach, describe, expect, it } from 'vitest'
import { cleartextWarning } from '../../../src/config.js'
import {
  STRICT_TRANSPORT_SECURITY,
  keyFileExposure,
  loadTls,
  readTlsPair,
  tlsFilesSignature,
  watchTls,
} from '../../../src/http/tls.js'
import type { Watcher } from '../../../src/storage/watch.js'
import { tempDir } from '../../helpers/cli.js'
import { captureLog } from '../../helpers/make-deps.js'
import { waitFor } from '../../helpers/wait-for.js'

/** A self-signed P-256 certificate for `cn` and its key, written as `<name>.crt` and `<name>.key` (0600). */
function makeCert(dir: string, name: string, cn = 'localhost') {
  const certFile = join(dir, `${name}.crt`)
  const keyFile = join(dir, `${name}.key`)
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      `/CN=${cn}`,
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { stdio: 'ignore' },
  )
  chmodSync(keyFile, 0o600)
  return { certFile, keyFile }
}

/** The base64 lines of a PEM file: what must never appear in an error or a log line. */
const pemBody = (file: string) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line && !line.startsWith('-----'))

const message = async (promise: Promise<unknown>) => ((await promise.catch((error: unknown) => error)) as Error).message

let watchers: Watcher[] = []
afterEach(() => {
  for (const watcher of watchers) watcher.stop()
  watchers = []
})

describe('readTlsPair', () => {
  it('reads a matching certificate and key', async () => {
    const files = makeCert(tempDir(), 'a', 'pair.test')
    const pair = await readTlsPair(files)
    expect(pair.certificate.subject).toBe('CN=pair.test')
    expect(pair.cert.equals(readFileSync(files.certFile))).toBe(true)
    expect(pair.key.equals(readFileSync(files.keyFile))).toBe(true)
  })

  it('follows symlinks (a Kubernetes secret volume) and takes one file holding both', async () => {
    const dir = tempDir()
    const files = makeCert(dir, 'a')
    symlinkSync(files.keyFile, join(dir, 'tls.key'))
    symlinkSync(files.certFile, join(dir, 'tls.crt'))
    expect(
      (await readTlsPair({ certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key') })).certificate,
    ).toBeTruthy()
    const combined = join(dir, 'combined.pem')
    writeFileSync(combined, readFileSync(files.certFile) + readFileSync(files.keyFile).toString(), { mode: 0o600 })
    expect((await readTlsPair({ certFile: combined, keyFile: combined })).certificate.subject).toBe('CN=localhost')
  })

  it('names the file it cannot read', async () => {
    const files = makeCert(tempDir(), 'a')
    expect(await message(readTlsPair({ ...files, certFile: '/nonexistent/x.crt' }))).toBe(
      'TLS_CERT_FILE /nonexistent/x.crt cannot be read (ENOENT)',
    )
    expect(await message(readTlsPair({ ...files, keyFile: '/nonexistent/x.key' }))).toBe(
      'TLS_KEY_FILE /nonexistent/x.key cannot be read (ENOENT)',
    )
  })

  it('refuses a certificate file without a PEM certificate (empty, garbage, a key)', async () => {
    const dir = tempDir()
    const files = makeCert(dir, 'a')
    const bad = join(dir, 'bad.crt')
    for (const content of ['', 'not a certificate', readFileSync(files.keyFile, 'utf8')]) {
      writeFileSync(bad, content)
      expect(await message(readTlsPair({ ...files, certFile: bad }))).toBe(
        `TLS_CERT_FILE ${bad} does not hold a PEM certificate`,
      )
    }
  })

  it('refuses a key file without a PEM private key (empty, garbage, a certificate)', async () => {
    const dir = tempDir()
    const files = makeCert(dir, 'a')
    const bad = join(dir, 'bad.key')
    const garbage = '-----BEGIN PRIVATE KEY-----\nAAAAsecretish\n-----END PRIVATE KEY-----\n'
    for (const content of ['', garbage, readFileSync(files.certFile, 'utf8')]) {
      writeFileSync(bad, content)
      const problem = await message(readTlsPair({ ...files, keyFile: bad }))
      expect(problem).toBe(`TLS_KEY_FILE ${bad} does not hold a PEM private key`)
      expect(problem).not.toContain('AAAA')
    }
  })

  it('refuses a key of another certificate, naming both files and quoting neither', async () => {
    const dir = tempDir()
    const a = makeCert(dir, 'a')
    const b = makeCert(dir, 'b')
    const problem = await message(readTlsPair({ certFile: a.certFile, keyFile: b.keyFile }))
    expect(problem).toBe(
      `TLS_KEY_FILE ${b.keyFile} is not the private key of the certificate in TLS_CERT_FILE ${a.certFile}`,
    )
    for (const line of [...pemBody(b.keyFile), ...pemBody(a.certFile)]) expect(problem).not.toContain(line)
  })

  it('refuses an encrypted key with a message saying so', async () => {
    const dir = tempDir()
    const files = makeCert(dir, 'a')
    const encrypted = join(dir, 'enc.key')
    execFileSync('openssl', [
      'pkcs8',
      '-topk8',
      '-in',
      files.keyFile,
      '-out',
      encrypted,
      '-passout',
      'pass:twelve chars!',
    ])
    expect(await message(readTlsPair({ ...files, keyFile: encrypted }))).toBe(
      `TLS_KEY_FILE ${encrypted} holds an encrypted private key; give it unencrypted and readable only by the server's user`,
    )
    // The legacy form (RFC 1421 Proc-Type header) too.
    const legacy = join(dir, 'legacy.key')
    execFileSync('openssl', ['ec', '-in', files.keyFile, '-out', legacy, '-aes128', '-passout', 'pass:twelve chars!'], {
      stdio: 'ignore',
    })
    expect(await message(readTlsPair({ ...files, keyFile: legacy }))).toMatch(/holds an encrypted private key/)
  })
})

describe('keyFileExposure', () => {
  it('is silent for 0600, 0400 and group-readable 0640, and says chmod 600 when others can read or write', async () => {
    const { keyFile } = makeCert(tempDir(), 'a')
    for (const mode of [0o600, 0o400, 0o640, 0o440]) {
      chmodSync(keyFile, mode)
      expect(await keyFileExposure(keyFile)).toBeUndefined()
    }
    for (const mode of [0o644, 0o604, 0o602]) {
      chmodSync(keyFile, mode)
      expect(await keyFileExposure(keyFile)).toBe(
        `TLS_KEY_FILE is readable by others (mode 0${mode.toString(8)}); run chmod 600 on it (in Kubernetes, defaultMode: 0400 on the secret volume)`,
      )
    }
  })

  it('looks at the target of a symlink, not the link', async () => {
    const dir = tempDir()
    const { keyFile } = makeCert(dir, 'a')
    chmodSync(keyFile, 0o644)
    symlinkSync(keyFile, join(dir, 'tls.key'))
    expect(await keyFileExposure(join(dir, 'tls.key'))).toMatch(/mode 0644/)
  })
})

describe('loadTls', () => {
  it('logs the subject, expiry and fingerprint, and warns about an exposed key and an expired certificate', async () => {
    const files = makeCert(tempDir(), 'a', 'logged.test')
    chmodSync(files.keyFile, 0o644)
    const { log, records, lines } = captureLog()
    const pair = await loadTls(files, log, new Date(Date.now() + 3 * 86400_000))
    const byMsg = (msg: string) => records().find((record) => record.msg === msg)
    expect(byMsg('TLS certificate loaded')).toMatchObject({
      file: files.certFile,
      subject: 'CN=logged.test',
      fingerprint256: pair.certificate.fingerprint256,
    })
    expect(records().find((record) => record.file === files.keyFile)).toMatchObject({
      level: 40,
      msg: expect.stringMatching(/^TLS_KEY_FILE is readable by others/),
    })
    expect(byMsg('TLS certificate is not valid now; clients will refuse it')).toMatchObject({ file: files.certFile })
    for (const line of pemBody(files.keyFile)) expect(lines.join('\n')).not.toContain(line)
  })
})

describe('tlsFilesSignature', () => {
  it('changes when either file is replaced or its mode changes, and says gone for a missing file', async () => {
    const dir = tempDir()
    const files = makeCert(dir, 'a')
    const other = makeCert(dir, 'b')
    const first = await tlsFilesSignature(files)
    expect(await tlsFilesSignature(files)).toBe(first)
    renameSync(other.keyFile, files.keyFile)
    const second = await tlsFilesSignature(files)
    expect(second).not.toBe(first)
    chmodSync(files.certFile, 0o640)
    expect(await tlsFilesSignature(files)).not.toBe(second)
    expect(await tlsFilesSignature({ ...files, certFile: join(dir, 'missing') })).toMatch(/^cert:gone\|/)
  })
})

describe('watchTls', () => {
  function fakeServer() {
    const contexts: SecureContextOptions[] = []
    return { contexts, setSecureContext: (options: SecureContextOptions) => void contexts.push(options) }
  }

  it('applies a changed pair, keeps the last good one over a broken pair, then applies the fixed one', async () => {
    const dir = tempDir()
    const files = makeCert(dir, 'live', 'first')
    const server = fakeServer()
    const { log, records, lines } = captureLog()
    const watcher = watchTls(server, files, { intervalMs: 60_000, log, initial: await tlsFilesSignature(files) })
    watchers.push(watcher)
    await watcher.check()
    expect(server.contexts).toHaveLength(0) // nothing changed

    const second = makeCert(dir, 'second', 'second')
    renameSync(second.certFile, files.certFile)
    renameSync(second.keyFile, files.keyFile)
    await watcher.check()
    expect(server.contexts).toHaveLength(1)
    expect(server.contexts[0]).toMatchObject({ minVersion: 'TLSv1.2' })
    expect(String(server.contexts[0]!.cert)).toBe(readFileSync(files.certFile, 'utf8'))

    // Half-way through a replacement: a new certificate with the old key.
    const third = makeCert(dir, 'third', 'third')
    renameSync(third.certFile, files.certFile)
    await watcher.check()
    await watcher.check() // logged once per broken state
    expect(server.contexts).toHaveLength(1)
    const refused = records().filter((record) => record.msg === 'reload failed; keeping the last good state')
    expect(refused).toEqual([
      expect.objectContaining({
        level: 50,
        source: 'TLS_CERT_FILE/TLS_KEY_FILE',
        problem: `TLS_KEY_FILE ${files.keyFile} is not the private key of the certificate in TLS_CERT_FILE ${files.certFile}`,
      }),
    ])
    for (const line of [...pemBody(files.keyFile), ...pemBody(third.keyFile)]) {
      expect(lines.join('\n')).not.toContain(line)
    }

    renameSync(third.keyFile, files.keyFile)
    await watcher.check()
    expect(server.contexts).toHaveLength(2)
    expect(
      records()
        .filter((record) => record.msg === 'TLS certificate loaded')
        .at(-1),
    ).toMatchObject({
      subject: 'CN=third',
    })
  })

  it('notices a Kubernetes-style swap of the ..data symlink on its own, within the interval', async () => {
    const dir = tempDir()
    mkdirSync(join(dir, 'v1'))
    mkdirSync(join(dir, 'v2'))
    const v1 = makeCert(join(dir, 'v1'), 'tls', 'v1')
    makeCert(join(dir, 'v2'), 'tls', 'v2')
    symlinkSync('v1', join(dir, '..data'))
    symlinkSync('..data/tls.crt', join(dir, 'tls.crt'))
    symlinkSync('..data/tls.key', join(dir, 'tls.key'))
    const files = { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key') }
    expect((await readTlsPair(files)).certificate.subject).toBe('CN=v1')
    const server = fakeServer()
    const { log } = captureLog()
    watchers.push(watchTls(server, files, { intervalMs: 50, log, initial: await tlsFilesSignature(files) }))
    // What kubelet does: a new ..data link renamed over the old one.
    symlinkSync('v2', join(dir, '..data_tmp'))
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'))
    await waitFor(() => expect(server.contexts).toHaveLength(1), 3000)
    expect(String(server.contexts[0]!.cert)).not.toBe(readFileSync(v1.certFile, 'utf8'))
  })
})

describe('Strict-Transport-Security and the cleartext warning', () => {
  it('is one year, without includeSubDomains or preload', () => {
    expect(STRICT_TRANSPORT_SECURITY).toBe('max-age=31536000')
  })

  it('warns about an http issuer whenever TLS is on, even on loopback', () => {
    expect(cleartextWarning({ host: '127.0.0.1', issuer: 'http://localhost:3000', tlsCertFile: '/tls/crt' })).toMatch(
      /^TLS_CERT_FILE is set, so the server speaks HTTPS, but ISSUER is http/,
    )
    expect(cleartextWarning({ host: '0.0.0.0', issuer: 'http://localhost:3000', tlsCertFile: '/tls/crt' })).toMatch(
      /^TLS_CERT_FILE is set/,
    )
    expect(
      cleartextWarning({ host: '0.0.0.0', issuer: 'https://auth.example.com', tlsCertFile: '/tls/crt' }),
    ).toBeUndefined()
    expect(cleartextWarning({ host: '127.0.0.1', issuer: 'http://localhost:3000' })).toBeUndefined()
  })
})
