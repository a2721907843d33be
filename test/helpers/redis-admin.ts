import { Redis } from 'ioredis'

export interface AdminCommandOptions {
  password?: string
  /** A command without a reply after this long fails (a paused server never answers). Default 1 s. */
  timeoutMs?: number
}

/**
 * Runs one command on one loopback Redis (or Sentinel) over a connection of its own, then closes
 * it. For the topology helpers, which must ask a given node and never follow a redirect.
 */
export async function adminCommand(
  port: number,
  command: string,
  args: (string | number)[] = [],
  options: AdminCommandOptions = {},
): Promise<unknown> {
  const redis = new Redis({
    host: '127.0.0.1',
    port,
    password: options.password,
    lazyConnect: true,
    connectTimeout: options.timeoutMs ?? 1_000,
    commandTimeout: options.timeoutMs ?? 1_000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableReadyCheck: false,
  })
  redis.on('error', () => undefined) // surfaces as the command's rejection
  try {
    await redis.connect()
    return await redis.call(command, ...args)
  } finally {
    redis.disconnect()
  }
}

/** `field:value` lines (INFO, CLUSTER INFO) as a record. */
export function parseInfo(text: unknown): Record<string, string> {
  const fields: Record<string, string> = {}
  for (const line of String(text).split('\r\n')) {
    const colon = line.indexOf(':')
    if (colon > 0 && !line.startsWith('#')) fields[line.slice(0, colon)] = line.slice(colon + 1)
  }
  return fields
}

/** A flat `[name, value, name, value, ...]` reply (SENTINEL MASTER and friends) as a record. */
export function parsePairs(reply: unknown): Record<string, string> {
  const fields: Record<string, string> = {}
  const list = reply as unknown[]
  for (let i = 0; i + 1 < list.length; i += 2) fields[String(list[i])] = String(list[i + 1])
  return fields
}
