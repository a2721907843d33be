import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { freePort } from './free-port.js'
import { adminCommand, parseInfo, parsePairs } from './redis-admin.js'
import { type HostPort, type RedisServer, startRedisServer } from './redis-server.js'
import { waitFor } from './wait-for.js'

export interface StartRedisSentinelGroupOptions {
  /** The master group name. Default `tokensmith`. */
  name?: string
  /** Replicas of the primary. Default 1. */
  replicas?: number
  /** Sentinels. Default 3 (quorum 2). */
  sentinels?: number
  /** `sentinel down-after-milliseconds`. Default 1000. */
  downAfterMs?: number
  /** `sentinel failover-timeout`. Default 6000. */
  failoverTimeoutMs?: number
  /** `requirepass` + `masterauth` on the data nodes, `sentinel auth-pass` on the sentinels. */
  password?: string
  /** `requirepass` on the sentinels (and `sentinel sentinel-pass` between them). */
  sentinelPassword?: string
  /** How long to wait for the group to settle. Default 30 s. */
  readyTimeoutMs?: number
}

export interface RedisSentinelGroup {
  /** The master group name clients ask the sentinels for. */
  readonly name: string
  /** Every sentinel, all 127.0.0.1. */
  readonly sentinels: HostPort[]
  /** The sentinel processes, in `sentinels` order. */
  readonly sentinelServers: RedisServer[]
  /** Every data node (the first started as primary), whatever its role now. */
  readonly dataServers: RedisServer[]
  /** The current primary, as the first sentinel that answers reports it. */
  primary(): Promise<RedisServer>
  /** The data nodes that are not the current primary. */
  replicas(): Promise<RedisServer[]>
  /**
   * After the primary on `fromPort` was killed or paused: waits until every reachable sentinel names
   * another data node as primary and that node says it is one. Returns it.
   */
  waitForFailover(fromPort: number, timeoutMs?: number): Promise<RedisServer>
  /** Stops every process and removes the group's files. Idempotent. */
  stop(): Promise<void>
}

/**
 * A throwaway Sentinel group on loopback: one primary, `replicas` replicas (`--replicaof`), and
 * `sentinels` sentinels each with a generated sentinel.conf (quorum: a majority). Returned once every
 * sentinel sees the primary, every replica and every other sentinel.
 * https://redis.io/docs/latest/operate/oss_and_stack/management/sentinel/
 */
export async function startRedisSentinelGroup(
  options: StartRedisSentinelGroupOptions = {},
): Promise<RedisSentinelGroup> {
  const name = options.name ?? 'tokensmith'
  const replicaCount = options.replicas ?? 1
  const sentinelCount = options.sentinels ?? 3
  const quorum = Math.floor(sentinelCount / 2) + 1
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000
  const password = options.password
  const sentinelPassword = options.sentinelPassword
  const dir = await mkdtemp(path.join(tmpdir(), 'tokensmith-sentinel-'))

  const dataServers: RedisServer[] = []
  const sentinelServers: RedisServer[] = []
  const stopAll = async () => {
    await Promise.all([...sentinelServers, ...dataServers].map((server) => server.stop()))
    await rm(dir, { recursive: true, force: true })
  }
  const auth = password === undefined ? [] : ['--requirepass', password, '--masterauth', password]
  // Replicas sync at once instead of after the default 5 s diskless delay.
  const dataArgs = ['--repl-diskless-sync-delay', '0', '--dir', dir, ...auth]

  try {
    const primaryPort = await freePort()
    const started = await Promise.allSettled([
      startRedisServer({ port: primaryPort, args: dataArgs }),
      ...Array.from({ length: replicaCount }, () =>
        startRedisServer({ args: [...dataArgs, '--replicaof', '127.0.0.1', String(primaryPort)] }),
      ),
    ])
    for (const result of started) if (result.status === 'fulfilled') dataServers.push(result.value)
    const failed = started.find((result) => result.status === 'rejected')
    if (failed) throw failed.reason

    // Sentinels learn the replicas from the primary's INFO, which they read at once on connecting
    // and then only every 10 s: start them after the replicas are attached.
    await waitFor(
      async () => {
        const info = parseInfo(await adminCommand(primaryPort, 'INFO', ['replication'], { password }))
        if (info.connected_slaves !== String(replicaCount)) throw new Error(`primary: ${JSON.stringify(info)}`)
        for (const replica of dataServers.slice(1)) {
          const link = parseInfo(await adminCommand(replica.port, 'INFO', ['replication'], { password }))
          if (link.master_link_status !== 'up') throw new Error(`replica ${replica.port}: ${JSON.stringify(link)}`)
        }
      },
      readyTimeoutMs,
      50,
    )

    const startedSentinels = await Promise.allSettled(
      Array.from({ length: sentinelCount }, async (_, i) => {
        const port = await freePort()
        const configFile = path.join(dir, `sentinel-${i}.conf`)
        const lines = [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          'sentinel resolve-hostnames no',
          `sentinel monitor ${name} 127.0.0.1 ${primaryPort} ${quorum}`,
          `sentinel down-after-milliseconds ${name} ${options.downAfterMs ?? 1_000}`,
          `sentinel failover-timeout ${name} ${options.failoverTimeoutMs ?? 6_000}`,
          `sentinel parallel-syncs ${name} 1`,
          ...(password === undefined ? [] : [`sentinel auth-pass ${name} ${password}`]),
          ...(sentinelPassword === undefined
            ? []
            : [`requirepass ${sentinelPassword}`, `sentinel sentinel-pass ${sentinelPassword}`]),
        ]
        await writeFile(configFile, `${lines.join('\n')}\n`, { mode: 0o600 })
        return startRedisServer({ port, configFile, args: ['--sentinel'] })
      }),
    )
    for (const result of startedSentinels) if (result.status === 'fulfilled') sentinelServers.push(result.value)
    const failedSentinel = startedSentinels.find((result) => result.status === 'rejected')
    if (failedSentinel) throw failedSentinel.reason

    await waitFor(
      async () => {
        for (const sentinel of sentinelServers) {
          const ask = (sub: string) =>
            adminCommand(sentinel.port, 'SENTINEL', [sub, name], { password: sentinelPassword })
          const master = parsePairs(await ask('MASTER'))
          if (master.flags !== 'master' || master['num-slaves'] !== String(replicaCount))
            throw new Error(`sentinel ${sentinel.port}: master ${JSON.stringify(master)}`)
          if (master['num-other-sentinels'] !== String(sentinelCount - 1))
            throw new Error(`sentinel ${sentinel.port}: ${master['num-other-sentinels']} other sentinels`)
          for (const replica of (await ask('REPLICAS')) as unknown[]) {
            const fields = parsePairs(replica)
            if (fields.flags !== 'slave' || fields['master-link-status'] !== 'ok')
              throw new Error(`sentinel ${sentinel.port}: replica ${JSON.stringify(fields)}`)
          }
          if (((await ask('SENTINELS')) as unknown[]).length !== sentinelCount - 1)
            throw new Error(`sentinel ${sentinel.port}: not every sentinel seen`)
        }
      },
      readyTimeoutMs,
      100,
    )
  } catch (error) {
    await stopAll()
    throw error
  }

  const dataAt = (port: number) => {
    const server = dataServers.find((candidate) => candidate.port === port)
    if (!server) throw new Error(`no data node on port ${port}`)
    return server
  }
  const primaryPortFrom = async (sentinel: RedisServer) => {
    const [, port] = (await adminCommand(sentinel.port, 'SENTINEL', ['GET-MASTER-ADDR-BY-NAME', name], {
      password: sentinelPassword,
    })) as [string, string]
    return Number(port)
  }
  async function primary(): Promise<RedisServer> {
    let lastError: unknown = new Error('no sentinel answered')
    for (const sentinel of sentinelServers) {
      try {
        return dataAt(await primaryPortFrom(sentinel))
      } catch (error) {
        lastError = error
      }
    }
    throw lastError
  }
  let stopped: Promise<void> | undefined

  return {
    name,
    sentinels: sentinelServers.map((server) => ({ host: '127.0.0.1', port: server.port })),
    sentinelServers,
    dataServers,
    primary,
    async replicas() {
      const current = await primary()
      return dataServers.filter((server) => server !== current)
    },
    waitForFailover(fromPort, timeoutMs = 30_000) {
      return waitFor(
        async () => {
          const seen = new Set<number>()
          for (const sentinel of sentinelServers) {
            try {
              seen.add(await primaryPortFrom(sentinel))
            } catch {
              // a sentinel the test stopped
            }
          }
          const [port, ...others] = [...seen]
          if (port === undefined || others.length > 0 || port === fromPort)
            throw new Error(`sentinels name primaries ${[...seen].join(', ')}`)
          const role = parseInfo(await adminCommand(port, 'INFO', ['replication'], { password })).role
          if (role !== 'master') throw new Error(`node ${port} is ${role}`)
          return dataAt(port)
        },
        timeoutMs,
        100,
      )
    },
    stop() {
      stopped ??= stopAll()
      return stopped
    },
  }
}
