import { round, type OpsFigures } from './figures.js'

async function loop(milliseconds: number, operation: () => Promise<unknown>): Promise<number> {
  const end = performance.now() + milliseconds
  let ops = 0
  while (performance.now() < end) {
    await operation()
    ops++
  }
  return ops
}

/**
 * Ops/s of `operation` awaited one at a time: a single-core figure. `warmup` seconds are run and
 * discarded first, so the JIT has compiled the path being measured.
 */
export async function countOps(operation: () => Promise<unknown>, timing: { warmup: number; seconds: number }): Promise<OpsFigures> {
  await loop(timing.warmup * 1000, operation)
  const cpuBefore = process.cpuUsage()
  const start = performance.now()
  const ops = await loop(timing.seconds * 1000, operation)
  const seconds = (performance.now() - start) / 1000
  const cpu = process.cpuUsage(cpuBefore)
  return {
    kind: 'ops',
    opsPerSecond: round(ops / seconds),
    ops,
    seconds: round(seconds, 2),
    cpuPct: round((100 * (cpu.user + cpu.system)) / 1e6 / seconds),
  }
}
