/**
 * Float64 reference of Star Attention (docs/DESIGN.md §2–§4), independent of the ORT path: built only on the
 * float64 `ReferenceModel` pieces (embed / qkv / attend / post / head) and `@starq/attention`
 * (block planning, float64 attention-with-LSE, float64 merge). Tests compare the distributed ORT
 * path (LocalCluster, hosts, workers) against this.
 *
 *   Phase 1 (per block k, independently):
 *     block 0:   c[0, |B_0|)                at positions 0..|B_0|−1
 *     block k≥1: c[0, a') ++ B_k            at positions 0..a'−1 ++ k·b..k·b+|B_k|−1
 *     ordinary causal attention inside that sequence; keep only B_k's K/V (keys after RoPE).
 *   Phase 2 (query actor):
 *     query rows at N..N+M−1 as one chunk; per layer: q/k/v of the new rows, their K/V appended
 *     to the query actor's own cache; one float64 partial (o, lse) per context block (every
 *     context key visible: its position < N), one over the own cache (causal by position);
 *     merged with `mergePartials64`; then post. Generated tokens follow at N+M, … the same way.
 *
 * Global (exact) reference: plain causal attention over c ++ q with a float64 KV cache
 * (`ReferenceModel.step`) — no blocks, no merge. Ring is exact, so its reference is Global.
 *
 * Plus fidelity helpers: KL divergence of softmaxes and top-1 agreement, in float64.
 */
import { attentionPartial64, mergePartials64, phase1Positions, phase1Tokens, planBlocks, type AnyPartial } from '@starq/attention';
import { ReferenceKvCache, ReferenceModel, argmax, concatRows64 } from './reference-forward';

/** The K/V one block keeps after phase 1 (float64, keys after RoPE). */
export interface BlockKv64 {
  index: number; // k
  start: number; // k·b (first context index of the block)
  end: number; // min((k+1)·b, N)
  positions: Int32Array; // (|B_k|) global positions start..end−1
  k: Float64Array[]; // numLayers × (Hkv, |B_k|, D)
  v: Float64Array[]; // numLayers × (Hkv, |B_k|, D)
}

export interface Phase2Options {
  /** Tokens to generate after the query chunk. @defaultValue 0 */
  maxNewTokens?: number;
  /** Only greedy decoding is modelled (argmax, first index on ties). @defaultValue true */
  greedy?: boolean;
  /** Stop (without emitting) when one of these is chosen. @defaultValue [] */
  stopIds?: readonly number[];
}

export interface Phase2Result64 {
  /** Teacher-forced logits of every query row: (M, vocab). */
  queryLogits: Float64Array;
  /** Greedy generated ids (stop id excluded). */
  generatedIds: number[];
  /**
   * Logits each generation step chose from: stepLogits[i] (vocab) produced generatedIds[i]
   * (stepLogits[0] is the last query row). When generation stops on a stop id, the last entry is
   * the logits that chose it.
   */
  stepLogits: Float64Array[];
  finishReason: 'length' | 'stop';
}

/** Rows [from, to) of x (n, T, D) as a new (n, to−from, D). */
function sliceRows64(x: Float64Array, n: number, T: number, D: number, from: number, to: number): Float64Array {
  const len = to - from;
  const y = new Float64Array(n * len * D); // (n, len, D)
  for (let h = 0; h < n; h++) y.set(x.subarray((h * T + from) * D, (h * T + to) * D), h * len * D);
  return y;
}

/**
 * Causal forward of one phase-1 sequence, keeping the K/V of rows ≥ keepFrom per layer.
 * ids/positions (T). Returns per layer k/v (Hkv, T − keepFrom, D).
 */
function encodeSequence64(model: ReferenceModel, ids: number[], positions: ArrayLike<number>, keepFrom: number): { k: Float64Array[]; v: Float64Array[] } {
  const { numLayers: L, numKvHeads: Hkv, headDim: D } = model.config;
  const T = ids.length;
  const ks: Float64Array[] = [];
  const vs: Float64Array[] = [];
  let x = model.embed(ids); // (T, hidden)
  for (let l = 0; l < L; l++) {
    const { q, k, v } = model.qkv(l, x, positions); // (H, T, D), (Hkv, T, D) ×2
    ks.push(sliceRows64(k, Hkv, T, D, keepFrom, T));
    vs.push(sliceRows64(v, Hkv, T, D, keepFrom, T));
    if (l + 1 < L) {
      const { o } = model.attend(q, k, v, positions, positions); // (H, T, D), causal by position
      x = model.post(l, x, o);
    }
  }
  return { k: ks, v: vs };
}

/**
 * Star phase 1 in float64: per block (docs/DESIGN.md §2.2) the K/V of the block rows per layer.
 * b = block size, a = anchor size (0 ≤ a ≤ b; a = 0 → blocks alone at their global positions).
 */
export function referenceStarPhase1(model: ReferenceModel, contextIds: readonly number[], b: number, a: number = b): BlockKv64[] {
  const layout = planBlocks(contextIds.length, b, a);
  return layout.blocks.map((blk) => {
    const ids = phase1Tokens(contextIds, blk.phase1); // (a' + |B_k|) or (|B_k|)
    const positions = phase1Positions(blk.phase1); // anchor 0..a'−1, block k·b..
    const { k, v } = encodeSequence64(model, ids, positions, blk.phase1.keepFrom);
    return { index: blk.index, start: blk.start, end: blk.end, positions: positions.slice(blk.phase1.keepFrom), k, v };
  });
}

/**
 * The exact context K/V (global causal forward over the whole context) as one block — the
 * phase-1 result of Global and of Ring (which is exact) mode.
 */
export function referenceExactPhase1(model: ReferenceModel, contextIds: readonly number[]): BlockKv64[] {
  const N = contextIds.length;
  const positions = Int32Array.from({ length: N }, (_, i) => i);
  const { k, v } = encodeSequence64(model, [...contextIds], positions, 0);
  return [{ index: 0, start: 0, end: N, positions, k, v }];
}

/** Greedy decode loop shared by both references (mirrors `decodeLoop` in generate.ts). */
function greedyLoop(
  step: (ids: number[], positions: number[]) => Float64Array, // → (T, vocab)
  V: number,
  contextLength: number,
  queryIds: readonly number[],
  opts: Phase2Options,
): Phase2Result64 {
  if (opts.greedy === false) throw new Error('the float64 reference only models greedy decoding');
  const maxNew = opts.maxNewTokens ?? 0;
  const stop = new Set(opts.stopIds ?? []);
  const M = queryIds.length;
  if (M < 1) throw new Error('the query needs at least one token');
  const queryLogits = step([...queryIds], Array.from(queryIds, (_, i) => contextLength + i)); // (M, V)
  let last: Float64Array = queryLogits.slice((M - 1) * V, M * V); // (V)
  const generatedIds: number[] = [];
  const stepLogits: Float64Array[] = [];
  let finishReason: 'length' | 'stop' = 'length';
  while (generatedIds.length < maxNew) {
    const id = argmax(last, 0, V);
    stepLogits.push(last);
    if (stop.has(id)) {
      finishReason = 'stop';
      break;
    }
    generatedIds.push(id);
    if (generatedIds.length >= maxNew) break;
    last = step([id], [contextLength + M + generatedIds.length - 1]); // (1, V)
  }
  return { queryLogits, generatedIds, stepLogits, finishReason };
}

/**
 * Star phase 2 in float64 over the given context blocks (any phase 1: star, exact, ...).
 * The query chunk sits at positions N..N+M−1 (N = contextLength); every row attends to all
 * context K/V and causally to the query actor's own K/V (query + generated). Per layer the
 * per-block partials and the own partial are merged with `mergePartials64` (blocks in order,
 * own last).
 */
export function referencePhase2(
  model: ReferenceModel,
  blocksKv: readonly BlockKv64[],
  contextLength: number,
  queryIds: readonly number[],
  opts: Phase2Options = {},
): Phase2Result64 {
  const { numLayers: L, numHeads: H, numKvHeads: Hkv, headDim: D, vocabSize: V } = model.config;
  const shape = { heads: H, kvHeads: Hkv, headDim: D };
  let covered = 0;
  for (const blk of blocksKv) {
    for (const p of blk.positions) {
      if (p < 0 || p >= contextLength) throw new Error(`block ${blk.index}: key position ${p} outside the context [0, ${contextLength})`);
    }
    covered += blk.positions.length;
  }
  if (covered !== contextLength) throw new Error(`blocks hold ${covered} context rows, expected N = ${contextLength}`);

  // The query actor's own cache: per layer (Hkv, T, D), shared positions.
  const ownK: Float64Array[] = Array.from({ length: L }, () => new Float64Array(0));
  const ownV: Float64Array[] = Array.from({ length: L }, () => new Float64Array(0));
  let ownPos: number[] = [];

  const step = (ids: number[], positions: number[]): Float64Array => {
    const kPos = ownPos.concat(positions); // (Town + T)
    let x = model.embed(ids); // (T, hidden)
    for (let l = 0; l < L; l++) {
      const { q, k, v } = model.qkv(l, x, positions); // q (H, T, D)
      ownK[l] = concatRows64(ownK[l], k, Hkv, D);
      ownV[l] = concatRows64(ownV[l], v, Hkv, D);
      const parts: AnyPartial[] = blocksKv.map((blk) => attentionPartial64(q, blk.k[l], blk.v[l], positions, blk.positions, shape));
      parts.push(attentionPartial64(q, ownK[l], ownV[l], positions, kPos, shape));
      const merged = mergePartials64(parts); // (H, T, D)
      x = model.post(l, x, merged.o);
    }
    ownPos = kPos;
    return model.head(x); // (T, V)
  };
  return greedyLoop(step, V, contextLength, queryIds, opts);
}

/** Star end to end in float64: `referenceStarPhase1` then `referencePhase2`. */
export function referenceStar(
  model: ReferenceModel,
  contextIds: readonly number[],
  queryIds: readonly number[],
  b: number,
  a: number = b,
  opts: Phase2Options = {},
): Phase2Result64 {
  return referencePhase2(model, referenceStarPhase1(model, contextIds, b, a), contextIds.length, queryIds, opts);
}

/**
 * Global (exact) reference: plain causal attention over c ++ q on one float64 KV cache, then
 * greedy generation on it. Same outputs as `referencePhase2`.
 */
export function referenceGlobal(
  model: ReferenceModel,
  contextIds: readonly number[],
  queryIds: readonly number[],
  opts: Phase2Options = {},
): Phase2Result64 {
  const cache = new ReferenceKvCache(model.config.numLayers);
  const N = contextIds.length;
  if (N > 0) model.step([...contextIds], cache, Array.from(contextIds, (_, i) => i));
  return greedyLoop((ids, positions) => model.step(ids, cache, positions), model.config.vocabSize, N, queryIds, opts);
}

// ---------------------------------------------------------------------------------------------
// fidelity helpers (float64)

/** log softmax of logits[off, off + V) in float64 (max-shifted). */
export function logSoftmax64(logits: ArrayLike<number>, off = 0, V = logits.length - off): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < V; i++) if (logits[off + i] > m) m = logits[off + i];
  let s = 0;
  for (let i = 0; i < V; i++) s += Math.exp(logits[off + i] - m);
  const lse = m + Math.log(s);
  const out = new Float64Array(V); // (V)
  for (let i = 0; i < V; i++) out[i] = logits[off + i] - lse;
  return out;
}

/**
 * KL(p‖q) = Σ p_i (log p_i − log q_i) of the softmaxes of two logit vectors. With `V` given the
 * arrays are (T, V) matrices and the result is the KL of row `row`.
 */
export function klDivergence(pLogits: ArrayLike<number>, qLogits: ArrayLike<number>, V = pLogits.length, row = 0): number {
  if (pLogits.length !== qLogits.length) throw new Error(`klDivergence: lengths differ (${pLogits.length} vs ${qLogits.length})`);
  const lp = logSoftmax64(pLogits, row * V, V);
  const lq = logSoftmax64(qLogits, row * V, V);
  let kl = 0;
  for (let i = 0; i < V; i++) {
    const p = Math.exp(lp[i]);
    if (p > 0) kl += p * (lp[i] - lq[i]);
  }
  return kl;
}

/** KL(p‖q) of every row of two (T, V) logit matrices: (T). */
export function klPerRow(pLogits: ArrayLike<number>, qLogits: ArrayLike<number>, V: number): Float64Array {
  if (pLogits.length !== qLogits.length || pLogits.length % V !== 0) {
    throw new Error(`klPerRow: shapes differ or are not multiples of V=${V} (${pLogits.length} vs ${qLogits.length})`);
  }
  const T = pLogits.length / V;
  return Float64Array.from({ length: T }, (_, r) => klDivergence(pLogits, qLogits, V, r));
}

/** Mean over rows of KL(p‖q) for two (T, V) logit matrices. */
export function meanKl(pLogits: ArrayLike<number>, qLogits: ArrayLike<number>, V: number): number {
  const kl = klPerRow(pLogits, qLogits, V);
  let s = 0;
  for (const x of kl) s += x;
  return s / kl.length;
}

/** Fraction of rows of two (T, V) logit matrices whose argmax (first on ties) agrees. */
export function top1Agreement(pLogits: ArrayLike<number>, qLogits: ArrayLike<number>, V: number): number {
  if (pLogits.length !== qLogits.length || pLogits.length % V !== 0) {
    throw new Error(`top1Agreement: shapes differ or are not multiples of V=${V} (${pLogits.length} vs ${qLogits.length})`);
  }
  const T = pLogits.length / V;
  let same = 0;
  for (let r = 0; r < T; r++) if (argmax(pLogits, r, V) === argmax(qLogits, r, V)) same++;
  return same / T;
}
