import { Writable } from 'node:stream'
import { createClientRegistry, type ClientEntry } from '../../src/clients/registry.js'
import { digestSecret } from '../../src/clients/secret.js'
import type { Clock } from '../../src/clock.js'
import { loadConfig, type Config } from '../../src/config.js'
import type { Denylist } from '../../src/denylist/denylist.js'
import { createMemoryDenylist } from '../../src/denylist/memory.js'
import type { Deps } from '../../src/deps.js'
import type { SigningAlg } from '../../src/keys/algorithms.js'
import { generateKeyRecord, type KeyRecord } from '../../src/keys/key-file.js'
import { createKeyStore, keyRetention } from '../../src/keys/key-store.js'
import { createLogger } from '../../src/observability/logger.js'

export const ISSUER = 'http://localhost:3000'
export const T0 = 1_800_000_000

/** A clock tests move by hand. */
export function fixedClock(start = T0): Clock & { set(t: number): void; advance(s: number): void } {
  let now = start
  const clock = (() => now) as Clock & { set(t: number): void; advance(s: number): void }
  clock.set = (t) => {
    now = t
  }
  clock.advance = (s) => {
    now += s
  }
  return clock
}

/** A logger whose lines tests can read (and search for leaked secrets). */
export function captureLog(level: Config['logLevel'] = 'debug') {
  const lines: string[] = []
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean))
      done()
    },
  })
  const log = createLogger(level, stream)
  return { log, lines, records: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>) }
}

export interface TestClient {
  id: string
  secret: string
  scopes?: string[]
  audiences?: string[]
  ttl?: number
  grantTypes?: ClientEntry['grant_types']
  resourceServer?: boolean
  /** extra secrets, e.g. an old one during rotation */
  secrets?: { secret: string; expires: number | null }[]
}

export const DEFAULT_CLIENTS: TestClient[] = [
  {
    id: 'svc-a',
    secret: 'tks_secret-of-a',
    scopes: ['read', 'write'],
    audiences: ['https://api.example.com', 'urn:api:b'],
  },
  { id: 'svc-b', secret: 'tks_secret-of-b', scopes: ['read'], audiences: ['https://other.example.com'] },
  { id: 'no-grant', secret: 'tks_secret-no-grant', grantTypes: [] },
]

export function clientEntry(client: TestClient): ClientEntry {
  const secrets = client.secrets ?? [{ secret: client.secret, expires: null }]
  return {
    client_id: client.id,
    secrets: secrets.map((s) => ({
      sha256: digestSecret(s.secret).toString('base64url'),
      created: T0 - 100,
      expires: s.expires,
    })),
    scopes: client.scopes ?? ['read'],
    audiences: client.audiences ?? ['https://api.example.com'],
    ...(client.ttl !== undefined && { access_token_ttl: client.ttl }),
    grant_types: client.grantTypes ?? ['client_credentials'],
    resource_server: client.resourceServer ?? false,
  }
}

const keyCache = new Map<SigningAlg, Promise<KeyRecord>>()
/** One generated key per algorithm per test file (RSA generation is slow). */
export function testKey(alg: SigningAlg = 'ES256'): Promise<KeyRecord> {
  let key = keyCache.get(alg)
  if (!key) {
    key = generateKeyRecord(alg, T0 - 1000, T0 - 1000)
    keyCache.set(alg, key)
  }
  return key
}

export interface MakeDepsOptions {
  clock?: Clock
  clients?: TestClient[]
  keys?: KeyRecord[]
  alg?: SigningAlg
  config?: Partial<Config>
  log?: Deps['log']
  denylist?: Denylist
  /** Registry entries as they are written in CLIENTS_FILE (private_key_jwt clients, say), after `clients`. */
  entries?: ClientEntry[]
  /** Workload identity federation trust entries. */
  trust?: Deps['trust']
}

/** Deps for `createApp`, with fakes: a fixed clock, in-memory keys and clients, a captured log. */
export async function makeDeps(options: MakeDepsOptions = {}): Promise<Deps & { logLines: string[] }> {
  const clock = options.clock ?? fixedClock()
  const captured = captureLog()
  const config = { ...loadConfig({ ISSUER, LOG_LEVEL: 'debug' }), ...options.config }
  const keys = createKeyStore(options.keys ?? [await testKey(options.alg)], clock, {
    retention: keyRetention(config.clockTolerance),
  })
  const clients = createClientRegistry({
    clients: [...(options.clients ?? DEFAULT_CLIENTS).map(clientEntry), ...(options.entries ?? [])],
  })
  return {
    config,
    clock,
    keys,
    clients,
    denylist: options.denylist ?? createMemoryDenylist({ clock }),
    log: options.log ?? captured.log,
    lifecycle: { shuttingDown: false },
    ...(options.trust !== undefined && { trust: options.trust }),
    logLines: captured.lines,
  }
}

export const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`

export const FORM = 'application/x-www-form-urlencoded'
