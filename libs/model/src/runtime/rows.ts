/**
 * Row copies between head-major buffers. Activations, attention outputs and KV pages are all laid
 * out (heads, rows, D): each head holds its rows contiguously, so moving a run of rows means one
 * contiguous copy per head. `copyRows` is that copy; the rest are named uses of it.
 */
import { EMPTY_LSE, type Partial, type Partial64 } from '@starq/attention';

type Floats = Float32Array | Float64Array;

/**
 * Copy rows [srcR0, srcR0 + n) of `src` (heads, srcRows, D) into rows [dstR0, dstR0 + n) of `dst`
 * (heads, dstRows, D). The element types may differ (a float64 source is rounded to float32).
 */
export function copyRows(src: Floats, srcRows: number, srcR0: number, dst: Floats, dstRows: number, dstR0: number, n: number, heads: number, D: number): void {
  for (let h = 0; h < heads; h++) {
    const s = (h * srcRows + srcR0) * D;
    dst.set(src.subarray(s, s + n * D), (h * dstRows + dstR0) * D);
  }
}

/** Rows [r0, r1) of x (heads, T, D) as a new (heads, r1−r0, D). */
export function sliceRows(x: Float32Array, heads: number, T: number, D: number, r0: number, r1: number): Float32Array {
  const n = r1 - r0;
  const out = new Float32Array(heads * n * D); // (heads, n, D)
  copyRows(x, T, r0, out, n, 0, n, heads, D);
  return out;
}

/**
 * Write a row tile's partial `part` (H, n, D) into rows starting at r0 of `dst` (H, T, D), in
 * float32; rows with no visible key (lse ≤ EMPTY_LSE: unmerged −∞ or a fully masked tile's ≈ −1e30)
 * become o = 0, lse = −∞.
 */
export function writePartialRows(dst: Partial, part: Partial | Partial64, r0: number): void {
  const { heads: H, headDim: D } = dst;
  const T = dst.rows;
  const n = part.rows;
  copyRows(part.o, n, 0, dst.o, T, r0, n, H, D); // float64 → float32 for a Partial64
  copyRows(part.lse, n, 0, dst.lse, T, r0, n, H, 1);
  for (let h = 0; h < H; h++) {
    for (let i = 0; i < n; i++) {
      const row = h * T + r0 + i;
      if (!(dst.lse[row] > EMPTY_LSE)) {
        dst.lse[row] = -Infinity;
        dst.o.fill(0, row * D, (row + 1) * D);
      }
    }
  }
}

/** One tile of query rows: rows [r0, r0 + n) of a query, with their positions' range. */
export interface RowTile {
  r0: number;
  n: number;
  q: Float32Array; // (heads, n, D) — the query itself when one tile covers it
  qpos: Int32Array; // (n)
  minPos: number;
  maxPos: number;
}

/** The query q (heads, T, D) at positions qpos (T) in tiles of ≤ `rows` rows. */
export function* rowTiles(q: Float32Array, qpos: Int32Array, heads: number, D: number, rows: number): Generator<RowTile> {
  const T = qpos.length;
  for (let r0 = 0; r0 < T; r0 += rows) {
    const r1 = Math.min(T, r0 + rows);
    const n = r1 - r0;
    const tp = qpos.subarray(r0, r1);
    let minPos = Infinity;
    let maxPos = -Infinity;
    for (const p of tp) {
      if (p < minPos) minPos = p;
      if (p > maxPos) maxPos = p;
    }
    yield { r0, n, q: n === T ? q : sliceRows(q, heads, T, D, r0, r1), qpos: tp, minPos, maxPos };
  }
}
