/**
 * Rendering the deploy/k8s overlays and reading what each rendered container would run with: its
 * args, its environment as the kubelet would build it (ConfigMap envFrom, Secret and fieldRef
 * values, `$(VAR)` expansion) and its probes, ports and mounts. Shared by the manifest spec and
 * the manifest-driven local run.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { K8sObject } from './k8s-schema';
import { kustomize } from './kubectl';

export const REPO = path.resolve(__dirname, '../..');
export const K8S = path.join(REPO, 'deploy/k8s');

export function parseStream(yamlText: string): K8sObject[] {
  return parseAllDocuments(yamlText)
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`rendered YAML does not parse: ${d.errors[0].message}`);
      return d.toJSON() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}

/** Renders deploy/k8s/overlays/NAME. */
export function renderOverlay(name: string): K8sObject[] {
  return parseStream(kustomize(path.join(K8S, 'overlays', name)));
}

/** Renders the base with the given components (for components no overlay includes). */
export function renderComposition(components: string[]): K8sObject[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'starq-kustomize-'));
  try {
    const rel = (p: string) => path.relative(dir, path.join(K8S, p));
    fs.writeFileSync(
      path.join(dir, 'kustomization.yaml'),
      ['apiVersion: kustomize.config.k8s.io/v1beta1', 'kind: Kustomization', 'namespace: starq', 'resources:', `  - ${rel('base')}`, 'components:', ...components.map((c) => `  - ${rel(`components/${c}`)}`), ''].join('\n'),
    );
    return parseStream(kustomize(dir, { loadRestrictionsNone: true }));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { configMapKeyRef?: { name: string; key: string; optional?: boolean }; secretKeyRef?: { name: string; key: string; optional?: boolean }; fieldRef?: { fieldPath: string } };
}
export interface Probe {
  httpGet?: { path: string; port: number | string };
  tcpSocket?: { port: number | string };
  exec?: { command: string[] };
  initialDelaySeconds?: number;
  periodSeconds?: number;
  failureThreshold?: number;
  timeoutSeconds?: number;
}
export interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  ports?: { name?: string; containerPort: number }[];
  startupProbe?: Probe;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  lifecycle?: { preStop?: { sleep?: { seconds: number }; exec?: unknown; httpGet?: unknown } };
  resources?: { requests?: Record<string, string | number>; limits?: Record<string, string | number> };
  securityContext?: { readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean; capabilities?: { drop?: string[] } };
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}
export interface PodSpec {
  containers: Container[];
  terminationGracePeriodSeconds?: number;
  runtimeClassName?: string;
  nodeSelector?: Record<string, string>;
  tolerations?: { key?: string }[];
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
  volumes?: { name: string; persistentVolumeClaim?: { claimName: string; readOnly?: boolean }; emptyDir?: unknown }[];
}
export interface Workload extends K8sObject {
  spec: { replicas?: number; selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> }; spec: PodSpec } };
}

export const WORKLOAD_KINDS = ['Deployment', 'StatefulSet'];

export function workloads(objs: K8sObject[]): Workload[] {
  return objs.filter((o) => WORKLOAD_KINDS.includes(o.kind)) as Workload[];
}

export function find(objs: K8sObject[], kind: string, name: string): K8sObject {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind}/${name} in the rendered objects`);
  return o;
}

/** A ConfigMap by the name a workload uses (generated names carry a hash suffix). */
function configMapData(objs: K8sObject[], name: string): Record<string, string> {
  const cm = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === name);
  if (!cm) throw new Error(`ConfigMap ${name} is referenced but not rendered`);
  return (cm.data as Record<string, string>) ?? {};
}

function secretData(objs: K8sObject[], name: string, fallback: Record<string, Record<string, string>>): Record<string, string> | null {
  const s = objs.find((o) => o.kind === 'Secret' && o.metadata.name === name);
  if (s) {
    const data = (s.data as Record<string, string>) ?? {};
    return Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
  }
  return fallback[name] ?? null;
}

/**
 * The environment the kubelet would give `c` in pod `podName` (IP `podIp`): envFrom first, then env in order
 * (later wins), `$(VAR)` expanded from variables defined before it (`$$` escapes), as Kubernetes does.
 * Secrets not in the render (created by the operator) come from `secrets`.
 */
export function containerEnv(objs: K8sObject[], c: Container, podName: string, secrets: Record<string, Record<string, string>> = {}, podIp = '10.0.0.5'): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of c.envFrom ?? []) {
    if (from.configMapRef) Object.assign(env, configMapData(objs, from.configMapRef.name));
    if (from.secretRef) Object.assign(env, secretData(objs, from.secretRef.name, secrets) ?? {});
  }
  const expand = (v: string) => v.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name: string | undefined) => (m === '$$' ? '$' : name !== undefined && name in env ? env[name] : m));
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env[e.name] = expand(e.value);
    else if (e.valueFrom?.configMapKeyRef) {
      const r = e.valueFrom.configMapKeyRef;
      const v = configMapData(objs, r.name)[r.key];
      if (v === undefined && !r.optional) throw new Error(`${c.name}: ConfigMap ${r.name} has no key ${r.key}`);
      if (v !== undefined) env[e.name] = v;
    } else if (e.valueFrom?.secretKeyRef) {
      const r = e.valueFrom.secretKeyRef;
      const data = secretData(objs, r.name, secrets);
      const v = data?.[r.key];
      if (v === undefined && !r.optional) throw new Error(`${c.name}: Secret ${r.name} key ${r.key} is required but not provided`);
      if (v !== undefined) env[e.name] = v;
    } else if (e.valueFrom?.fieldRef) {
      const field = e.valueFrom.fieldRef.fieldPath;
      if (field === 'metadata.name') env[e.name] = podName;
      else if (field === 'status.podIP') env[e.name] = podIp;
      else throw new Error(`${c.name}: fieldRef ${field} is not simulated`);
    }
  }
  return env;
}

/** The container port a probe or Service names (a number, or a port name of the container). */
export function resolvePort(c: Container, port: number | string): number {
  if (typeof port === 'number') return port;
  const p = (c.ports ?? []).find((x) => x.name === port);
  if (!p) throw new Error(`${c.name}: no container port named ${port}`);
  return p.containerPort;
}

/** Kubernetes quantity → number (bytes for memory, cores for cpu). */
export function quantity(q: string | number): number {
  if (typeof q === 'number') return q;
  const m = /^([0-9.]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(q);
  if (!m) throw new Error(`cannot read quantity ${q}`);
  const mult: Record<string, number> = { '': 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4 };
  return Number(m[1]) * mult[m[2] ?? ''];
}
