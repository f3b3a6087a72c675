/**
 * Small helpers shared by the tests (numeric comparisons, seeded token ids, temp dirs).
 * Test-only: only spec and e2e files import this library.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

/** max |a[i] − b[i]|; throws when the lengths differ (a silent length mismatch would hide bugs). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`maxAbsDiff: lengths differ (${a.length} vs ${b.length})`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = d; // NaN propagates as NaN
  }
  return m;
}

/** Rows [from, to) of a row-major (T, V) matrix, as a view. */
export function rowsOf<T extends Float32Array | Float64Array>(x: T, V: number, from: number, to = from + 1): T {
  return x.subarray(from * V, to * V) as T;
}

/** Index of the largest value of row `row` of (T, V) (first on ties) and the gap to the runner-up. */
export function top2(x: ArrayLike<number>, V: number, row: number): { argmax: number; gap: number } {
  let best = -1;
  let bv = -Infinity;
  let second = -Infinity;
  for (let i = 0; i < V; i++) {
    const v = x[row * V + i];
    if (v > bv) {
      second = bv;
      bv = v;
      best = i;
    } else if (v > second) {
      second = v;
    }
  }
  return { argmax: best, gap: bv - second };
}

/** Seeded token ids (the one implementation, shared with benchmarks). */
export { randomTokenIds } from '@starq/model/synthetic/token-ids';

/** Int32Array [start, start + n). */
export function range(start: number, n: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => start + i);
}

/** Temp directories removed by `cleanup()` (call it in afterAll). */
export class TmpDirs {
  private readonly dirs: string[] = [];
  make(prefix = 'starq-test-'): string {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    this.dirs.push(d);
    return d;
  }
  cleanup(): void {
    for (const d of this.dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  }
}

/**
 * Asserts (with jest's `expect`) that an attention partial matches a float64 reference: rows that
 * see no key have lse −∞ and o = 0 exactly, every other row's lse and all of o are within `tol`.
 * o is (H, T, D), lse (H, T).
 */
export function expectPartialNear(got: { o: ArrayLike<number>; lse: ArrayLike<number> }, ref: { o: ArrayLike<number>; lse: ArrayLike<number> }, headDim: number, tol: number): void {
  expect(Array.from(got.o).every((x) => Number.isFinite(x))).toBe(true);
  for (let r = 0; r < ref.lse.length; r++) {
    if (ref.lse[r] === -Infinity) {
      expect(got.lse[r]).toBe(-Infinity);
      expect(Array.from(got.o).slice(r * headDim, (r + 1) * headDim).every((x) => x === 0)).toBe(true);
    } else {
      expect(Math.abs(got.lse[r] - ref.lse[r])).toBeLessThan(tol);
    }
  }
  expect(maxAbsDiff(got.o, ref.o)).toBeLessThan(tol);
}
