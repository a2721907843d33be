import { describe, expect, it } from 'vitest'
import { watchForChanges } from '../../../src/storage/watch.js'
import { captureLog } from '../../helpers/make-deps.js'

describe('watchForChanges', () => {
  it('retries a failed reload at every check until it succeeds, logging each failing state once', async () => {
    const { log, records } = captureLog()
    let signature = 'v1'
    let failures = 2
    const reloads: string[] = []
    const watcher = watchForChanges({
      name: 'test',
      intervalMs: 60_000,
      log,
      initial: 'v1',
      signature: async () => signature,
      reload: async () => {
        reloads.push(signature)
        if (failures-- > 0) throw new Error('EACCES for a moment')
      },
    })
    try {
      await watcher.check()
      expect(reloads).toEqual([]) // nothing changed

      signature = 'v2'
      await watcher.check()
      await watcher.check()
      await watcher.check() // third try succeeds
      await watcher.check() // loaded: no more reloads
      expect(reloads).toEqual(['v2', 'v2', 'v2'])
      expect(records().filter((r) => r.msg === 'reload failed; keeping the last good state')).toHaveLength(1)
    } finally {
      watcher.stop()
    }
  })

  it('reloads once more when the source comes back to what is loaded after a failure, so the failure can be cleared', async () => {
    const { log } = captureLog()
    let signature = 'good'
    const reloads: string[] = []
    const watcher = watchForChanges({
      name: 'test',
      intervalMs: 60_000,
      log,
      initial: 'good',
      signature: async () => signature,
      reload: async () => {
        reloads.push(signature)
        if (signature !== 'good') throw new Error('refused')
      },
    })
    try {
      signature = 'chmod 777'
      await watcher.check()
      signature = 'good' // chmod 700: the same signature as the state in force
      await watcher.check()
      await watcher.check() // loaded and not failing: nothing to do
      expect(reloads).toEqual(['chmod 777', 'good'])
    } finally {
      watcher.stop()
    }
  })

  it('waits one check on a transient signature (a file missing during a Kubernetes volume update), then acts on it', async () => {
    const { log, records } = captureLog()
    let signature = 'v1'
    const reloads: string[] = []
    const watcher = watchForChanges({
      name: 'test',
      intervalMs: 60_000,
      log,
      initial: 'v1',
      transient: (s) => s === 'missing',
      signature: async () => signature,
      reload: async () => {
        reloads.push(signature)
        if (signature === 'missing') throw new Error('gone')
      },
    })
    try {
      signature = 'missing'
      await watcher.check() // a moment in an update: nothing happens
      expect(reloads).toEqual([])
      signature = 'v1'
      await watcher.check() // back as it was: still nothing
      expect(reloads).toEqual([])

      signature = 'missing'
      await watcher.check()
      await watcher.check() // still missing at the next check: acted on, and logged once
      await watcher.check()
      expect(reloads).toEqual(['missing', 'missing'])
      expect(records().filter((r) => r.msg === 'reload failed; keeping the last good state')).toHaveLength(1)

      signature = 'v2'
      await watcher.check()
      signature = 'missing'
      await watcher.check() // a new absence waits again
      expect(reloads).toEqual(['missing', 'missing', 'v2'])
    } finally {
      watcher.stop()
    }
  })
})
