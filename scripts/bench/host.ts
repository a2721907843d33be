import { spawnSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os'

/**
 * Where the processes run, and what /proc says about them. Linux only for the pinning and the
 * memory and CPU figures; elsewhere they are left out with a note.
 */

export interface Placement {
  /** Put in front of `node` for every server process: `taskset -c <cpu>`, or nothing. */
  serverPrefix: string[]
  serverCpu: number | undefined
  benchCpu: number | undefined
  /** What the report says about it, e.g. why nothing was pinned. */
  notes: string[]
}

/** CPUs this process may run on, from /proc/self/status (e.g. "0-1" or "0,2-3"). */
function allowedCpus(): number[] {
  try {
    const line = readFileSync('/proc/self/status', 'utf8').match(/^Cpus_allowed_list:\s*(.+)$/m)?.[1] ?? ''
    return line.split(',').flatMap((part) => {
      const [from, to = from] = part.trim().split('-').map(Number)
      return from === undefined || Number.isNaN(from) || Number.isNaN(to)
        ? []
        : Array.from({ length: to! - from + 1 }, (_, i) => from + i)
    })
  } catch {
    return []
  }
}

/**
 * Servers on the first allowed CPU, this process (autocannon, the raw loops) on the second, so the
 * load generator never takes cycles from the server it measures. `-a` moves every thread of this
 * process (libuv's pool, V8's helpers), not only the main one.
 */
export function placeProcesses(): Placement {
  const allowed = allowedCpus()
  if (allowed.length < 2) {
    return {
      serverPrefix: [],
      serverCpu: undefined,
      benchCpu: undefined,
      notes: [
        `only ${availableParallelism()} CPU available: server and load generator share it, figures are lower than on two cores`,
      ],
    }
  }
  const [serverCpu, benchCpu] = allowed as [number, number]
  const pinned = spawnSync('taskset', ['-a', '-cp', String(benchCpu), String(process.pid)], { encoding: 'utf8' })
  if (pinned.error || pinned.status !== 0) {
    const why = pinned.error
      ? `taskset not available (${(pinned.error as NodeJS.ErrnoException).code ?? pinned.error.message})`
      : `taskset failed: ${pinned.stderr.trim()}`
    return {
      serverPrefix: [],
      serverCpu: undefined,
      benchCpu: undefined,
      notes: [`${why}: nothing pinned, server and load generator may share a core`],
    }
  }
  return {
    serverPrefix: ['taskset', '-c', String(serverCpu)],
    serverCpu,
    benchCpu,
    notes: [
      `servers pinned to CPU ${serverCpu} (taskset -c ${serverCpu}), bench process (autocannon, raw loops) to CPU ${benchCpu}`,
    ],
  }
}

/** Call before placeProcesses: pinning this process changes what availableParallelism() sees. */
export function machine() {
  return {
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    cpus: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryMiB: Math.round(totalmem() / 2 ** 20),
    loadAverageAtStart: loadavg().map((value) => Math.round(value * 100) / 100),
  }
}

/**
 * Busy and total time of one CPU so far, from /proc/stat, in USER_HZ ticks. Busy is user, nice,
 * system and steal (time the hypervisor gave to another guest): what processes, ours or not, and
 * the neighbours took. irq and softirq are left out of busy, since much of that is the kernel
 * carrying the bench's own loopback traffic. Undefined off Linux or for an unknown CPU.
 */
export function cpuTicks(cpu: number): { busy: number; total: number } | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').match(new RegExp(`^cpu${cpu} (.+)$`, 'm'))?.[1]
    if (!line) return undefined
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = line
      .trim()
      .split(/\s+/)
      .map(Number)
    const busy = user + nice + system + steal
    return { busy, total: busy + idle + iowait + irq + softirq }
  } catch {
    return undefined
  }
}

/**
 * Percent of one core's time spent on something other than `ownPct` (the measured process's own
 * share of a core) between two readings: other processes on that core. Undefined when unknown.
 */
export function othersPct(
  before: { busy: number; total: number } | undefined,
  after: { busy: number; total: number } | undefined,
  ownPct: number | undefined,
): number | undefined {
  if (!before || !after || ownPct === undefined || after.total <= before.total) return undefined
  const busyPct = (100 * (after.busy - before.busy)) / (after.total - before.total)
  return Math.max(0, Math.round(busyPct - ownPct))
}

/** `pid` and every process below it (a clustered server's workers), from /proc's children lists. */
export function processTree(pid: number): number[] {
  const found = [pid]
  for (let i = 0; i < found.length; i++) {
    const current = found[i]!
    try {
      for (const task of readdirSync(`/proc/${current}/task`)) {
        const children = readFileSync(`/proc/${current}/task/${task}/children`, 'utf8').trim()
        if (children) found.push(...children.split(/\s+/).map(Number))
      }
    } catch {
      // Gone, or no children file (kernel without CONFIG_PROC_CHILDREN): the process alone.
    }
  }
  return found
}

/**
 * utime + stime of a process tree, every thread, from /proc/<pid>/stat (fields 14 and 15, in
 * USER_HZ ticks, 100 on Linux). Undefined off Linux.
 */
export function cpuSeconds(pid: number): number | undefined {
  let total = 0
  for (const member of processTree(pid)) {
    try {
      const stat = readFileSync(`/proc/${member}/stat`, 'utf8')
      // The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      total += (Number(fields[11]) + Number(fields[12])) / 100
    } catch {
      if (member === pid) return undefined
    }
  }
  return total
}

export interface ProcessMemory {
  pid: number
  /** VmRSS now and VmHWM (the peak RSS since the process started), MiB. */
  rssMiB: number
  peakMiB: number
}

/** VmRSS and VmHWM of a process and each process below it; undefined when /proc cannot tell. */
export function memoryOf(pid: number): ProcessMemory[] | undefined {
  const members: ProcessMemory[] = []
  for (const member of processTree(pid)) {
    try {
      const status = readFileSync(`/proc/${member}/status`, 'utf8')
      const kib = (name: string) => Number(status.match(new RegExp(`^${name}:\\s*(\\d+) kB`, 'm'))?.[1] ?? Number.NaN)
      members.push({ pid: member, rssMiB: kib('VmRSS') / 1024, peakMiB: kib('VmHWM') / 1024 })
    } catch {
      if (member === pid) return undefined
    }
  }
  return members
}

/** The process tree's RSS (sum over its processes), MiB. */
export const totalRss = (memory: readonly ProcessMemory[]) => memory.reduce((sum, member) => sum + member.rssMiB, 0)
/** The sum of each process's own peak: for one process its peak RSS, for a tree an upper bound. */
export const totalPeak = (memory: readonly ProcessMemory[]) => memory.reduce((sum, member) => sum + member.peakMiB, 0)

/**
 * How busy each CPU is while the bench itself does nothing yet, in percent over `seconds`: other
 * work on the machine lowers every figure, and on a shared machine that is the largest error.
 */
export async function idleCheck(cpuIds: readonly number[], seconds: number): Promise<Record<number, number>> {
  const before = cpuIds.map(cpuTicks)
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000))
  const busy: Record<number, number> = {}
  cpuIds.forEach((cpu, index) => {
    const start = before[index]
    const end = cpuTicks(cpu)
    if (start && end && end.total > start.total)
      busy[cpu] = Math.round((100 * (end.busy - start.busy)) / (end.total - start.total))
  })
  return busy
}
