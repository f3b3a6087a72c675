/**
 * A *partial* attention result: the output and log-sum-exp of some query rows attending to a
 * subset of the keys (one host's blocks, one column chunk, ...). Partials over disjoint key sets
 * merge exactly into the result over their union (see `merge.ts`).
 *
 * Layout (row-major, head-major):
 *   o   (H, T, D)  — softmax-weighted sum of V over the partial's visible keys
 *   lse (H, T)     — natural-log sum-exp of the scaled scores over those keys
 *
 * Empty rows: a row with no visible key has `lse = -Infinity`, or any value `<= EMPTY_LSE` (hosts
 * and ONNX graphs may use a large finite negative instead of -Infinity). Such a row has weight 0 in
 * a merge and its `o` is ignored (it may hold anything, even NaN). An LSE of +Infinity or NaN is
 * a bug upstream: the merge routines throw on it rather than propagate NaN.
 */

/** Any LSE at or below this value marks an empty row (weight 0). */
export const EMPTY_LSE = -1e29;

/** True when `lse` marks a row with no visible keys (`-Infinity` or `<= EMPTY_LSE`; also NaN). */
export function isEmptyLse(lse: number): boolean {
  return !(lse > EMPTY_LSE);
}

/** Float32 partial: the wire/runtime form. */
export interface Partial {
  o: Float32Array; // (H, T, D)
  lse: Float32Array; // (H, T)
  heads: number; // H
  rows: number; // T
  headDim: number; // D
}

/** Float64 twin: the reference form and the streaming-merge accumulator. */
export interface Partial64 {
  o: Float64Array; // (H, T, D)
  lse: Float64Array; // (H, T)
  heads: number; // H
  rows: number; // T
  headDim: number; // D
}

/** Either precision (the merge routines accept both). */
export type AnyPartial = Partial | Partial64;

/** Alias that does not shadow TypeScript's built-in `Partial<T>` where that matters to a reader. */
export type AttentionPartial = Partial;

/** Shape string for error messages, e.g. `(H=8, T=3, D=64)`. */
export function partialShape(p: { heads: number; rows: number; headDim: number }): string {
  return `(H=${p.heads}, T=${p.rows}, D=${p.headDim})`;
}

/** Throws unless the declared dimensions are non-negative integers and the arrays match them. */
export function assertPartial(p: AnyPartial, name = 'partial'): void {
  const { heads, rows, headDim } = p;
  for (const [k, v] of [
    ['heads', heads],
    ['rows', rows],
    ['headDim', headDim],
  ] as const) {
    if (!Number.isInteger(v) || v < 0) throw new Error(`${name}: ${k} must be a non-negative integer, got ${v}`);
  }
  if (p.lse.length !== heads * rows) {
    throw new Error(`${name}: lse has ${p.lse.length} entries, expected H·T = ${heads * rows} for ${partialShape(p)}`);
  }
  if (p.o.length !== heads * rows * headDim) {
    throw new Error(
      `${name}: o has ${p.o.length} entries, expected H·T·D = ${heads * rows * headDim} for ${partialShape(p)}`,
    );
  }
}

/** Throws unless `a` and `b` have identical (H, T, D). */
export function assertSameShape(a: AnyPartial, b: AnyPartial, nameA = 'acc', nameB = 'part'): void {
  if (a.heads !== b.heads || a.rows !== b.rows || a.headDim !== b.headDim) {
    throw new Error(`partial shape mismatch: ${nameA} ${partialShape(a)} vs ${nameB} ${partialShape(b)}`);
  }
}

/** An all-empty float32 partial: o = 0 (H, T, D), lse = -Infinity (H, T). */
export function emptyPartial(heads: number, rows: number, headDim: number): Partial {
  const lse = new Float32Array(heads * rows); // (H, T)
  lse.fill(-Infinity);
  return { o: new Float32Array(heads * rows * headDim) /* (H, T, D) */, lse, heads, rows, headDim };
}

/** An all-empty float64 partial (the streaming-merge accumulator's initial state). */
export function emptyPartial64(heads: number, rows: number, headDim: number): Partial64 {
  const lse = new Float64Array(heads * rows); // (H, T)
  lse.fill(-Infinity);
  return { o: new Float64Array(heads * rows * headDim) /* (H, T, D) */, lse, heads, rows, headDim };
}

/** Float32 copy of a partial (empty rows are normalised to o = 0, lse = -Infinity). */
export function toPartial32(p: AnyPartial): Partial {
  return { ...copyNormalised(p, (n) => new Float32Array(n)), heads: p.heads, rows: p.rows, headDim: p.headDim };
}

/** Float64 copy of a partial (empty rows are normalised to o = 0, lse = -Infinity). */
export function toPartial64(p: AnyPartial): Partial64 {
  return { ...copyNormalised(p, (n) => new Float64Array(n)), heads: p.heads, rows: p.rows, headDim: p.headDim };
}

function copyNormalised<A extends Float32Array | Float64Array>(p: AnyPartial, alloc: (n: number) => A): { o: A; lse: A } {
  assertPartial(p);
  const { heads, rows, headDim: D } = p;
  const o = alloc(heads * rows * D); // (H, T, D)
  const lse = alloc(heads * rows); // (H, T)
  for (let r = 0; r < heads * rows; r++) {
    const l = p.lse[r];
    if (isEmptyLse(l)) {
      lse[r] = -Infinity;
      continue;
    }
    lse[r] = l;
    const base = r * D;
    for (let d = 0; d < D; d++) o[base + d] = p.o[base + d];
  }
  return { o, lse };
}
