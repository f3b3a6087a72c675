/**
 * RULER's scoring. `string_match_all` (every task here): per sample, the fraction of reference
 * strings found in the prediction (case-insensitive), averaged over samples. With one reference
 * (niah_single, niah_multikey) a sample scores 0 or 1; with several (multivalue, multiquery, vt,
 * cwe) partial recall counts.
 *
 * "Found" is a whole-word match by default: the reference occurs in the prediction with no letter or
 * digit immediately before or after it, so that `123456` is not found in `1234567` (exact match of
 * the whole number, as niah-1M's README defines its score). RULER itself tests plain substring
 * containment; `{ wholeWord: false }` gives that.
 */

export interface MatchOptions {
  /** @defaultValue true */
  wholeWord?: boolean;
}

const WORD_CHAR = /[\p{L}\p{N}]/u;

/** True when `ref` occurs in `pred` (case-insensitive; whole-word unless disabled). */
export function contains(pred: string, ref: string, opts: MatchOptions = {}): boolean {
  const p = pred.toLowerCase();
  const r = ref.toLowerCase();
  if (r === '') return true;
  if (opts.wholeWord === false) return p.includes(r);
  for (let at = p.indexOf(r); at >= 0; at = p.indexOf(r, at + 1)) {
    const before = at > 0 ? p[at - 1] : '';
    const after = at + r.length < p.length ? p[at + r.length] : '';
    if (!(before !== '' && WORD_CHAR.test(before)) && !(after !== '' && WORD_CHAR.test(after))) return true;
  }
  return false;
}

/** One sample's `string_match_all` score in [0, 1]: found references / references. */
export function matchAll(pred: string, refs: readonly string[], opts: MatchOptions = {}): number {
  if (refs.length === 0) throw new Error('matchAll: a sample needs at least one reference');
  let found = 0;
  for (const r of refs) if (contains(pred, r, opts)) found++;
  return found / refs.length;
}

/** RULER's `string_match_all` over samples, as a fraction in [0, 1] (RULER prints it × 100). */
export function stringMatchAll(preds: readonly string[], refs: readonly (readonly string[])[], opts: MatchOptions = {}): number {
  if (preds.length !== refs.length) throw new Error(`stringMatchAll: ${preds.length} predictions for ${refs.length} reference lists`);
  if (preds.length === 0) return NaN;
  let sum = 0;
  for (let i = 0; i < preds.length; i++) sum += matchAll(preds[i], refs[i], opts);
  return sum / preds.length;
}
