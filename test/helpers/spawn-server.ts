import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { freePort } from './free-port.js'

export interface SpawnedServer {
  proc: ChildProcess
  url: string
  port: number
  /** stdout+stderr lines so far */
  output: string[]
  exited: Promise<number | null>
  kill(signal?: NodeJS.Signals): void
}

/** Starts `src/main.ts` in its own process, the way `npm start` does, and waits until it listens. */
export async function spawnServer(env: Record<string, string>, timeoutMs = 15_000): Promise<SpawnedServer> {
  const port = env.PORT ? Number(env.PORT) : await freePort()
  const proc = spawn(join('node_modules', '.bin', 'tsx'), ['src/main.ts'], {
    env: { ...process.env, PORT: String(port), ISSUER: `http://127.0.0.1:${port}`, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const output: string[] = []
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)))
  const listening = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${output.join('\n')}`)), timeoutMs)
    const onData = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        output.push(line)
        if (line.includes('"tokensmith listening"')) {
          clearTimeout(timer)
          resolve()
        }
      }
    }
    proc.stdout!.on('data', onData)
    proc.stderr!.on('data', onData)
    void exited.then((code) => {
      clearTimeout(timer)
      reject(new Error(`server exited with ${code}:\n${output.join('\n')}`))
    })
  })
  await listening
  return { proc, url: `http://127.0.0.1:${port}`, port, output, exited, kill: (signal = 'SIGTERM') => void proc.kill(signal) }
}
