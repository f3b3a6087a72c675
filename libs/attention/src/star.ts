/**
 * Star Attention — Acharya, Jia, Ginsburg, "Star Attention: Efficient LLM Inference over Long
 * Sequences" (arXiv 2411.17116).
 *
 * §2.1 Phase 1, context encoding: the context is cut into blocks; every block k ≥ 1 is encoded
 *      independently on its host as anchor ++ block (anchor = c[0, a'), at positions 0..a'−1; the
 *      block at its global positions), and only the block's K/V are kept.
 * §2.2 Phase 2, query encoding and token generation: the query actor broadcasts each layer's q to
 *      the hosts; each host answers with the partial softmax (o, lse) of q over its blocks; the
 *      query actor merges them exactly with its own partial (query + generated K/V) — see merge.ts.
 *
 * This file is pure orchestration over the `Host` / `QueryModel` contracts (host.ts); the math of
 * each piece lives in the engine, the merge in merge.ts, the block layout in plan.ts.
 */
import { blockCacheId, type BlockHandle, type Host, type QueryModel } from './host';
import { mergePartials } from './merge';
import type { Partial } from './partial';
import { phase1Positions, phase1Tokens, type StarPlan } from './plan';

/** Where a request's context K/V lives: per host (in host order), the caches of its blocks. */
export interface ContextPlacement {
  host: Host;
  cacheIds: string[];
}

/** Placement of a plan's blocks on hosts (`hosts[i]` serves plan host i). */
export function placement(plan: StarPlan, hosts: Host[], contextKey: string): ContextPlacement[] {
  return plan.assignments.map((a) => ({ host: hosts[a.host], cacheIds: a.blocks.map((k) => blockCacheId(contextKey, k)) }));
}

/**
 * Phase 1: every block encoded on its host (hosts work in parallel; a host takes its blocks in
 * order). Resolves when all blocks are encoded; `onBlock` reports each one.
 */
export async function starPhase1(
  plan: StarPlan,
  contextIds: ArrayLike<number>,
  hosts: Host[],
  contextKey: string,
  onBlock?: (handle: BlockHandle, done: number, total: number) => void,
): Promise<ContextPlacement[]> {
  let done = 0;
  await Promise.all(
    plan.blocks.map(async (b) => {
      const host = hosts[plan.hostOfBlock[b.index]];
      const handle = await host.encodeBlock({
        cacheId: blockCacheId(contextKey, b.index),
        ids: Int32Array.from(phase1Tokens(contextIds, b.phase1)), // (a' + |B_k|)
        positions: phase1Positions(b.phase1), // (a' + |B_k|)
        keepFrom: b.phase1.keepFrom,
      });
      onBlock?.(handle, ++done, plan.numBlocks);
    }),
  );
  return placement(plan, hosts, contextKey);
}

/**
 * Phase 2: run new rows (the query chunk, or one generated token) through the model with the
 * distributed softmax, returning logits of the last row (or of every row with `allRows`).
 *
 * Per layer: q from the query actor → broadcast to hosts → one partial per host + the query
 * actor's own partial → exact merge (partials in host order, own last) → post (fused with the
 * next layer's q when the query model offers `postQueryLayer`).
 */
export function starStep(qm: QueryModel, context: ContextPlacement[], opts: { allRows?: boolean } = {}) {
  return async (ids: Int32Array, positions: Int32Array): Promise<Float32Array> => {
    const L = qm.numLayers;
    let x = await qm.embed(ids); // (T, hidden)
    let { q, own } = await qm.queryLayer(0, x, positions); // q (H, T, D)
    for (let l = 0; l < L; l++) {
      const remote: Partial[] = await Promise.all(context.map((c) => c.host.attend({ cacheIds: c.cacheIds, layer: l, q, qpos: positions })));
      const attn = mergePartials([...remote, own]); // (H, T, D)
      if (l + 1 < L && qm.postQueryLayer) {
        ({ x, q, own } = await qm.postQueryLayer(l, x, attn.o, positions)); // post(l) + queryLayer(l+1), one call
      } else {
        x = await qm.post(l, x, attn.o); // (T, hidden)
        if (l + 1 < L) ({ q, own } = await qm.queryLayer(l + 1, x, positions));
      }
    }
    const hidden = x.length / ids.length;
    return qm.head(opts.allRows ? x : x.subarray(x.length - hidden)); // (T|1, vocab)
  };
}
