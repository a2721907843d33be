import { randomBytes } from 'node:crypto'
import { Cluster, Redis } from 'ioredis'
import { describe, expect, inject, it } from 'vitest'
import { keySlot } from '../helpers/redis-cluster.js'

// The shared Cluster and Sentinel group from the global set-up answer a plain ioredis client.
describe('shared Redis topologies', () => {
  it('Cluster: a client seeded with the nodes writes and reads under one hash tag', async () => {
    const { nodes } = inject('redisCluster')
    const cluster = new Cluster(nodes, { redisOptions: { maxRetriesPerRequest: 1 } })
    try {
      const tag = `{smoke-${randomBytes(6).toString('hex')}}`
      await cluster.set(`${tag}:a`, 'one', 'EX', 60)
      await cluster.set(`${tag}:b`, 'two', 'EX', 60)
      // One slot, so a multi-key command works: the hash tag does its job.
      expect(await cluster.mget(`${tag}:a`, `${tag}:b`)).toEqual(['one', 'two'])
      expect(Number(await cluster.cluster('KEYSLOT', `${tag}:a`))).toBe(keySlot(`${tag}:a`))
      // The redirects point at loopback addresses a client can reach.
      for (const node of cluster.nodes('all')) expect(node.options.host).toBe('127.0.0.1')
      expect(cluster.nodes('master')).toHaveLength(3)
      await cluster.del(`${tag}:a`, `${tag}:b`)
    } finally {
      cluster.disconnect()
    }
  })

  it('Sentinel: a client that asks the sentinels reaches a writable primary', async () => {
    const { sentinels, name } = inject('redisSentinel')
    const redis = new Redis({ sentinels, name, maxRetriesPerRequest: 1 })
    try {
      const key = `{smoke-${randomBytes(6).toString('hex')}}:k`
      await redis.set(key, 'value', 'EX', 60)
      expect(await redis.get(key)).toBe('value')
      expect(await redis.call('ROLE').then((role) => (role as unknown[])[0])).toBe('master')
      await redis.del(key)
    } finally {
      redis.disconnect()
    }
  })

  it('keySlot matches Redis for plain keys, hash tags and empty tags', async () => {
    const { nodes } = inject('redisCluster')
    const cluster = new Cluster(nodes)
    try {
      for (const key of [
        'foo',
        '{user1000}.following',
        'foo{}{bar}',
        'foo{{bar}}zap',
        'foo{bar}{zap}',
        '{a}x',
        '{tokensmith}:x',
      ])
        expect(keySlot(key), key).toBe(Number(await cluster.cluster('KEYSLOT', key)))
    } finally {
      cluster.disconnect()
    }
  })
})
