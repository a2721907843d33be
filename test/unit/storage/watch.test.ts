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
})
