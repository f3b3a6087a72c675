/**
 * Float64 reference attention with log-sum-exp, the ground truth every fast path is tested against.
 *
 * One visibility rule covers every mode (docs/DESIGN.md §4.1): key j is visible to query i iff
 * `kPos[j] <= qPos[i]`. With positions 0..T−1 on both sides it is ordinary causal attention; with
 * the phase-1 sequence `anchor ++ block` and its positions it is Star phase 1; with context keys
 * at positions < N and query rows at N.. it is phase 2 (the context is fully visible, the query's
 * own keys causally).
 *
 * GQA: query head h reads kv-head floor(h / (H / Hkv)). Scores are scaled by `scale`
 * (default 1/sqrt(D)). A row with no visible key gets lse = −∞ and o = 0.
 */
import { Partial64 } from './partial';

export interface AttentionShape {
  heads: number; // H  (query heads)
  kvHeads: number; // Hkv (H must be a multiple of Hkv)
  headDim: number; // D
  /** Score scale. @defaultValue 1/sqrt(D) */
  scale?: number;
}

export interface AttentionResult64 {
  o: Float64Array; // (H, Tq, D)
  lse: Float64Array; // (H, Tq)
}

type Floats = Float32Array | Float64Array | ArrayLike<number>;

/**
 * Attention of `q` over `k`/`v` with position-based visibility, in float64.
 *
 * @param q    (H, Tq, D)
 * @param k    (Hkv, Tk, D) — keys after RoPE
 * @param v    (Hkv, Tk, D)
 * @param qPos (Tq) query positions
 * @param kPos (Tk) key positions
 * @returns o (H, Tq, D) and lse (H, Tq), natural log of Σ_visible exp(scale · q·k)
 */
export function attentionWithLse(
  q: Floats,
  k: Floats,
  v: Floats,
  qPos: ArrayLike<number>,
  kPos: ArrayLike<number>,
  shape: AttentionShape,
): AttentionResult64 {
  const { heads: H, kvHeads: Hkv, headDim: D } = shape;
  const Tq = qPos.length;
  const Tk = kPos.length;
  if (!Number.isInteger(H) || !Number.isInteger(Hkv) || !Number.isInteger(D) || H < 1 || Hkv < 1 || D < 1) {
    throw new Error(`attentionWithLse: heads/kvHeads/headDim must be positive integers, got H=${H} Hkv=${Hkv} D=${D}`);
  }
  if (H % Hkv !== 0) throw new Error(`attentionWithLse: heads H=${H} is not a multiple of kvHeads Hkv=${Hkv}`);
  if (q.length !== H * Tq * D) throw new Error(`attentionWithLse: q has ${q.length} entries, expected (H=${H}, Tq=${Tq}, D=${D})`);
  if (k.length !== Hkv * Tk * D) throw new Error(`attentionWithLse: k has ${k.length} entries, expected (Hkv=${Hkv}, Tk=${Tk}, D=${D})`);
  if (v.length !== Hkv * Tk * D) throw new Error(`attentionWithLse: v has ${v.length} entries, expected (Hkv=${Hkv}, Tk=${Tk}, D=${D})`);
  const scale = shape.scale ?? 1 / Math.sqrt(D);
  const group = H / Hkv; // query heads per kv-head

  const o = new Float64Array(H * Tq * D); // (H, Tq, D)
  const lse = new Float64Array(H * Tq); // (H, Tq)
  const scores = new Float64Array(Tk); // (Tk) one row of scaled scores
  const visible = new Uint8Array(Tk); // (Tk) one row of the visibility mask

  for (let h = 0; h < H; h++) {
    const kvh = Math.floor(h / group);
    const kBase = kvh * Tk * D;
    for (let i = 0; i < Tq; i++) {
      const qBase = (h * Tq + i) * D;
      const oBase = qBase;
      const pi = qPos[i];
      // scores and their max over visible keys
      let m = -Infinity;
      for (let j = 0; j < Tk; j++) {
        if (kPos[j] <= pi) {
          visible[j] = 1;
          let s = 0;
          const kj = kBase + j * D;
          for (let d = 0; d < D; d++) s += q[qBase + d] * k[kj + d];
          s *= scale;
          scores[j] = s;
          if (s > m) m = s;
        } else {
          visible[j] = 0;
        }
      }
      if (m === -Infinity) {
        lse[h * Tq + i] = -Infinity; // fully masked row; o stays 0
        continue;
      }
      // softmax numerators exp(s − m), their sum, and the weighted sum of V
      let sum = 0;
      for (let j = 0; j < Tk; j++) {
        if (!visible[j]) continue;
        const p = Math.exp(scores[j] - m);
        sum += p;
        const vj = kBase + j * D;
        for (let d = 0; d < D; d++) o[oBase + d] += p * v[vj + d];
      }
      const inv = 1 / sum;
      for (let d = 0; d < D; d++) o[oBase + d] *= inv;
      lse[h * Tq + i] = m + Math.log(sum);
    }
  }
  return { o, lse };
}

/** `attentionWithLse` packaged as a float64 partial (for merging with `mergeInto`/`mergePartials64`). */
export function attentionPartial64(
  q: Floats,
  k: Floats,
  v: Floats,
  qPos: ArrayLike<number>,
  kPos: ArrayLike<number>,
  shape: AttentionShape,
): Partial64 {
  const { o, lse } = attentionWithLse(q, k, v, qPos, kPos, shape);
  return { o, lse, heads: shape.heads, rows: qPos.length, headDim: shape.headDim };
}
