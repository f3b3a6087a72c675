/**
 * Exact merge of partial attention results over disjoint key sets (docs/DESIGN.md
 * §4.3). For one (head, row), with partials h = 1..P:
 *
 *   m = max_h L_h
 *   L = m + log Σ_h exp(L_h − m)
 *   O = Σ_h exp(L_h − L) · O_h
 *
 * Empty partial rows (L_h = −∞ or ≤ EMPTY_LSE) have weight 0 and their O_h is never read. A row
 * that is empty in every partial merges to O = 0, L = −∞. `exp` is only ever applied to a
 * non-positive shifted value, so nothing overflows whatever the LSE magnitudes, and no NaN appears.
 *
 * Two entry points:
 *   - `mergePartials(parts)` — batch merge of P float32 partials, accumulated in float64 per row.
 *   - `mergeInto(acc, part)` — streaming, pairwise, in place (column chunks arriving one by one).
 *     Use a float64 accumulator (`emptyPartial64`) and convert once at the end (`toPartial32`) so
 *     the streamed result equals the batch result to float rounding.
 */
import {
  AnyPartial,
  EMPTY_LSE,
  Partial,
  Partial64,
  assertPartial,
  assertSameShape,
  partialShape,
} from './partial';

type FloatArray = Float32Array | Float64Array;

/** +Infinity / NaN cannot come out of a valid attention; refuse rather than emit NaN. */
function badLse(l: number, where: string): never {
  throw new Error(`${where}: invalid LSE ${l} (expected finite, -Infinity, or <= ${EMPTY_LSE} for empty rows)`);
}

/**
 * Batch merge shared by both precisions. Writes into `outO` (H, T, D) and `outLse` (H, T).
 * Tight loops over typed arrays; the only allocations are two scratch arrays per call.
 */
function mergeKernel(
  lses: FloatArray[], // P × (H·T)
  os: FloatArray[], // P × (H·T·D)
  nRows: number, // H·T
  D: number,
  outO: FloatArray, // (H, T, D)
  outLse: FloatArray, // (H, T)
): void {
  const P = lses.length;
  const acc = new Float64Array(D); // (D) float64 accumulator for one row
  const lRow = new Float64Array(P); // (P) the row's LSE per partial (−∞ when empty)
  for (let r = 0; r < nRows; r++) {
    // m = max over non-empty partials
    let m = -Infinity;
    for (let p = 0; p < P; p++) {
      const l = lses[p][r];
      if (l > EMPTY_LSE) {
        if (l === Infinity) badLse(l, `mergePartials: part ${p} row ${r}`);
        lRow[p] = l;
        if (l > m) m = l;
      } else {
        if (l !== l) badLse(l, `mergePartials: part ${p} row ${r}`);
        lRow[p] = -Infinity;
      }
    }
    const base = r * D;
    if (m === -Infinity) {
      outLse[r] = -Infinity;
      for (let d = 0; d < D; d++) outO[base + d] = 0;
      continue;
    }
    // L = m + log Σ exp(L_h − m)   (the max term contributes exactly 1, so the sum is ≥ 1)
    let s = 0;
    for (let p = 0; p < P; p++) {
      const l = lRow[p];
      if (l !== -Infinity) s += Math.exp(l - m);
    }
    const L = m + Math.log(s);
    // O = Σ exp(L_h − L) · O_h
    for (let d = 0; d < D; d++) acc[d] = 0;
    for (let p = 0; p < P; p++) {
      const l = lRow[p];
      if (l === -Infinity) continue;
      const w = Math.exp(l - L);
      const o = os[p];
      for (let d = 0; d < D; d++) acc[d] += w * o[base + d];
    }
    outLse[r] = L;
    for (let d = 0; d < D; d++) outO[base + d] = acc[d];
  }
}

function checkParts(parts: readonly AnyPartial[], fn: string): void {
  if (parts.length === 0) throw new Error(`${fn}: need at least one partial`);
  assertPartial(parts[0], `${fn}: part 0`);
  for (let p = 1; p < parts.length; p++) {
    assertPartial(parts[p], `${fn}: part ${p}`);
    if (
      parts[p].heads !== parts[0].heads ||
      parts[p].rows !== parts[0].rows ||
      parts[p].headDim !== parts[0].headDim
    ) {
      throw new Error(
        `${fn}: partial shape mismatch: part 0 ${partialShape(parts[0])} vs part ${p} ${partialShape(parts[p])}`,
      );
    }
  }
}

/**
 * Merge float32 partials over disjoint key sets into one float32 partial (float64 accumulation).
 * All parts must share (H, T, D). Returns fresh arrays; the inputs are not modified.
 */
export function mergePartials(parts: readonly Partial[]): Partial {
  checkParts(parts, 'mergePartials');
  const { heads, rows, headDim } = parts[0];
  const o = new Float32Array(heads * rows * headDim); // (H, T, D)
  const lse = new Float32Array(heads * rows); // (H, T)
  mergeKernel(
    parts.map((p) => p.lse),
    parts.map((p) => p.o),
    heads * rows,
    headDim,
    o,
    lse,
  );
  return { o, lse, heads, rows, headDim };
}

/** Float64 variant of `mergePartials` (inputs of either precision, float64 output). */
export function mergePartials64(parts: readonly AnyPartial[]): Partial64 {
  checkParts(parts, 'mergePartials64');
  const { heads, rows, headDim } = parts[0];
  const o = new Float64Array(heads * rows * headDim); // (H, T, D)
  const lse = new Float64Array(heads * rows); // (H, T)
  mergeKernel(
    parts.map((p) => p.lse),
    parts.map((p) => p.o),
    heads * rows,
    headDim,
    o,
    lse,
  );
  return { o, lse, heads, rows, headDim };
}

/**
 * Streaming merge: fold `part` into `acc` in place and return `acc`. Pairwise form of the same
 * max-shifted merge. Starting from `emptyPartial64(H, T, D)` and folding parts in any order gives
 * `mergePartials` of all of them to float64 rounding. A float32 `acc` also works but rounds o and
 * lse to float32 after every fold.
 */
export function mergeInto<A extends AnyPartial>(acc: A, part: AnyPartial): A {
  assertPartial(acc, 'mergeInto: acc');
  assertPartial(part, 'mergeInto: part');
  assertSameShape(acc, part);
  const D = acc.headDim;
  const nRows = acc.heads * acc.rows;
  const aO: FloatArray = acc.o; // (H, T, D)
  const aL: FloatArray = acc.lse; // (H, T)
  const pO: FloatArray = part.o; // (H, T, D)
  const pL: FloatArray = part.lse; // (H, T)
  for (let r = 0; r < nRows; r++) {
    const lp = pL[r];
    const la = aL[r];
    if (lp !== lp || lp === Infinity) badLse(lp, `mergeInto: part row ${r}`);
    if (la !== la || la === Infinity) badLse(la, `mergeInto: acc row ${r}`);
    const base = r * D;
    const aEmpty = !(la > EMPTY_LSE);
    if (!(lp > EMPTY_LSE)) {
      // Nothing to add; normalise an empty accumulator row.
      if (aEmpty) {
        aL[r] = -Infinity;
        for (let d = 0; d < D; d++) aO[base + d] = 0;
      }
      continue;
    }
    if (aEmpty) {
      aL[r] = lp;
      for (let d = 0; d < D; d++) aO[base + d] = pO[base + d];
      continue;
    }
    // m = max(La, Lp); L = m + log(exp(La − m) + exp(Lp − m)) = m + log1p(exp(−|La − Lp|))
    const m = la > lp ? la : lp;
    const L = m + Math.log1p(Math.exp(-Math.abs(la - lp)));
    const wa = Math.exp(la - L);
    const wp = Math.exp(lp - L);
    for (let d = 0; d < D; d++) aO[base + d] = wa * aO[base + d] + wp * pO[base + d];
    aL[r] = L;
  }
  return acc;
}
