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
})
