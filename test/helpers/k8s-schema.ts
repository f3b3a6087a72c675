/**
 * Validation of rendered Kubernetes objects against the schemas shipped by `kubernetes-models`,
 * `@kubernetes-models/keda` and `@kubernetes-models/prometheus-operator` (generated from the
 * Kubernetes OpenAPI document and the KEDA / prometheus-operator CRDs), plus what those validators
 * let through: keys the schema does not define.
 *
 * Unknown keys are found by watching the validator itself: the object is handed to it behind a
 * Proxy that records every property the validator looks up. The generated validators look up every
 * property their schema defines (present or not), and enumerate the keys of objects whose schema
 * is a map (labels, resources, ConfigMap data, KEDA trigger metadata). A key the validator neither
 * looked up nor reached by enumeration is not in the schema.
 */
/* eslint-disable @typescript-eslint/no-var-requires */

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [k: string]: unknown;
}

type ModelClass = { prototype: { validate(this: unknown): void } };

const MODULES: Record<string, string> = {
  v1: 'kubernetes-models/v1',
  'apps/v1': 'kubernetes-models/apps/v1',
  'batch/v1': 'kubernetes-models/batch/v1',
  'policy/v1': 'kubernetes-models/policy/v1',
  'networking.k8s.io/v1': 'kubernetes-models/networking.k8s.io/v1',
  'keda.sh/v1alpha1': '@kubernetes-models/keda/keda.sh/v1alpha1',
  'monitoring.coreos.com/v1': '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1',
};

function modelClass(apiVersion: string, kind: string): ModelClass {
  const mod = MODULES[apiVersion];
  if (!mod) throw new Error(`no schema package for apiVersion ${apiVersion} (kind ${kind}): add it to test/helpers/k8s-schema.ts`);
  const cls = (require(mod) as Record<string, ModelClass | undefined>)[kind];
  if (!cls) throw new Error(`${mod} defines no kind ${kind}`);
  return cls;
}

/** `obj` behind proxies that record looked-up paths (`/a/b`) and enumerated objects (`/a/*`). */
function watched(value: unknown, at: string, seen: Set<string>): unknown {
  if (value === null || typeof value !== 'object') return value;
  return new Proxy(value as object, {
    get(target, key) {
      if (typeof key !== 'string') return Reflect.get(target, key);
      seen.add(`${at}/${key}`);
      return watched(Reflect.get(target, key), `${at}/${key}`, seen);
    },
    has(target, key) {
      if (typeof key === 'string') seen.add(`${at}/${key}`);
      return Reflect.has(target, key);
    },
    ownKeys(target) {
      seen.add(`${at}/*`);
      return Reflect.ownKeys(target);
    },
  });
}

function unknownKeys(value: unknown, at: string, seen: Set<string>, out: string[]): void {
  if (value === null || typeof value !== 'object') return;
  if (Array.isArray(value)) {
    value.forEach((v, i) => unknownKeys(v, `${at}/${i}`, seen, out));
    return;
  }
  const enumerated = seen.has(`${at}/*`);
  for (const [k, v] of Object.entries(value)) {
    const p = `${at}/${k}`;
    if (!enumerated && !seen.has(p)) out.push(p);
    else unknownKeys(v, p, seen, out);
  }
}

/** Schema errors and unknown keys of one object (empty when it is valid). */
export function schemaProblems(obj: K8sObject): string[] {
  const where = `${obj.kind}/${obj.metadata?.name}`;
  let cls: ModelClass;
  try {
    cls = modelClass(obj.apiVersion, obj.kind);
  } catch (e) {
    return [`${where}: ${(e as Error).message}`];
  }
  const seen = new Set<string>();
  const problems: string[] = [];
  try {
    cls.prototype.validate.call(watched(obj, '', seen));
  } catch (e) {
    problems.push(`${where}: ${(e as Error).message}`);
  }
  const unknown: string[] = [];
  unknownKeys(obj, '', seen, unknown);
  for (const u of unknown) problems.push(`${where}: key ${u} is not defined by the ${obj.apiVersion} ${obj.kind} schema`);
  return problems;
}
