import { once } from 'node:events'
import net from 'node:net'
import type { Redis } from 'ioredis'
import { afterEach, describe, expect, it } from 'vitest'
import { closeRedisClient, createRedisClient, duplicateRedisClient } from '../../../src/denylist/redis-client.js'

const silent = { info: () => undefined, warn: () => undefined, error: () => undefined }

describe('a Redis connection survives late socket errors', () => {
  const closers: (() => Promise<void>)[] = []
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close()
  })

  /** A TCP server that accepts and never answers: enough for ioredis to open its socket. */
  async function silentServer(): Promise<number> {
    const sockets = new Set<net.Socket>()
    const server = net.createServer((socket) => {
      sockets.add(socket)
      socket.on('error', () => undefined)
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    closers.push(async () => {
      for (const socket of sockets) socket.destroy()
      await new Promise((resolve) => server.close(resolve))
    })
    return (server.address() as net.AddressInfo).port
  }

  // ioredis takes only the first 'error' of a socket (`once`); a second one, as a TLS socket can
  // emit after an alert, would otherwise be an uncaught exception that ends the process.
  it.each([
    ['a client', (redis: Redis) => redis],
    ['a duplicate', (redis: Redis) => duplicateRedisClient(redis, 'test-duplicate') as Redis],
  ])('on %s, a second error on the same socket throws nothing', async (_name, pick) => {
    const port = await silentServer()
    const original = createRedisClient({ url: `redis://127.0.0.1:${port}`, log: silent, connectionName: 'test' })
    closers.push(() => closeRedisClient(original))
    const redis = pick(original as Redis)
    if (redis !== original) closers.push(() => closeRedisClient(redis))
    await once(redis, 'connect')
    const socket = redis.stream
    socket.emit('error', new Error('first: ioredis handles it'))
    expect(() => socket.emit('error', new Error('second: a late TLS alert'))).not.toThrow()
  })
})
