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

/**
 * Phase 1 (context encoding) of a plan in a mode; no lm_head rows (phase 1 keeps only K/V).
 *   global: one causal forward of the N context tokens;
 *   star:   every block k runs its own causal forward of anchor ++ block (a'_k + |B_k| tokens) — the
 *           anchor is recomputed on every host that needs it, as in the paper;
 *   ring:   every token once through the linear layers, and exactly the causal pairs of the whole
 *           context (ring attention is exact), i.e. the same FLOPs as global.
 */
export function phase1Flops(c: ModelConfig, mode: Mode, plan: StarPlan): FlopCount {
  const N = plan.contextLength;
  if (mode === 'star') {
    let tokens = 0;
    let pairs = 0;
    for (const b of plan.blocks) {
      tokens += b.phase1.length;
      pairs += causalPairs(0, b.phase1.length);
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
