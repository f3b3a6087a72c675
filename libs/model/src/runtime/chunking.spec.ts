/**
 * Chunking must not change results: a context prefilled in chunks equals the one-shot forward, and
 * so does a forward on an engine whose score budget and page size force many query-row chunks and
 * key pages (partially filled pages → masked graph, full earlier pages → unmasked graph, later
 * pages skipped). Also: Star phase-1 semantics (`keepFrom`: anchor attended, not stored) against the
 * float64 reference, and bad positions / token ids rejected with a code while the worker survives.
 */
import { StarqError } from '@starq/protocol/errors';
import { loadConfig } from '../config';
import { ReferenceKvCache, ReferenceModel } from '../reference-forward';
import { writeRandomCheckpoint, type RandomCheckpointOptions } from '../synthetic/random-checkpoint';
import type { ModelConfig } from '../types';
import { loadModelDir } from '../weights';
import { ModelEngine } from './engine';
import type { ExecutorOptions } from './executor';
import { TmpDirs, maxAbsDiff, randomTokenIds, range, rowsOf } from '@starq/testing';

const OPTS: RandomCheckpointOptions = {
  architecture: 'llama',
  hidden: 64,
  intermediate: 160,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  vocab: 100,
  maxPositions: 512,
  dtype: 'F32',
  tied: false,
  sharded: false,
  seed: 21,
};
const N = 300;
const EXACT = 1e-5; // engine vs engine (float32, different chunking)
const REF = 1e-4; // engine (float32) vs float64 reference

const tmp = new TmpDirs();
let dir: string;
let config: ModelConfig;
let V: number;
let ids: number[];
let base: ModelEngine;
let oneShot: Float32Array; // (N, V) logits of the one-shot forward on the default engine

beforeAll(async () => {
  dir = tmp.make('starq-chunking-');
  writeRandomCheckpoint(dir, OPTS);
  config = loadConfig(dir);
  V = config.vocabSize;
  ids = randomTokenIds(N, V, 99);
  base = await ModelEngine.load(dir, config, { threads: 1 });
  oneShot = (await base.forward({ cacheId: 'oneshot', ids: Int32Array.from(ids), positions: range(0, N), logits: 'all' }))!;
  await base.dropCache('oneshot');
  expect(oneShot.length).toBe(N * V);
});
afterAll(async () => {
  await base?.close();
  tmp.cleanup();
});

/** Forward `ids` (positions 0..) in chunks of `chunk` on one cache; returns every row's logits. */
async function chunkedLogits(engine: ModelEngine, cacheId: string, chunk: number, precreate: boolean): Promise<Float32Array> {
  if (precreate) await engine.createCache(cacheId); // no reserve: pages grow, last ones partially filled
  const out = new Float32Array(N * V);
  for (let s = 0; s < N; s += chunk) {
    const e = Math.min(N, s + chunk);
    const logits = await engine.forward({ cacheId, ids: Int32Array.from(ids.slice(s, e)), positions: range(s, e - s), logits: 'all' });
    expect(logits!.length).toBe((e - s) * V);
    out.set(logits!, s * V);
  }
  expect((await engine.cacheInfo(cacheId)).tokens).toBe(N);
  await engine.dropCache(cacheId);
  return out;
}

describe('chunked prefill equals the one-shot forward (default engine)', () => {
  it.each([1, 7, 64, 128])('chunks of %i tokens, logits of every position within 1e-5', async (chunk) => {
    const got = await chunkedLogits(base, `chunks-${chunk}`, chunk, false);
    expect(maxAbsDiff(got, oneShot)).toBeLessThan(EXACT);
  });

  it('one-shot logits equal the float64 reference (sanity of the baseline)', () => {
    const { config: c, weights } = loadModelDir(dir);
    const ref = new ReferenceModel(c, weights).forward(ids);
    expect(maxAbsDiff(oneShot, ref)).toBeLessThan(REF);
  });
});

describe.each<[string, ExecutorOptions]>([
  ['pageSize 16, budget → 4 query rows per chunk', { pageSize: 16, scoreBudgetBytes: 2 * 4 * 4 * 16 * 4 }],
  ['pageSize 50, budget → 1 query row per chunk', { pageSize: 50, scoreBudgetBytes: 1 }],
  ['pageSize 50, budget → 7 query rows per chunk', { pageSize: 50, scoreBudgetBytes: 2 * 4 * 4 * 50 * 7 }],
  ['tiles of 5 rows × 7 keys on pages of 16, 3 rows per qkv/post call', { pageSize: 16, keyTile: 7, rowTile: 5, maxRowsPerCall: 3 }],
  ['tiles of 5 rows × 7 keys on pages of 16, flash calls of 20 rows over the keys they see in full', { pageSize: 16, keyTile: 7, rowTile: 5, flash: true, flashRows: 20 }],
  ['reference attention path (paged), pageSize 50, budget → 7 query rows per chunk', { attention: 'paged', pageSize: 50, scoreBudgetBytes: 2 * 4 * 4 * 50 * 7 }],
])('engine with %s', (_name, opts) => {
  let engine: ModelEngine;
  beforeAll(async () => {
    engine = await ModelEngine.load(dir, config, { threads: 1, ...opts });
  });
  afterAll(async () => {
    await engine?.close();
  });

  it('one-shot forward equals the default engine within 1e-5, in many attention calls', async () => {
    const before = (await engine.stats()).attendCalls;
    const got = await engine.forward({ cacheId: 'oneshot', ids: Int32Array.from(ids), positions: range(0, N), logits: 'all' });
    const calls = (await engine.stats()).attendCalls - before;
    await engine.dropCache('oneshot');
    expect(maxAbsDiff(got!, oneShot)).toBeLessThan(EXACT);
    // The default engine needs one call per layer; here rows and keys are cut into many chunks.
    expect(calls).toBeGreaterThan(20 * config.numLayers);
  });

  it.each([
    [1, true],
    [7, false],
    [7, true],
    [64, true],
    [128, false],
  ])('chunks of %i tokens (pre-created growable cache: %s) equal the one-shot forward within 1e-5', async (chunk, precreate) => {
    const got = await chunkedLogits(engine, `chunks-${chunk}-${precreate}`, chunk, precreate);
    expect(maxAbsDiff(got, oneShot)).toBeLessThan(EXACT);
  });
});

describe('keepFrom: Star phase-1 (anchor attended, not stored)', () => {
  const b = 64;
  const a = 32;
  const k = 3; // block B_3 = c[192, 256)
  const anchorIds = () => ids.slice(0, a);
  const blockIds = () => ids.slice(k * b, (k + 1) * b);
  const seqIds = () => [...anchorIds(), ...blockIds()];
  const seqPos = Int32Array.from([...range(0, a), ...range(k * b, b)]);
  const queryIds = [5, 17, 42];
  const queryPos = range(N, queryIds.length);

  let ref: ReferenceModel;
  let refSeq: Float64Array; // (a + b, V) reference logits of anchor ++ block at their positions
  let refQuery: Float64Array; // (3, V) query over the block's K/V only (+ its own)
  beforeAll(() => {
    const { config: c, weights } = loadModelDir(dir);
    ref = new ReferenceModel(c, weights);
    const cache = new ReferenceKvCache(c.numLayers);
    refSeq = ref.step(seqIds(), cache, seqPos);
    // Discard the anchor's K/V, as phase 1 does, then run the query over the block's cache.
    const { numKvHeads: Hkv, headDim: D } = c;
    const T = a + b;
    const dropAnchor = (x: Float64Array): Float64Array => {
      const y = new Float64Array(Hkv * b * D);
      for (let h = 0; h < Hkv; h++) y.set(x.subarray((h * T + a) * D, (h + 1) * T * D), h * b * D);
      return y;
    };
    for (let l = 0; l < c.numLayers; l++) {
      cache.k[l] = dropAnchor(cache.k[l]);
      cache.v[l] = dropAnchor(cache.v[l]);
    }
    cache.positions = cache.positions.slice(a);
    refQuery = ref.step(queryIds, cache, queryPos);
  });

  it('stores only the rows ≥ keepFrom', async () => {
    const cacheId = 'keep';
    await base.forward({ cacheId, ids: Int32Array.from(ids.slice(0, 40)), positions: range(0, 40), keepFrom: 15, logits: 'none' });
    expect((await base.cacheInfo(cacheId)).tokens).toBe(25);
    await base.dropCache(cacheId);
  });

  it.each<[string, ExecutorOptions | null]>([
    ['default engine', null],
    ['pageSize 16, 4-row chunks', { pageSize: 16, scoreBudgetBytes: 2 * 4 * 4 * 16 * 4 }],
    ['pageSize 50, 1-row chunks', { pageSize: 50, scoreBudgetBytes: 1 }],
    ['tiles of 5 rows × 7 keys on pages of 16', { pageSize: 16, keyTile: 7, rowTile: 5 }],
    ['tiles of 5 rows × 7 keys on pages of 16, flash on', { pageSize: 16, keyTile: 7, rowTile: 5, flash: true, flashRows: 20 }],
    ['reference attention path (paged), pageSize 16, 4-row chunks', { attention: 'paged', pageSize: 16, scoreBudgetBytes: 2 * 4 * 4 * 16 * 4 }],
  ])('anchor ++ block at (0..a−1, global) positions matches the reference; a query then sees the block only (%s)', async (_n, opts) => {
    const engine = opts ? await ModelEngine.load(dir, config, { threads: 1, ...opts }) : base;
    try {
      const cacheId = 'block-3';
      const seq = await engine.forward({ cacheId, ids: Int32Array.from(seqIds()), positions: seqPos, keepFrom: a, logits: 'all' });
      expect((await engine.cacheInfo(cacheId)).tokens).toBe(b);
      expect(maxAbsDiff(seq!, refSeq)).toBeLessThan(REF);
      // Phase-2-like step on the block's cache: only B_3's K/V (global positions) are visible.
      const q = await engine.forward({ cacheId, ids: Int32Array.from(queryIds), positions: queryPos, logits: 'all' });
      expect(maxAbsDiff(q!, refQuery)).toBeLessThan(REF);
      expect((await engine.cacheInfo(cacheId)).tokens).toBe(b + queryIds.length);
      await engine.dropCache(cacheId);
    } finally {
      if (opts) await engine.close();
    }
  });

  it('the anchor matters: without it the block logits differ from the anchored ones', async () => {
    const alone = await base.forward({ cacheId: 'no-anchor', ids: Int32Array.from(blockIds()), positions: range(k * b, b), logits: 'all' });
    await base.dropCache('no-anchor');
    const refAlone = ref.forward(blockIds(), range(k * b, b));
    expect(maxAbsDiff(alone!, refAlone)).toBeLessThan(REF);
    expect(maxAbsDiff(alone!, rowsOf(refSeq, V, a, a + b))).toBeGreaterThan(1e-3);
  });
});

describe('bad positions and token ids', () => {
  async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
    const e = await p.then(
      () => null,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(StarqError);
    expect((e as StarqError).code).toBe(code);
  }

  // The executor is exercised through its worker: ORT's tensors cannot be built from jest's sandboxed
  // typed arrays on the main thread, and the worker surviving errors is part of the contract anyway.
  it('executor in its worker: context_too_long / invalid_token_id with codes, cache intact, worker keeps serving', async () => {
    const cacheId = 'survivor';
    const first = await base.forward({ cacheId, ids: Int32Array.from(ids.slice(0, 10)), positions: range(0, 10), logits: 'all' });
    expect(maxAbsDiff(first!, rowsOf(oneShot, V, 0, 10))).toBeLessThan(EXACT);

    await expectCode(base.forward({ cacheId, ids: Int32Array.of(ids[10]), positions: Int32Array.of(config.maxPositionEmbeddings) }), 'context_too_long');
    await expectCode(base.forward({ cacheId, ids: Int32Array.of(ids[10]), positions: Int32Array.of(-1) }), 'context_too_long');
    await expectCode(base.forward({ cacheId, ids: Int32Array.of(ids[10], V), positions: range(10, 2) }), 'invalid_token_id');
    await expectCode(base.forward({ cacheId, ids: Int32Array.of(-1), positions: Int32Array.of(10) }), 'invalid_token_id');
    await expectCode(base.forward({ cacheId: 'fresh', ids: Int32Array.of(1, 2), positions: Int32Array.of(0, config.maxPositionEmbeddings + 7) }), 'context_too_long');
    await expect(base.attendCache('no-such-cache', 0, new Float32Array(config.numHeads * config.headDim), Int32Array.of(0))).rejects.toThrow(/no-such-cache/);
    expect((await base.cacheInfo(cacheId)).tokens).toBe(10); // failed calls stored nothing

    const rest = await base.forward({ cacheId, ids: Int32Array.from(ids.slice(10, 30)), positions: range(10, 20), logits: 'all' });
    expect(maxAbsDiff(rest!, rowsOf(oneShot, V, 10, 30))).toBeLessThan(EXACT);
    await base.dropCache(cacheId);
  });
});
