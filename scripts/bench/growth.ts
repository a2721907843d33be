import { randomBytes } from 'node:crypto'
import { rename } from 'node:fs/promises'
import { Redis } from 'ioredis'
import { entryKey } from '../../src/denylist/protocol.js'
import { waitFor } from '../../test/helpers/wait-for.js'
import {
  clientEntries,
  clientEntry,
  createBenchClient,
  serializeClients,
  writeBeside,
  type BenchClient,
} from './clients-file.js'
import type { BenchOptions } from './options.js'
import { tokenTarget } from './requests.js'
import { singleRow, type MeasuredRow } from './results.js'
import type { BenchServer } from './servers.js'

/** What "how cost grows" needs besides load: many live revocations in Redis, and a timed reload. */

/** Live revoked token ids in the denylist's own key format, as the server's writes leave them. */
export async function writeRevokedIds(url: string, prefix: string, count: number): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 })
  await redis.connect()
  try {
    const ttlMs = 2 * 3600 * 1000
    for (let written = 0; written < count; ) {
      const pipeline = redis.pipeline()
      const batch = Math.min(10_000, count - written)
      for (let i = 0; i < batch; i++)
        pipeline.set(entryKey(prefix, 'jti', randomBytes(16).toString('base64url')), '1', 'PX', ttlMs)
      const replies = await pipeline.exec()
      const failed = replies?.find(([error]) => error)
      if (!replies || failed)
        throw new Error(`writing revoked ids failed: ${failed?.[0]?.message ?? 'pipeline aborted'}`)
      written += batch
    }
  } finally {
    redis.disconnect()
  }
}

/**
 * Per round: one more client in the largest clients file (written beside it, renamed over it),
 * SIGHUP, and from just before the rename, the new client asks for a token until it gets one.
 */
export async function measureReload(
  options: BenchOptions,
  report: (message: string) => void,
  subject: { server: BenchServer; path: string; client: BenchClient; count: number },
): Promise<MeasuredRow> {
  const { server, path, client, count } = subject
  const entries = clientEntries(client, count)
  const times: number[] = []
  const problems: string[] = []
  for (let index = 0; index < options.rounds; index++) {
    const added = createBenchClient(`reload-${index + 1}`)
    entries.push(clientEntry(added.id, added.secret))
    const temporary = await writeBeside(path, serializeClients(entries))
    const target = tokenTarget(server, added)
    const started = performance.now()
    await rename(temporary, path)
    process.kill(server.pid, 'SIGHUP')
    try {
      await waitFor(
        async () => {
          const response = await fetch(target.url, { method: 'POST', headers: target.headers, body: target.body ?? '' })
          await response.arrayBuffer()
          if (response.status !== 200)
            throw new Error(`a client added to the file still gets ${response.status} after 60 s`)
        },
        60_000,
        5,
      )
      times.push(performance.now() - started)
      report(`reload with ${entries.length.toLocaleString('en-US')} clients: ${Math.round(times.at(-1)!)} ms`)
    } catch (error) {
      problems.push(`round ${index + 1}: ${(error as Error).message}`)
    }
  }
  return {
    ...singleRow(
      `reload_${count}_clients`,
      'growth',
      `reload, ${count.toLocaleString('en-US')} clients`,
      'file replaced + SIGHUP until the added client gets a token',
      'ms',
      times,
    ),
    problems,
  }
}
