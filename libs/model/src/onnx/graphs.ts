/**
 * The four per-layer ONNX graphs the engine runs (docs/DESIGN.md §7.1). Every attention variant (global,
 * Star phase 1/2, Ring, decode) is built from these same pieces; only the choice of keys differs.
 *
 *   qkv(layer):  x (T, hidden), cos/sin (T, D/2)  → q (H, T, D), k (Hkv, T, D), v (Hkv, T, D)
 *   attend:      q (H, Tq, D), k/v (Hkv, Tk, D), bias (Tq, Tk) → o (H, Tq, D), lse (H, Tq)
 *                (reference variant: qpos (Tq), kpos (Tk) int64 instead of bias)
 *   post(layer): x (T, hidden), attn (H, T, D)   → x' (T, hidden)
 *   head:        x (T, hidden)                   → logits (T, vocab)
 *
 * Symbols: T rows, H query heads, Hkv key/value heads, G = H/Hkv, D head dim.
 * Linear weights are stored as initializers transposed to (in, out) so each projection is a plain
 * MatMul (constant weights are pre-packed by onnxruntime).
 */
import type { LayerWeights, ModelConfig, ModelWeights } from '../types';
import { GraphBuilder } from './graph-builder';

/** Scores of masked keys. Large negative rather than -inf so a fully masked row stays finite. */
export const MASKED_SCORE = -1e30;

/** x (T, n) → x / sqrt(mean(x²) + eps) · w */
function rmsNorm(g: GraphBuilder, x: string, w: Float32Array, eps: number, name: string): string {
  const sq = g.op('Mul', [x, x]);
  const ms = g.op('ReduceMean', [sq, g.constI([-1])], { keepdims: 1 }); // (T, 1)
  const rs = g.op('Sqrt', [g.op('Add', [ms, g.constF(eps)])]);
  const nrm = g.op('Div', [x, rs]);
  return g.op('Mul', [nrm, g.weight(name, w, [w.length])]);
}

/** Transpose an (out, in) row-major matrix to (in, out). */
export function transposeMatrix(w: Float32Array, out: number, inn: number): Float32Array {
  const t = new Float32Array(w.length);
  for (let o = 0; o < out; o++) {
    const row = o * inn;
    for (let i = 0; i < inn; i++) t[i * out + o] = w[row + i];
  }
  return t;
}

/** Concatenate (out_i, in) matrices along `out`, then transpose to (in, Σ out_i). */
function fusedTransposed(mats: Float32Array[], outs: number[], inn: number): Float32Array {
  const total = outs.reduce((a, b) => a + b, 0);
  const cat = new Float32Array(total * inn);
  let off = 0;
  mats.forEach((m) => {
    cat.set(m, off);
    off += m.length;
  });
  return transposeMatrix(cat, total, inn);
}

/** RoPE (rotate_half) on x (heads, T, D) with cos/sin (T, D/2). */
function rope(g: GraphBuilder, x: string, cos: string, sin: string, half: number): string {
  const [x1, x2] = g.opN('Split', [x, g.constI([half, half])], 2, { axis: -1 }); // (h, T, D/2) each
  const a = g.op('Sub', [g.op('Mul', [x1, cos]), g.op('Mul', [x2, sin])]);
  const b = g.op('Add', [g.op('Mul', [x2, cos]), g.op('Mul', [x1, sin])]);
  return g.op('Concat', [a, b], { axis: -1 }); // (h, T, D)
}

export function buildQkvGraph(cfg: ModelConfig, w: LayerWeights, layer: number): Uint8Array {
  const { hiddenSize: hid, numHeads: H, numKvHeads: Hkv, headDim: D } = cfg;
  const g = new GraphBuilder(`qkv_${layer}`);
  const x = g.input('x', 'float32', ['T', hid]); // (T, hidden)
  const cos = g.input('cos', 'float32', ['T', D / 2]); // (T, D/2)
  const sin = g.input('sin', 'float32', ['T', D / 2]); // (T, D/2)
  const h = rmsNorm(g, x, w.inputNorm, cfg.rmsNormEps, 'input_norm');
  const outs = [H * D, Hkv * D, Hkv * D];
  let qkv = g.op('MatMul', [h, g.weight('wqkv', fusedTransposed([w.q, w.k, w.v], outs, hid), [hid, H * D + 2 * Hkv * D])]); // (T, (H+2Hkv)·D)
  if (cfg.qkvBias) {
    if (!w.qBias || !w.kBias || !w.vBias) throw new Error(`layer ${layer}: config has qkv bias but weights do not`);
    const bias = new Float32Array(H * D + 2 * Hkv * D);
    bias.set(w.qBias, 0);
    bias.set(w.kBias, H * D);
    bias.set(w.vBias, H * D + Hkv * D);
    qkv = g.op('Add', [qkv, g.weight('bqkv', bias, [bias.length])]);
  }
  const [q2, k2, v2] = g.opN('Split', [qkv, g.constI(outs)], 3, { axis: -1 }); // (T, H·D), (T, Hkv·D) ×2
  const heads = (t: string, n: number) => g.op('Transpose', [g.op('Reshape', [t, g.constI([0, n, D])])], { perm: [1, 0, 2] }); // (n, T, D)
  const q = rope(g, heads(q2, H), cos, sin, D / 2);
  const k = rope(g, heads(k2, Hkv), cos, sin, D / 2);
  const v = heads(v2, Hkv);
  g.output('q', q, 'float32', [H, 'T', D]);
  g.output('k', k, 'float32', [Hkv, 'T', D]);
  g.output('v', v, 'float32', [Hkv, 'T', D]);
  return g.toBytes();
}

/**
 * Attention of Q over one K/V tile, returning the output and the natural-log sum-exp of the scaled
 * scores — the engine's fast formulation (`ModelExecutor` with `attention: 'tiled'`).
 *
 *   inputs:  q (H, Tq, D), k/v (Hkv, Tk, D) [, bias (Tq, Tk) when `masked`]
 *   outputs: o (H, Tq, D), lse (H, Tq)
 *
 * Masking is an additive bias computed by the caller: 0 where key j is visible to row i
 * (kpos[j] ≤ qpos[i]), `MASKED_SCORE` (−1e30, never −∞) where it is not. It is broadcast over the
 * H heads (the scores are viewed as (Hkv, G, Tq, Tk) for the Add), so it is H times smaller than
 * the score tensor and the masked graph has no `Where` (single-threaded in ORT).
 * P comes from ORT's fused `Softmax`; the LSE is recovered as lse = m − log(max_j P): at the
 * arg-max P = exp(m − lse) exactly, and max P ≥ 1/Tk keeps the log well conditioned. A row whose
 * keys are all masked gets a uniform P (finite o, to be ignored) and lse ≈ −1e30 ≤ EMPTY_LSE, which
 * the LSE merge treats as empty — no NaN anywhere. The unmasked variant (no bias input) serves tiles
 * whose keys all precede every query row.
 */
export function buildAttendGraph(cfg: ModelConfig, masked: boolean): Uint8Array {
  const { numHeads: H, numKvHeads: Hkv, headDim: D } = cfg;
  const g = new GraphBuilder(masked ? 'attend_masked' : 'attend');
  const q = g.input('q', 'float32', [H, 'Tq', D]); // (H, Tq, D)
  const k = g.input('k', 'float32', [Hkv, 'Tk', D]); // (Hkv, Tk, D)
  const v = g.input('v', 'float32', [Hkv, 'Tk', D]); // (Hkv, Tk, D)
  const bias = masked ? g.input('bias', 'float32', ['Tq', 'Tk']) : null; // (Tq, Tk): 0 visible, −1e30 hidden
  const { o, lse } = attendTile(g, cfg, q, k, v, bias);
  g.output('o', o, 'float32', [H, 'Tq', D]);
  g.output('lse', lse, 'float32', [H, 'Tq']);
  return g.toBytes();
}

/**
 * The ops of `buildAttendGraph` on values already in graph `g`: q (H, Tq, D), k/v (Hkv, Tk, D),
 * bias (Tq, Tk) or null (unmasked) → o (H, Tq, D), lse (H, Tq). Graphs that run several tiles
 * side by side (`buildAttendBatchGraph`) call it once per tile, so each tile's result is that of
 * `buildAttendGraph` on the tile alone.
 */
export function attendTile(g: GraphBuilder, cfg: ModelConfig, q: string, k: string, v: string, bias: string | null): { o: string; lse: string } {
  const { numHeads: H, numKvHeads: Hkv, headDim: D } = cfg;
  const G = H / Hkv;
  // One GEMM per KV head for its G query heads (K and V are read once per KV head, which matters
  // for few rows); the score matrix is viewed as (Hkv, G, Tq, Tk) only to broadcast the bias.
  const qs = g.op('Mul', [g.op('Reshape', [q, g.constI([Hkv, -1, D])]), g.constF(1 / Math.sqrt(D))]); // (Hkv, G·Tq, D), scaled
  let s = g.op('MatMul', [qs, g.op('Transpose', [k], { perm: [0, 2, 1] })]); // (Hkv, G·Tq, Tk); row r of kv-head j is q-head j·G + r / Tq
  if (bias !== null) s = addBiasPerGroup(g, s, bias, g.op('Shape', [k], { start: 1, end: 2 }), Hkv, G); // (Hkv, G·Tq, Tk)
  const axis = g.constI([-1]);
  const m = g.op('ReduceMax', [s, axis], { keepdims: 1 }); // (Hkv, G·Tq, 1)
  const p = g.op('Softmax', [s], { axis: -1 }); // (Hkv, G·Tq, Tk)
  const o = g.op('MatMul', [p, v]); // (Hkv, G·Tq, D)
  const lse = g.op('Sub', [m, g.op('Log', [g.op('ReduceMax', [p, axis], { keepdims: 1 })])]); // (Hkv, G·Tq, 1)
  return { o: g.op('Reshape', [o, g.constI([H, -1, D])]), lse: g.op('Reshape', [lse, g.constI([H, -1])]) }; // (H, Tq, D), (H, Tq)
}

/**
 * s (Hkv, G·Tq, Tk) + bias (Tq, Tk) broadcast over the H = Hkv·G heads: s is viewed as
 * (Hkv, G, Tq, Tk) for the Add (reshapes of a contiguous tensor are free). `tk` is a (1) int64
 * tensor holding Tk.
 */
function addBiasPerGroup(g: GraphBuilder, s: string, bias: string, tk: string, Hkv: number, G: number): string {
  const s4 = g.op('Reshape', [s, g.op('Concat', [g.constI([Hkv, G, -1]), tk], { axis: 0 })]); // (Hkv, G, Tq, Tk)
  return g.op('Reshape', [g.op('Add', [s4, bias]), g.op('Concat', [g.constI([Hkv, -1]), tk], { axis: 0 })]); // (Hkv, G·Tq, Tk)
}

/**
 * Attention of a row tile over a prefix of keys that every row sees (no mask), with onnxruntime's CPU
 * flash attention: the contrib op `com.microsoft.MultiHeadAttention` without mask, bias or past
 * runs MLAS's FlashAttention kernel (per block of query rows, key blocks sized to the L2 cache;
 * QKᵀ, the online softmax and P·V stay in cache). One node per KV head, its G query heads stacked as
 * rows (one "head" of G·Tq rows). The kernel returns o only; the caller recovers the LSE from a
 * sink key carried in one extra column (`TiledAttention`): row i of q is [q_i, a_i], key 0 is the
 * sink [0…0, 1] with value [0…0, 1], every other key/value has a 0 there, so the extra output column
 * is r_i = e^{s*_i} / (L_i + e^{s*_i}) with s*_i = a_i·scale, and L_i = e^{s*_i}·(1 − r_i)/r_i,
 * o_i = o'_i[0:D] / (1 − r_i).
 *
 *   inputs:  per KV head h < Hkv: q{h} (1, G·Tq, D+1), k{h} / v{h} (1, 1+Tk, D+1)
 *   outputs: o{h} (1, G·Tq, D+1)
 *
 * Scores are scaled by 1/√D (the `scale` attribute; the extra column does not change it).
 */
export function buildFlashAttendGraph(cfg: ModelConfig): Uint8Array {
  const { numKvHeads: Hkv, headDim: D } = cfg;
  const g = new GraphBuilder('attend_flash');
  for (let h = 0; h < Hkv; h++) {
    const q = g.input(`q${h}`, 'float32', [1, 'R', D + 1]); // (1, G·Tq, D+1)
    const k = g.input(`k${h}`, 'float32', [1, 'L', D + 1]); // (1, 1+Tk, D+1)
    const v = g.input(`v${h}`, 'float32', [1, 'L', D + 1]); // (1, 1+Tk, D+1)
    const [o] = g.opIn('com.microsoft', 'MultiHeadAttention', [q, k, v], 1, { num_heads: 1, scale: { float: 1 / Math.sqrt(D) } }); // (1, G·Tq, D+1)
    g.output(`o${h}`, o, 'float32', [1, 'R', D + 1]);
  }
  return g.toBytes();
}

/** Most key tiles one `buildAttendChainGraph` call takes. */
export const MAX_CHAIN_TILES = 16;

/**
 * Attention of one row tile over P ≥ 2 key tiles in one call, each tile's softmax computed on its
 * own (score tensors of one tile's size, never of the P tiles' keys together) and the P partials
 * merged in the graph with the max-shifted LSE merge — the engine's JS merge of those P partials
 * becomes a few small elementwise ops:
 *
 *   inputs:  q (H, Tq, D); per tile i: k{i} / v{i} (Hkv, Tk_i, D), and bias{i} (Tq, Tk_i) when
 *            `masked[i]` (0 visible, −1e30 hidden, as in `buildAttendGraph`)
 *   outputs: o (H, Tq, D), lse (H, Tq)
 *
 * Per tile: lse_i = m_i − log(max P_i) as in `buildAttendGraph`. Merge: M = max_i lse_i,
 * w_i = exp(lse_i − M) ∈ [0, 1] (the largest is 1, so W = Σ w_i ≥ 1), o = Σ w_i·o_i / W,
 * lse = M + log W. A row hidden from every key of a masked tile has lse_i ≈ −1e30 and weight 0
 * next to any visible tile; hidden from all P tiles it merges to lse ≈ −1e30 (empty), never NaN.
 */
export function buildAttendChainGraph(cfg: ModelConfig, masked: boolean[]): Uint8Array {
  const P = masked.length;
  if (P < 2 || P > MAX_CHAIN_TILES) throw new Error(`buildAttendChainGraph: ${P} tiles, expected 2..${MAX_CHAIN_TILES}`);
  const { numHeads: H, numKvHeads: Hkv, headDim: D } = cfg;
  const G = H / Hkv;
  const g = new GraphBuilder(`attend_chain_${masked.map((m) => (m ? 'm' : 'o')).join('')}`);
  const q = g.input('q', 'float32', [H, 'Tq', D]); // (H, Tq, D)
  const qs = g.op('Mul', [g.op('Reshape', [q, g.constI([Hkv, -1, D])]), g.constF(1 / Math.sqrt(D))]); // (Hkv, G·Tq, D), scaled
  const axis = g.constI([-1]);
  const os: string[] = [];
  const ls: string[] = [];
  masked.forEach((isMasked, i) => {
    const k = g.input(`k${i}`, 'float32', [Hkv, `Tk${i}`, D]); // (Hkv, Tk_i, D)
    const v = g.input(`v${i}`, 'float32', [Hkv, `Tk${i}`, D]); // (Hkv, Tk_i, D)
    let s = g.op('MatMul', [qs, g.op('Transpose', [k], { perm: [0, 2, 1] })]); // (Hkv, G·Tq, Tk_i)
    if (isMasked) {
      const bias = g.input(`bias${i}`, 'float32', ['Tq', `Tk${i}`]); // (Tq, Tk_i)
      s = addBiasPerGroup(g, s, bias, g.op('Shape', [k], { start: 1, end: 2 }), Hkv, G);
    }
    const m = g.op('ReduceMax', [s, axis], { keepdims: 1 }); // (Hkv, G·Tq, 1)
    const p = g.op('Softmax', [s], { axis: -1 }); // (Hkv, G·Tq, Tk_i)
    os.push(g.op('MatMul', [p, v])); // (Hkv, G·Tq, D)
    ls.push(g.op('Sub', [m, g.op('Log', [g.op('ReduceMax', [p, axis], { keepdims: 1 })])])); // (Hkv, G·Tq, 1)
  });
  const M = g.op('Max', ls); // (Hkv, G·Tq, 1)
  const ws = ls.map((l) => g.op('Exp', [g.op('Sub', [l, M])])); // (Hkv, G·Tq, 1) each, in [0, 1]
  const W = g.op('Sum', ws); // (Hkv, G·Tq, 1), ≥ 1
  const o = g.op('Div', [g.op('Sum', os.map((oi, i) => g.op('Mul', [oi, ws[i]]))), W]); // (Hkv, G·Tq, D)
  const lse = g.op('Add', [M, g.op('Log', [W])]); // (Hkv, G·Tq, 1)
  g.output('o', g.op('Reshape', [o, g.constI([H, -1, D])]), 'float32', [H, 'Tq', D]);
  g.output('lse', g.op('Reshape', [lse, g.constI([H, -1])]), 'float32', [H, 'Tq']);
  return g.toBytes();
}

/**
 * The reference formulation of `attend` (`ModelExecutor` with `attention: 'paged'`; the engine's
 * only graph before tiling). Same outputs; the mask is computed in the graph from positions:
 *
 *   inputs:  q (H, Tq, D), k/v (Hkv, Tk, D) [, qpos (Tq), kpos (Tk) int64 when `masked`]
 *   outputs: o (H, Tq, D), lse (H, Tq)
 *
 * Key j is visible to query i iff kpos[j] ≤ qpos[i]; hidden scores are replaced by −1e30 with a
 * 3-D `Where`, and the softmax is written out (max, exp, sum, divide; lse = m + log l).
 */
export function buildAttendGraphReference(cfg: ModelConfig, masked: boolean): Uint8Array {
  const { numHeads: H, numKvHeads: Hkv, headDim: D } = cfg;
  const G = H / Hkv;
  const g = new GraphBuilder(masked ? 'attend_ref_masked' : 'attend_ref');
  const q = g.input('q', 'float32', [H, 'Tq', D]); // (H, Tq, D)
  const k = g.input('k', 'float32', [Hkv, 'Tk', D]); // (Hkv, Tk, D)
  const v = g.input('v', 'float32', [Hkv, 'Tk', D]); // (Hkv, Tk, D)
  const qs = g.op('Mul', [g.op('Reshape', [q, g.constI([Hkv, -1, D])]), g.constF(1 / Math.sqrt(D))]); // (Hkv, G·Tq, D)
  const kt = g.op('Transpose', [k], { perm: [0, 2, 1] }); // (Hkv, D, Tk)
  let s = g.op('MatMul', [qs, kt]); // (Hkv, G·Tq, Tk); row r of kv-head j is q-head j·G + r / Tq
  if (masked) {
    const qpos = g.input('qpos', 'int64', ['Tq']); // (Tq)
    const kpos = g.input('kpos', 'int64', ['Tk']); // (Tk)
    const qposG = g.op('Tile', [qpos, g.constI([G])]); // (G·Tq)
    const hidden = g.op('Less', [g.op('Unsqueeze', [qposG, g.constI([1])]), kpos]); // (G·Tq, Tk): kpos > qpos
    s = g.op('Where', [hidden, g.constF(MASKED_SCORE), s]); // (Hkv, G·Tq, Tk)
  }
  const axis = g.constI([-1]);
  const m = g.op('ReduceMax', [s, axis], { keepdims: 1 }); // (Hkv, G·Tq, 1)
  const p = g.op('Exp', [g.op('Sub', [s, m])]); // (Hkv, G·Tq, Tk)
  const l = g.op('ReduceSum', [p, axis], { keepdims: 1 }); // (Hkv, G·Tq, 1)
  const o = g.op('Div', [g.op('MatMul', [p, v]), l]); // (Hkv, G·Tq, D)
  g.output('o', g.op('Reshape', [o, g.constI([H, -1, D])]), 'float32', [H, 'Tq', D]);
  const lse = g.op('Add', [m, g.op('Log', [l])]); // (Hkv, G·Tq, 1)
  g.output('lse', g.op('Reshape', [lse, g.constI([H, -1])]), 'float32', [H, 'Tq']);
  return g.toBytes();
}

export function buildPostGraph(cfg: ModelConfig, w: LayerWeights, layer: number): Uint8Array {
  const { hiddenSize: hid, numHeads: H, headDim: D, intermediateSize: I } = cfg;
  const g = new GraphBuilder(`post_${layer}`);
  const x = g.input('x', 'float32', ['T', hid]); // (T, hidden)
  const attn = g.input('attn', 'float32', [H, 'T', D]); // (H, T, D)
  const a = g.op('Reshape', [g.op('Transpose', [attn], { perm: [1, 0, 2] }), g.constI([0, H * D])]); // (T, H·D)
  const h = g.op('Add', [x, g.op('MatMul', [a, g.weight('wo', transposeMatrix(w.o, hid, H * D), [H * D, hid])])]); // (T, hidden)
  const n = rmsNorm(g, h, w.postNorm, cfg.rmsNormEps, 'post_norm');
  const gu = g.op('MatMul', [n, g.weight('wgu', fusedTransposed([w.gate, w.up], [I, I], hid), [hid, 2 * I])]); // (T, 2I)
  const [gate, up] = g.opN('Split', [gu, g.constI([I, I])], 2, { axis: -1 }); // (T, I) each
  const act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up]); // silu(gate)·up
  const out = g.op('Add', [h, g.op('MatMul', [act, g.weight('wdown', transposeMatrix(w.down, hid, I), [I, hid])])]);
  g.output('y', out, 'float32', ['T', hid]);
  return g.toBytes();
}

export function buildHeadGraph(cfg: ModelConfig, w: ModelWeights): Uint8Array {
  const { hiddenSize: hid, vocabSize: V } = cfg;
  const g = new GraphBuilder('head');
  const x = g.input('x', 'float32', ['T', hid]);
  const n = rmsNorm(g, x, w.finalNorm, cfg.rmsNormEps, 'final_norm');
  const logits = g.op('MatMul', [n, g.weight('lm_head', transposeMatrix(w.lmHead, V, hid), [hid, V])]); // (T, vocab)
  g.output('logits', logits, 'float32', ['T', V]);
  return g.toBytes();
}
