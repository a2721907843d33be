import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, inject } from 'vitest'
import type { Clock } from '../../src/clock.js'
import type { Denylist } from '../../src/denylist/denylist.js'
import { createRedisDenylist } from '../../src/denylist/redis.js'
import type { DenylistLog } from '../../src/denylist/redis-client.js'
import { useCleanups, type Defer } from './cleanups.js'
import { keysUnder } from './redis-keys.js'
import { waitFor } from './wait-for.js'

/** A denylist log that says nothing. */
export const silentLog: DenylistLog = { info: () => undefined, warn: () => undefined, error: () => undefined }

export interface SharedRedis {
  /** The shared test Redis (global set-up), maybe not ours: tests never flush it. */
  readonly url: string
  /** A plain connection to it, for reading what the code under test wrote. */
  readonly admin: Redis
  /** Runs `cleanup` after the current test; cleanups run last first. */
  defer: Defer
  /** A fresh key prefix; every key under it is deleted after the test. */
  prefix(label?: string): string
  /** Every key under `prefix`. */
  keysUnder(prefix: string): Promise<string[]>
  /** Deletes every key under `prefix`, and only those. */
  deleteKeys(prefix: string): Promise<void>
  /** A Redis denylist under `keyPrefix`, answering PING; closed after the test. */
  denylist(keyPrefix: string, clock: Clock, log?: DenylistLog): Promise<Denylist>
}

/**
 * The shared Redis for one test file: call at its top level. Each test isolates itself with its own
 * key prefix and deletes only its own keys, so files run side by side on one server.
 */
export function useSharedRedis(): SharedRedis {
  const url = inject('redisUrl')
  const defer = useCleanups()
  let admin: Redis | undefined
  beforeAll(() => {
    admin = new Redis(url, { maxRetriesPerRequest: 1 })
  })
  afterAll(async () => {
    await admin?.quit()
  })

  const shared: SharedRedis = {
    url,
    get admin() {
      if (!admin) throw new Error('useSharedRedis: the admin connection opens in beforeAll')
      return admin
    },
    defer,
    prefix(label = 'test') {
      const prefix = `${label}:${randomBytes(6).toString('hex')}:`
      defer(() => shared.deleteKeys(prefix))
      return prefix
    },
    keysUnder: (prefix) => keysUnder(shared.admin, prefix),
    async deleteKeys(prefix) {
      const keys = await keysUnder(shared.admin, prefix)
      if (keys.length > 0) await shared.admin.del(...keys)
    },
    async denylist(keyPrefix, clock, log = silentLog) {
      const denylist = createRedisDenylist({ url, keyPrefix, clock, log })
      defer(() => denylist.close())
      await waitFor(() => denylist.ping())
      return denylist
    },
  }
  return shared
}
