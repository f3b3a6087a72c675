/**
 * Candidate formulations of the engine's `attend` graph, for measurement only (probe-attend.ts).
 * Same contract as `buildAttendGraphReference` in libs/model/src/onnx/graphs.ts (the engine's
 * graph before tiling; the tiled engine's `buildAttendGraph` is 'softmax' with the bias as an input):
 *   q (H, Tq, D), k/v (Hkv, Tk, D) [, qpos (Tq), kpos (Tk) int64] → o (H, Tq, D), lse (H, Tq)
 * with key j visible to row i iff kpos[j] ≤ qpos[i], scores scaled by 1/√D, natural-log LSE.
 *
 * Variants (each one change on top of the engine's formulation, so their effects separate):
 *   'bias'     — mask as an additive bias: bias = Where(kpos > qpos, −1e30, 0) built once at
 *                (G·Tq, Tk) and Add-ed (broadcast over KV heads) instead of a 3-D Where.
 *   'bias4d'   — q viewed as (Hkv, G, Tq, D) and k/v as (Hkv, 1, ·, ·): the mask bias is (Tq, Tk),
 *                G× smaller, and no Tile of qpos is needed.
 *   'softmax'  — 'bias4d' plus ORT's fused Softmax for P, and lse = m − log(max_j P) (exact:
 *                P at the arg-max is exp(m − lse)); replaces Sub + Exp + ReduceSum + Div.
 */
import { GraphBuilder } from '@starq/model/onnx/graph-builder';
import type { ModelConfig } from '@starq/model';

export type AttendVariant = 'bias' | 'bias4d' | 'softmax';

const MASKED = -1e30;

export function buildAttendVariant(cfg: ModelConfig, masked: boolean, variant: AttendVariant): Uint8Array {
  const { numHeads: H, numKvHeads: Hkv, headDim: D } = cfg;
  const G = H / Hkv;
  const g = new GraphBuilder(`attend_${variant}_${masked ? 'masked' : 'open'}`);
  const q = g.input('q', 'float32', [H, 'Tq', D]);
  const k = g.input('k', 'float32', [Hkv, 'Tk', D]);
  const v = g.input('v', 'float32', [Hkv, 'Tk', D]);
  const qpos = masked ? g.input('qpos', 'int64', ['Tq']) : null;
  const kpos = masked ? g.input('kpos', 'int64', ['Tk']) : null;
  const scale = g.constF(1 / Math.sqrt(D));
  const axis = g.constI([-1]);

  if (variant === 'bias') {
    const qs = g.op('Mul', [g.op('Reshape', [q, g.constI([Hkv, -1, D])]), scale]); // (Hkv, G·Tq, D)
    let s = g.op('MatMul', [qs, g.op('Transpose', [k], { perm: [0, 2, 1] })]); // (Hkv, G·Tq, Tk)
    if (masked) {
      const qposG = g.op('Tile', [qpos!, g.constI([G])]); // (G·Tq)
      const hidden = g.op('Less', [g.op('Unsqueeze', [qposG, g.constI([1])]), kpos!]); // (G·Tq, Tk)
      const bias = g.op('Where', [hidden, g.constF(MASKED), g.constF(0)]); // (G·Tq, Tk)
      s = g.op('Add', [s, bias]);
    }
    const m = g.op('ReduceMax', [s, axis], { keepdims: 1 });
    const p = g.op('Exp', [g.op('Sub', [s, m])]);
    const l = g.op('ReduceSum', [p, axis], { keepdims: 1 });
    const o = g.op('Div', [g.op('MatMul', [p, v]), l]);
    g.output('o', g.op('Reshape', [o, g.constI([H, -1, D])]), 'float32', [H, 'Tq', D]);
    g.output('lse', g.op('Reshape', [g.op('Add', [m, g.op('Log', [l])]), g.constI([H, -1])]), 'float32', [H, 'Tq']);
    return g.toBytes();
  }

  // 4-D views: q (Hkv, G, Tq, D); k, v (Hkv, 1, Tk, D)
  const q4 = g.op('Mul', [g.op('Reshape', [q, g.constI([Hkv, G, -1, D])]), scale]);
  const k4 = g.op('Unsqueeze', [k, g.constI([1])]);
  const v4 = g.op('Unsqueeze', [v, g.constI([1])]);
  let s = g.op('MatMul', [q4, g.op('Transpose', [k4], { perm: [0, 1, 3, 2] })]); // (Hkv, G, Tq, Tk)
  if (masked) {
    const hidden = g.op('Less', [g.op('Unsqueeze', [qpos!, g.constI([1])]), kpos!]); // (Tq, Tk)
    s = g.op('Add', [s, g.op('Where', [hidden, g.constF(MASKED), g.constF(0)])]);
  }
  const m = g.op('ReduceMax', [s, axis], { keepdims: 1 }); // (Hkv, G, Tq, 1)
  let o: string;
  let lse: string;
  if (variant === 'bias4d') {
    const p = g.op('Exp', [g.op('Sub', [s, m])]);
    const l = g.op('ReduceSum', [p, axis], { keepdims: 1 });
    o = g.op('Div', [g.op('MatMul', [p, v4]), l]);
    lse = g.op('Add', [m, g.op('Log', [l])]);
  } else {
    const p = g.op('Softmax', [s], { axis: -1 });
    o = g.op('MatMul', [p, v4]);
    lse = g.op('Sub', [m, g.op('Log', [g.op('ReduceMax', [p, axis], { keepdims: 1 })])]);
  }
  g.output('o', g.op('Reshape', [o, g.constI([H, -1, D])]), 'float32', [H, 'Tq', D]);
  g.output('lse', g.op('Reshape', [lse, g.constI([H, -1])]), 'float32', [H, 'Tq']);
  return g.toBytes();
}

/**
 * Alternatives to the tiled path's graph (`buildAttendGraph`: bias input, 3-D GEMMs, fused Softmax,
 * lse = m − log max P), same contract — q (H, Tq, D), k/v (Hkv, Tk, D) [, bias (Tq, Tk)] → o, lse:
 *   'expsum' — P written out: m = max, e = exp(s − m), l = Σ e, o = (e·V) / l, lse = m + log l;
 *   'ones'   — as 'expsum' but l comes out of the P·V GEMM: e·[V | 1] = [e·V | l] (V gets a column
 *              of ones, a copy of the (small) V tile), saving the ReduceSum pass over the scores;
 *   'lse'    — lse = ReduceLogSumExp(s) (ORT max-shifts it), P = exp(s − lse), o = P·V.
 */
export type TiledVariant = 'expsum' | 'ones' | 'lse';

export function buildTiledVariant(cfg: ModelConfig, masked: boolean, variant: TiledVariant): Uint8Array {
  const { numHeads: H, numKvHeads: Hkv, headDim: D } = cfg;
  const G = H / Hkv;
  const g = new GraphBuilder(`attend_tiled_${variant}_${masked ? 'masked' : 'open'}`);
  const q = g.input('q', 'float32', [H, 'Tq', D]); // (H, Tq, D)
  const k = g.input('k', 'float32', [Hkv, 'Tk', D]); // (Hkv, Tk, D)
  const v = g.input('v', 'float32', [Hkv, 'Tk', D]); // (Hkv, Tk, D)
  const qs = g.op('Mul', [g.op('Reshape', [q, g.constI([Hkv, -1, D])]), g.constF(1 / Math.sqrt(D))]); // (Hkv, G·Tq, D)
  let s = g.op('MatMul', [qs, g.op('Transpose', [k], { perm: [0, 2, 1] })]); // (Hkv, G·Tq, Tk)
  if (masked) {
    const bias = g.input('bias', 'float32', ['Tq', 'Tk']); // (Tq, Tk)
    const tk = g.op('Shape', [k], { start: 1, end: 2 }); // (1)
    const s4 = g.op('Reshape', [s, g.op('Concat', [g.constI([Hkv, G, -1]), tk], { axis: 0 })]); // (Hkv, G, Tq, Tk)
    s = g.op('Reshape', [g.op('Add', [s4, bias]), g.op('Concat', [g.constI([Hkv, -1]), tk], { axis: 0 })]); // (Hkv, G·Tq, Tk)
  }
  const axis = g.constI([-1]);
  if (variant === 'lse') {
    const lse = g.op('ReduceLogSumExp', [s, axis], { keepdims: 1 }); // (Hkv, G·Tq, 1)
    const o = g.op('MatMul', [g.op('Exp', [g.op('Sub', [s, lse])]), v]); // (Hkv, G·Tq, D)
    g.output('o', g.op('Reshape', [o, g.constI([H, -1, D])]), 'float32', [H, 'Tq', D]);
    g.output('lse', g.op('Reshape', [lse, g.constI([H, -1])]), 'float32', [H, 'Tq']);
    return g.toBytes();
  }
  const m = g.op('ReduceMax', [s, axis], { keepdims: 1 }); // (Hkv, G·Tq, 1)
  const e = g.op('Exp', [g.op('Sub', [s, m])]); // (Hkv, G·Tq, Tk)
  let o: string;
  let l: string;
  if (variant === 'expsum') {
    l = g.op('ReduceSum', [e, axis], { keepdims: 1 }); // (Hkv, G·Tq, 1)
    o = g.op('Div', [g.op('MatMul', [e, v]), l]); // (Hkv, G·Tq, D)
  } else {
    const ones = g.op('Expand', [g.constF(1, [1, 1, 1]), g.op('Concat', [g.op('Shape', [v], { start: 0, end: 2 }), g.constI([1])], { axis: 0 })]); // (Hkv, Tk, 1)
    const ov = g.op('MatMul', [e, g.op('Concat', [v, ones], { axis: -1 })]); // (Hkv, G·Tq, D + 1)
    const [ou, ls] = g.opN('Split', [ov, g.constI([D, 1])], 2, { axis: -1 }); // (Hkv, G·Tq, D), (Hkv, G·Tq, 1)
    l = ls;
    o = g.op('Div', [ou, l]);
  }
  g.output('o', g.op('Reshape', [o, g.constI([H, -1, D])]), 'float32', [H, 'Tq', D]);
  g.output('lse', g.op('Reshape', [g.op('Add', [m, g.op('Log', [l])]), g.constI([H, -1])]), 'float32', [H, 'Tq']);
  return g.toBytes();
}

/**
 * 'chain': one call over P open key tiles (k0..k{P−1}, v0..v{P−1}, each (Hkv, w_i, D)), each tile's
 * softmax computed on its own and the P partials merged in the graph (max-shifted LSE merge on
 * (Hkv, G·Tq, ·) tensors) — the JS merge of P tiles becomes P small elementwise ops.
 *   q (H, Tq, D), k_i / v_i → o (H, Tq, D), lse (H, Tq)
 */
export function buildChainGraph(cfg: ModelConfig, tiles: number): Uint8Array {
  const { numHeads: H, numKvHeads: Hkv, headDim: D } = cfg;
  const g = new GraphBuilder(`attend_chain_${tiles}`);
  const q = g.input('q', 'float32', [H, 'Tq', D]); // (H, Tq, D)
  const qs = g.op('Mul', [g.op('Reshape', [q, g.constI([Hkv, -1, D])]), g.constF(1 / Math.sqrt(D))]); // (Hkv, G·Tq, D)
  const axis = g.constI([-1]);
  const os: string[] = [];
  const ls: string[] = [];
  for (let i = 0; i < tiles; i++) {
    const k = g.input(`k${i}`, 'float32', [Hkv, `Tk${i}`, D]); // (Hkv, Tk_i, D)
    const v = g.input(`v${i}`, 'float32', [Hkv, `Tk${i}`, D]); // (Hkv, Tk_i, D)
    const s = g.op('MatMul', [qs, g.op('Transpose', [k], { perm: [0, 2, 1] })]); // (Hkv, G·Tq, Tk_i)
    const m = g.op('ReduceMax', [s, axis], { keepdims: 1 }); // (Hkv, G·Tq, 1)
    const p = g.op('Softmax', [s], { axis: -1 });
    os.push(g.op('MatMul', [p, v])); // (Hkv, G·Tq, D)
    ls.push(g.op('Sub', [m, g.op('Log', [g.op('ReduceMax', [p, axis], { keepdims: 1 })])])); // (Hkv, G·Tq, 1)
  }
  const M = g.op('Max', ls); // (Hkv, G·Tq, 1)
  const ws = ls.map((l) => g.op('Exp', [g.op('Sub', [l, M])])); // weights ≤ 1, the max one = 1
  const W = g.op('Sum', ws); // (Hkv, G·Tq, 1) ≥ 1
  const o = g.op('Div', [g.op('Sum', os.map((oi, i) => g.op('Mul', [oi, ws[i]]))), W]); // (Hkv, G·Tq, D)
  const lse = g.op('Add', [M, g.op('Log', [W])]);
  g.output('o', g.op('Reshape', [o, g.constI([H, -1, D])]), 'float32', [H, 'Tq', D]);
  g.output('lse', g.op('Reshape', [lse, g.constI([H, -1])]), 'float32', [H, 'Tq']);
  return g.toBytes();
}
