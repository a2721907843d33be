/**
 * deploy/prometheus/alerts.yml: a Prometheus rule file whose every rule is complete and whose every
 * expression names metrics (and labels) that exist: the authorization server's, from a real
 * `createMetrics` registry, and the resource server's, from the verifier and revocation feed metrics.
 * Plus what promtool would catch first: balanced brackets and valid durations.
 */
import { readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Histogram, Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse } from 'yaml'

import { feedMetrics } from '../../../src/denylist/revocation-feed-metrics.js'
import { createMetrics, type Metrics } from '../../../src/observability/metrics.js'
import { verifierMetrics } from '../../../src/verifier/metrics.js'
import { makeDeps } from '../../helpers/make-deps.js'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
const FILE = join(root, 'deploy/prometheus/alerts.yml')

interface Rule {
  alert?: unknown
  expr?: unknown
  for?: unknown
  labels?: Record<string, unknown>
  annotations?: Record<string, unknown>
}

/** A metric that exists, with its label names. */
type Known = Map<string, ReadonlySet<string>>

/** Labels Prometheus adds to every scraped series. */
const TARGET_LABELS = ['job', 'instance']

/** Values a matcher may compare some labels with: closed sets in the code. */
const LABEL_VALUES: Record<string, Record<string, readonly string[]>> = {
  tokensmith_rs_requests_total: { outcome: ['accepted', 'rejected', 'unavailable', 'fail_open'] },
  tokensmith_rs_jwks_fetches_total: { outcome: ['ok', 'error'] },
  tokensmith_remote_keys_fetches_total: { outcome: ['ok', 'error'] },
  tokensmith_denylist_operations_total: { outcome: ['ok', 'unavailable', 'error'] },
  // src/keys/key-states.ts, published states only.
  tokensmith_signing_key_age_seconds: { state: ['standby', 'next', 'current', 'retired'] },
  tokensmith_signing_key_state: { state: ['standby', 'next', 'current', 'retired'] },
}

const FUNCTIONS = new Set([
  'sum',
  'min',
  'max',
  'avg',
  'count',
  'topk',
  'bottomk',
  'quantile',
  'rate',
  'irate',
  'increase',
  'delta',
  'abs',
  'absent',
  'absent_over_time',
  'avg_over_time',
  'max_over_time',
  'min_over_time',
  'histogram_quantile',
  'clamp_min',
  'time',
  'vector',
])
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring'])
const GROUPING = /\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g
const SELECTOR = /([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}/g
const MATCHER = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$/
/** Prometheus durations: one or more number-unit pairs, largest unit first. */
const DURATION = /^(?:\d+y)?(?:\d+w)?(?:\d+d)?(?:\d+h)?(?:\d+m)?(?:\d+s)?(?:\d+ms)?$/

const isDuration = (text: string) => text !== '' && DURATION.test(text)

/** Brackets of every kind balance and nest, outside strings. */
function balanced(expr: string): boolean {
  const pairs: Record<string, string> = { ')': '(', ']': '[', '}': '{' }
  const stack: string[] = []
  const code = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""')
  for (const char of code) {
    if (char === '(' || char === '[' || char === '{') stack.push(char)
    else if (char in pairs && stack.pop() !== pairs[char]) return false
  }
  return stack.length === 0
}

interface Parsed {
  metrics: string[]
  matchers: { metric: string | undefined; label: string; op: string; value: string }[]
  grouping: string[]
  durations: string[]
  functions: string[]
}

/** The metric names, matchers, grouping labels, durations and functions of a PromQL expression. */
function parseExpr(expr: string): Parsed {
  const parsed: Parsed = { metrics: [], matchers: [], grouping: [], durations: [], functions: [] }
  let rest = expr.replace(SELECTOR, (_match, metric: string | undefined, body: string) => {
    for (const part of body.split(',').filter((p) => p.trim() !== '')) {
      const m = MATCHER.exec(part)
      if (!m) throw new Error(`bad matcher ${part} in ${expr}`)
      parsed.matchers.push({ metric, label: m[1] ?? '', op: m[2] ?? '', value: m[3] ?? '' })
    }
    // Keep the name: it is collected with the bare ones below.
    return ` ${metric ?? ''} `
  })
  rest = rest.replace(/\[([^\]]*)\]/g, (_match, range: string) => {
    parsed.durations.push(range.trim())
    return ' '
  })
  rest = rest.replace(/\boffset\s+([0-9a-z]+)/g, (_match, duration: string) => {
    parsed.durations.push(duration)
    return ' '
  })
  rest = rest.replace(GROUPING, (_match, _keyword, labels: string) => {
    parsed.grouping.push(
      ...labels
        .split(',')
        .map((l) => l.trim())
        .filter(Boolean),
    )
    return ' '
  })
  rest = rest.replace(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\(/g, (_match, name: string) => {
    parsed.functions.push(name)
    return ' ( '
  })
  for (const word of rest.match(/[a-zA-Z_:][a-zA-Z0-9_:]*/g) ?? []) {
    if (!KEYWORDS.has(word)) parsed.metrics.push(word)
  }
  return parsed
}

/** Every metric name a registry exposes, with its labels; a histogram's series under their suffixes. */
function namesOf(registry: Registry, into: Known): void {
  for (const metric of registry.getMetricsAsArray()) {
    const labels = new Set((metric as unknown as { labelNames?: string[] }).labelNames ?? [])
    const names =
      metric instanceof Histogram
        ? ['_bucket', '_sum', '_count'].map((suffix) => `${metric.name}${suffix}`)
        : [metric.name]
    const bucketLabels = metric instanceof Histogram ? new Set([...labels, 'le']) : labels
    for (const name of names) into.set(name, name.endsWith('_bucket') ? bucketLabels : labels)
  }
}

let asMetrics: Metrics | undefined
const known: Known = new Map()

beforeAll(async () => {
  asMetrics = createMetrics(await makeDeps(), { defaultMetrics: false })
  namesOf(asMetrics.registry, known)
  const rs = new Registry()
  verifierMetrics(rs)
  feedMetrics({ registry: rs }, { live: () => true, lag: () => 0 }).detach()
  namesOf(rs, known)
})
afterAll(() => asMetrics?.close())

const document = parse(readFileSync(FILE, 'utf8')) as { groups?: { name?: unknown; rules?: Rule[] }[] }
const rules: Rule[] = document.groups?.flatMap((group) => group.rules ?? []) ?? []
const named = rules.map((rule) => [String(rule.alert), rule] as const)

describe('deploy/prometheus/alerts.yml', () => {
  it('is one rule group, tokensmith, of alerting rules with distinct names', () => {
    expect(document.groups?.map((group) => group.name)).toEqual(['tokensmith'])
    expect(rules.length).toBeGreaterThanOrEqual(10)
    const names = rules.map((rule) => rule.alert)
    expect(new Set(names).size).toBe(names.length)
    for (const name of names) expect(name).toMatch(/^Tokensmith[A-Z][A-Za-z]+$/)
  })

  it('knows the metrics it checks against', () => {
    expect(known.has('tokensmith_tokens_issued_total')).toBe(true)
    expect(known.has('tokensmith_http_request_duration_seconds_bucket')).toBe(true)
    expect(known.get('tokensmith_rs_requests_total')).toEqual(new Set(['outcome', 'reason']))
    expect(known.has('tokensmith_revocation_feed_lag_seconds')).toBe(true)
    expect(parseExpr('sum by (a) (rate(x_total{b="c"}[5m] offset 1d)) > 2 * y and z == 0')).toEqual({
      metrics: ['x_total', 'y', 'z'],
      matchers: [{ metric: 'x_total', label: 'b', op: '=', value: 'c' }],
      grouping: ['a'],
      durations: ['5m', '1d'],
      functions: ['sum', 'rate'],
    })
  })

  it.each(named)('%s has expr, for, severity, summary, description and a runbook hint', (name, rule) => {
    expect(Object.keys(rule).sort()).toEqual(['alert', 'annotations', 'expr', 'for', 'labels'])
    expect(typeof rule.expr).toBe('string')
    expect(isDuration(String(rule.for))).toBe(true)
    expect(['warning', 'critical']).toContain(rule.labels?.severity)
    for (const field of ['summary', 'description', 'runbook']) {
      expect(typeof rule.annotations?.[field]).toBe('string')
      expect(String(rule.annotations?.[field]).length).toBeGreaterThan(10)
    }
    expect(rule.annotations?.runbook).toContain(`README.md: Alert rules (${name})`)
    // Go templates: every {{ opens and closes.
    for (const text of Object.values(rule.annotations ?? {})) {
      expect(String(text).split('{{').length).toBe(String(text).split('}}').length)
    }
  })

  it.each(named)('%s names only metrics, labels and values that exist', (_name, rule) => {
    const expr = String(rule.expr)
    expect(balanced(expr)).toBe(true)
    const parsed = parseExpr(expr)
    expect(parsed.metrics.length).toBeGreaterThan(0)
    for (const metric of parsed.metrics) expect([...known.keys()]).toContain(metric)
    for (const fn of parsed.functions) expect([...FUNCTIONS]).toContain(fn)
    for (const duration of parsed.durations) expect(isDuration(duration)).toBe(true)
    for (const { metric, label, op, value } of parsed.matchers) {
      expect(metric).toBeDefined()
      expect([...(known.get(metric ?? '') ?? [])]).toContain(label)
      const values = LABEL_VALUES[metric ?? '']?.[label]
      if (values && op === '=') expect(values).toContain(value)
    }
    // Grouping labels are labels of the metrics involved, or the target's.
    const labels = new Set([...TARGET_LABELS, ...parsed.metrics.flatMap((metric) => [...(known.get(metric) ?? [])])])
    for (const label of parsed.grouping) expect([...labels]).toContain(label)
  })

  it('covers what issue 12 asks for', () => {
    const exprs = rules.map((rule) => String(rule.expr)).join('\n')
    for (const metric of [
      'tokensmith_tokens_issued_total',
      'tokensmith_auth_failures_total',
      'tokensmith_remote_keys_fetches_total',
      'tokensmith_rs_jwks_fetches_total',
      'tokensmith_signing_key_age_seconds',
      'tokensmith_denylist_operations_total',
      'tokensmith_rs_requests_total',
      'tokensmith_revocation_feed_up',
      'tokensmith_ready',
    ]) {
      expect(exprs).toContain(metric)
    }
  })

  it('the checker catches what it should', () => {
    expect(balanced('sum(rate(x[5m])')).toBe(false)
    expect(balanced('a{b="("}')).toBe(true)
    expect(isDuration('5m')).toBe(true)
    expect(isDuration('1h30m')).toBe(true)
    expect(isDuration('5 m')).toBe(false)
    expect(isDuration('m5')).toBe(false)
    expect(parseExpr('tokensmith_nope_total > 0').metrics).toEqual(['tokensmith_nope_total'])
    expect(known.has('tokensmith_nope_total')).toBe(false)
  })
})
