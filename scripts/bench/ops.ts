import { cpuTicks, othersPct } from './host.js'
import { round } from './stats.js'

/** One round of an in-process loop. */
export interface OpsRound {
  opsPerSec: number
  ops: number
  seconds: number
  /** Share of one core this process used (its thread plus libuv's pool, where WebCrypto runs). */
  cpuPct: number
  /** Share of this process's core used by other processes meanwhile. */
  othersOnBenchCorePct: number | undefined
  /** CPU time of this process (libuv's pool included) per operation, µs. */
  cpuUsPerOp: number
}

/** One operation at a time (awaited when it returns a promise): a single-thread figure. */
async function loop(milliseconds: number, operation: () => unknown): Promise<number> {
  const end = performance.now() + milliseconds
  let ops = 0
  while (performance.now() < end) {
    const result = operation()
    if (result instanceof Promise) await result
    ops++
  }
  return ops
}

export async function warmUp(operation: () => unknown, seconds: number): Promise<void> {
  await loop(seconds * 1000, operation)
}

export async function opsRound(
  operation: () => unknown,
  seconds: number,
  benchCpu: number | undefined,
): Promise<OpsRound> {
  const core = () => (benchCpu === undefined ? undefined : cpuTicks(benchCpu))
  const coreBefore = core()
  const cpuBefore = process.cpuUsage()
  const start = performance.now()
  const ops = await loop(seconds * 1000, operation)
  const elapsed = (performance.now() - start) / 1000
  const cpu = process.cpuUsage(cpuBefore)
  const cpuPct = round((100 * (cpu.user + cpu.system)) / 1e6 / elapsed)
  return {
    opsPerSec: round(ops / elapsed),
    ops,
    seconds: round(elapsed, 2),
    cpuPct,
    othersOnBenchCorePct: othersPct(coreBefore, core(), cpuPct),
    cpuUsPerOp: round((cpu.user + cpu.system) / ops, 2),
  }
}
