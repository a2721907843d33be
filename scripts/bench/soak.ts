import { totalRss } from './host.js'
import { cannon, findProblems, type HttpTarget } from './load.js'
import type { BenchOptions } from './options.js'
import { singleRow, type MeasuredRow } from './results.js'
import type { BenchServer } from './servers.js'
import { integer, round, slope } from './stats.js'

/** Token load for soakSeconds while the server's RSS is sampled; slope by least squares. */
export async function measureSoak(
  options: BenchOptions,
  report: (message: string) => void,
  server: BenchServer,
  target: HttpTarget,
): Promise<MeasuredRow[]> {
  report(`RSS soak: ${options.soakSeconds} s of token load on ${server.name}, RSS every ${options.soakSampleSeconds} s`)
  const samples: [number, number][] = []
  const started = performance.now()
  const sample = () => {
    const members = server.memory()
    if (members) samples.push([round((performance.now() - started) / 1000, 1), round(totalRss(members), 1)])
  }
  sample()
  const timer = setInterval(sample, options.soakSampleSeconds * 1000)
  const result = await cannon(target, options.soakSeconds, options.connections)
  clearInterval(timer)
  sample()
  const problems = findProblems(result, 'soak')
  if (samples.length < 2) return []
  const slopePerMinute = slope(samples) * 60
  const secondHalf = samples.filter(([seconds]) => seconds >= options.soakSeconds / 2)
  const rss = samples.map(([, value]) => value)
  report(`  RSS ${samples[0]![1]} → ${samples.at(-1)![1]} MiB, slope ${slopePerMinute.toFixed(2)} MiB/min`)
  const detail = {
    samples,
    req_per_s: round(result.requests.mean),
    p99_ms: result.latency.p99,
    requests: result.requests.total,
  }
  return [
    {
      ...singleRow(
        'soak_rss_start',
        'memory',
        'soak: RSS at start',
        `token ES256 server, RSS when the ${options.soakSeconds} s load starts`,
        'MiB',
        [samples[0]![1]],
      ),
      detail,
      problems,
    },
    singleRow(
      'soak_rss_end',
      'memory',
      'soak: RSS at end',
      `after ${options.soakSeconds} s of token load (${integer(result.requests.mean)} req/s)`,
      'MiB',
      [samples.at(-1)![1]],
    ),
    singleRow('soak_rss_max', 'memory', 'soak: RSS max', 'highest sample', 'MiB', [Math.max(...rss)]),
    singleRow('soak_rss_slope', 'memory', 'soak: RSS slope', 'least squares over every sample', 'MiB/min', [
      slopePerMinute,
    ]),
    singleRow(
      'soak_rss_slope_second_half',
      'memory',
      'soak: RSS slope, 2nd half',
      'least squares over the second half',
      'MiB/min',
      [slope(secondHalf) * 60],
    ),
  ]
}
