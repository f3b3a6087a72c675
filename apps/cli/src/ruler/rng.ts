/**
 * Seeded randomness for the RULER generators. Every sample draws from its own stream, derived from
 * (seed, task, length, sample index, purpose), so a sample does not depend on which other samples,
 * tasks or lengths were generated in the same run.
 */
import { Rng } from '@starq/model/sampling';

/**
 * A stream for the given key parts: FNV-1a (64-bit, computed in two 32-bit halves) over the parts
 * joined with `\u0000`, truncated to a safe integer seed for {@link Rng}.
 */
export function streamFor(...parts: (string | number)[]): Rng {
  const text = parts.map(String).join('\u0000');
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193 ^ 0x5bd1e995;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193) >>> 0;
    h2 = Math.imul(h2 ^ c ^ (h1 >>> 7), 0x5bd1e995) >>> 0;
  }
  // 21 high bits from h2, 32 low bits from h1: a safe integer.
  return new Rng((h2 >>> 11) * 4294967296 + h1);
}

/** Uniform integer in [lo, hi] (inclusive). */
export function randInt(rng: Rng, lo: number, hi: number): number {
  return lo + Math.floor(rng.next() * (hi - lo + 1));
}

/** One element, uniformly. */
export function pick<T>(rng: Rng, items: readonly T[]): T {
  if (items.length === 0) throw new Error('pick: empty list');
  return items[Math.floor(rng.next() * items.length)];
}

/** Fisher–Yates shuffle of a copy. */
export function shuffled<T>(rng: Rng, items: readonly T[]): T[] {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** `n` distinct elements in random order. @throws Error when the list has fewer than n. */
export function sampleDistinct<T>(rng: Rng, items: readonly T[], n: number): T[] {
  if (n > items.length) throw new Error(`sampleDistinct: need ${n} distinct items, the list has ${items.length}`);
  return shuffled(rng, items).slice(0, n);
}

/** A decimal number of `digits` digits (no leading zero). */
export function randomNumber(rng: Rng, digits: number): string {
  let s = String(randInt(rng, 1, 9));
  for (let i = 1; i < digits; i++) s += String(randInt(rng, 0, 9));
  return s;
}

/** `n` distinct numbers, each of 5–7 digits (the niah-1M value format). */
export function distinctNumbers(rng: Rng, n: number, minDigits = 5, maxDigits = 7): string[] {
  const out: string[] = [];
  while (out.length < n) {
    const v = randomNumber(rng, randInt(rng, minDigits, maxDigits));
    // Distinct, and no value contains another (so whole-number matching cannot confuse them).
    if (!out.some((o) => o.includes(v) || v.includes(o))) out.push(v);
  }
  return out;
}
