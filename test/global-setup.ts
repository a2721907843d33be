import type { TestProject } from 'vitest/node'
import { startRedisServer } from './helpers/redis-server.js'

declare module 'vitest' {
  export interface ProvidedContext {
    /** redis:// URL shared by integration tests. Isolate with a random key prefix; never flush it. */
    redisUrl: string
  }
}

/**
 * Integration tests need a real Redis. With REDIS_URL set we use it as is (and never flush it:
 * tests isolate by key prefix). Otherwise we start a throwaway redis-server on a free port.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const external = process.env.REDIS_URL
  if (external !== undefined && external !== '') {
    project.provide('redisUrl', external)
    return async () => undefined
  }
  const server = await startRedisServer()
  project.provide('redisUrl', server.url)
  return () => server.stop()
}
