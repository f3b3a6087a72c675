/**
 * The ORT engine against the float64 reference forward on random checkpoints of every supported
 * architecture / dtype / storage variant (no ../shared needed): all-position logits of a one-shot
 * forward, and incremental decoding on one KV cache.
 */
import { loadConfig } from '../config';
import { ReferenceModel } from '../reference-forward';
import { writeRandomCheckpoint, type RandomCheckpointOptions } from '../synthetic/random-checkpoint';
import { loadModelDir } from '../weights';
import { ModelEngine } from './engine';
import { TmpDirs, maxAbsDiff, randomTokenIds, range, rowsOf } from '@starq/testing';

const TOL = 1e-4;

const VARIANTS: [string, RandomCheckpointOptions][] = [
  [
    'Llama-3 (llama3 rope_scaling, BF16, untied)',
    { architecture: 'llama3', hidden: 64, intermediate: 160, layers: 3, heads: 4, kvHeads: 2, vocab: 100, maxPositions: 256, dtype: 'BF16', tied: false, sharded: false, seed: 11, ropeTheta: 500000 },
  ],
  [
    'Qwen2 (q/k/v bias, F16, sharded, tied, head_dim ≠ hidden/heads)',
    { architecture: 'qwen2', hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 2, headDim: 24, vocab: 97, maxPositions: 320, dtype: 'F16', tied: true, sharded: true, seed: 12, ropeTheta: 1000000 },
  ],
  [
    'Mistral (F32, GQA 4:1)',
    { architecture: 'mistral', hidden: 64, intermediate: 176, layers: 3, heads: 8, kvHeads: 2, vocab: 103, maxPositions: 256, dtype: 'F32', tied: false, sharded: false, seed: 13 },
  ],
];

const tmp = new TmpDirs();
afterAll(() => tmp.cleanup());

describe.each(VARIANTS)('ModelEngine vs float64 reference: %s', (_name, opts) => {
  let engine: ModelEngine;
  let ref: ReferenceModel;
  let V: number;
  const T = 120;
  let ids: number[];
  let refLogits: Float64Array; // (T, V)

  beforeAll(async () => {
    const dir = tmp.make('starq-engine-random-');
    writeRandomCheckpoint(dir, opts);
    // The reference uses the very same float32 values the engine loads (dtype-rounded).
    const { config, weights } = loadModelDir(dir);
    expect(config.vocabSize).toBe(opts.vocab);
    ref = new ReferenceModel(config, weights);
    V = config.vocabSize;
    ids = randomTokenIds(T, V, opts.seed * 7 + 1);
    refLogits = ref.forward(ids); // positions 0..T-1
    engine = await ModelEngine.load(dir, loadConfig(dir), { threads: 1 });
  });
  afterAll(async () => {
    await engine?.close();
  });

  it(`logits of all ${T} positions equal the reference within 1e-4`, async () => {
    const out = await engine.forward({ cacheId: 'oneshot', ids: Int32Array.from(ids), positions: range(0, T), logits: 'all' });
    expect(out!.length).toBe(T * V);
    expect(maxAbsDiff(out!, refLogits)).toBeLessThan(TOL);
    expect((await engine.cacheInfo('oneshot')).tokens).toBe(T);
    expect(await engine.dropCache('oneshot')).toBe(true);
  });

  it('prefill 60 + 40 single-token steps on one cache equals the reference at every step', async () => {
    const P = 60;
    const S = 40;
    const cacheId = 'incremental';
    const first = await engine.forward({ cacheId, ids: Int32Array.from(ids.slice(0, P)), positions: range(0, P), logits: 'last' });
    let worst = maxAbsDiff(first!, rowsOf(refLogits, V, P - 1));
    for (let s = 0; s < S; s++) {
      const t = P + s;
      const out = await engine.forward({ cacheId, ids: Int32Array.of(ids[t]), positions: Int32Array.of(t), logits: 'last' });
      expect(out!.length).toBe(V);
      worst = Math.max(worst, maxAbsDiff(out!, rowsOf(refLogits, V, t)));
    }
    expect(worst).toBeLessThan(TOL);
    expect((await engine.cacheInfo(cacheId)).tokens).toBe(P + S);
    await engine.dropCache(cacheId);
  });

  it('a call on a dropped cache fails with kv_not_found (a caller re-encodes the block and retries)', async () => {
    await engine.forward({ cacheId: 'gone', ids: Int32Array.from(ids.slice(0, 4)), positions: range(0, 4), logits: 'none' });
    expect(await engine.dropCache('gone')).toBe(true);
    await expect(engine.cacheInfo('gone')).rejects.toMatchObject({ code: 'kv_not_found', param: 'cacheIds' });
  });
});
