/**
 * Next-token sampling: a small seeded PRNG and temperature / top-k / top-p (nucleus) sampling over
 * one row of logits. Pure functions of (logits, params, rng state): the same seed gives the same
 * tokens on every machine.
 */
import { InvalidInputError } from '@starq/protocol/errors';

/** Sampling parameters. Defaults ({@link DEFAULT_SAMPLING_PARAMS}) are greedy. */
export interface SamplingParams {
  /** 0 = greedy argmax; otherwise logits are divided by it before the softmax. Finite, ≥ 0. */
  temperature: number;
  /** Keep only the k most probable tokens; 0 = off. Integer ≥ 0. */
  topK: number;
  /** Keep the smallest set of most probable tokens whose mass reaches p; 1 = off. 0 < p ≤ 1. */
  topP: number;
}

export const DEFAULT_SAMPLING_PARAMS: Readonly<SamplingParams> = Object.freeze({ temperature: 0, topK: 0, topP: 1 });

const TWO_POW_32 = 4294967296;
const TWO_POW_53 = 9007199254740992;

/**
 * Seeded pseudo-random generator: xoshiro128** (32-bit state words, period 2^128 − 1), its state
 * filled from the seed by the splitmix32 mixer. Not cryptographic.
 */
export class Rng {
  private readonly s = new Uint32Array(4);

  /**
   * @param seed Any safe integer (negative allowed); all 53 bits matter.
   * @throws InvalidInputError `invalid_sampling` (param `seed`) for anything else.
   */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) {
      throw new InvalidInputError('invalid_sampling', `seed must be an integer (got ${seed}).`, 'seed');
    }
    const lo = seed >>> 0; // low 32 bits (two's complement for negatives)
    const hi = Math.floor(seed / TWO_POW_32) >>> 0; // the remaining high bits
    let state = lo;
    const splitmix32 = (): number => {
      state = (state + 0x9e3779b9) >>> 0;
      let z = state;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    for (let i = 0; i < 4; i++) this.s[i] = splitmix32();
    if (hi !== 0) {
      state = hi ^ 0x6a09e667;
      for (let i = 0; i < 4; i++) this.s[i] ^= splitmix32();
    }
    if ((this.s[0] | this.s[1] | this.s[2] | this.s[3]) === 0) this.s[0] = 1; // the all-zero state is a fixed point
  }

  /** The next 32 random bits as an unsigned integer. */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** A uniform float in [0, 1) with 53 random bits. */
  next(): number {
    const a = this.nextUint32() >>> 5; // 27 bits
    const b = this.nextUint32() >>> 6; // 26 bits
    return (a * 67108864 + b) / TWO_POW_53;
  }

  /** An independent copy at the same position of the stream (for checkpoint / replay). */
  clone(): Rng {
    const copy = new Rng(0);
    copy.s.set(this.s);
    return copy;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/**
 * Checks sampling parameters (values may come straight from CLI flags or JSON, so types are
 * checked too) and returns them unchanged.
 * @throws InvalidInputError code `invalid_sampling`, param `temperature` | `top_k` | `top_p`.
 */
export function validateSamplingParams(params: SamplingParams): SamplingParams {
  const { temperature, topK, topP } = params as { temperature: unknown; topK: unknown; topP: unknown };
  if (typeof temperature !== 'number' || !Number.isFinite(temperature) || temperature < 0) {
    throw new InvalidInputError('invalid_sampling', `temperature must be a finite number ≥ 0 (0 = greedy); got ${String(temperature)}.`, 'temperature');
  }
  if (typeof topK !== 'number' || !Number.isSafeInteger(topK) || topK < 0) {
    throw new InvalidInputError('invalid_sampling', `top_k must be an integer ≥ 0 (0 = off); got ${String(topK)}.`, 'top_k');
  }
  if (typeof topP !== 'number' || Number.isNaN(topP) || topP <= 0 || topP > 1) {
    throw new InvalidInputError('invalid_sampling', `top_p must be in (0, 1] (1 = off); got ${String(topP)}.`, 'top_p');
  }
  return params;
}

/**
 * Index of the largest logit; the lowest index wins ties. NaN never wins (unless all are NaN,
 * which gives 0).
 */
export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    if (logits[i] > bestValue) {
      bestValue = logits[i];
      best = i;
    }
  }
  return best;
}

/**
 * Picks the next token from one row of logits.
 *
 * - `temperature === 0`: greedy {@link argmax} (rng untouched).
 * - Otherwise, in float64: p = softmax(logits / temperature) (max-shifted); top-k keeps the k most
 *   probable (ties: lower index first); top-p then keeps the smallest most-probable prefix whose
 *   mass (relative to what top-k kept) reaches p, at least one token; the kept probabilities are
 *   renormalized and one token is drawn with a single `rng.next()`.
 *
 * With top-k = 1 or a tiny top-p this equals greedy. NaN logits are never chosen.
 * @throws InvalidInputError `invalid_sampling` for bad params; RangeError for an empty row.
 */
export function sample(logits: Float32Array, params: SamplingParams, rng: Rng): number {
  validateSamplingParams(params);
  const n = logits.length;
  if (n === 0) throw new RangeError('sample: empty logits');
  const best = argmax(logits);
  const maxLogit = logits[best];
  // Greedy, or degenerate rows where a softmax is undefined (all −∞/NaN, or a +∞ logit).
  if (params.temperature === 0 || maxLogit === Infinity || !(maxLogit > -Infinity)) return best;

  // Unnormalized probabilities; shifting before dividing keeps tiny temperatures finite.
  const probs = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const p = Math.exp((logits[i] - maxLogit) / params.temperature);
    probs[i] = Number.isNaN(p) ? 0 : p;
  }

  // Kept token indices (null = all). Their order only decides which token a given draw maps to.
  let candidates = params.topK > 0 && params.topK < n ? topKIndices(probs, params.topK) : null;
  if (params.topP < 1) candidates = nucleus(probs, candidates ?? allIndices(n), params.topP);

  // Draw: inverse CDF over the kept probabilities (renormalized implicitly via the total).
  let total = 0;
  if (candidates === null) for (let i = 0; i < n; i++) total += probs[i];
  else for (const i of candidates) total += probs[i];
  const target = rng.next() * total;
  let cumulative = 0;
  const count = candidates === null ? n : candidates.length;
  let last = best;
  for (let j = 0; j < count; j++) {
    const i = candidates === null ? j : candidates[j];
    if (probs[i] === 0) continue;
    cumulative += probs[i];
    last = i;
    if (target < cumulative) return i;
  }
  return last; // rounding left target ≥ the summed mass: the last token with mass
}

/** Indices of the k largest probabilities (ties: lower index first), in ascending index order. */
function topKIndices(probs: Float64Array, k: number): Int32Array {
  const sorted = Float64Array.from(probs).sort(); // ascending
  const threshold = sorted[probs.length - k];
  let above = 0; // how many are strictly above the threshold (all kept)
  for (let i = 0; i < probs.length; i++) if (probs[i] > threshold) above++;
  let equalSlots = k - above;
  const out = new Int32Array(k);
  let o = 0;
  for (let i = 0; i < probs.length && o < k; i++) {
    if (probs[i] > threshold) out[o++] = i;
    else if (probs[i] === threshold && equalSlots > 0) {
      out[o++] = i;
      equalSlots--;
    }
  }
  return out;
}

function allIndices(n: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  return out;
}

/**
 * Top-p over `candidates`: sort by probability (descending, ties lower index first) and keep the
 * shortest prefix whose share of the candidates' mass is ≥ p (at least one).
 *
 * Pre-filter: when at least one candidate has share ≥ c = (1 − p)/(m − 1), the candidates below c
 * are at most m − 1 and together hold < 1 − p, so the nucleus lies entirely among those ≥ c and
 * the rest can be dropped before sorting (for a 100k vocabulary that usually leaves a handful).
 * When none reaches c (near-uniform rows with p·m < 1) all candidates are sorted.
 */
function nucleus(probs: Float64Array, candidates: Int32Array, p: number): Int32Array {
  const m = candidates.length;
  let total = 0;
  for (const i of candidates) total += probs[i];
  const cutoff = m > 1 ? ((1 - p) / (m - 1)) * total : 0;
  let pool = Array.from(candidates).filter((i) => probs[i] >= cutoff);
  if (pool.length === 0) pool = Array.from(candidates);
  pool.sort((a, b) => probs[b] - probs[a] || a - b);
  let cumulative = 0;
  let keep = 0;
  while (keep < pool.length) {
    cumulative += probs[pool[keep]];
    keep++;
    if (cumulative >= p * total) break;
  }
  return Int32Array.from(pool.slice(0, keep));
}
