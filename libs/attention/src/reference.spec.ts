import { attentionPartial64, attentionWithLse } from './reference';
import { mulberry32 } from '@starq/testing';

const rng = mulberry32;

function randn(r: () => number, n: number, scale = 1): Float64Array {
  const x = new Float64Array(n);
  for (let i = 0; i < n; i++) x[i] = (r() * 2 - 1) * scale;
  return x;
}

/** Textbook per-row softmax: explicit score list, explicit mask, no shared code with the reference. */
function naive(
  q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>,
  qPos: number[], kPos: number[], H: number, Hkv: number, D: number, scale: number,
): { o: number[]; lse: number[] } {
  const Tq = qPos.length;
  const Tk = kPos.length;
  const o: number[] = [];
  const lse: number[] = [];
  for (let h = 0; h < H; h++) {
    const kvh = Math.floor((h * Hkv) / H);
    for (let i = 0; i < Tq; i++) {
      const s: number[] = [];
      const idx: number[] = [];
      for (let j = 0; j < Tk; j++) {
        if (kPos[j] > qPos[i]) continue;
        let dot = 0;
        for (let d = 0; d < D; d++) dot += q[(h * Tq + i) * D + d] * k[(kvh * Tk + j) * D + d];
        s.push(dot * scale);
        idx.push(j);
      }
      if (s.length === 0) {
        lse.push(-Infinity);
        for (let d = 0; d < D; d++) o.push(0);
        continue;
      }
      const m = Math.max(...s);
      const e = s.map((x) => Math.exp(x - m));
      const z = e.reduce((a, b) => a + b, 0);
      lse.push(m + Math.log(z));
      for (let d = 0; d < D; d++) {
        let acc = 0;
        idx.forEach((j, n) => (acc += (e[n] / z) * v[(kvh * Tk + j) * D + d]));
        o.push(acc);
      }
    }
  }
  return { o, lse };
}

function expectClose(a: ArrayLike<number>, b: ArrayLike<number>, tol: number): void {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) {
    if (a[i] === -Infinity || b[i] === -Infinity) {
      expect(a[i]).toBe(b[i]);
      continue;
    }
    if (!(Math.abs(a[i] - b[i]) <= tol)) throw new Error(`index ${i}: ${a[i]} vs ${b[i]} (tol ${tol})`);
  }
}

describe('attentionWithLse (float64 reference)', () => {
  it('matches a naive per-row softmax: causal, GQA, random positions, masked rows', () => {
    const r = rng(1);
    const cases = [
      { H: 1, Hkv: 1, D: 4, Tq: 5, Tk: 5, causal: true },
      { H: 4, Hkv: 2, D: 8, Tq: 7, Tk: 7, causal: true },
      { H: 6, Hkv: 3, D: 6, Tq: 4, Tk: 11, causal: false },
      { H: 8, Hkv: 1, D: 2, Tq: 9, Tk: 3, causal: false },
      { H: 2, Hkv: 2, D: 5, Tq: 3, Tk: 0, causal: false },
    ];
    for (const c of cases) {
      const q = randn(r, c.H * c.Tq * c.D, 2);
      const k = randn(r, c.Hkv * c.Tk * c.D, 2);
      const v = randn(r, c.Hkv * c.Tk * c.D);
      const qPos = c.causal ? [...Array(c.Tq).keys()] : Array.from({ length: c.Tq }, () => Math.floor(r() * 12) - 2);
      const kPos = c.causal ? [...Array(c.Tk).keys()] : Array.from({ length: c.Tk }, () => Math.floor(r() * 12));
      const scale = c.causal ? 1 / Math.sqrt(c.D) : 0.7;
      const got = attentionWithLse(q, k, v, qPos, kPos, { heads: c.H, kvHeads: c.Hkv, headDim: c.D, scale: c.causal ? undefined : scale });
      const want = naive(q, k, v, qPos, kPos, c.H, c.Hkv, c.D, scale);
      expectClose(got.o, want.o, 1e-12);
      expectClose(got.lse, want.lse, 1e-12);
    }
  });

  it('fully masked rows give lse = -Infinity and o = 0, never NaN', () => {
    const q = new Float64Array(2 * 2 * 3).fill(1); // (H=2, Tq=2, D=3)
    const k = new Float64Array(1 * 2 * 3).fill(1); // (Hkv=1, Tk=2, D=3)
    const v = new Float64Array(1 * 2 * 3).fill(5);
    const res = attentionWithLse(q, k, v, [0, 10], [5, 6], { heads: 2, kvHeads: 1, headDim: 3 });
    expect(Array.from(res.lse)).toEqual([-Infinity, expect.any(Number), -Infinity, expect.any(Number)]);
    expect(Array.from(res.o.subarray(0, 3))).toEqual([0, 0, 0]);
    expect(Array.from(res.o.subarray(3, 6))).toEqual([5, 5, 5]);
    expect(res.lse[1]).toBeCloseTo(Math.log(2) + 3 / Math.sqrt(3), 12);
    expect(res.o.some((x) => Number.isNaN(x))).toBe(false);
  });

  it('accepts float32 inputs and packages a Partial64', () => {
    const q = Float32Array.from([1, 0, 0, 1]); // (1, 2, 2)
    const k = Float32Array.from([1, 0, 0, 1]);
    const v = Float32Array.from([1, 2, 3, 4]);
    const p = attentionPartial64(q, k, v, [0, 1], [0, 1], { heads: 1, kvHeads: 1, headDim: 2 });
    expect(p).toMatchObject({ heads: 1, rows: 2, headDim: 2 });
    expect(Array.from(p.o.subarray(0, 2))).toEqual([1, 2]);
    expect(p.lse[0]).toBeCloseTo(1 / Math.sqrt(2), 14);
  });

  it('rejects inconsistent shapes', () => {
    const z = new Float64Array(8);
    expect(() => attentionWithLse(z, z, z, [0, 1], [0, 1], { heads: 3, kvHeads: 2, headDim: 2 })).toThrow(/multiple/);
    expect(() => attentionWithLse(z, z, z, [0, 1], [0, 1], { heads: 1, kvHeads: 1, headDim: 2 })).toThrow(/q has 8 entries/);
  });
});
