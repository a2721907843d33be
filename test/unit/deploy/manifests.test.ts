/**
 * The Dockerfile and deploy/kubernetes agree with the code: probe paths are the app's routes, ports
 * are PORT and METRICS_PORT, every variable they set is a configuration variable and the
 * configuration they make loads, the files the server reads sit on read-only Secret volumes without
 * subPath, the pod and the image run as a numeric non-root user on a read-only root filesystem, and
 * the grace period outlasts the server's drain.
 *
 * Each check is a function from parsed files to problems; the real files have none, and every check
 * is also run on a broken copy to show that it can fail.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, posix, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { parseAllDocuments } from 'yaml'

import { createApp } from '../../../src/app.js'
import { CONFIG_VARIABLES, ConfigError, isLoopbackHost, loadConfig } from '../../../src/config.js'
import { SHUTDOWN_DRAIN_MS } from '../../../src/serve.js'
import { makeDeps } from '../../helpers/make-deps.js'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
const K8S = join(root, 'deploy/kubernetes')
/** Example files, deliberately left out of kustomization.yaml. */
const EXAMPLE = /\.example\.ya?ml$/

// biome-ignore lint/suspicious/noExplicitAny: parsed YAML
type Doc = any
type Manifests = { files: Map<string, Doc[]> }

/**
 * Kubernetes reads manifests as YAML 1.1 (sigs.k8s.io/yaml), where `0440` is octal (288); the yaml
 * package's default, YAML 1.2, would read it as decimal 440.
 */
function loadManifests(): Manifests {
  const files = new Map<string, Doc[]>()
  for (const name of readdirSync(K8S).filter((file) => /\.ya?ml$/.test(file))) {
    const docs = parseAllDocuments(readFileSync(join(K8S, name), 'utf8'), { version: '1.1' })
    for (const doc of docs) if (doc.errors.length > 0) throw new Error(`${name}: ${doc.errors[0]?.message}`)
    files.set(
      name,
      docs.map((doc) => doc.toJS()),
    )
  }
  return { files }
}

const kinds = (m: Manifests, kind: string, includeExamples = false): Doc[] =>
  [...m.files.entries()]
    .filter(([name]) => includeExamples || !EXAMPLE.test(name))
    .flatMap(([, docs]) => docs)
    .filter((doc) => doc?.kind === kind)

const one = (m: Manifests, kind: string): Doc => {
  const found = kinds(m, kind)
  if (found.length !== 1) throw new Error(`expected one ${kind}, found ${found.length}`)
  return found[0]
}

const podSpec = (m: Manifests) => one(m, 'Deployment').spec.template.spec
const container = (m: Manifests) => podSpec(m).containers[0]

/** The container's environment as the server sees it: the image's ENV, then envFrom, then env. */
function containerEnv(m: Manifests, image: Dockerfile): Record<string, string> {
  const env: Record<string, string> = { ...runtimeStage(image).env }
  for (const source of container(m).envFrom ?? []) {
    const map = kinds(m, 'ConfigMap').find((doc) => doc.metadata.name === source.configMapRef?.name)
    if (!map) throw new Error(`envFrom names ConfigMap ${source.configMapRef?.name}, which is not in deploy/kubernetes`)
    Object.assign(env, map.data)
  }
  // A value from a Secret: any well-formed placeholder, as the Secret would hold one.
  const placeholders: Record<string, string> = { REDIS_URL: 'redis://redis.example:6379/0' }
  for (const entry of container(m).env ?? []) {
    env[entry.name] = entry.value ?? placeholders[entry.name] ?? 'x'.repeat(32)
  }
  return env
}

// ---- Dockerfile ----

interface Instruction {
  op: string
  args: string
}
interface Stage {
  from: string
  name?: string
  instructions: Instruction[]
  env: Record<string, string>
}
interface Dockerfile {
  args: Record<string, string>
  stages: Stage[]
}

/** Enough of the Dockerfile syntax for these checks: comments, line continuations, ARG, FROM, ENV. */
function parseDockerfile(text: string): Dockerfile {
  const lines = text
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('#'))
    .join('\n')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
  const image: Dockerfile = { args: {}, stages: [] }
  for (const line of lines) {
    const [, op = '', args = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? []
    const instruction = { op: op.toUpperCase(), args: args.trim() }
    if (instruction.op === 'FROM') {
      const [from = '', as, name] = instruction.args.split(/\s+/)
      image.stages.push({ from, name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [], env: {} })
      continue
    }
    const stage = image.stages.at(-1)
    if (!stage) {
      if (instruction.op === 'ARG') {
        const [key = '', value = ''] = instruction.args.split('=')
        image.args[key] = value
      }
      continue
    }
    stage.instructions.push(instruction)
    if (instruction.op === 'ENV') {
      for (const pair of instruction.args.split(/\s+/)) {
        const equals = pair.indexOf('=')
        if (equals > 0) stage.env[pair.slice(0, equals)] = pair.slice(equals + 1)
      }
    }
  }
  return image
}

const runtimeStage = (image: Dockerfile): Stage => {
  const stage = image.stages.at(-1)
  if (!stage) throw new Error('the Dockerfile has no FROM')
  return stage
}
const last = (stage: Stage, op: string) => stage.instructions.filter((i) => i.op === op).at(-1)

const loadDockerfile = () => parseDockerfile(readFileSync(join(root, 'Dockerfile'), 'utf8'))

// ---- What the code says ----

/** The bound src/serve.ts puts on the drain after SIGTERM. */
const drainSeconds = (): number => SHUTDOWN_DRAIN_MS / 1000

/** Whether the configuration hides the variable's value in its errors: it may hold a password. */
function isSecretVariable(name: string): boolean {
  try {
    loadConfig({ [name]: '\u0001' })
  } catch (error) {
    if (error instanceof ConfigError) return error.problems.some((p) => p.startsWith(`${name}=(hidden)`))
  }
  return false
}

// ---- The checks: each returns what is wrong ----

type Check = (m: Manifests, image: Dockerfile) => string[]

const problemsIf = (condition: boolean, problem: string) => (condition ? [problem] : [])

async function routeStatus(path: string): Promise<number> {
  const app = createApp(await makeDeps())
  return (await app.request(path)).status
}

/** Ports: the container's http port is PORT, metrics is METRICS_PORT, probes and the Service use them. */
const checkPorts: Check = (m, image) => {
  const env = containerEnv(m, image)
  const config = loadConfig(env)
  const ports = new Map<string, number>(container(m).ports.map((p: Doc) => [p.name, p.containerPort]))
  const problems = [
    ...problemsIf(ports.get('http') !== config.port, `container port http is not PORT ${config.port}`),
    ...problemsIf(
      ports.get('metrics') !== config.metricsPort,
      `container port metrics is not METRICS_PORT ${config.metricsPort}`,
    ),
  ]
  const resolvePort = (port: unknown) => (typeof port === 'string' ? ports.get(port) : port)
  for (const probe of ['livenessProbe', 'readinessProbe']) {
    const port = resolvePort(container(m)[probe]?.httpGet?.port)
    if (port !== config.port) problems.push(`${probe} asks port ${port}, not PORT ${config.port}`)
  }
  for (const servicePort of one(m, 'Service').spec.ports) {
    if (resolvePort(servicePort.targetPort) === undefined)
      problems.push(`Service port ${servicePort.name} targets ${servicePort.targetPort}, no container port`)
  }
  const exposed = (last(runtimeStage(image), 'EXPOSE')?.args ?? '').split(/\s+/).map((p) => Number(p.split('/')[0]))
  const imagePort = loadConfig(runtimeStage(image).env).port
  if (!exposed.includes(imagePort)) problems.push(`the Dockerfile does not EXPOSE its PORT ${imagePort}`)
  return problems
}

/** Every variable named in the Dockerfile and the manifests is a configuration variable, and they load. */
const checkVariables: Check = (m, image) => {
  const named = [
    ...Object.keys(runtimeStage(image).env),
    ...kinds(m, 'ConfigMap').flatMap((map) => Object.keys(map.data ?? {})),
    ...(container(m).env ?? []).map((entry: Doc) => entry.name),
  ]
  const problems = named.filter((name) => !CONFIG_VARIABLES.includes(name)).map((n) => `${n} is not a variable`)
  try {
    const config = loadConfig(containerEnv(m, image))
    if (isLoopbackHost(config.host))
      problems.push(`HOST ${config.host} is loopback: nothing outside the pod reaches it`)
    if (config.workers !== 1) problems.push(`WORKERS is ${config.workers}: one process per pod, scale with replicas`)
    if (!config.issuer.startsWith('https://')) problems.push('ISSUER is not https')
    // Any one Redis topology (README, Configuration); without one each replica keeps its own denylist.
    const env = containerEnv(m, image)
    if (!config.redisUrl && !env.REDIS_SENTINELS && !env.REDIS_CLUSTER_NODES)
      problems.push('no Redis: each replica would keep its own denylist')
  } catch (error) {
    problems.push(`the configuration does not load: ${(error as Error).message}`)
  }
  for (const map of kinds(m, 'ConfigMap')) {
    for (const name of Object.keys(map.data ?? {})) {
      if (isSecretVariable(name)) problems.push(`${name} holds a secret and is in ConfigMap ${map.metadata.name}`)
    }
  }
  for (const entry of container(m).env ?? []) {
    if (isSecretVariable(entry.name) && !entry.valueFrom?.secretKeyRef)
      problems.push(`${entry.name} holds a secret and is not from a Secret`)
  }
  // The image defaults agree with the ConfigMap, so that `docker run` mounts at the same paths.
  const image_ = runtimeStage(image).env
  for (const name of ['KEYS_DIR', 'CLIENTS_FILE', 'TRUST_FILE', 'PORT', 'HOST', 'WORKERS']) {
    const inMap = kinds(m, 'ConfigMap').find((map) => map.data?.[name] !== undefined)?.data[name]
    if (image_[name] === undefined) problems.push(`the Dockerfile sets no default ${name}`)
    else if (inMap !== undefined && inMap !== image_[name]) problems.push(`${name}: ConfigMap and Dockerfile differ`)
  }
  return problems
}

/** KEYS_DIR, CLIENTS_FILE and TRUST_FILE are on read-only Secret volumes, 0440, without subPath. */
const checkMounts: Check = (m, image) => {
  const config = loadConfig(containerEnv(m, image))
  const volumes = new Map<string, Doc>(podSpec(m).volumes.map((v: Doc) => [v.name, v]))
  const mounts: Doc[] = container(m).volumeMounts ?? []
  const problems: string[] = []
  const wanted = [
    { variable: 'KEYS_DIR', dir: posix.normalize(config.keysDir) },
    { variable: 'CLIENTS_FILE', dir: posix.dirname(config.clientsFile) },
    { variable: 'TRUST_FILE', dir: posix.dirname(config.trustFile) },
  ]
  for (const { variable, dir } of wanted) {
    const mount = mounts.find((candidate) => posix.normalize(candidate.mountPath) === dir)
    if (!mount) {
      problems.push(`${variable}: nothing is mounted at ${dir}`)
      continue
    }
    const volume = volumes.get(mount.name)
    if (!volume?.secret) problems.push(`${variable}: volume ${mount.name} is not a Secret volume`)
    else if (volume.secret.defaultMode !== 0o440) problems.push(`${variable}: defaultMode is not 0440`)
    if (mount.readOnly !== true) problems.push(`${variable}: mount is not readOnly`)
    if (mount.subPath !== undefined || mount.subPathExpr !== undefined)
      problems.push(`${variable}: subPath mounts never receive Secret updates`)
  }
  for (const mount of mounts) {
    if (mount.subPath !== undefined || mount.subPathExpr !== undefined) problems.push(`${mount.name}: subPath`)
  }
  // Nothing the server is told to read sits in the image's (read-only, root-owned) app directory.
  const workdir = last(runtimeStage(image), 'WORKDIR')?.args ?? '/'
  for (const { variable, dir } of wanted) {
    if (!posix.isAbsolute(dir) || `${dir}/`.startsWith(`${workdir}/`))
      problems.push(`${variable}: ${dir} is not an absolute path outside ${workdir}`)
  }
  return problems
}

const POD_SECURITY = { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000 }
const CONTAINER_SECURITY = {
  runAsNonRoot: true,
  runAsUser: 1000,
  runAsGroup: 1000,
  readOnlyRootFilesystem: true,
  allowPrivilegeEscalation: false,
}

/** https://kubernetes.io/docs/concepts/security/pod-security-standards/ (restricted), and more. */
const checkSecurity: Check = (m) => {
  const pod = podSpec(m)
  const problems: string[] = []
  for (const [field, value] of Object.entries(POD_SECURITY)) {
    if (pod.securityContext?.[field] !== value) problems.push(`pod securityContext.${field} is not ${value}`)
  }
  if (pod.securityContext?.seccompProfile?.type !== 'RuntimeDefault') problems.push('pod seccompProfile')
  if (pod.automountServiceAccountToken !== false) problems.push('automountServiceAccountToken is not false')
  for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
    for (const [field, value] of Object.entries(CONTAINER_SECURITY)) {
      if (c.securityContext?.[field] !== value) problems.push(`${c.name} securityContext.${field} is not ${value}`)
    }
    if (JSON.stringify(c.securityContext?.capabilities) !== JSON.stringify({ drop: ['ALL'] }))
      problems.push(`${c.name}: capabilities are not drop ALL`)
    if (c.securityContext?.seccompProfile?.type !== 'RuntimeDefault') problems.push(`${c.name}: seccompProfile`)
    if (!c.resources?.requests?.cpu || !c.resources?.requests?.memory || !c.resources?.limits?.memory)
      problems.push(`${c.name}: resources`)
  }
  return problems
}

/** Probes, replicas, grace period, labels and selectors. */
const checkWorkload: Check = (m) => {
  const deployment = one(m, 'Deployment')
  const labels = deployment.spec.template.metadata.labels ?? {}
  const selects = (selector: Record<string, string> | undefined) =>
    selector !== undefined &&
    Object.keys(selector).length > 0 &&
    Object.entries(selector).every(([key, value]) => labels[key] === value)
  const c = container(m)
  const preStop = c.lifecycle?.preStop
  const preStopSeconds = preStop?.sleep?.seconds ?? Number(preStop?.exec?.command?.[1] ?? 0)
  const grace = podSpec(m).terminationGracePeriodSeconds ?? 30
  return [
    ...problemsIf(c.readinessProbe?.httpGet?.path !== '/readyz', 'readinessProbe is not GET /readyz'),
    ...problemsIf(c.livenessProbe?.httpGet?.path !== '/healthz', 'livenessProbe is not GET /healthz'),
    ...problemsIf(deployment.spec.replicas !== 2, 'replicas is not 2'),
    ...problemsIf(
      !(grace > preStopSeconds + drainSeconds()),
      `terminationGracePeriodSeconds ${grace} is not above preStop ${preStopSeconds} s + drain ${drainSeconds()} s`,
    ),
    ...problemsIf(!selects(deployment.spec.selector?.matchLabels), 'the Deployment selector misses its pods'),
    ...problemsIf(!selects(one(m, 'Service').spec.selector), 'the Service selector misses the pods'),
    ...problemsIf(one(m, 'Service').spec.type !== 'ClusterIP', 'the Service is not ClusterIP'),
    ...problemsIf(!selects(one(m, 'PodDisruptionBudget').spec.selector?.matchLabels), 'the PDB misses the pods'),
    ...problemsIf(one(m, 'PodDisruptionBudget').spec.minAvailable !== 1, 'the PDB minAvailable is not 1'),
    ...kinds(m, 'NetworkPolicy')
      .filter((policy) => !selects(policy.spec.podSelector?.matchLabels))
      .map(() => 'a NetworkPolicy misses the pods'),
    ...problemsIf(
      !(podSpec(m).topologySpreadConstraints ?? []).some(
        (t: Doc) => t.topologyKey === 'kubernetes.io/hostname' && selects(t.labelSelector?.matchLabels),
      ) && !podSpec(m).affinity?.podAntiAffinity,
      'pods are not spread across nodes',
    ),
  ]
}

/** kustomization.yaml lists every manifest but the examples, and only files that exist. */
const checkKustomization: Check = (m) => {
  const listed: string[] = one(m, 'Kustomization').resources ?? []
  const present = [...m.files.keys()].filter((name) => name !== 'kustomization.yaml')
  return [
    ...present.filter((name) => !EXAMPLE.test(name) && !listed.includes(name)).map((n) => `${n} is not listed`),
    ...listed.filter((name) => EXAMPLE.test(name)).map((n) => `${n} is an example and must not be applied`),
    ...listed.filter((name) => !m.files.has(name)).map((n) => `${n} is listed but does not exist`),
  ]
}

/** The image: numeric non-root user, node as PID 1 on the compiled server, a health check without curl. */
const checkImage: Check = (_m, image) => {
  const runtime = runtimeStage(image)
  const problems: string[] = []
  const user = last(runtime, 'USER')?.args ?? ''
  const [uid, gid] = user.split(':')
  if (!/^[0-9]+$/.test(uid ?? '') || Number(uid) === 0) problems.push(`USER ${user} is not a numeric non-root uid`)
  if (gid !== undefined && (!/^[0-9]+$/.test(gid) || Number(gid) === 0)) problems.push(`USER group ${gid}`)
  let cmd: unknown
  try {
    cmd = JSON.parse(last(runtime, 'CMD')?.args ?? '')
  } catch {
    problems.push('CMD is not in exec form')
  }
  if (JSON.stringify(cmd) !== JSON.stringify(['node', 'dist/main.js'])) problems.push('CMD is not node dist/main.js')
  const healthcheck = last(runtime, 'HEALTHCHECK')?.args ?? ''
  if (!/CMD \["node", "-e", ".*\/healthz/.test(healthcheck)) problems.push('no HEALTHCHECK asking /healthz with node')
  const runs = runtime.instructions.filter((i) => i.op === 'RUN').map((i) => i.args)
  if (runs.some((run) => /npm (start|run)/.test(run))) problems.push('the runtime stage runs npm scripts')
  if (!image.stages.some((stage) => stage.instructions.some((i) => /npm ci --omit=dev/.test(i.args))))
    problems.push('no stage installs production dependencies alone')
  for (const stage of image.stages) {
    const from = stage.from.replace(/^\$\{(\w+)\}$/, (_, arg: string) => image.args[arg] ?? '')
    if (!/^[^:@]+(:[\w.-]+)(@sha256:[0-9a-f]{64})?$/.test(from) || from.endsWith(':latest'))
      problems.push(`FROM ${stage.from} is not pinned to a tag`)
  }
  return problems
}

const CHECKS: Record<string, Check> = {
  ports: checkPorts,
  variables: checkVariables,
  mounts: checkMounts,
  security: checkSecurity,
  workload: checkWorkload,
  kustomization: checkKustomization,
  image: checkImage,
}

describe('deploy/kubernetes and the Dockerfile', () => {
  const manifests = loadManifests()
  const image = loadDockerfile()

  it.each(Object.keys(CHECKS))('%s: agree with the code', (name) => {
    expect(CHECKS[name]!(manifests, image)).toEqual([])
  })

  it('the probe paths are routes of the app: /healthz answers 200, /readyz is not a 404', async () => {
    expect(await routeStatus(container(manifests).livenessProbe.httpGet.path)).toBe(200)
    expect(await routeStatus(container(manifests).readinessProbe.httpGet.path)).not.toBe(404)
    expect(await routeStatus('/no-such-path')).toBe(404)
  })

  it('the secret configuration variables are recognised as such', () => {
    expect(isSecretVariable('REDIS_URL')).toBe(true)
    expect(isSecretVariable('KEYS_PASSPHRASE')).toBe(true)
    expect(isSecretVariable('PORT')).toBe(false)
  })

  /** Breaks a copy of the parsed files and returns the problems `check` finds. */
  const broken = (check: string, change: (m: Manifests, image: Dockerfile) => void): string[] => {
    const m: Manifests = { files: new Map(structuredClone([...manifests.files])) }
    const copy = structuredClone(image)
    change(m, copy)
    return CHECKS[check]!(m, copy)
  }
  const configMap = (m: Manifests) => one(m, 'ConfigMap').data

  it.each<[string, string, (m: Manifests, image: Dockerfile) => void]>([
    [
      'ports',
      'container port other than PORT',
      (m) => {
        container(m).ports[0].containerPort = 8080
      },
    ],
    [
      'ports',
      'PORT other than the container port',
      (m) => {
        configMap(m).PORT = '8080'
      },
    ],
    [
      'ports',
      'probe on the metrics port',
      (m) => {
        container(m).readinessProbe.httpGet.port = 'metrics'
      },
    ],
    [
      'ports',
      'Service targeting a missing port',
      (m) => {
        one(m, 'Service').spec.ports[0].targetPort = 'web'
      },
    ],
    [
      'ports',
      'EXPOSE of another port',
      (_m, i) => {
        last(runtimeStage(i), 'EXPOSE')!.args = '8080'
      },
    ],
    [
      'variables',
      'unknown variable in the ConfigMap',
      (m) => {
        configMap(m).KEY_DIR = '/keys'
      },
    ],
    [
      'variables',
      'unknown variable in the Dockerfile',
      (_m, i) => {
        runtimeStage(i).env.NODE_ENV = 'production'
      },
    ],
    [
      'variables',
      'invalid value',
      (m) => {
        configMap(m).PORT = '0'
      },
    ],
    [
      'variables',
      'loopback HOST',
      (m) => {
        configMap(m).HOST = '127.0.0.1'
      },
    ],
    [
      'variables',
      'several workers',
      (m) => {
        configMap(m).WORKERS = '2'
      },
    ],
    [
      'variables',
      'a secret in the ConfigMap',
      (m) => {
        configMap(m).KEYS_PASSPHRASE = 'x'.repeat(20)
      },
    ],
    [
      'variables',
      'REDIS_URL as a literal',
      (m) => {
        container(m).env[0] = { name: 'REDIS_URL', value: 'redis://r' }
      },
    ],
    [
      'variables',
      'no REDIS_URL',
      (m) => {
        container(m).env.splice(0, 1)
      },
    ],
    [
      'variables',
      'image default differs',
      (_m, i) => {
        runtimeStage(i).env.KEYS_DIR = '/keys'
      },
    ],
    [
      'mounts',
      'KEYS_DIR elsewhere',
      (m) => {
        configMap(m).KEYS_DIR = '/var/run/tokensmith/other'
      },
    ],
    [
      'mounts',
      'CLIENTS_FILE elsewhere',
      (m) => {
        configMap(m).CLIENTS_FILE = '/etc/clients.json'
      },
    ],
    [
      'mounts',
      'TRUST_FILE in the app dir',
      (m) => {
        configMap(m).TRUST_FILE = '/app/trust.json'
      },
    ],
    [
      'mounts',
      'writable mount',
      (m) => {
        container(m).volumeMounts[0].readOnly = false
      },
    ],
    [
      'mounts',
      'subPath mount',
      (m) => {
        container(m).volumeMounts[1].subPath = 'clients.json'
      },
    ],
    [
      'mounts',
      'decimal 440 mode',
      (m) => {
        podSpec(m).volumes[0].secret.defaultMode = 440
      },
    ],
    [
      'mounts',
      'emptyDir',
      (m) => {
        podSpec(m).volumes[0] = { name: 'keys', emptyDir: {} }
      },
    ],
    [
      'security',
      'root user',
      (m) => {
        podSpec(m).securityContext.runAsUser = 0
      },
    ],
    [
      'security',
      'no fsGroup',
      (m) => {
        delete podSpec(m).securityContext.fsGroup
      },
    ],
    [
      'security',
      'writable root fs',
      (m) => {
        container(m).securityContext.readOnlyRootFilesystem = false
      },
    ],
    [
      'security',
      'escalation',
      (m) => {
        container(m).securityContext.allowPrivilegeEscalation = true
      },
    ],
    [
      'security',
      'capabilities kept',
      (m) => {
        container(m).securityContext.capabilities = { drop: ['NET_RAW'] }
      },
    ],
    [
      'security',
      'no seccomp',
      (m) => {
        delete container(m).securityContext.seccompProfile
      },
    ],
    [
      'security',
      'token mounted',
      (m) => {
        delete podSpec(m).automountServiceAccountToken
      },
    ],
    [
      'security',
      'no memory limit',
      (m) => {
        delete container(m).resources.limits.memory
      },
    ],
    [
      'workload',
      'readiness on /healthz',
      (m) => {
        container(m).readinessProbe.httpGet.path = '/healthz'
      },
    ],
    [
      'workload',
      'liveness on /readyz',
      (m) => {
        container(m).livenessProbe.httpGet.path = '/readyz'
      },
    ],
    [
      'workload',
      'one replica',
      (m) => {
        one(m, 'Deployment').spec.replicas = 1
      },
    ],
    [
      'workload',
      'short grace',
      (m) => {
        podSpec(m).terminationGracePeriodSeconds = 15
      },
    ],
    [
      'workload',
      'long preStop',
      (m) => {
        container(m).lifecycle.preStop.exec.command = ['sleep', '25']
      },
    ],
    [
      'workload',
      'Service selector',
      (m) => {
        one(m, 'Service').spec.selector = { app: 'other' }
      },
    ],
    [
      'workload',
      'PDB selector',
      (m) => {
        one(m, 'PodDisruptionBudget').spec.selector.matchLabels = { a: 'b' }
      },
    ],
    [
      'workload',
      'PDB minAvailable 0',
      (m) => {
        one(m, 'PodDisruptionBudget').spec.minAvailable = 0
      },
    ],
    [
      'workload',
      'no spread',
      (m) => {
        delete podSpec(m).topologySpreadConstraints
      },
    ],
    [
      'kustomization',
      'a file left out',
      (m) => {
        one(m, 'Kustomization').resources.pop()
      },
    ],
    [
      'kustomization',
      'the example listed',
      (m) => {
        one(m, 'Kustomization').resources.push(exampleFile())
      },
    ],
    [
      'kustomization',
      'a missing file',
      (m) => {
        one(m, 'Kustomization').resources.push('ingress.yaml')
      },
    ],
    [
      'image',
      'root user',
      (_m, i) => {
        last(runtimeStage(i), 'USER')!.args = 'root'
      },
    ],
    [
      'image',
      'uid 0',
      (_m, i) => {
        last(runtimeStage(i), 'USER')!.args = '0:0'
      },
    ],
    [
      'image',
      'shell-form CMD',
      (_m, i) => {
        last(runtimeStage(i), 'CMD')!.args = 'node dist/main.js'
      },
    ],
    [
      'image',
      'npm start',
      (_m, i) => {
        last(runtimeStage(i), 'CMD')!.args = '["npm", "start"]'
      },
    ],
    [
      'image',
      'no HEALTHCHECK',
      (_m, i) => {
        last(runtimeStage(i), 'HEALTHCHECK')!.op = 'LABEL'
      },
    ],
    [
      'image',
      'unpinned base',
      (_m, i) => {
        i.args.NODE_IMAGE = 'node'
      },
    ],
    [
      'image',
      'latest base',
      (_m, i) => {
        i.args.NODE_IMAGE = 'node:latest'
      },
    ],
  ])('%s: finds %s', (check, _what, change) => {
    expect(broken(check, change)).not.toEqual([])
  })

  const exampleFile = () => [...manifests.files.keys()].find((name) => EXAMPLE.test(name)) ?? 'missing.example.yaml'

  it('keeps the example Redis Secret out of the applied resources', () => {
    expect(exampleFile()).toBe('secret-redis.example.yaml')
    expect(kinds(manifests, 'Secret')).toEqual([])
    const example = kinds(manifests, 'Secret', true)[0]
    const redisRef = container(manifests).env.find((e: Doc) => e.name === 'REDIS_URL').valueFrom.secretKeyRef
    expect(example.metadata.name).toBe(redisRef.name)
    expect(Object.keys(example.stringData)).toContain(redisRef.key)
  })
})
