import type { Redis } from 'ioredis'
import { escapeGlob } from '../../src/denylist/protocol.js'

/** Every key under `prefix` (glob characters escaped): tests count only their own keys, never FLUSH. */
export async function keysUnder(redis: Redis, prefix: string): Promise<string[]> {
  const found: string[] = []
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${escapeGlob(prefix)}*`, 'COUNT', 1000)
    cursor = next
    found.push(...keys)
  } while (cursor !== '0')
  return found
}
