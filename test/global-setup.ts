import { chmodSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestProject } from 'vitest/node'
import { startRedisCluster } from './helpers/redis-cluster.js'
import { type HostPort, startRedisServer } from './helpers/redis-server.js'
import { startRedisSentinelGroup } from './helpers/redis-sentinel.js'

declare module 'vitest' {
  export interface ProvidedContext {
    /** redis:// URL shared by integration tests. Isolate with a random key prefix; never flush it. */
    redisUrl: string
    /** Seed nodes of the shared Redis Cluster. Isolate with a prefix holding a `{hash tag}`. */
    redisCluster: { nodes: HostPort[] }
    /** The shared Sentinel group: its sentinels and master group name. */
    redisSentinel: { sentinels: HostPort[]; name: string }
  }
}

/** `host:port,host:port` (REDIS_CLUSTER_NODES, REDIS_SENTINELS) as a list. */
function parseHostPorts(variable: string, value: string): HostPort[] {
  return value.split(',').map((entry) => {
    const match = /^(.+):(\d+)$/.exec(entry.trim())
    if (!match) throw new Error(`${variable}: expected host:port,host:port; got "${entry}"`)
    return { host: match[1] as string, port: Number(match[2]) }
  })
}

const given = (name: string) => {
  const value = process.env[name]
  return value === undefined || value === '' ? undefined : value
}

/**
 * Integration tests need a real Redis in each topology: a single node, a Cluster and a Sentinel
 * group. One given in the environment (REDIS_URL; REDIS_CLUSTER_NODES; REDIS_SENTINELS with
 * REDIS_SENTINEL_NAME) is used as is and never flushed: tests isolate by key prefix. Any other is
 * started here, on free loopback ports, all three at once, and stopped at teardown.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const startedAt = Date.now()
  // Every temporary file of this run (test key dirs, client files, redis-server dirs) goes under one
  // directory, removed at teardown: os.tmpdir() reads TMPDIR, and the test workers inherit it.
  const runTmp = mkdtempSync(join(tmpdir(), 'tokensmith-test-'))
  chmodSync(runTmp, 0o1777) // like /tmp: tests that run a server as another user reach their own dirs
  process.env.TMPDIR = runTmp
  const removeRunTmp = () => rmSync(runTmp, { recursive: true, force: true })
  const url = given('REDIS_URL')
  const clusterNodes = given('REDIS_CLUSTER_NODES')
  const sentinels = given('REDIS_SENTINELS')
  const sentinelName = given('REDIS_SENTINEL_NAME')
  if (sentinels !== undefined && sentinelName === undefined)
    throw new Error('REDIS_SENTINELS is set: set REDIS_SENTINEL_NAME to the master group name too')

  const stops: (() => Promise<void>)[] = []
  const started = <T extends { stop(): Promise<void> }>(promise: Promise<T>) =>
    promise.then((running) => {
      stops.push(() => running.stop())
      return running
    })
  const teardown = async () => {
    await Promise.all(stops.map((stop) => stop()))
    removeRunTmp()
  }
  // All three start at once; if one fails, the others are stopped once they are up.
  const [redisUrl, redisCluster, redisSentinel] = await Promise.allSettled([
    url ?? started(startRedisServer()).then((server) => server.url),
    clusterNodes !== undefined
      ? { nodes: parseHostPorts('REDIS_CLUSTER_NODES', clusterNodes) }
      : started(startRedisCluster({ nodeTimeoutMs: 3_000 })).then(({ nodes }) => ({ nodes })),
    sentinels !== undefined
      ? { sentinels: parseHostPorts('REDIS_SENTINELS', sentinels), name: sentinelName as string }
      : // Nobody fails the shared group over: a longer down-after keeps a busy machine from doing it.
        started(startRedisSentinelGroup({ downAfterMs: 5_000 })).then(({ sentinels, name }) => ({ sentinels, name })),
  ])
  if (redisUrl.status === 'rejected' || redisCluster.status === 'rejected' || redisSentinel.status === 'rejected') {
    await teardown()
    throw [redisUrl, redisCluster, redisSentinel].flatMap((result) =>
      result.status === 'rejected' ? [result.reason] : [],
    )[0]
  }
  project.provide('redisUrl', redisUrl.value)
  project.provide('redisCluster', redisCluster.value)
  project.provide('redisSentinel', redisSentinel.value)
  if (process.env.TEST_REDIS_SETUP_TIMING === '1')
    console.log(
      `global set-up: shared Redis single node, Cluster and Sentinel group ready in ${Date.now() - startedAt} ms`,
    )
  return teardown
}
