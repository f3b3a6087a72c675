/**
 * Rotary position embeddings, HF `rotate_half` convention (shared by the ONNX path and the float64
 * reference).
 *
 * For one head vector x (D), halves x1 = x[:D/2], x2 = x[D/2:], and angle θ_i = pos · invFreq[i]:
 *   out1 = x1·cos θ − x2·sin θ
 *   out2 = x2·cos θ + x1·sin θ
 *
 * invFreq[i] = theta^(−2i/D), i = 0..D/2−1, optionally rescaled by the Llama 3.1 rule.
 * Angles are always computed in float64.
 */
import type { ModelConfig } from './types';

/**
 * Inverse frequencies (D/2), with `llama3` rope scaling applied when configured:
 *   wavelen = 2π / f
 *   wavelen < orig / highFreqFactor  → f              (high frequencies unchanged)
 *   wavelen > orig / lowFreqFactor   → f / factor     (low frequencies scaled)
 *   otherwise smooth = (orig / wavelen − low) / (high − low),
 *             f ← (1 − smooth) · f / factor + smooth · f
 */
export function ropeInvFreq(config: Pick<ModelConfig, 'headDim' | 'ropeTheta' | 'ropeScaling'>): Float64Array {
  const D = config.headDim;
  if (!Number.isInteger(D) || D < 2 || D % 2 !== 0) throw new Error(`RoPE needs an even head_dim, got ${D}`);
  const half = D / 2;
  const inv = new Float64Array(half); // (D/2)
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.pow(config.ropeTheta, (2 * i) / D);
  const sc = config.ropeScaling;
  if (sc.type === 'llama3') {
    const { factor, lowFreqFactor: low, highFreqFactor: high, originalMaxPositionEmbeddings: orig } = sc;
    const lowFreqWavelen = orig / low;
    const highFreqWavelen = orig / high;
    for (let i = 0; i < half; i++) {
      const f = inv[i];
      const wavelen = (2 * Math.PI) / f;
      if (wavelen < highFreqWavelen) continue;
      if (wavelen > lowFreqWavelen) {
        inv[i] = f / factor;
      } else {
        const smooth = (orig / wavelen - low) / (high - low);
        inv[i] = ((1 - smooth) * f) / factor + smooth * f;
      }
    }
  }
  return inv;
}

/** cos/sin tables (T, D/2) as float32, angles in float64. */
export function ropeCosSin(
  invFreq: ArrayLike<number>, // (D/2)
  positions: ArrayLike<number>, // (T)
): { cos: Float32Array; sin: Float32Array } {
  const { cos, sin } = ropeCosSin64(invFreq, positions);
  return { cos: Float32Array.from(cos) /* (T, D/2) */, sin: Float32Array.from(sin) /* (T, D/2) */ };
}

/** cos/sin tables (T, D/2) in float64. */
export function ropeCosSin64(
  invFreq: ArrayLike<number>, // (D/2)
  positions: ArrayLike<number>, // (T)
): { cos: Float64Array; sin: Float64Array } {
  const half = invFreq.length;
  const T = positions.length;
  const cos = new Float64Array(T * half); // (T, D/2)
  const sin = new Float64Array(T * half); // (T, D/2)
  for (let t = 0; t < T; t++) {
    const p = positions[t];
    for (let i = 0; i < half; i++) {
      const angle = p * invFreq[i];
      cos[t * half + i] = Math.cos(angle);
      sin[t * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

/**
 * Apply RoPE in place to x (heads, T, D) with tables cos/sin (T, D/2) (rotate_half convention).
 * Works for float32 or float64 arrays; arithmetic is float64.
 */
export function applyRopeInPlace(
  x: Float32Array | Float64Array, // (heads, T, D)
  cos: ArrayLike<number>, // (T, D/2)
  sin: ArrayLike<number>, // (T, D/2)
  heads: number,
  T: number,
  D: number,
): void {
  const half = D / 2;
  if (x.length !== heads * T * D) throw new Error(`applyRope: x has ${x.length} entries, expected (${heads}, ${T}, ${D})`);
  if (cos.length !== T * half || sin.length !== T * half) {
    throw new Error(`applyRope: cos/sin must be (T=${T}, D/2=${half}), got ${cos.length} and ${sin.length} entries`);
  }
  for (let h = 0; h < heads; h++) {
    for (let t = 0; t < T; t++) {
      const base = (h * T + t) * D;
      const cs = t * half;
      for (let i = 0; i < half; i++) {
        const x1 = x[base + i];
        const x2 = x[base + half + i];
        const c = cos[cs + i];
        const s = sin[cs + i];
        x[base + i] = x1 * c - x2 * s;
        x[base + half + i] = x2 * c + x1 * s;
      }
    }
  }
}
