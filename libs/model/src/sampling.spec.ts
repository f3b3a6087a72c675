import { InvalidInputError } from '@starq/protocol/errors';
import { argmax, DEFAULT_SAMPLING_PARAMS, Rng, sample, SamplingParams, validateSamplingParams } from './sampling';

const params = (p: Partial<SamplingParams>): SamplingParams => ({ ...DEFAULT_SAMPLING_PARAMS, ...p });

/** Reference softmax(logits / t) in float64, restricted to `keep` and renormalized. */
function expectedDistribution(logits: number[], t: number, keep: number[] = logits.map((_, i) => i)): number[] {
  const max = Math.max(...logits);
  const w = logits.map((l, i) => (keep.includes(i) ? Math.exp((l - max) / t) : 0));
  const z = w.reduce((a, b) => a + b, 0);
  return w.map((x) => x / z);
}

function frequencies(logits: Float32Array, p: SamplingParams, draws: number, seed: number): number[] {
  const rng = new Rng(seed);
  const counts = new Array<number>(logits.length).fill(0);
  for (let i = 0; i < draws; i++) counts[sample(logits, p, rng)]++;
  return counts.map((c) => c / draws);
}

function randomLogits(rng: Rng, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (rng.next() - 0.5) * 10;
  return out;
}

describe('Rng', () => {
  it('is deterministic per seed and differs across seeds', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const c = new Rng(43);
    const sa = Array.from({ length: 100 }, () => a.next());
    expect(Array.from({ length: 100 }, () => b.next())).toEqual(sa);
    expect(Array.from({ length: 100 }, () => c.next())).not.toEqual(sa);
    expect(new Rng(2 ** 40).next()).not.toBe(new Rng(0).next()); // high seed bits matter
    expect(new Rng(-1).next()).not.toBe(new Rng(2 ** 32 - 1).next());
  });

  it('produces uniform floats in [0, 1)', () => {
    const rng = new Rng(7);
    let sum = 0;
    const bins = new Array<number>(10).fill(0);
    const n = 100_000;
    let outOfRange = 0;
    for (let i = 0; i < n; i++) {
      const x = rng.next();
      if (!(x >= 0 && x < 1)) outOfRange++;
      sum += x;
      bins[Math.floor(x * 10)]++;
    }
    expect(outOfRange).toBe(0);
    expect(Math.abs(sum / n - 0.5)).toBeLessThan(0.005);
    for (const b of bins) expect(Math.abs(b / n - 0.1)).toBeLessThan(0.005);
  });

  it('clone continues the same stream', () => {
    const rng = new Rng(5);
    rng.next();
    const copy = rng.clone();
    expect(copy.next()).toBe(rng.next());
  });

  it('rejects non-integer seeds', () => {
    expect(() => new Rng(1.5)).toThrow(InvalidInputError);
    expect(() => new Rng(Number.NaN)).toThrow(expect.objectContaining({ code: 'invalid_sampling', param: 'seed' }));
  });
});

describe('sample', () => {
  it('is greedy at temperature 0 (lowest index on ties) without consuming randomness', () => {
    const rng = new Rng(1);
    const untouched = new Rng(1);
    expect(sample(new Float32Array([0.1, 3, -2, 3, 1]), params({ temperature: 0 }), rng)).toBe(1);
    expect(sample(new Float32Array([Number.NaN, -1, 5]), params({}), rng)).toBe(2);
    expect(sample(new Float32Array([-Infinity, -Infinity]), params({ temperature: 1 }), rng)).toBe(0);
    expect(argmax(new Float32Array([2, 2, 2]))).toBe(0);
    expect(rng.next()).toBe(untouched.next());
  });

  it('gives the same sequence for the same seed', () => {
    const logits = randomLogits(new Rng(3), 50);
    const p = params({ temperature: 1.3, topK: 20, topP: 0.95 });
    const run = (seed: number): number[] => {
      const rng = new Rng(seed);
      return Array.from({ length: 200 }, () => sample(logits, p, rng));
    };
    expect(run(11)).toEqual(run(11));
    expect(run(11)).not.toEqual(run(12));
  });

  it('equals greedy with top-k = 1 or a tiny top-p', () => {
    const gen = new Rng(99);
    const rng = new Rng(100);
    for (let trial = 0; trial < 200; trial++) {
      const logits = randomLogits(gen, 1 + Math.floor(gen.next() * 300));
      if (trial % 10 === 0) logits[logits.length - 1] = logits[argmax(logits)]; // a tie: lower index must win
      const greedy = argmax(logits);
      expect(sample(logits, params({ temperature: 0.8, topK: 1 }), rng)).toBe(greedy);
      expect(sample(logits, params({ temperature: 2, topP: 1e-9 }), rng)).toBe(greedy);
    }
  });

  it('matches the softmax frequencies over 20k draws', () => {
    const raw = [1.0, 2.0, 0.5, -1.0, 1.5, 0.0];
    const logits = Float32Array.from(raw);
    const draws = 20_000;
    const check = (p: SamplingParams, keep?: number[]): void => {
      const expected = expectedDistribution(Array.from(logits), p.temperature, keep);
      const observed = frequencies(logits, p, draws, 1234);
      observed.forEach((f, i) => expect(Math.abs(f - expected[i])).toBeLessThan(0.01));
      // Chi-square (5 degrees of freedom at most): 99.9% quantile is 20.5.
      let chi2 = 0;
      expected.forEach((e, i) => {
        if (e > 0) chi2 += (observed[i] * draws - e * draws) ** 2 / (e * draws);
        else expect(observed[i]).toBe(0);
      });
      expect(chi2).toBeLessThan(20.5);
    };
    check(params({ temperature: 1 }));
    check(params({ temperature: 0.7 }));
    check(params({ temperature: 1, topK: 3 }), [1, 4, 0]);
    // softmax at t=1 ≈ [.154 .420 .094 .021 .255 .057]: the 0.9-nucleus is {1, 4, 0, 2} (mass .923).
    const probs = expectedDistribution(Array.from(logits), 1);
    const order = [...probs.keys()].sort((a, b) => probs[b] - probs[a]);
    let cumulative = 0;
    const nucleus: number[] = [];
    for (const i of order) {
      nucleus.push(i);
      cumulative += probs[i];
      if (cumulative >= 0.9) break;
    }
    expect(nucleus.length).toBeGreaterThan(1);
    expect(nucleus.length).toBeLessThan(raw.length);
    expect(nucleus).toEqual([1, 4, 0, 2]);
    check(params({ temperature: 1, topP: 0.9 }), nucleus);
    check(params({ temperature: 1, topK: 2, topP: 0.99 }), [1, 4]);
  });

  it('handles a large vocabulary with top-p', () => {
    const logits = randomLogits(new Rng(8), 150_000);
    logits[777] = 40;
    expect(sample(logits, params({ temperature: 1, topP: 0.9 }), new Rng(1))).toBe(777);
  });
});

describe('validateSamplingParams', () => {
  const bad: Array<[Partial<SamplingParams>, string]> = [
    [{ temperature: -0.1 }, 'temperature'],
    [{ temperature: Number.NaN }, 'temperature'],
    [{ temperature: Infinity }, 'temperature'],
    [{ temperature: '1' as unknown as number }, 'temperature'],
    [{ topK: -1 }, 'top_k'],
    [{ topK: 2.5 }, 'top_k'],
    [{ topP: 0 }, 'top_p'],
    [{ topP: 1.01 }, 'top_p'],
    [{ topP: Number.NaN }, 'top_p'],
  ];
  it.each(bad)('rejects %p', (p, param) => {
    let err: unknown;
    try {
      validateSamplingParams(params(p));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidInputError);
    expect(err).toMatchObject({ code: 'invalid_sampling', param });
    expect(() => sample(new Float32Array([1, 2]), params(p), new Rng(0))).toThrow(InvalidInputError);
  });

  it('accepts valid params', () => {
    expect(validateSamplingParams(params({ temperature: 0.7, topK: 40, topP: 0.9 }))).toEqual({ temperature: 0.7, topK: 40, topP: 0.9 });
    expect(() => validateSamplingParams(DEFAULT_SAMPLING_PARAMS)).not.toThrow();
  });
});
