import { EventEmitter } from 'node:events'
import { type AddressInfo, createServer, type Socket } from 'node:net'
import type { Cluster, Redis } from 'ioredis'
import { afterEach, describe, expect, it, vi } from 'vitest'
import {
  closeRedisClient,
  createRedisClient,
  logConnectionState,
  redisTargetOf,
} from '../../../src/denylist/redis-client.js'
import {
  createClusterNodeConnection,
  createRedisHandle,
  describeRedisTarget,
  reconnectDelay,
  type RedisHandle,
  type RedisTarget,
} from '../../../src/denylist/redis-target.js'

const options = { connectionName: 'tokensmith-test', commandTimeoutMs: 321, connectTimeoutMs: 654 }
// Nothing listens on port 1: no test here reaches a server.
const nowhere = [{ host: '127.0.0.1', port: 1 }]
const handles: RedisHandle[] = []
const make = (target: RedisTarget, extra = {}) => {
  const handle = createRedisHandle(target, { ...options, extra: { lazyConnect: true, ...extra } })
  handle.on('error', () => undefined)
  handles.push(handle)
  return handle
}
afterEach(() => {
  for (const handle of handles.splice(0)) handle.disconnect()
})

/** The fail-fast options every data connection must have (README, "Redis"). */
const FAIL_FAST = {
  connectionName: 'tokensmith-test',
  commandTimeout: 321,
  connectTimeout: 654,
  maxRetriesPerRequest: 0,
  autoResendUnfulfilledCommands: false,
  protocol: 2,
}

describe('createRedisHandle', () => {
  it('builds a single-node Redis that fails fast, speaks RESP2 and reconnects with capped backoff', () => {
    const redis = make({ kind: 'single', url: 'redis://:pw@127.0.0.1:1/2' }) as Redis
    expect(redis.isCluster).toBe(false)
    expect(redis.options).toMatchObject({ ...FAIL_FAST, enableOfflineQueue: false, password: 'pw', db: 2 })
    for (const attempt of [1, 5, 50]) expect(redis.options.retryStrategy?.(attempt)).toBeLessThanOrEqual(1_200)
  })

  it('uses TLS with the CA for a rediss:// URL, and refuses TLS options on a redis:// one', () => {
    const redis = make({ kind: 'single', url: 'rediss://127.0.0.1:1', tls: { ca: 'PEM' } }) as Redis
    expect(redis.options.tls).toEqual({ ca: 'PEM' })
    expect(() => make({ kind: 'single', url: 'redis://127.0.0.1:1', tls: {} })).toThrow(/rediss:\/\//)
  })

  it('builds a Sentinel client for the master, with sentinel auth and TLS, that re-resolves on a lost connection or READONLY', () => {
    const redis = make({
      kind: 'sentinel',
      sentinels: nowhere,
      name: 'tokensmith',
      username: 'app',
      password: 'data-pw',
      sentinelPassword: 'sentinel-pw',
      tls: { ca: 'PEM' },
    }) as Redis
    expect(redis.options).toMatchObject({
      ...FAIL_FAST,
      enableOfflineQueue: false,
      sentinels: nowhere,
      name: 'tokensmith',
      role: 'master',
      username: 'app',
      password: 'data-pw',
      sentinelPassword: 'sentinel-pw',
      tls: { ca: 'PEM' },
      enableTLSForSentinelMode: true,
      sentinelTLS: { ca: 'PEM' },
      // Off: ioredis 6's detector, left over from a connection that closed by itself, ends the
      // reconnecting connection for good on +switch-master. A failover closes the connection anyway.
      failoverDetector: false,
      sentinelCommandTimeout: 321,
    })
    expect(redis.options.sentinelRetryStrategy?.(50)).toBeLessThanOrEqual(1_200)
    // A demoted master: reconnect (through the sentinels) and fail the command, never resend it (2).
    const reconnectOnError = redis.options.reconnectOnError
    expect(reconnectOnError?.(new Error("READONLY You can't write against a read only replica."))).toBe(true)
    expect(
      reconnectOnError?.(new Error("ERR Error running script: READONLY You can't write against a read only replica.")),
    ).toBe(true)
    expect(reconnectOnError?.(new Error('WRONGTYPE Operation against a key holding the wrong kind of value'))).toBe(
      false,
    )
  })

  it('builds a Cluster that fails fast on every node and retries a failover briefly', () => {
    const cluster = make({ kind: 'cluster', nodes: nowhere, password: 'pw', tls: { ca: 'PEM' } }) as Cluster
    expect(cluster.isCluster).toBe(true)
    expect(cluster.options).toMatchObject({
      enableOfflineQueue: false,
      retryDelayOnFailover: 100,
      retryDelayOnClusterDown: 100,
      retryDelayOnTryAgain: 100,
      slotsRefreshTimeout: 654,
      redisOptions: { ...FAIL_FAST, password: 'pw', tls: { ca: 'PEM' }, lazyConnect: true },
    })
    const { maxRedirections = 0, retryDelayOnFailover = 0 } = cluster.options
    // A command gives up within about a second rather than waiting out a whole failover.
    expect(maxRedirections * retryDelayOnFailover).toBeLessThanOrEqual(1_000)
    expect(cluster.options.clusterRetryStrategy?.(50)).toBeLessThanOrEqual(1_200)
  })

  it('connects the feed to one Cluster node with the same options, never reconnecting by itself', () => {
    const node = createClusterNodeConnection(
      { kind: 'cluster', nodes: nowhere, username: 'app', password: 'pw' },
      { host: '127.0.0.2', port: 7001 },
      { ...options, extra: { lazyConnect: true } },
    )
    handles.push(node)
    expect(node.options).toMatchObject({ ...FAIL_FAST, host: '127.0.0.2', port: 7001, username: 'app', password: 'pw' })
    expect(node.options.retryStrategy?.(1)).toBeNull()
  })
})

describe('reconnectDelay', () => {
  it('grows from about 100 ms to about a second, with jitter', () => {
    expect(reconnectDelay(1)).toBeGreaterThanOrEqual(80)
    expect(reconnectDelay(1)).toBeLessThanOrEqual(120)
    const late = Array.from({ length: 50 }, () => reconnectDelay(30))
    expect(Math.max(...late)).toBeLessThanOrEqual(1_200)
    expect(Math.min(...late)).toBeGreaterThanOrEqual(800)
    expect(new Set(late).size).toBeGreaterThan(1)
  })
})

describe('describeRedisTarget', () => {
  it('names the topology and addresses, never a password or the URL', () => {
    const described = [
      describeRedisTarget({ kind: 'single', url: 'rediss://user:hunter2@redis.internal:6380/1' }),
      describeRedisTarget({
        kind: 'sentinel',
        sentinels: [{ host: 's1', port: 26379 }],
        name: 'mymaster',
        password: 'hunter2',
        sentinelPassword: 'hunter2',
      }),
      describeRedisTarget({ kind: 'cluster', nodes: [{ host: 'c1', port: 7000 }], password: 'hunter2', tls: {} }),
    ]
    expect(described).toEqual([
      { topology: 'single', node: 'redis.internal:6380', tls: true },
      { topology: 'sentinel', sentinels: 's1:26379', master: 'mymaster', tls: false },
      { topology: 'cluster', nodes: 'c1:7000', tls: true },
    ])
    expect(JSON.stringify(described)).not.toMatch(/hunter2|user/)
  })
})

describe('redisTargetOf', () => {
  it('takes exactly one of url and redis', () => {
    expect(redisTargetOf({ url: 'redis://r:6379' })).toEqual({ kind: 'single', url: 'redis://r:6379' })
    const cluster: RedisTarget = { kind: 'cluster', nodes: nowhere }
    expect(redisTargetOf({ redis: cluster })).toBe(cluster)
    expect(() => redisTargetOf({})).toThrow(TypeError)
    expect(() => redisTargetOf({ url: 'redis://r:6379', redis: cluster })).toThrow(TypeError)
  })
})

describe('logConnectionState', () => {
  const recorder = () => {
    const lines: string[] = []
    const log = {
      info: (_fields: object | string, message?: string) => lines.push(`info ${message}`),
      warn: (_fields: object | string, message?: string) => lines.push(`warn ${message}`),
      error: (_fields: object | string, message?: string) => lines.push(`error ${message}`),
    }
    return { lines, log }
  }

  it('logs one line per state change, not one per failed attempt', () => {
    const { lines, log } = recorder()
    const connection = new EventEmitter()
    logConnectionState(connection, log, 'tokensmith-test')
    for (let i = 0; i < 3; i++) connection.emit('error', new Error('ECONNREFUSED'))
    connection.emit('close')
    connection.emit('ready')
    connection.emit('ready')
    connection.emit('close')
    connection.emit('error', new Error('ECONNREFUSED'))
    connection.emit('close')
    connection.emit('ready')
    expect(lines).toEqual([
      'error redis unreachable; retrying in the background',
      'info redis connection ready',
      'warn redis connection lost; reconnecting',
      'info redis connection ready',
    ])
  })

  it("counts a Cluster's node errors as an outage only while the Cluster is not ready", () => {
    const { lines, log } = recorder()
    const cluster = Object.assign(new EventEmitter(), { isCluster: true, status: 'ready' }) as unknown as Cluster
    logConnectionState(cluster, log, 'tokensmith-test')
    cluster.emit('ready')
    cluster.emit('node error', new Error('replica lost'), '127.0.0.1:7005')
    expect(lines).toEqual(['info redis connection ready'])
    Object.assign(cluster, { status: 'connecting' })
    cluster.emit('node error', new Error('all gone'), '127.0.0.1:7000')
    cluster.emit('node error', new Error('all gone'), '127.0.0.1:7001')
    expect(lines).toEqual(['info redis connection ready', 'error redis unreachable; retrying in the background'])
  })
})

describe('createRedisClient', () => {
  it('connects again a connection that ioredis ended although nobody closed it, and not one closed on purpose', async () => {
    // A "sentinel" that accepts and never answers: the connector stays busy asking it for the master.
    const sockets = new Set<Socket>()
    const silentSentinel = createServer((socket) => {
      sockets.add(socket)
      socket.on('close', () => sockets.delete(socket))
    })
    await new Promise<void>((resolve) => silentSentinel.listen(0, '127.0.0.1', resolve))
    const { port } = silentSentinel.address() as AddressInfo
    const warnings: string[] = []
    const log = {
      info: () => undefined,
      warn: (_: object | string, m?: string) => warnings.push(`${m}`),
      error: () => undefined,
    }
    const redis = createRedisClient({
      redis: { kind: 'sentinel', sentinels: [{ host: '127.0.0.1', port }], name: 'tokensmith' },
      log,
      connectionName: 'tokensmith-test',
      commandTimeoutMs: 200,
    }) as Redis
    try {
      await vi.waitFor(() => expect(sockets.size).toBeGreaterThan(0))
      expect(redis.status).toBe('connecting')
      // What a stale ioredis failover detector does on +switch-master: the connector is told to
      // disconnect while it resolves the master, and ioredis ends the connection ("Connection is closed.").
      const ended = new Promise((resolve) => redis.once('end', resolve))
      ;(redis as unknown as { connector: { disconnect(): void } }).connector.disconnect()
      await ended
      expect(warnings).toEqual(['redis connection ended without being closed; connecting again'])
      await vi.waitFor(() => expect(redis.status).toBe('connecting'), { timeout: 2_000 })

      await closeRedisClient(redis)
      await vi.waitFor(() => expect(redis.status).toBe('end'))
      await new Promise((resolve) => setTimeout(resolve, 1_500))
      expect(redis.status).toBe('end')
      expect(warnings).toHaveLength(1)
    } finally {
      redis.disconnect()
      for (const socket of sockets) socket.destroy()
      await new Promise((resolve) => silentSentinel.close(resolve))
    }
  })
})
