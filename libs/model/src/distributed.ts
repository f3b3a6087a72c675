/**
 * One generation request over hosts and a query actor — the same code in-process and on a
 * cluster: phase 1 by the mode's algorithm (Star blocks or the Ring), then Star's phase 2 with
 * sampling, stop rules and timings from `decodeLoop`.
 */
import { ringPhase1, starPhase1, starStep, type ContextPlacement, type Host, type Mode, type QueryModel, type StarPlan } from '@starq/attention';
import { decodeLoop, validateGenerateOptions, type GenerateOptions, type GenerationResult } from './generate';

export interface DistributedRequest {
  mode: Mode;
  plan: StarPlan;
  contextIds: number[];
  queryIds: number[];
  /** Identity of the encoded context (see libs/protocol context-key). */
  contextKey: string;
  generate: GenerateOptions;
}

/** Phase 1 by the mode's algorithm; resolves to where the context K/V now live. */
export function encodeContext(req: Omit<DistributedRequest, 'generate' | 'queryIds'>, hosts: Host[], numLayers: number, onProgress?: (done: number, total: number) => void): Promise<ContextPlacement[]> {
  if (hosts.length < req.plan.effectiveHosts) throw new Error(`plan needs ${req.plan.effectiveHosts} hosts, got ${hosts.length}`);
  return req.mode === 'ring'
    ? ringPhase1(req.plan, req.contextIds, hosts, req.contextKey, numLayers, onProgress)
    : starPhase1(req.plan, req.contextIds, hosts, req.contextKey, (_h, done, total) => onProgress?.(done, total));
}

/**
 * The whole request. `qm` must be backed by an empty query cache of its own; the context caches
 * stay on the hosts afterwards (the caller releases or keeps them).
 */
export async function generateOnHosts(req: DistributedRequest, hosts: Host[], qm: QueryModel): Promise<GenerationResult & { placement: ContextPlacement[] }> {
  validateGenerateOptions(req.generate);
  const t0 = performance.now();
  const placement = await encodeContext(req, hosts, qm.numLayers, req.generate.onProgress);
  const phase1Ms = performance.now() - t0;
  const r = await decodeLoop(starStep(qm, placement), req.plan.contextLength, req.queryIds, req.generate);
  return { ...r, timings: { phase1Ms, ...r.timings }, placement };
}

/** Teacher-forced logits of every query row (M, vocab) after phase 1 — for fidelity evaluation. */
export async function queryLogitsOnHosts(req: Omit<DistributedRequest, 'generate'>, hosts: Host[], qm: QueryModel): Promise<Float32Array> {
  const placement = await encodeContext(req, hosts, qm.numLayers);
  const N = req.plan.contextLength;
  return starStep(qm, placement, { allRows: true })(Int32Array.from(req.queryIds), Int32Array.from(req.queryIds, (_, i) => N + i));
}
