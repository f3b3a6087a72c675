/**
 * The manifest-driven local run: deploy/k8s/overlays/cpu-dev (2 host actors, 1 query actor,
 * 1 gateway) rendered with `kubectl kustomize`, and every starq container started as a local
 * process with the command and environment the manifests give it, as the kubelet would:
 *
 * - env: the image's ENV (cpu target), then envFrom/env of the container (ConfigMap, Secret,
 *   fieldRef metadata.name / status.podIP, `$(VAR)` expansion);
 * - what stands in for the cluster (each substitution is explicit below): the local Redis under a
 *   random prefix instead of the redis-dev Deployment, loopback instead of the pod network (every
 *   container port mapped to a free local port, `0.0.0.0` to `127.0.0.1`, the pod IP to
 *   `127.0.0.1`), local directories for the `models` (the small model) and `tmp` volumes;
 * - probes: the startup, then readiness probe of each container, polled on the port and path the
 *   manifest declares;
 * - a job through the gateway's Service port, then the host actors rolled (SIGTERM one at a time,
 *   waiting at most terminationGracePeriodSeconds, a replacement started under the same pod name)
 *   while a 200-token generation runs: the job completes with the tokens of an undisturbed
 *   (in-process) run, every token index arrives once, and each drained process exited 0 within its
 *   grace period;
 * - the query actor and the gateway drained during a generation: the request completes, the open
 *   SSE stream gets every token and the result, the gateway answers /ready and new jobs with 503
 *   meanwhile, both exit 0 within their grace periods.
 *
 * The generation is paced with STARQ_TEST_STEP_DELAY_MS on the query actor (the only variable not
 * from the manifests) so that the roll happens during it on any machine.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { freePort, parseActorConfig, parseLifecycleConfig } from '@starq/cluster';
import { loadConfig } from '@starq/model/config';
import { LocalCluster } from '@starq/model/local/local-cluster';
import { writeRandomCheckpoint } from '@starq/model/synthetic/random-checkpoint';
import { randomTokenIds } from '@starq/testing';
import { parseGatewayConfig } from '../../apps/gateway/src/config';
import { deletePrefix, randomPrefix, REDIS_URL, ROOT, spawnTracked, stopProcess, until, waitExit } from '../helpers/cluster';
import { envAssignments, parseDockerfile, stageChain } from '../helpers/dockerfile';
import { readSse, request, type SseEvent } from '../helpers/gateway';
import { containerEnv, find, renderOverlay, resolvePort, workloads, type Container, type Probe, type Workload } from '../helpers/k8s-render';
import type { K8sObject } from '../helpers/k8s-schema';
import { createRedis } from '@starq/actors';

const STORIES = path.resolve(ROOT, '../shared/models/stories260K');
const N_CTX = 200;
const N_NEW = 200;
/** Pause per phase-2 step: 200 tokens take ≥ 40 s, the roll happens inside that. */
const STEP_DELAY_MS = 200;

interface Pod {
  workload: Workload;
  container: Container;
  name: string;
  /** container port → local port */
  ports: Map<number, number>;
  proc: ChildProcess;
  out: () => string;
}

const prefix = randomPrefix('k8s');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'starq-local-run-'));
let objs: K8sObject[];
let modelDir: string;
let vocab: number;
const pods = new Map<string, Pod>();
let apiKey: string;

/** The cpu target's ENV (what the image gives every container before the manifest's env). */
function imageEnv(): Record<string, string> {
  const df = parseDockerfile(fs.readFileSync(path.join(ROOT, 'deploy/docker/Dockerfile'), 'utf8'));
  return Object.assign({}, ...stageChain(df, 'cpu').filter((s) => s.name === 'cpu').flatMap((s) => s.instructions.filter((i) => i.op === 'ENV').map((i) => envAssignments(i.args))));
}

/** The container's environment with the stand-ins for the cluster applied. */
function localEnv(w: Workload, c: Container, podName: string, ports: Map<number, number>): NodeJS.ProcessEnv {
  const podDir = path.join(work, podName);
  const volumes: Record<string, string> = { models: path.join(work, 'models'), tmp: path.join(podDir, 'tmp') };
  fs.mkdirSync(volumes.tmp, { recursive: true });
  const env: Record<string, string> = { ...imageEnv(), ...containerEnv(objs, c, podName, {}, '127.0.0.1') };
  for (const [k, v0] of Object.entries(env)) {
    const mount = (c.volumeMounts ?? []).find((m) => v0 === m.mountPath || v0.startsWith(`${m.mountPath}/`));
    if (mount) {
      env[k] = volumes[mount.name] + v0.slice(mount.mountPath.length); // a path on a volume
      continue;
    }
    let v = v0.replace(/0\.0\.0\.0/g, '127.0.0.1');
    for (const [cp, lp] of ports) v = v === String(cp) ? String(lp) : v.replace(new RegExp(`:${cp}(?!\\d)`, 'g'), `:${lp}`);
    env[k] = v;
  }
  env.STARQ_REDIS_URL = REDIS_URL; // the Service `redis` → the local Redis
  env.STARQ_PREFIX = prefix; // a cluster of its own on the shared Redis
  if (c.args?.includes('query-actor')) env.STARQ_TEST_STEP_DELAY_MS = String(STEP_DELAY_MS);
  return { ...env, PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: volumes.tmp };
}

async function startPod(w: Workload, c: Container, name: string): Promise<Pod> {
  const ports = new Map<number, number>();
  for (const p of c.ports ?? []) ports.set(p.containerPort, await freePort());
  const env = localEnv(w, c, name, ports);
  // The image's WORKDIR is the repository root; args[0] is `node`.
  expect(c.args![0]).toBe('node');
  const { proc, out } = spawnTracked(c.args!.slice(1), env);
  const pod: Pod = { workload: w, container: c, name, ports, proc, out };
  pods.set(name, pod);
  return pod;
}

async function probeOk(pod: Pod, probe: Probe): Promise<boolean> {
  const port = pod.ports.get(resolvePort(pod.container, probe.httpGet!.port))!;
  try {
    const r = await fetch(`http://127.0.0.1:${port}${probe.httpGet!.path}`, { signal: AbortSignal.timeout((probe.timeoutSeconds ?? 1) * 1000) });
    await r.arrayBuffer();
    return r.status >= 200 && r.status < 400; // the kubelet's success range
  } catch {
    return false;
  }
}

/** Startup probe until it passes (within its period × failure threshold), then readiness. */
async function waitReady(pod: Pod): Promise<void> {
  const c = pod.container;
  const alive = () => {
    if (pod.proc.exitCode !== null || pod.proc.signalCode !== null) throw new Error(`${pod.name} exited (${pod.proc.exitCode ?? pod.proc.signalCode}):\n${pod.out()}`);
  };
  const sp = c.startupProbe!;
  await until(`${pod.name} startup probe ${sp.httpGet!.path}`, async () => (alive(), await probeOk(pod, sp)), Math.min(300, (sp.periodSeconds ?? 10) * (sp.failureThreshold ?? 3)) * 1000, 100);
  await until(`${pod.name} readiness probe ${c.readinessProbe!.httpGet!.path}`, async () => (alive(), await probeOk(pod, c.readinessProbe!)), 120000, 100);
}

/** The gateway's Service port → its pod's local port (Service targetPort resolved like kube-proxy). */
function gatewayUrl(): string {
  const svc = find(objs, 'Service', 'starq-gateway') as K8sObject & { spec: { selector: Record<string, string>; ports: { port: number; targetPort: number | string }[] } };
  const pod = [...pods.values()].find((p) => Object.entries(svc.spec.selector).every(([k, v]) => p.workload.spec.template.metadata.labels[k] === v) && p.proc.exitCode === null);
  if (!pod) throw new Error('no running pod behind Service starq-gateway');
  return `http://127.0.0.1:${pod.ports.get(resolvePort(pod.container, svc.spec.ports[0].targetPort))}`;
}

const grace = (p: Pod) => p.workload.spec.template.spec.terminationGracePeriodSeconds ?? 30;

/** SIGTERM like the kubelet (to PID 1, which tini forwards to node), SIGKILL after the grace period. */
async function terminate(p: Pod): Promise<{ code: number | null; ms: number; withinGrace: boolean }> {
  const t0 = Date.now();
  p.proc.kill('SIGTERM');
  const exited = await waitExit(p.proc, grace(p) * 1000);
  if (!exited) p.proc.kill('SIGKILL');
  await waitExit(p.proc, 5000);
  return { code: p.proc.exitCode, ms: Date.now() - t0, withinGrace: exited };
}

let want: number[];
const ctx = () => randomTokenIds(N_CTX, vocab, 41, 3);
const query = () => randomTokenIds(4, vocab, 42, 3);

beforeAll(async () => {
  objs = renderOverlay('cpu-dev');
  // The model volume the loader Job would fill: the small real model when ../shared has it.
  fs.mkdirSync(path.join(work, 'models'));
  if (fs.existsSync(path.join(STORIES, 'config.json'))) fs.symlinkSync(STORIES, path.join(work, 'models', 'model'));
  else writeRandomCheckpoint(path.join(work, 'models', 'model'), { architecture: 'llama', hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 2, vocab: 128, maxPositions: 2048, dtype: 'F32', tied: true, sharded: false, seed: 1 });
  modelDir = path.join(work, 'models', 'model');
  const cfg = loadConfig(modelDir);
  vocab = cfg.vocabSize;
  // The undisturbed run: the same request in-process (the cluster gives the same tokens, test/cluster.e2e.ts).
  const local = await LocalCluster.start(modelDir, cfg, { hosts: 2, hostThreads: 1, queryThreads: 1 });
  try {
    want = (await local.generate({ mode: 'star', contextIds: ctx(), queryIds: query(), hosts: 2 }, { maxNewTokens: N_NEW, sampling: { temperature: 0, topK: 0, topP: 1, seed: 0 }, stopIds: [], ignoreEos: true })).generatedIds;
  } finally {
    await local.close();
  }
  const secret = objs.find((o) => o.kind === 'Secret' && o.metadata.name === 'starq-secrets')!;
  apiKey = Buffer.from((secret.data as Record<string, string>)['api-keys'], 'base64').toString().split(',')[0];

  const started: Pod[] = [];
  for (const w of workloads(objs)) {
    const c = w.spec.template.spec.containers[0];
    if (!c.args?.[1]?.startsWith('bin/starq')) {
      expect(w.metadata.name).toBe('redis'); // components/redis-dev: the local Redis stands in for it
      continue;
    }
    for (let i = 0; i < (w.spec.replicas ?? 1); i++) started.push(await startPod(w, c, w.kind === 'StatefulSet' ? `${w.metadata.name}-${i}` : `${w.metadata.name}-${i}x`));
  }
  expect(started.map((p) => p.name).sort()).toEqual(['starq-gateway-0x', 'starq-host-actor-0', 'starq-host-actor-1', 'starq-query-actor-0x']);
  await Promise.all(started.map(waitReady));
}, 420000);

afterAll(async () => {
  await Promise.all([...pods.values()].map((p) => stopProcess(p.proc, 10000)));
  const redis = await createRedis(REDIS_URL);
  await deletePrefix(redis, prefix);
  redis.disconnect();
  fs.rmSync(work, { recursive: true, force: true });
}, 120000);

function logs(): string {
  return [...pods.values()].map((p) => `--- ${p.name} (exit ${p.proc.exitCode ?? p.proc.signalCode}) ---\n${p.out()}`).join('\n');
}

async function submit(maxNewTokens: number): Promise<string> {
  const r = await request(gatewayUrl(), 'POST', '/v1/jobs', { key: apiKey, body: { contextIds: ctx(), queryIds: query(), mode: 'star', hosts: 2, maxNewTokens, ignoreEos: true } });
  if (r.status !== 202) throw new Error(`POST /v1/jobs: ${r.status} ${r.text}\n${logs()}`);
  return r.json.id as string;
}

describe('cpu-dev overlay as local processes', () => {
  it('the processes run with the parsed configuration the manifests intend', () => {
    for (const p of pods.values()) {
      const env = localEnv(p.workload, p.container, p.name, p.ports);
      if (p.container.args!.includes('bin/starq-gateway')) expect(parseGatewayConfig(env).port).toBe(p.ports.get(8080));
      else {
        const problems: string[] = [];
        expect(parseLifecycleConfig(env, problems).healthPort).toBe(p.ports.get(9090));
        expect(parseActorConfig(p.container.args!.includes('host-actor') ? 'host' : 'query', env).actorId).toBe(p.name);
      }
    }
  });

  it('rolling every host actor during a 200-token generation loses nothing and changes no token', async () => {
    const id = await submit(N_NEW);
    const tokens: { index: number; id: number }[] = [];
    let firstToken!: () => void;
    const gotToken = new Promise<void>((r) => (firstToken = r));
    const stream = readSse(gatewayUrl(), `/v1/jobs/${id}/events`, apiKey, {
      onEvent: (e: SseEvent) => {
        if (e.name === 'token') {
          tokens.push({ index: e.data.index, id: e.data.id });
          firstToken();
        }
      },
      timeoutMs: 300000,
    });
    stream.catch(() => undefined);
    await gotToken;
    const roll: { pod: string; tokensAtSigterm: number; code: number | null; ms: number; withinGrace: boolean; graceS: number }[] = [];
    for (const name of ['starq-host-actor-0', 'starq-host-actor-1']) {
      const old = pods.get(name)!;
      const tokensAtSigterm = tokens.length;
      const t = await terminate(old);
      roll.push({ pod: name, tokensAtSigterm, ...t, graceS: grace(old) });
      expect(old.out()).toMatch(/drain: started by SIGTERM/);
      const fresh = await startPod(old.workload, old.container, name); // the StatefulSet's replacement
      await waitReady(fresh);
    }
    let events: SseEvent[];
    try {
      events = await stream;
    } catch (e) {
      throw new Error(`stream failed: ${(e as Error).message}\n${logs()}`);
    }
    console.log(`host roll: ${JSON.stringify(roll)}`);
    for (const r of roll) {
      expect(r).toMatchObject({ code: 0, withinGrace: true });
      expect(r.tokensAtSigterm).toBeLessThan(N_NEW); // during the generation
    }
    const result = events.find((e) => e.name === 'result');
    if (!result) throw new Error(`no result event: ${JSON.stringify(events.slice(-3))}\n${logs()}`);
    expect(result.data.status).toBe('completed');
    expect(tokens.map((t) => t.index)).toEqual(Array.from({ length: N_NEW }, (_, i) => i)); // each once, none lost
    expect(tokens.map((t) => t.id)).toEqual(want);
    expect(result.data.result.generatedIds).toEqual(want);
  }, 420000);

  it('the query actor finishes its request and the gateway keeps the open stream before they exit', async () => {
    const n = 30;
    const id = await submit(n);
    const url = gatewayUrl();
    const gw = [...pods.values()].find((p) => p.name === 'starq-gateway-0x')!;
    const qa = [...pods.values()].find((p) => p.name === 'starq-query-actor-0x')!;
    const tokens: number[] = [];
    let firstToken!: () => void;
    const gotToken = new Promise<void>((r) => (firstToken = r));
    const stream = readSse(url, `/v1/jobs/${id}/events`, apiKey, {
      onEvent: (e) => {
        if (e.name === 'token') {
          tokens.push(e.data.index);
          firstToken();
        }
      },
      timeoutMs: 120000,
    });
    stream.catch(() => undefined);
    await gotToken;
    const [q, g] = [terminate(qa), terminate(gw)];
    // While draining: the gateway is not ready and refuses new jobs; the stream goes on.
    await until('gateway /ready to turn 503', async () => (await request(url, 'GET', '/ready')).status === 503, 10000, 50);
    const refused = await request(url, 'POST', '/v1/jobs', { key: apiKey, body: { contextIds: ctx(), queryIds: query(), maxNewTokens: 4 } });
    expect(refused.status).toBe(503);
    expect(refused.json.error.code).toBe('draining');
    const events = await stream;
    expect(events.find((e) => e.name === 'result')?.data.status).toBe('completed');
    expect(tokens).toEqual(Array.from({ length: n }, (_, i) => i));
    const [qr, gr] = await Promise.all([q, g]);
    console.log(`query actor drain: ${JSON.stringify(qr)}; gateway drain: ${JSON.stringify(gr)}`);
    expect(qr).toMatchObject({ code: 0, withinGrace: true });
    expect(gr).toMatchObject({ code: 0, withinGrace: true });
    expect(qa.out()).toMatch(/drain: done/);
    expect(gw.out()).toMatch(/drain: done/);
  }, 300000);
});
