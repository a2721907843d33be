import { spawn, type ChildProcess } from 'node:child_process'
import { request as httpRequest } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from '../helpers/free-port.js'

// bearerAuth never reads the request body: it is unauthenticated and of any size. Measured on the
// README's resource server in a child process, so the memory figures are that server's alone.
const MiB = 1024 * 1024
const BODY_SIZE = 128 * MiB

/** The child's resident set now (after a full GC) and at its peak so far. */
interface Memory {
  rss: number
  maxRss: number
}

describe('bearerAuth over a real socket: the request body', () => {
  let proc: ChildProcess
  let url: string

  beforeAll(async () => {
    const port = await freePort()
    // --expose-gc: /memory collects garbage first, so `rss` counts what is still held.
    proc = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', 'test/helpers/memory-probe-server.ts'], {
      env: { ...process.env, PORT: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const output: string[] = []
    proc.stderr!.on('data', (chunk: Buffer) => output.push(chunk.toString()))
    await new Promise<void>((resolve, reject) => {
      proc.stdout!.on('data', (chunk: Buffer) => {
        output.push(chunk.toString())
        if (chunk.toString().includes('"port"')) resolve()
      })
      proc.once('exit', (code) => reject(new Error(`server exited with ${code}:\n${output.join('')}`)))
    })
    url = `http://127.0.0.1:${port}`
  })
  afterAll(() => {
    proc?.kill('SIGKILL')
  })

  const memory = async (): Promise<Memory> => (await (await fetch(`${url}/memory`)).json()) as Memory

  /** Streams `size` bytes of form body with `Bearer x`; resolves with the status once the answer arrives. */
  function postLargeBody(size: number): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      let answered = false
      const req = httpRequest(`${url}/invoices`, {
        method: 'POST',
        headers: {
          authorization: 'Bearer x',
          'content-type': 'application/x-www-form-urlencoded',
          'transfer-encoding': 'chunked',
        },
      })
      req.on('response', (res) => {
        answered = true
        res.resume()
        res.on('end', () => {
          resolve(res.statusCode!)
          req.destroy()
        })
      })
      // The server may answer and close before the body is sent: a broken pipe then is expected.
      req.on('error', (error: NodeJS.ErrnoException) => {
        if (answered && (error.code === 'EPIPE' || error.code === 'ECONNRESET')) return
        reject(error)
      })
      const chunk = Buffer.from('a=b&'.repeat(16 * 1024)) // 64 KiB
      let sent = 0
      const pump = () => {
        while (sent < size && !answered && !req.destroyed) {
          sent += chunk.length
          if (!req.write(chunk)) return void req.once('drain', pump)
        }
        if (!req.destroyed) req.end()
      }
      pump()
    })
  }

  it('answers a bogus token with a 128 MiB form body with 401, without the server growing by more than a few MiB', async () => {
    // Warm up the paths taken, so their one-off costs are in the baseline.
    for (let i = 0; i < 3; i++) expect(await postLargeBody(8 * MiB)).toBe(401)
    const before = await memory()
    expect(await postLargeBody(BODY_SIZE)).toBe(401)
    const after = await memory()
    // Far below the 128 MiB a buffered body would take; a loaded machine lets more chunks queue
    // in socket buffers before the answer, so the bound leaves room for that.
    expect((after.maxRss - before.maxRss) / MiB).toBeLessThan(24)
    expect((after.rss - before.rss) / MiB).toBeLessThan(24)
  }, 60_000)
})
