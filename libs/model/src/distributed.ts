/**
 * A request over hosts and a query model — the same code in-process and on a cluster: phase 1 by
 * the mode's algorithm (Star blocks or the Ring); phase 2 is Star's for every mode (`starStep`,
 * driven for generation by the serving loop, serving/serving-loop.ts).
 */
import { ringPhase1, starPhase1, starStep, type ContextPlacement, type Host, type Mode, type QueryModel, type StarPlan } from '@starq/attention';

export interface DistributedRequest {
  mode: Mode;
  plan: StarPlan;
  contextIds: number[];
  queryIds: number[];
  /** Identity of the encoded context (see libs/protocol context-key). */
  contextKey: string;
}

/** Phase 1 by the mode's algorithm; resolves to where the context K/V now live. */
export function encodeContext(req: Omit<DistributedRequest, 'queryIds'>, hosts: Host[], numLayers: number, onProgress?: (done: number, total: number) => void): Promise<ContextPlacement[]> {
  if (hosts.length < req.plan.effectiveHosts) throw new Error(`plan needs ${req.plan.effectiveHosts} hosts, got ${hosts.length}`);
  return req.mode === 'ring'
    ? ringPhase1(req.plan, req.contextIds, hosts, req.contextKey, numLayers, onProgress)
    : starPhase1(req.plan, req.contextIds, hosts, req.contextKey, (_h, done, total) => onProgress?.(done, total));
}

/**
 * Teacher-forced logits of every query row (M, vocab) after phase 1 — for fidelity evaluation.
 * `cacheId` names an empty own cache of `qm`.
 */
export async function queryLogitsOnHosts(req: DistributedRequest, hosts: Host[], qm: QueryModel, cacheId: string): Promise<Float32Array> {
  const placement = await encodeContext(req, hosts, qm.numLayers);
  const N = req.plan.contextLength;
  const [logits] = await starStep(qm, [{ context: placement, cacheId, ids: Int32Array.from(req.queryIds), positions: Int32Array.from(req.queryIds, (_, i) => N + i), logits: 'all' }]);
  return logits!;
}
