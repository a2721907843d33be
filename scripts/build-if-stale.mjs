// `npm start` runs the compiled server from dist/. `npm ci` builds it (the `prepare` script); this
// rebuilds it before a start only when a file under src/ (or the compiler settings) changed since
// the last build, so an edited checkout never serves stale JavaScript and an unchanged one starts
// without waiting for the compiler.
import { spawnSync } from 'node:child_process'
import { readdirSync, statSync, utimesSync } from 'node:fs'
import { join } from 'node:path'

const newest = (path) => {
  const stat = statSync(path)
  if (!stat.isDirectory()) return stat.mtimeMs
  return Math.max(stat.mtimeMs, ...readdirSync(path).map((name) => newest(join(path, name))))
}
const built = (() => {
  try {
    return statSync('dist/.tsbuildinfo').mtimeMs
  } catch {
    return -1
  }
})()
const sources = Math.max(newest('src'), newest('tsconfig.json'), newest('tsconfig.build.json'))
if (sources > built) {
  const result = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], {
    stdio: 'inherit',
  })
  if (result.status !== 0) process.exit(result.status ?? 1)
  // An incremental build that emits nothing new leaves the file as it was: mark this build.
  const now = new Date()
  utimesSync('dist/.tsbuildinfo', now, now)
}
