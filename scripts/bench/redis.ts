import { spawn } from 'node:child_process'
import { Redis } from 'ioredis'
import { setTimeout as sleep } from 'node:timers/promises'
import { findFreePort } from './server-process.js'

/** A throwaway redis-server for the bench (never the machine's own: the bench writes to it). */
export async function startBenchRedis(): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await findFreePort()
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  const url = `redis://127.0.0.1:${port}`
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()))
  const stop = async () => {
    child.kill('SIGTERM')
    await exited
  }
  for (const deadline = Date.now() + 10_000; ; ) {
    const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
    probe.on('error', () => {})
    const ok = await probe.connect().then(() => probe.ping(), () => undefined)
    probe.disconnect()
    if (ok === 'PONG') return { url, stop }
    if (Date.now() > deadline || child.exitCode !== null) {
      await stop().catch(() => {})
      throw new Error('redis-server did not start (is it installed?)')
    }
    await sleep(50)
  }
}
