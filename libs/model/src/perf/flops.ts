/**
 * Analytic FLOP counts of the work each attention mode needs (multiply-add = 2 FLOPs), with the
 * conventions of the bench-256 model card:
 *   linear per token     = 2·L·(h·H·D·2 + 2·h·Hkv·D + 3·h·I)      (q, o, k, v, gate, up, down)
 *   attention per (query, key) pair visible under the causal mask = 4·L·H·D   (QKᵀ and P·V)
 *   lm_head per scored row = 2·h·vocab
 * Norms, RoPE, softmax and SiLU are not counted (O(T·h) or O(pairs·H), not matmuls). These are the
 * *useful* FLOPs of the algorithm: the engine computes whole score tiles and masks the invisible
 * half of a diagonal tile, so it executes somewhat more; achieved GFLOP/s figures divide these
 * counts by wall time, the convention of FLOP-utilization figures elsewhere.
 */
import type { StarPlan } from '@starq/attention';
import type { Mode } from '@starq/attention';
import type { ModelConfig } from '../types';

export function linearFlopsPerToken(c: ModelConfig): number {
  const { hiddenSize: h, numHeads: H, numKvHeads: Hkv, headDim: D, intermediateSize: I, numLayers: L } = c;
  return 2 * L * (h * H * D * 2 + 2 * h * Hkv * D + 3 * h * I);
}

/** FLOPs of one visible (query, key) pair over all layers: QKᵀ and P·V, each 2·D per head. */
export function attentionFlopsPerPair(c: ModelConfig): number {
  return 4 * c.numLayers * c.numHeads * c.headDim;
}

export function lmHeadFlopsPerRow(c: ModelConfig): number {
  return 2 * c.hiddenSize * c.vocabSize;
}

/** Visible (query, key) pairs when `t` new tokens follow `past` cached ones, causally. */
export function causalPairs(past: number, t: number): number {
  // new token i (0-based) sees past + i + 1 keys
  return t * past + (t * (t + 1)) / 2;
}

export interface FlopCount {
  linear: number;
  attention: number;
  lmHead: number;
  total: number;
}

function count(c: ModelConfig, tokens: number, pairs: number, headRows: number): FlopCount {
  const linear = tokens * linearFlopsPerToken(c);
  const attention = pairs * attentionFlopsPerPair(c);
  const lmHead = headRows * lmHeadFlopsPerRow(c);
  return { linear, attention, lmHead, total: linear + attention + lmHead };
}

export interface Phase1FlopOptions {
  /**
   * Star: count the anchor as recomputed with every block k ≥ 1 (anchor ++ block as one causal
   * forward, the paper's cost) instead of once per host. @defaultValue false
   */
  anchorPerBlock?: boolean;
}

/**
 * Phase 1 (context encoding) of a plan in a mode; no lm_head rows (phase 1 keeps only K/V).
 *   global: one causal forward of the N context tokens;
 *   star:   every host that holds a block k ≥ 1 encodes the anchor once (a causal forward of a'
 *           tokens), and every block's |B_k| rows attend causally to (anchor ++ block):
 *           |B_k|·a'_k + |B_k|(|B_k|+1)/2 pairs, a'_k = 0 for block 0 — what LocalHost and the host
 *           actor run. Hosts as in the plan's assignment (a cluster whose hosts take blocks from a
 *           queue encodes one anchor per host that took an anchored block). With `anchorPerBlock`,
 *           each block k ≥ 1 runs its own causal forward of anchor ++ block (a'_k + |B_k| tokens);
 *   ring:   every token once through the linear layers, and exactly the causal pairs of the whole
 *           context (ring attention is exact), i.e. the same FLOPs as global.
 */
export function phase1Flops(c: ModelConfig, mode: Mode, plan: StarPlan, opts: Phase1FlopOptions = {}): FlopCount {
  const N = plan.contextLength;
  if (mode === 'star') {
    let tokens = 0;
    let pairs = 0;
    if (opts.anchorPerBlock) {
      for (const b of plan.blocks) {
        tokens += b.phase1.length;
        pairs += causalPairs(0, b.phase1.length);
      }
      return count(c, tokens, pairs, 0);
    }
    for (const { blocks } of plan.assignments) {
      let anchor = 0; // a' of this host's anchored blocks (the same for every block k ≥ 1)
      for (const k of blocks) {
        const { keepFrom } = plan.blocks[k].phase1;
        const rows = plan.blocks[k].phase1.length - keepFrom;
        anchor = Math.max(anchor, keepFrom);
        tokens += rows;
        pairs += causalPairs(keepFrom, rows);
      }
      tokens += anchor;
      pairs += causalPairs(0, anchor);
    }
    return count(c, tokens, pairs, 0);
  }
  return count(c, N, causalPairs(0, N), 0);
}

/**
 * Phase 2: the M query tokens as one chunk after the N context tokens, then `newTokens − 1` decode
 * steps (the last generated token is not fed back); lm_head on the query's last row and on every
 * decode step. The same in every mode (phase 2 sees every context key in every mode).
 */
export function phase2Flops(c: ModelConfig, contextTokens: number, queryTokens: number, newTokens: number): FlopCount {
  const steps = Math.max(0, newTokens - 1);
  const tokens = queryTokens + steps;
  const pairs = causalPairs(contextTokens, tokens);
  return count(c, tokens, pairs, newTokens > 0 ? 1 + steps : 0);
}
