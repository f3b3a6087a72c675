/**
 * Candidate formulation of the engine's `post` graph, for measurement only (probe-post.ts). Same
 * contract as `buildPostGraph` in libs/model/src/onnx/graphs.ts: x (T, hidden), attn (H, T, D) →
 * y (T, hidden) = h + down(silu(gate(n)) · up(n)), h = x + o_proj(attn), n = RMSNorm(h).
 *
 * 'split-free': gate and up are two MatMuls on their own (in, out) weights instead of one fused
 * (hidden, 2I) MatMul followed by a Split along the last axis (a strided copy of T×2I floats).
 */
import type { LayerWeights, ModelConfig } from '@starq/model';
import { GraphBuilder } from '@starq/model/onnx/graph-builder';
import { transposeMatrix } from '@starq/model/onnx/graphs';

export function buildPostSplitFree(cfg: ModelConfig, w: LayerWeights, layer: number): Uint8Array {
  const { hiddenSize: hid, numHeads: H, headDim: D, intermediateSize: I } = cfg;
  const g = new GraphBuilder(`post_splitfree_${layer}`);
  const x = g.input('x', 'float32', ['T', hid]);
  const attn = g.input('attn', 'float32', [H, 'T', D]);
  const a = g.op('Reshape', [g.op('Transpose', [attn], { perm: [1, 0, 2] }), g.constI([0, H * D])]); // (T, H·D)
  const h = g.op('Add', [x, g.op('MatMul', [a, g.weight('wo', transposeMatrix(w.o, hid, H * D), [H * D, hid])])]);
  // RMSNorm as in the engine
  const sq = g.op('Mul', [h, h]);
  const ms = g.op('ReduceMean', [sq, g.constI([-1])], { keepdims: 1 });
  const rs = g.op('Sqrt', [g.op('Add', [ms, g.constF(cfg.rmsNormEps)])]);
  const n = g.op('Mul', [g.op('Div', [h, rs]), g.weight('post_norm', w.postNorm, [hid])]);
  const gate = g.op('MatMul', [n, g.weight('wg', transposeMatrix(w.gate, I, hid), [hid, I])]); // (T, I)
  const up = g.op('MatMul', [n, g.weight('wu', transposeMatrix(w.up, I, hid), [hid, I])]); // (T, I)
  const act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up]);
  const out = g.op('Add', [h, g.op('MatMul', [act, g.weight('wdown', transposeMatrix(w.down, hid, I), [I, hid])])]);
  g.output('y', out, 'float32', ['T', hid]);
  return g.toBytes();
}
