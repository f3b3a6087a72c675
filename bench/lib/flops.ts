/**
 * Analytic FLOP counts of a Llama-style forward (multiply-add = 2 FLOPs), the same conventions as
 * /work/shared/models/bench-256/README.md:
 *   linear per token     = 2·L·(h·H·D·2 + 2·h·Hkv·D + 3·h·I)      (q, o, k, v, gate, up, down)
 *   attention per (query, key) pair visible under the causal mask = 4·L·H·D   (QKᵀ and P·V)
 *   lm_head per scored row = 2·h·vocab
 * Norms, RoPE, softmax and SiLU are not counted (they are O(T·h) or O(pairs·H), not matmuls).
 */
import type { ModelConfig } from '@starq/model';
import { attentionFlopsPerPair, causalPairs, linearFlopsPerToken, lmHeadFlopsPerRow } from '@starq/model/perf/flops';

export { attentionFlopsPerPair, causalPairs, linearFlopsPerToken, lmHeadFlopsPerRow };

/** Parameters touched per token by the layer matmuls (= linearFlopsPerToken / 2). */
export function linearParamsPerToken(c: ModelConfig): number {
  return linearFlopsPerToken(c) / 2;
}

export interface FlopBreakdown {
  linear: number;
  attention: number;
  lmHead: number;
  total: number;
}

/** FLOPs of one forward of `t` new tokens after `past` cached ones, with `logitRows` lm_head rows. */
export function forwardFlops(c: ModelConfig, past: number, t: number, logitRows = 1): FlopBreakdown {
  const linear = t * linearFlopsPerToken(c);
  const attention = causalPairs(past, t) * attentionFlopsPerPair(c);
  const lmHead = logitRows * lmHeadFlopsPerRow(c);
  return { linear, attention, lmHead, total: linear + attention + lmHead };
}

/** Per-layer attention FLOPs the engine's own counter uses for one layer: 4·H·D per (row, key slot). */
export function attentionFlopsPerPairPerLayer(c: ModelConfig): number {
  return 4 * c.numHeads * c.headDim;
}
