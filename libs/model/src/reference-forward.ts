/**
 * Slow, readable float64 reference of the HF Llama / Mistral / Qwen2 forward pass (llama2.c
 * style). Weights stay float32; every product and sum is float64.
 *
 *   x = embed[ids]                                              (T, hidden)
 *   per layer:
 *     h = RMSNorm(x) · w_in            RMSNorm(x) = x / sqrt(mean(x²) + eps)
 *     q, k, v = h·Wqᵀ (+bq), h·Wkᵀ (+bk), h·Wvᵀ (+bv)          → (H,T,D), (Hkv,T,D), (Hkv,T,D)
 *     q, k = RoPE(q, positions), RoPE(k, positions)             (rotate_half)
 *     a = attention(q, k, v), key j visible to query i iff kPos[j] <= qPos[i]; GQA
 *     x = x + a·Woᵀ
 *     h = RMSNorm(x) · w_post
 *     x = x + (silu(h·Wgᵀ) ⊙ h·Wuᵀ)·Wdᵀ
 *   logits = RMSNorm(x) · w_final · lm_headᵀ                     (T, vocab)
 *
 * The layer is split into the same pieces as the ONNX graphs (`qkv`, attention, `post`, `head`) so
 * that Star Attention (docs/DESIGN.md §2–§4) can be written with this class and `@starq/attention` alone:
 * phase 1 = `qkv` on `anchor ++ block` with its positions, keep the block's K/V; phase 2 = `qkv` on
 * the query rows, one `attentionPartial64` per block and one over the query's own K/V, merged with
 * `mergePartials64`, then `post`.
 *
 * Sliding-window attention is not modelled: within the window it equals full attention, and longer
 * inputs are rejected upstream.
 */
import { attentionWithLse } from '@starq/attention';
import { InvalidInputError } from '@starq/protocol/errors';
import { applyRopeInPlace, ropeCosSin64, ropeInvFreq } from './rope';
import type { LayerWeights, ModelConfig, ModelWeights } from './types';

export interface Qkv64 {
  q: Float64Array; // (H, T, D), after RoPE
  k: Float64Array; // (Hkv, T, D), after RoPE
  v: Float64Array; // (Hkv, T, D)
}

/** y = x·Wᵀ (+ bias): x (T, in) float64, W (out, in) float32 → (T, out) float64. */
function linear(
  x: Float64Array, // (T, inn)
  w: Float32Array, // (out, inn)
  bias: Float32Array | null, // (out)
  T: number,
  inn: number,
  out: number,
): Float64Array {
  if (w.length !== out * inn) throw new Error(`linear: weight has ${w.length} entries, expected (${out}, ${inn})`);
  const y = new Float64Array(T * out); // (T, out)
  for (let t = 0; t < T; t++) {
    const xb = t * inn;
    for (let o = 0; o < out; o++) {
      const wb = o * inn;
      let s = 0;
      for (let i = 0; i < inn; i++) s += x[xb + i] * w[wb + i];
      y[t * out + o] = bias ? s + bias[o] : s;
    }
  }
  return y;
}

/** RMSNorm per row: x · (1/sqrt(mean(x²) + eps)) · w. x (T, n) → (T, n). */
function rmsNorm(x: Float64Array, w: Float32Array, T: number, n: number, eps: number): Float64Array {
  const y = new Float64Array(T * n); // (T, n)
  for (let t = 0; t < T; t++) {
    const b = t * n;
    let ss = 0;
    for (let i = 0; i < n; i++) ss += x[b + i] * x[b + i];
    const inv = 1 / Math.sqrt(ss / n + eps);
    for (let i = 0; i < n; i++) y[b + i] = x[b + i] * inv * w[i];
  }
  return y;
}

/** (T, n·D) → (n, T, D). */
function toHeads(x: Float64Array, T: number, n: number, D: number): Float64Array {
  const y = new Float64Array(n * T * D); // (n, T, D)
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < n; h++) {
      const src = (t * n + h) * D;
      const dst = (h * T + t) * D;
      for (let d = 0; d < D; d++) y[dst + d] = x[src + d];
    }
  }
  return y;
}

/** (n, T, D) → (T, n·D). */
function fromHeads(x: ArrayLike<number>, T: number, n: number, D: number): Float64Array {
  const y = new Float64Array(T * n * D); // (T, n·D)
  for (let h = 0; h < n; h++) {
    for (let t = 0; t < T; t++) {
      const src = (h * T + t) * D;
      const dst = (t * n + h) * D;
      for (let d = 0; d < D; d++) y[dst + d] = x[src + d];
    }
  }
  return y;
}

/** Concatenate along T: a (n, Ta, D) ++ b (n, Tb, D) → (n, Ta+Tb, D). */
export function concatRows64(a: Float64Array, b: Float64Array, n: number, D: number): Float64Array {
  const Ta = a.length / (n * D);
  const Tb = b.length / (n * D);
  const y = new Float64Array(n * (Ta + Tb) * D); // (n, Ta+Tb, D)
  for (let h = 0; h < n; h++) {
    y.set(a.subarray(h * Ta * D, (h + 1) * Ta * D), h * (Ta + Tb) * D);
    y.set(b.subarray(h * Tb * D, (h + 1) * Tb * D), (h * (Ta + Tb) + Ta) * D);
  }
  return y;
}

/** Float64 KV cache for the reference: per layer K/V (Hkv, T, D) and the shared key positions (T). */
export class ReferenceKvCache {
  readonly k: Float64Array[]; // numLayers × (Hkv, T, D)
  readonly v: Float64Array[]; // numLayers × (Hkv, T, D)
  positions: number[] = []; // (T)

  constructor(numLayers: number) {
    this.k = Array.from({ length: numLayers }, () => new Float64Array(0));
    this.v = Array.from({ length: numLayers }, () => new Float64Array(0));
  }

  get length(): number {
    return this.positions.length;
  }
}

export class ReferenceModel {
  readonly invFreq: Float64Array; // (D/2)

  constructor(
    readonly config: ModelConfig,
    readonly weights: ModelWeights,
  ) {
    if (weights.layers.length !== config.numLayers) {
      throw new Error(`weights have ${weights.layers.length} layers, config says ${config.numLayers}`);
    }
    if (config.numHeads % config.numKvHeads !== 0) {
      throw new Error(`num_heads ${config.numHeads} is not a multiple of num_kv_heads ${config.numKvHeads}`);
    }
    this.invFreq = ropeInvFreq(config);
  }

  private layer(i: number): LayerWeights {
    const w = this.weights.layers[i];
    if (!w) throw new Error(`layer ${i} out of range [0, ${this.config.numLayers})`);
    return w;
  }

  /** Token embeddings: (T, hidden). */
  embed(ids: readonly number[]): Float64Array {
    const { vocabSize: V, hiddenSize: n } = this.config;
    const x = new Float64Array(ids.length * n); // (T, hidden)
    ids.forEach((id, t) => {
      if (!Number.isInteger(id) || id < 0 || id >= V) {
        throw new InvalidInputError('invalid_token_id', `token id ${id} at index ${t} is outside the vocabulary [0, ${V})`, 'ids');
      }
      for (let i = 0; i < n; i++) x[t * n + i] = this.weights.embed[id * n + i];
    });
    return x;
  }

  /** Input RMSNorm, q/k/v projections (+bias), RoPE at `positions`. x (T, hidden), positions (T). */
  qkv(layer: number, x: Float64Array, positions: ArrayLike<number>): Qkv64 {
    const { hiddenSize: n, numHeads: H, numKvHeads: Hkv, headDim: D, rmsNormEps } = this.config;
    const w = this.layer(layer);
    const T = positions.length;
    if (x.length !== T * n) throw new Error(`qkv: x has ${x.length} entries, expected (T=${T}, hidden=${n})`);
    const h = rmsNorm(x, w.inputNorm, T, n, rmsNormEps); // (T, hidden)
    const bias = this.config.qkvBias;
    const q = toHeads(linear(h, w.q, bias ? w.qBias : null, T, n, H * D), T, H, D); // (H, T, D)
    const k = toHeads(linear(h, w.k, bias ? w.kBias : null, T, n, Hkv * D), T, Hkv, D); // (Hkv, T, D)
    const v = toHeads(linear(h, w.v, bias ? w.vBias : null, T, n, Hkv * D), T, Hkv, D); // (Hkv, T, D)
    const { cos, sin } = ropeCosSin64(this.invFreq, positions); // (T, D/2) each
    applyRopeInPlace(q, cos, sin, H, T, D);
    applyRopeInPlace(k, cos, sin, Hkv, T, D);
    return { q, k, v };
  }

  /**
   * Attention of q (H, Tq, D) over k/v (Hkv, Tk, D) with position-based visibility.
   * Returns o (H, Tq, D) and lse (H, Tq).
   */
  attend(
    q: Float64Array,
    k: Float64Array,
    v: Float64Array,
    qPos: ArrayLike<number>,
    kPos: ArrayLike<number>,
  ): { o: Float64Array; lse: Float64Array } {
    const { numHeads: heads, numKvHeads: kvHeads, headDim } = this.config;
    return attentionWithLse(q, k, v, qPos, kPos, { heads, kvHeads, headDim });
  }

  /** o_proj + residual, post-attention RMSNorm, SwiGLU MLP + residual. x (T, hidden), attnOut (H, T, D) → (T, hidden). */
  post(layer: number, x: Float64Array, attnOut: ArrayLike<number>): Float64Array {
    const { hiddenSize: n, numHeads: H, headDim: D, intermediateSize: I, rmsNormEps } = this.config;
    const w = this.layer(layer);
    const T = x.length / n;
    if (attnOut.length !== H * T * D) throw new Error(`post: attnOut has ${attnOut.length} entries, expected (H=${H}, T=${T}, D=${D})`);
    const a = linear(fromHeads(attnOut, T, H, D), w.o, null, T, H * D, n); // (T, hidden)
    const x1 = new Float64Array(T * n); // (T, hidden)
    for (let i = 0; i < T * n; i++) x1[i] = x[i] + a[i];
    const h = rmsNorm(x1, w.postNorm, T, n, rmsNormEps); // (T, hidden)
    const gate = linear(h, w.gate, null, T, n, I); // (T, I)
    const up = linear(h, w.up, null, T, n, I); // (T, I)
    for (let i = 0; i < T * I; i++) {
      const g = gate[i];
      gate[i] = (g / (1 + Math.exp(-g))) * up[i]; // silu(g) · up
    }
    const down = linear(gate, w.down, null, T, I, n); // (T, hidden)
    for (let i = 0; i < T * n; i++) x1[i] += down[i];
    return x1;
  }

  /** Final RMSNorm + lm_head: x (T, hidden) → logits (T, vocab). */
  head(x: Float64Array): Float64Array {
    const { hiddenSize: n, vocabSize: V, rmsNormEps } = this.config;
    const T = x.length / n;
    const h = rmsNorm(x, this.weights.finalNorm, T, n, rmsNormEps); // (T, hidden)
    return linear(h, this.weights.lmHead, null, T, n, V); // (T, vocab)
  }

  /**
   * Full forward of `ids` at `positions` (default 0..T−1) with position-based causal visibility.
   * Returns logits (T, vocab).
   */
  forward(ids: readonly number[], positions?: ArrayLike<number>): Float64Array {
    const pos = positions ?? Array.from(ids, (_, i) => i); // (T)
    if (pos.length !== ids.length) throw new Error(`forward: ${ids.length} ids but ${pos.length} positions`);
    let x = this.embed(ids); // (T, hidden)
    for (let l = 0; l < this.config.numLayers; l++) {
      const { q, k, v } = this.qkv(l, x, pos);
      const { o } = this.attend(q, k, v, pos, pos);
      x = this.post(l, x, o);
    }
    return this.head(x);
  }

  /**
   * Forward of new tokens against a float64 KV cache (appended in place). Positions default to
   * continuing after the cache. Returns logits (T, vocab) of the new tokens.
   */
  step(ids: readonly number[], cache: ReferenceKvCache, positions?: ArrayLike<number>): Float64Array {
    const { numKvHeads: Hkv, headDim: D } = this.config;
    const start = cache.length;
    const pos = positions ? Array.from(positions) : Array.from(ids, (_, i) => start + i); // (T)
    if (pos.length !== ids.length) throw new Error(`step: ${ids.length} ids but ${pos.length} positions`);
    const kPos = cache.positions.concat(pos); // (Tcache + T)
    let x = this.embed(ids); // (T, hidden)
    for (let l = 0; l < this.config.numLayers; l++) {
      const { q, k, v } = this.qkv(l, x, pos);
      cache.k[l] = concatRows64(cache.k[l], k, Hkv, D); // (Hkv, Tcache + T, D)
      cache.v[l] = concatRows64(cache.v[l], v, Hkv, D); // (Hkv, Tcache + T, D)
      const { o } = this.attend(q, cache.k[l], cache.v[l], pos, kPos);
      x = this.post(l, x, o);
    }
    cache.positions = kPos;
    return this.head(x);
  }

  /** Greedy continuation of `ids` (n new tokens, float64 KV cache). Stops early on `stopIds`. */
  greedy(ids: readonly number[], n: number, opts: { stopIds?: readonly number[] } = {}): number[] {
    const V = this.config.vocabSize;
    const cache = new ReferenceKvCache(this.config.numLayers);
    const out: number[] = [];
    let logits = this.step(ids, cache); // (T, vocab)
    for (let s = 0; s < n; s++) {
      const next = argmax(logits, logits.length / V - 1, V);
      out.push(next);
      if (opts.stopIds?.includes(next)) break;
      if (s + 1 < n) logits = this.step([next], cache);
    }
    return out;
  }
}

/** Index of the largest logit in row `row` of logits (T, V) (first on ties). */
export function argmax(logits: ArrayLike<number>, row: number, V: number): number {
  let best = 0;
  let bv = -Infinity;
  for (let i = 0; i < V; i++) {
    const v = logits[row * V + i];
    if (v > bv) {
      bv = v;
      best = i;
    }
  }
  return best;
}

/** Plain causal float64 forward: logits (T, vocab) of `ids` at positions `opts.positions` (default 0..T−1). */
export function referenceForward(
  config: ModelConfig,
  weights: ModelWeights,
  ids: readonly number[],
  opts: { positions?: ArrayLike<number> } = {},
): Float64Array {
  return new ReferenceModel(config, weights).forward(ids, opts.positions);
}
