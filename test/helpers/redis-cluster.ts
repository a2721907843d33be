import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { freePort } from './free-port.js'
import { adminCommand, parseInfo } from './redis-admin.js'
import { type HostPort, type RedisServer, startRedisServer } from './redis-server.js'
import { waitFor } from './wait-for.js'

const run = promisify(execFile)

/** Redis Cluster has 16384 hash slots: https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/ */
const SLOTS = 16_384

export interface StartRedisClusterOptions {
  /** Primaries; each gets `replicasPerPrimary` replicas. Default 3 (the minimum redis-cli accepts). */
  primaries?: number
  /** Default 1. */
  replicasPerPrimary?: number
  /**
   * `cluster-node-timeout`: how long a node may be unreachable before it is failed over. Default
   * 1500 ms (a failover takes about twice that).
   */
  nodeTimeoutMs?: number
  /** Extra redis-server arguments for every node. */
  args?: string[]
  /** How long to wait for the cluster to form. Default 30 s. */
  readyTimeoutMs?: number
}

/** One slot range as a node sees it (CLUSTER SLOTS). */
export interface SlotRange {
  from: number
  to: number
  primary: number
  replicas: number[]
}

export interface RedisCluster {
  /** Every node (seed list for a client), all 127.0.0.1. */
  readonly nodes: HostPort[]
  /** Every node's process, in `nodes` order. */
  readonly servers: RedisServer[]
  /** The process listening on `port`. */
  serverAt(port: number): RedisServer
  /** The hash slot of `key` (honours `{hash tags}`). */
  slotOf(key: string): number
  /** The primary serving `slot` now, as the reachable nodes see it. */
  primaryForSlot(slot: number): Promise<RedisServer>
  /** The replicas of the primary serving `slot` now. */
  replicasForSlot(slot: number): Promise<RedisServer[]>
  /** The primary serving `key` now. */
  nodeFor(key: string): Promise<RedisServer>
  /** The slot map, from the first node that answers (other than `skipPorts`). */
  slots(skipPorts?: number[]): Promise<SlotRange[]>
  /**
   * After the primary on `fromPort` was killed or paused: waits until a replica has taken over its
   * slots, every other reachable node agrees and reports `cluster_state:ok`. Returns the new primary.
   */
  waitForFailover(fromPort: number, timeoutMs?: number): Promise<RedisServer>
  /** Waits until every node reports `cluster_state:ok` with every slot served and every replica in sync. */
  waitUntilHealthy(timeoutMs?: number): Promise<void>
  /** Stops every node and removes the cluster's files. Idempotent. */
  stop(): Promise<void>
}

/**
 * A throwaway Redis Cluster on loopback: `primaries × (1 + replicasPerPrimary)` redis-servers with
 * cluster mode on, joined with `redis-cli --cluster create`, returned once every slot is served and
 * every replica is in sync. Nodes bind and announce 127.0.0.1 so clients are redirected to
 * loopback addresses. https://redis.io/docs/latest/operate/oss_and_stack/management/scaling/
 */
export async function startRedisCluster(options: StartRedisClusterOptions = {}): Promise<RedisCluster> {
  const primaries = options.primaries ?? 3
  const replicasPerPrimary = options.replicasPerPrimary ?? 1
  const count = primaries * (1 + replicasPerPrimary)
  const nodeTimeoutMs = options.nodeTimeoutMs ?? 1_500
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000
  const dir = await mkdtemp(path.join(tmpdir(), 'tokensmith-cluster-'))

  // Each node needs a client port and a cluster bus port; pick both (the default bus port,
  // port + 10000, could land in the ephemeral range and be taken).
  const ports = await distinctFreePorts(count * 2)
  const servers: RedisServer[] = []
  const stopAll = async () => {
    await Promise.all(servers.map((server) => server.stop()))
    await rm(dir, { recursive: true, force: true })
  }

  try {
    const started = await Promise.allSettled(
      Array.from({ length: count }, (_, i) => {
        const port = ports[2 * i] as number
        return startRedisServer({
          port,
          args: [
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            path.join(dir, `nodes-${port}.conf`),
            '--cluster-node-timeout',
            String(nodeTimeoutMs),
            '--cluster-port',
            String(ports[2 * i + 1]),
            '--cluster-announce-ip',
            '127.0.0.1',
            // A replica whose primary was paused a long time may still take over (fault tests).
            '--cluster-replica-validity-factor',
            '0',
            // Replicas sync at once instead of after the default 5 s diskless delay.
            '--repl-diskless-sync-delay',
            '0',
            // CLUSTER SLOTS lists a replica only once its replication offset is not 0; the primary's
            // replication PING moves it, every 10 s by default.
            '--repl-ping-replica-period',
            '1',
            '--dir',
            dir,
            ...(options.args ?? []),
          ],
        })
      }),
    )
    for (const result of started) if (result.status === 'fulfilled') servers.push(result.value)
    const failed = started.find((result) => result.status === 'rejected')
    if (failed) throw failed.reason

    await run(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...servers.map((server) => `127.0.0.1:${server.port}`),
        '--cluster-replicas',
        String(replicasPerPrimary),
        '--cluster-yes',
      ],
      { timeout: readyTimeoutMs },
    )
  } catch (error) {
    await stopAll()
    throw error
  }

  const byPort = new Map(servers.map((server) => [server.port, server]))
  const serverAt = (port: number) => {
    const server = byPort.get(port)
    if (!server) throw new Error(`no cluster node on port ${port}`)
    return server
  }
  let stopped: Promise<void> | undefined
  let lastKnown: SlotRange[] = []

  async function slots(skipPorts: number[] = []): Promise<SlotRange[]> {
    let lastError: unknown = new Error('no cluster node answered')
    for (const server of servers) {
      if (skipPorts.includes(server.port)) continue
      try {
        lastKnown = parseSlots(await adminCommand(server.port, 'CLUSTER', ['SLOTS']))
        return lastKnown
      } catch (error) {
        lastError = error
      }
    }
    throw lastError
  }

  function rangeFor(map: SlotRange[], slot: number): SlotRange {
    const range = map.find((candidate) => candidate.from <= slot && slot <= candidate.to)
    if (!range) throw new Error(`slot ${slot} is not served`)
    return range
  }

  /** Every reachable node other than `skipPorts` says `cluster_state:ok`, with every slot served. */
  async function reachableNodesOk(skipPorts: number[]): Promise<void> {
    let answered = 0
    for (const server of servers) {
      if (skipPorts.includes(server.port)) continue
      let info: Record<string, string>
      try {
        info = parseInfo(await adminCommand(server.port, 'CLUSTER', ['INFO']))
      } catch {
        continue // killed or paused by the test
      }
      answered++
      if (info.cluster_state !== 'ok' || info.cluster_slots_ok !== String(SLOTS))
        throw new Error(`node ${server.port}: cluster_state ${info.cluster_state}, slots ok ${info.cluster_slots_ok}`)
    }
    if (answered === 0) throw new Error('no cluster node answered')
  }

  async function waitUntilHealthy(timeoutMs = readyTimeoutMs): Promise<void> {
    await waitFor(
      async () => {
        for (const server of servers) {
          const info = parseInfo(await adminCommand(server.port, 'CLUSTER', ['INFO']))
          if (
            info.cluster_state !== 'ok' ||
            info.cluster_slots_ok !== String(SLOTS) ||
            info.cluster_known_nodes !== String(count)
          )
            throw new Error(`node ${server.port}: ${JSON.stringify(info)}`)
        }
        for (const range of await slots()) {
          const replication = parseInfo(await adminCommand(range.primary, 'INFO', ['replication']))
          if (replication.role !== 'master' || replication.connected_slaves !== String(range.replicas.length))
            throw new Error(`primary ${range.primary}: ${JSON.stringify(replication)}`)
          for (const replica of range.replicas) {
            const info = parseInfo(await adminCommand(replica, 'INFO', ['replication']))
            if (info.master_link_status !== 'up') throw new Error(`replica ${replica}: link ${info.master_link_status}`)
          }
          if (range.replicas.length !== replicasPerPrimary)
            throw new Error(`primary ${range.primary} has ${range.replicas.length} replicas`)
        }
      },
      timeoutMs,
      100,
    )
  }

  try {
    await waitUntilHealthy()
  } catch (error) {
    await stopAll()
    throw error
  }

  return {
    nodes: servers.map((server) => ({ host: '127.0.0.1', port: server.port })),
    servers,
    serverAt,
    slotOf: keySlot,
    slots,
    async primaryForSlot(slot) {
      return serverAt(rangeFor(await slots(), slot).primary)
    },
    async replicasForSlot(slot) {
      return rangeFor(await slots(), slot).replicas.map(serverAt)
    },
    async nodeFor(key) {
      return serverAt(rangeFor(await slots(), keySlot(key)).primary)
    },
    async waitForFailover(fromPort, timeoutMs = 30_000) {
      // A slot the failed primary served, as the other nodes still see it before the failover, or
      // else as this helper last saw it.
      const before = await slots([fromPort]).catch(() => lastKnown)
      const slot = (
        before.find((range) => range.primary === fromPort) ?? lastKnown.find((range) => range.primary === fromPort)
      )?.from
      if (slot === undefined) throw new Error(`node ${fromPort} served no slot`)
      return waitFor(
        async () => {
          await reachableNodesOk([fromPort])
          const primaries = new Set<number>()
          for (const server of servers) {
            if (server.port === fromPort) continue
            let map: SlotRange[]
            try {
              map = parseSlots(await adminCommand(server.port, 'CLUSTER', ['SLOTS']))
            } catch {
              continue
            }
            primaries.add(rangeFor(map, slot).primary)
          }
          const [primary, ...others] = [...primaries]
          if (primary === undefined || others.length > 0 || primary === fromPort)
            throw new Error(`slot ${slot}: nodes see primaries ${[...primaries].join(', ')}`)
          const role = parseInfo(await adminCommand(primary, 'INFO', ['replication'])).role
          if (role !== 'master') throw new Error(`node ${primary} is ${role}`)
          return serverAt(primary)
        },
        timeoutMs,
        100,
      )
    },
    waitUntilHealthy,
    stop() {
      stopped ??= stopAll()
      return stopped
    },
  }
}

/** CLUSTER SLOTS: `[[from, to, [ip, port, id], [replica ip, port, id], ...], ...]`. */
function parseSlots(reply: unknown): SlotRange[] {
  return (reply as unknown[][]).map((entry) => {
    const [from, to, primary, ...replicas] = entry as [number, number, unknown[], ...unknown[][]]
    return {
      from: Number(from),
      to: Number(to),
      primary: Number(primary[1]),
      replicas: replicas.map((replica) => Number(replica[1])),
    }
  })
}

async function distinctFreePorts(count: number): Promise<number[]> {
  const ports = new Set<number>()
  while (ports.size < count) ports.add(await freePort())
  return [...ports]
}

/** CRC16/XMODEM, the checksum Redis Cluster hashes keys with (cluster spec, appendix A). */
function crc16(data: Buffer): number {
  let crc = 0
  for (const byte of data) {
    crc ^= byte << 8
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
  }
  return crc
}

/**
 * The hash slot of a key: only the part between the first `{` and the next `}` is hashed when it is
 * non-empty (hash tags, cluster spec "Hash tags").
 */
export function keySlot(key: string): number {
  let hashed = key
  const open = key.indexOf('{')
  if (open !== -1) {
    const close = key.indexOf('}', open + 1)
    if (close > open + 1) hashed = key.slice(open + 1, close)
  }
  return crc16(Buffer.from(hashed)) % SLOTS
}
