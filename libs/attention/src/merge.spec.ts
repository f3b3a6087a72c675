import { mergeInto, mergePartials, mergePartials64 } from './merge';
import { Partial, emptyPartial, emptyPartial64, toPartial32 } from './partial';
import { attentionWithLse } from './reference';
import { mulberry32 } from '@starq/testing';

const rng = mulberry32;

interface Problem {
  H: number; Hkv: number; D: number; Tq: number; Tk: number;
  q: Float64Array; k: Float64Array; v: Float64Array; qPos: number[]; kPos: number[];
}

function makeProblem(r: () => number, H: number, Hkv: number, D: number, Tq: number, Tk: number): Problem {
  const rnd = (n: number, s: number) => Float64Array.from({ length: n }, () => (r() * 2 - 1) * s);
  const kPos = Array.from({ length: Tk }, (_, j) => j);
  // Query rows mostly see a prefix of the keys; some see nothing (fully masked) or everything.
  const qPos = Array.from({ length: Tq }, () => Math.floor(r() * (Tk + 4)) - 3);
  return { H, Hkv, D, Tq, Tk, q: rnd(H * Tq * D, 1.5), k: rnd(Hkv * Tk * D, 1.5), v: rnd(Hkv * Tk * D, 1), qPos, kPos };
}

/** Reference partial (float64 math, cast to float32) of the rows over the key subset `keys`. */
function partOver(p: Problem, keys: number[], r: () => number): Partial {
  const { H, Hkv, D, Tk } = p;
  const n = keys.length;
  const k = new Float64Array(Hkv * n * D); // (Hkv, n, D)
  const v = new Float64Array(Hkv * n * D); // (Hkv, n, D)
  for (let h = 0; h < Hkv; h++) {
    keys.forEach((j, c) => {
      for (let d = 0; d < D; d++) {
        k[(h * n + c) * D + d] = p.k[(h * Tk + j) * D + d];
        v[(h * n + c) * D + d] = p.v[(h * Tk + j) * D + d];
      }
    });
  }
  const res = attentionWithLse(p.q, k, v, p.qPos, keys.map((j) => p.kPos[j]), { heads: H, kvHeads: Hkv, headDim: D });
  const part: Partial = { o: Float32Array.from(res.o), lse: Float32Array.from(res.lse), heads: H, rows: p.Tq, headDim: D };
  // Empty rows may arrive as a large negative LSE with garbage O: both must be ignored.
  for (let i = 0; i < part.lse.length; i++) {
    if (part.lse[i] === -Infinity && r() < 0.5) {
      part.lse[i] = r() < 0.5 ? -1e30 : -3e38;
      part.o.fill(NaN, i * D, (i + 1) * D);
    }
  }
  return part;
}

/** A random partition of 0..Tk−1 into P parts of random sizes (some empty, some single keys). */
function randomPartition(r: () => number, Tk: number, P: number): number[][] {
  const keys = Array.from({ length: Tk }, (_, j) => j);
  for (let i = Tk - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [keys[i], keys[j]] = [keys[j], keys[i]];
  }
  const cuts = Array.from({ length: P - 1 }, () => Math.floor(r() * (Tk + 1))).sort((a, b) => a - b);
  const parts: number[][] = [];
  let prev = 0;
  for (const c of [...cuts, Tk]) {
    parts.push(keys.slice(prev, c));
    prev = c;
  }
  return parts;
}

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < got.length; i++) {
    const g = got[i];
    const w = want[i];
    if (Number.isNaN(g)) throw new Error(`${what}[${i}] is NaN`);
    if (w === -Infinity || g === -Infinity) {
      if (g !== w) throw new Error(`${what}[${i}]: ${g} vs ${w}`);
      continue;
    }
    if (!(Math.abs(g - w) <= tol * Math.max(1, Math.abs(w)))) throw new Error(`${what}[${i}]: ${g} vs ${w} (tol ${tol})`);
  }
}

describe('mergePartials', () => {
  it('merging any random partition of the keys equals one softmax over all keys (1e-6, float32)', () => {
    const r = rng(42);
    for (let trial = 0; trial < 200; trial++) {
      const Hkv = 1 + Math.floor(r() * 3);
      const H = Hkv * (1 + Math.floor(r() * 3));
      const D = 1 + Math.floor(r() * 9);
      const Tq = 1 + Math.floor(r() * 6);
      const Tk = Math.floor(r() * 20);
      const prob = makeProblem(r, H, Hkv, D, Tq, Tk);
      const full = attentionWithLse(prob.q, prob.k, prob.v, prob.qPos, prob.kPos, { heads: H, kvHeads: Hkv, headDim: D });
      const P = 1 + Math.floor(r() * 6);
      // Every 10th trial: one key per part plus an empty part (the finest partition).
      const keySets = trial % 10 === 0 ? [[], ...Array.from({ length: Tk }, (_, j) => [j])] : randomPartition(r, Tk, P);
      // Sometimes add a part whose keys are invisible to every row (positions beyond all queries).
      const parts = keySets.map((ks) => partOver(prob, ks, r));
      if (r() < 0.3) {
        const masked = emptyPartial(H, Tq, D);
        masked.lse.fill(-1e30);
        masked.o.fill(123);
        parts.splice(Math.floor(r() * parts.length), 0, masked);
      }
      const merged = mergePartials(parts);
      expect(merged).toMatchObject({ heads: H, rows: Tq, headDim: D });
      expectClose(merged.o, full.o, 1e-6, `trial ${trial} o`);
      expectClose(merged.lse, full.lse, 1e-6, `trial ${trial} lse`);
      // Empty rows come out as exactly o = 0, lse = -Infinity.
      for (let i = 0; i < H * Tq; i++) {
        if (full.lse[i] === -Infinity) {
          expect(merged.lse[i]).toBe(-Infinity);
          for (let d = 0; d < D; d++) expect(merged.o[i * D + d]).toBe(0);
        }
      }
    }
  });

  it('streaming mergeInto equals mergePartials (float64 and float32 accumulators)', () => {
    const r = rng(7);
    for (let trial = 0; trial < 100; trial++) {
      const H = 4;
      const Hkv = 2;
      const D = 8;
      const Tq = 5;
      const Tk = 3 + Math.floor(r() * 40);
      const prob = makeProblem(r, H, Hkv, D, Tq, Tk);
      const P = 1 + Math.floor(r() * 8);
      const parts = randomPartition(r, Tk, P).map((ks) => partOver(prob, ks, r));
      const batch = mergePartials(parts);

      const acc64 = emptyPartial64(H, Tq, D);
      for (const p of parts) expect(mergeInto(acc64, p)).toBe(acc64);
      const streamed = toPartial32(acc64);
      const batch64 = mergePartials64(parts);
      expectClose(acc64.o, batch64.o, 1e-13, 'o64');
      expectClose(acc64.lse, batch64.lse, 1e-13, 'lse64');
      expectClose(streamed.o, batch.o, 2e-7, 'o');
      expectClose(streamed.lse, batch.lse, 2e-7, 'lse');

      const acc32 = emptyPartial(H, Tq, D);
      for (const p of [...parts].reverse()) mergeInto(acc32, p);
      expectClose(acc32.o, batch.o, 1e-6, 'o32');
      expectClose(acc32.lse, batch.lse, 1e-6, 'lse32');
    }
  });

  it('large LSE magnitudes (±1e4 offsets) neither overflow nor lose precision', () => {
    const r = rng(3);
    const H = 2;
    const T = 3;
    const D = 4;
    for (const offset of [1e4, -1e4]) {
      // LSEs on a 2^-10 grid so that `lse + offset` is exact in float32 (ulp at 1e4 is 2^-10).
      const base: Partial[] = Array.from({ length: 4 }, () => ({
        o: Float32Array.from({ length: H * T * D }, () => r() * 2 - 1),
        lse: Float32Array.from({ length: H * T }, () => Math.round((r() * 10 - 5) * 1024) / 1024),
        heads: H,
        rows: T,
        headDim: D,
      }));
      const shifted = base.map((p) => ({ ...p, lse: p.lse.map((l) => l + offset) }));
      shifted.forEach((p, i) => p.lse.forEach((l, j) => expect(l - offset).toBe(base[i].lse[j])));
      const a = mergePartials(base);
      const b = mergePartials(shifted);
      expectClose(b.o, a.o, 1e-6, 'o');
      for (let i = 0; i < H * T; i++) {
        expect(Number.isFinite(b.lse[i])).toBe(true);
        expect(Math.abs(b.lse[i] - (a.lse[i] + offset))).toBeLessThanOrEqual(1e-3); // float32 ulp at 1e4
      }
      const acc = emptyPartial64(H, T, D);
      shifted.forEach((p) => mergeInto(acc, p));
      expectClose(acc.o, a.o, 1e-6, 'streamed o');
    }
    // Wildly different magnitudes: the small one gets weight ~0, no Inf/NaN.
    const big: Partial = { o: Float32Array.of(1, 2), lse: Float32Array.of(3e4), heads: 1, rows: 1, headDim: 2 };
    const small: Partial = { o: Float32Array.of(9, 9), lse: Float32Array.of(-3e4), heads: 1, rows: 1, headDim: 2 };
    const m = mergePartials([small, big]);
    expect(Array.from(m.o)).toEqual([1, 2]);
    expect(m.lse[0]).toBe(3e4);
  });

  it('all-empty rows merge to o = 0, lse = -Infinity (never NaN)', () => {
    const a = emptyPartial(2, 2, 3);
    const b = emptyPartial(2, 2, 3);
    a.o.fill(NaN);
    b.lse.fill(-1e29);
    b.o.fill(Infinity);
    const m = mergePartials([a, b]);
    expect(Array.from(m.lse)).toEqual([-Infinity, -Infinity, -Infinity, -Infinity]);
    expect(m.o.every((x) => x === 0)).toBe(true);
    const acc = emptyPartial64(2, 2, 3);
    mergeInto(acc, a);
    mergeInto(acc, b);
    expect(acc.o.every((x) => x === 0)).toBe(true);
    expect(acc.lse.every((x) => x === -Infinity)).toBe(true);
  });

  it('a single partial merges to itself', () => {
    const p: Partial = { o: Float32Array.of(0.25, -1.5), lse: Float32Array.of(2.5), heads: 1, rows: 1, headDim: 2 };
    const m = mergePartials([p]);
    expect(Array.from(m.o)).toEqual([0.25, -1.5]);
    expect(Array.from(m.lse)).toEqual([2.5]);
  });

  it('validates shapes and LSE values', () => {
    expect(() => mergePartials([])).toThrow(/at least one/);
    expect(() => mergePartials([emptyPartial(2, 3, 4), emptyPartial(2, 3, 5)])).toThrow(
      /part 0 \(H=2, T=3, D=4\) vs part 1 \(H=2, T=3, D=5\)/,
    );
    const bad: Partial = { o: new Float32Array(5), lse: new Float32Array(2), heads: 1, rows: 2, headDim: 3 };
    expect(() => mergePartials([bad])).toThrow(/o has 5 entries/);
    expect(() => mergeInto(emptyPartial64(1, 2, 3), emptyPartial(2, 1, 3))).toThrow(/acc \(H=1, T=2, D=3\) vs part \(H=2, T=1, D=3\)/);
    const nan: Partial = { o: new Float32Array(2), lse: Float32Array.of(NaN), heads: 1, rows: 1, headDim: 2 };
    expect(() => mergePartials([nan])).toThrow(/invalid LSE/);
    expect(() => mergeInto(emptyPartial64(1, 1, 2), nan)).toThrow(/invalid LSE/);
  });
});
