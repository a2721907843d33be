import { chmodSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { generateKeyRecord } from '../../../src/keys/key-file.js'
import { writeKeyRecord } from '../../../src/keys/keys-dir.js'
import { watchKeys } from '../../../src/keys/reload.js'
import type { Watcher } from '../../../src/storage/watch.js'
import { tempDir } from '../../helpers/cli.js'
import { T0, fixedClock, makeDeps } from '../../helpers/make-deps.js'

// Key file permissions: the owner and its group may read a key file (a Kubernetes Secret volume
// is root-owned, 0440 with fsGroup: https://kubernetes.io/docs/concepts/configuration/secret/),
// others may neither read it (logged as an error at every load) nor write it (refused).
const SECRET_FIX =
  'for a Kubernetes Secret volume, set defaultMode: 0440 on the volume and fsGroup in the pod securityContext'
const REFUSED = 'reload failed; keeping the last good state'

let watchers: Watcher[] = []
afterEach(() => {
  for (const watcher of watchers) watcher.stop()
  watchers = []
})

/** KEYS_DIR with a current and a standby key whose files have `mode`, loaded by the watcher. */
async function loadWithMode(octal: string) {
  const mode = Number.parseInt(octal, 8)
  const keysDir = tempDir()
  const current = await generateKeyRecord('ES256', T0, T0)
  const standby = await generateKeyRecord('ES256', T0, null)
  for (const record of [current, standby]) {
    await writeKeyRecord(keysDir, record)
    chmodSync(join(keysDir, `${record.kid}.json`), mode)
  }
  const deps = await makeDeps({ clock: fixedClock(T0), keys: [current, standby], config: { keysDir } })
  watchers.push(await watchKeys(deps, 60_000))
  const records = deps.logLines.map((line) => JSON.parse(line) as { level: number; msg: string; problem?: string })
  return { records, current }
}

describe('key file modes', () => {
  it.each(['600', '400', '640', '440'])('mode 0%s loads with no warning or error', async (mode) => {
    const { records } = await loadWithMode(mode)
    expect(records.filter((r) => r.level >= 40)).toEqual([])
    expect(records.map((r) => r.msg)).toContain('signing keys reloaded')
  })

  it.each(['644', '444', '604'])(
    'mode 0%s (readable by others) is logged as an error naming the Secret fix',
    async (mode) => {
      const { records } = await loadWithMode(mode)
      const errors = records.filter((r) => r.level >= 40)
      expect(errors).toHaveLength(2)
      for (const error of errors) {
        expect(error).toMatchObject({
          level: 50,
          msg: `key file is readable by others; run chmod 600 on it (${SECRET_FIX})`,
        })
      }
    },
  )

  it.each(['660', '666'])('mode 0%s (writable by group or others) is refused, naming the Secret fix', async (mode) => {
    const { records } = await loadWithMode(mode)
    const refused = records.filter((r) => r.msg === REFUSED)
    expect(refused).toHaveLength(1)
    expect(refused[0]?.problem).toContain(`run chmod 600 on it (${SECRET_FIX})`)
    expect(records.map((r) => r.msg)).not.toContain('signing keys reloaded')
  })
})
