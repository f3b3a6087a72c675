/**
 * Ring Attention — Liu, Zaharia, Abbeel, "Ring Attention with Blockwise Transformers for
 * Near-Infinite Context" (arXiv 2310.01889), the exact baseline of the Star Attention paper (§4).
 *
 * Phase 1 is layer-synchronous: at each layer every block computes its q/k/v; the K/V blocks then
 * travel around the ring (K steps; at step s block i receives the K/V of block (i − s) mod K) and
 * each block merges the partial of its q over them with the exact LSE merge; then every block
 * runs its post-attention part. Blocks that lie entirely after block i are hidden from it by the
 * causal rule, so they are not sent (exact; half the pairwise work). Each block's K/V stay on its
 * host for phase 2, which is Star's (star.ts `starStep`).
 *
 * Pure orchestration over the `Host` contract (host.ts). In-process the ring "send" is a hand-off
 * by this loop; on a cluster it is a message between hosts.
 */
import { blockCacheId } from './host';
import type { Host } from './host';
import { phase1Positions, phase1Tokens, type StarPlan } from './plan';
import { placement, type ContextPlacement } from './star';

export async function ringPhase1(
  plan: StarPlan,
  contextIds: ArrayLike<number>,
  hosts: Host[],
  contextKey: string,
  numLayers: number,
  onLayer?: (done: number, total: number) => void,
): Promise<ContextPlacement[]> {
  if (plan.anchorSize !== 0) throw new Error('ring attention has no anchor: plan it with anchor size 0');
  const K = plan.numBlocks;
  const units = plan.blocks.map((b) => ({ host: hosts[plan.hostOfBlock[b.index]], cacheId: blockCacheId(contextKey, b.index), block: b }));
  await Promise.all(units.map((u) => u.host.ringStart(u.cacheId, Int32Array.from(phase1Tokens(contextIds, u.block.phase1)), phase1Positions(u.block.phase1))));
  try {
    for (let l = 0; l < numLayers; l++) {
      const kv = await Promise.all(units.map((u) => u.host.ringQkv(u.cacheId, l))); // K/V of every block at layer l
      for (let s = 0; s < K; s++) {
        // Step s: block i attends to the K/V of block (i − s) mod K, skipping blocks after it.
        await Promise.all(
          units.map((u, i) => {
            const src = (i - s + K) % K;
            return src <= i ? u.host.ringAttend(u.cacheId, l, kv[src]) : undefined;
          }),
        );
      }
      await Promise.all(units.map((u) => u.host.ringPost(u.cacheId, l)));
      onLayer?.(l + 1, numLayers);
    }
  } finally {
    await Promise.all(units.map((u) => u.host.ringEnd(u.cacheId)));
  }
  return placement(plan, hosts, contextKey);
}
