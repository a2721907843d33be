import type { Cluster, Redis } from 'ioredis'
import { escapeGlob } from '../../src/denylist/protocol.js'
import type { RedisHandle } from '../../src/denylist/redis-target.js'

/**
 * Every key under `prefix` (glob characters escaped): tests count only their own keys, never FLUSH.
 * On a Cluster every primary is scanned: SCAN walks one node's keyspace only.
 * https://redis.io/docs/latest/commands/scan/
 */
export async function keysUnder(redis: RedisHandle, prefix: string): Promise<string[]> {
  if (!redis.isCluster) return scanNode(redis as Redis, prefix)
  const found = await Promise.all((redis as Cluster).nodes('master').map((node) => scanNode(node, prefix)))
  return found.flat()
}

async function scanNode(redis: Redis, prefix: string): Promise<string[]> {
  const found: string[] = []
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${escapeGlob(prefix)}*`, 'COUNT', 1000)
    cursor = next
    found.push(...keys)
  } while (cursor !== '0')
  return found
}
