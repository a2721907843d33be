import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { createApp } from '../../../src/app.js'
import { watchClients } from '../../../src/clients/reload.js'
import type { ClientEntry } from '../../../src/clients/registry.js'
import { watchTrust } from '../../../src/federation/reload.js'
import { auditOf, type AuditEventName } from '../../../src/observability/audit.js'
import { tempDir } from '../../helpers/cli.js'
import { basic, clientEntry, FORM, fixedClock, makeDeps, T0 } from '../../helpers/make-deps.js'

// The audit events of file reloads (clients, trust entries) and of issuance quotas (limit.tripped),
// as their emitters write them: one event per act, through the audit trail the metrics listen to.

function listen(deps: Parameters<typeof auditOf>[0]) {
  const events: [AuditEventName, unknown][] = []
  auditOf(deps).listen((event, fields) => void events.push([event, fields]))
  return events
}

describe('reload events', () => {
  it('writes clients.reloaded for a good CLIENTS_FILE and clients.reload_rejected once per broken state', async () => {
    const path = join(tempDir(), 'clients.json')
    const write = (ids: string[]) =>
      writeFileSync(path, JSON.stringify({ clients: ids.map((id) => clientEntry({ id, secret: `tks_${id}` })) }))
    write(['svc-a'])
    const deps = await makeDeps({ clients: [], config: { clientsFile: path } })
    const events = listen(deps)
    const watcher = await watchClients(deps, 60_000)
    try {
      write(['svc-a', 'svc-b'])
      await watcher.check()
      writeFileSync(path, '{"clients": [')
      await watcher.check()
      await watcher.check()
      write(['svc-c'])
      await watcher.check()
      expect(events).toEqual([
        ['clients.reloaded', { clients: 2 }],
        ['clients.reload_rejected', { problem: expect.any(String) }],
        ['clients.reloaded', { clients: 1 }],
      ])
      const logged = deps.logLines.map((line) => JSON.parse(line) as Record<string, unknown>)
      expect(logged.filter((record) => record.event === 'clients.reload_rejected')).toEqual([
        expect.objectContaining({ level: 40, msg: 'clients.reload_rejected' }),
      ])
    } finally {
      watcher.stop()
    }
  })

  it('writes trust.reloaded and trust.reload_rejected', async () => {
    const path = join(tempDir(), 'trust.json')
    const write = (ids: string[]) =>
      writeFileSync(
        path,
        JSON.stringify({
          trust: ids.map((id) => ({ id, issuer: 'https://issuer.example', subject: `sub-${id}`, clients: ['svc-a'] })),
        }),
        { mode: 0o600 },
      )
    write(['a', 'b'])
    const deps = await makeDeps({ config: { trustFile: path } })
    const events = listen(deps)
    const watcher = await watchTrust(deps, 60_000)
    try {
      writeFileSync(path, 'not json', { mode: 0o600 })
      await watcher.check()
      write(['c'])
      await watcher.check()
      expect(events).toEqual([
        ['trust.reloaded', { entries: 2 }],
        ['trust.reload_rejected', { problem: expect.any(String) }],
        ['trust.reloaded', { entries: 1 }],
      ])
    } finally {
      watcher.stop()
    }
  })
})

describe('quota events', () => {
  it('writes limit.tripped once per client per window, however often the client is refused', async () => {
    const clock = fixedClock(T0 - (T0 % 60) + 10)
    const quoted: ClientEntry = { ...clientEntry({ id: 'svc-q', secret: 'tks_q' }), quota: 1 }
    const deps = await makeDeps({ clock, entries: [quoted] })
    const events = listen(deps)
    const app = createApp(deps)
    const token = () =>
      app.request('/oauth/token', {
        method: 'POST',
        headers: { 'content-type': FORM, authorization: basic('svc-q', 'tks_q') },
        body: 'grant_type=client_credentials',
      })
    const trips = () => events.filter(([event]) => event === 'limit.tripped')
    expect((await token()).status).toBe(200)
    expect((await token()).status).toBe(429)
    expect((await token()).status).toBe(429)
    const windowEnd = T0 - (T0 % 60) + 60
    expect(trips()).toEqual([['limit.tripped', { limit: 'quota', client_id: 'svc-q', until: windowEnd }]])
    // The next window: a token, then one more trip.
    clock.set(windowEnd)
    expect((await token()).status).toBe(200)
    expect((await token()).status).toBe(429)
    expect(trips()).toEqual([
      ['limit.tripped', { limit: 'quota', client_id: 'svc-q', until: windowEnd }],
      ['limit.tripped', { limit: 'quota', client_id: 'svc-q', until: windowEnd + 60 }],
    ])
  })
})
