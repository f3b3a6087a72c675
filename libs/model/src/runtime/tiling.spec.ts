/**
 * The engine's tiled attention (`ExecutorOptions.attention = 'tiled'`: row tiles × key tiles cut
 * from the KV pages, keys hidden from a whole tile trimmed, additive mask bias, fused softmax, LSE
 * merge across tiles) and the reference path ('paged') against the float64 reference
 * `attentionWithLse`, on layouts chosen to hit the tiling's edge cases:
 *   - tile sizes that divide neither the page size nor the number of rows / keys;
 *   - rows that see no key of some tile while the tile is computed for other rows (fully masked
 *     rows inside a tile → must merge as empty, never NaN), and rows that see no key at all
 *     (o = 0, lse = −∞ exactly);
 *   - key tiles only partly visible (the causal diagonal), partially filled pages (unwritten slots),
 *     keys stored out of position order (no prefix trimming, element-wise mask);
 *   - the default tile sizes: whole pages for short queries, 1024-key tiles for long ones.
 * Tolerances (float32 engine vs float64 reference, |q·k|/√D up to ≈ 5): o and lse within 2e-5.
 * Rows per qkv/post/head call (`maxRowsPerCall`) must not change results beyond float32 rounding.
 */
import { attentionWithLse } from '@starq/attention';
import { loadConfig } from '../config';
import { mulberry32, writeRandomCheckpoint, type RandomCheckpointOptions } from '../synthetic/random-checkpoint';
import type { ModelConfig } from '../types';
import { ModelEngine } from './engine';
import type { ExecutorOptions } from './executor';
import { TmpDirs, expectPartialNear, maxAbsDiff, range } from '@starq/testing';

const OPTS: RandomCheckpointOptions = {
  architecture: 'llama',
  hidden: 64,
  intermediate: 96,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  vocab: 50,
  maxPositions: 4096,
  dtype: 'F32',
  tied: false,
  sharded: false,
  seed: 5,
};
const TOL = 2e-5; // engine (float32) vs float64 reference, o and lse

const tmp = new TmpDirs();
let dir: string;
let cfg: ModelConfig;
beforeAll(() => {
  dir = tmp.make('starq-tiling-');
  writeRandomCheckpoint(dir, OPTS);
  cfg = loadConfig(dir);
});
afterAll(() => tmp.cleanup());

/** Uniform values in [−a, a), seeded. */
function randomArray(n: number, seed: number, a: number): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => (2 * r() - 1) * a);
}

interface Case {
  q: Float32Array; // (H, Tq, D)
  qpos: Int32Array; // (Tq)
  k: Float32Array; // (Hkv, Tk, D)
  v: Float32Array; // (Hkv, Tk, D)
  kpos: Int32Array; // (Tk), in storage order
}

function makeCase(qpos: Int32Array, kpos: Int32Array, seed: number): Case {
  const { numHeads: H, numKvHeads: Hkv, headDim: D } = cfg;
  return {
    q: randomArray(H * qpos.length * D, seed, 1.5),
    qpos,
    k: randomArray(Hkv * kpos.length * D, seed + 1, 1.5),
    v: randomArray(Hkv * kpos.length * D, seed + 2, 1),
    kpos,
  };
}

/** Store the case's keys in a fresh cache (appended in `chunks` pieces, no reserve: pages grow) and attend. */
async function viaCache(engine: ModelEngine, c: Case, cacheId: string, chunks = 1): Promise<{ o: Float32Array; lse: Float32Array; calls: number }> {
  const { numKvHeads: Hkv, headDim: D } = cfg;
  const Tk = c.kpos.length;
  await engine.createCache(cacheId);
  const step = Math.ceil(Tk / chunks);
  for (let s = 0; s < Tk; s += step) {
    const e = Math.min(Tk, s + step);
    const n = e - s;
    const k = new Float32Array(Hkv * n * D); // (Hkv, n, D)
    const v = new Float32Array(Hkv * n * D); // (Hkv, n, D)
    for (let h = 0; h < Hkv; h++) {
      k.set(c.k.subarray((h * Tk + s) * D, (h * Tk + e) * D), h * n * D);
      v.set(c.v.subarray((h * Tk + s) * D, (h * Tk + e) * D), h * n * D);
    }
    for (let l = 0; l < cfg.numLayers; l++) await engine.appendKv(cacheId, l, k, v, c.kpos.slice(s, e));
  }
  const before = (await engine.stats()).attendCalls;
  const part = await engine.attendCache(cacheId, 1, c.q, c.qpos);
  const calls = (await engine.stats()).attendCalls - before;
  await engine.dropCache(cacheId);
  return { o: part.o, lse: part.lse, calls };
}

/** Compare with the float64 reference: finite everywhere except empty rows (o = 0, lse = −∞ exactly). */
function expectMatchesReference(got: { o: Float32Array; lse: Float32Array }, c: Case): void {
  const { numHeads: H, numKvHeads: Hkv, headDim: D } = cfg;
  const ref = attentionWithLse(c.q, c.k, c.v, c.qpos, c.kpos, { heads: H, kvHeads: Hkv, headDim: D });
  expect(got.lse.every((x) => Number.isFinite(x) || x === -Infinity)).toBe(true);
  expectPartialNear(got, ref, D, TOL);
}

/** Key positions 10..54 in storage order; query rows in arbitrary order, some before every key. */
const SCATTERED_Q = Int32Array.of(12, 3, 54, 20, 9, 30, 11, 16, 60, 10, 25, 17, 0, 40);
/** A fixed shuffle of 0..44 (keys stored out of position order). */
const SHUFFLED = (() => {
  const r = mulberry32(77);
  const a = Array.from({ length: 45 }, (_, i) => i);
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return Int32Array.from(a);
})();

describe.each<[string, ExecutorOptions]>([
  ['tiles 5 rows × 7 keys, pages of 16', { pageSize: 16, keyTile: 7, rowTile: 5 }],
  ['tiles 3 rows × 5 keys, pages of 13, budget → 2 rows', { pageSize: 13, keyTile: 5, rowTile: 3, scoreBudgetBytes: 2 * 4 * 4 * 5 * 2 }],
  ['default tiles (whole pages for these short queries)', {}],
  ['reference path (paged), pages of 16, budget → 4 rows', { attention: 'paged', pageSize: 16, scoreBudgetBytes: 2 * 4 * 4 * 16 * 4 }],
])('attention with %s vs the float64 reference', (_name, opts) => {
  let engine: ModelEngine;
  beforeAll(async () => {
    engine = await ModelEngine.load(dir, cfg, { threads: 1, ...opts });
  });
  afterAll(async () => {
    await engine?.close();
  });

  it('causal self-attention, 45 rows over 45 keys appended in 3 pieces (partly visible diagonal tiles, partial last page)', async () => {
    const c = makeCase(range(0, 45), range(0, 45), 1);
    const got = await viaCache(engine, c, 'causal', 3);
    expectMatchesReference(got, c);
    if (opts.keyTile !== undefined) expect(got.calls).toBeGreaterThan(Math.ceil(45 / (opts.rowTile ?? 45)));
  });

  it('rows in arbitrary order, some hidden from whole tiles, some before every key (o = 0, lse = −∞, no NaN)', async () => {
    const c = makeCase(SCATTERED_Q, range(10, 45), 2);
    expectMatchesReference(await viaCache(engine, c, 'scattered'), c);
  });

  it('keys stored out of position order (no prefix structure)', async () => {
    const c = makeCase(range(0, 45), SHUFFLED, 3);
    expectMatchesReference(await viaCache(engine, c, 'shuffled', 2), c);
  });

  it('decode-like queries (1 and 3 rows) after the keys', async () => {
    for (const qpos of [Int32Array.of(45), Int32Array.of(45, 46, 47)]) {
      const c = makeCase(qpos, range(0, 45), 4 + qpos.length);
      expectMatchesReference(await viaCache(engine, c, `decode-${qpos.length}`), c);
    }
  });

  it('attendKv (keys passed directly) agrees with the cache path', async () => {
    const c = makeCase(SCATTERED_Q, range(10, 45), 6);
    const part = await engine.attendKv(c.q, c.qpos, c.k, c.v, c.kpos);
    expectMatchesReference(part, c);
  });
});

describe.each<[string, boolean, number]>([
  ['flash on, flashRows 128: row tile 0 in one call; row tiles 1–11 a flash call over keys [0, r0] + one masked call', true, 23],
  ['flash off (default): one call per row tile', false, 12],
])('default tiles on a long causal query, %s', (_name, flash, calls) => {
  let engine: ModelEngine;
  beforeAll(async () => {
    engine = await ModelEngine.load(dir, cfg, { threads: 1, flash, flashRows: 128 });
  });
  afterAll(async () => {
    await engine?.close();
  });

  it(`1500 rows over their own 1500 keys: 12 row tiles of ≤ 128, key tiles [0, 1024) + [1024, 1500); ${calls} calls; matches the reference`, async () => {
    const c = makeCase(range(0, 1500), range(0, 1500), 30);
    const before = await engine.stats();
    const got = await viaCache(engine, c, 'causal-1500');
    const after = await engine.stats();
    expectMatchesReference(got, c);
    expect(got.calls).toBe(calls);
    // issued FLOPs: each row tile over the keys up to its last row, whichever way it is cut
    let pairs = 0;
    for (let r0 = 0; r0 < 1500; r0 += 128) pairs += Math.min(128, 1500 - r0) * Math.min(1500, r0 + 128);
    expect(after.attendFlops - before.attendFlops).toBe(4 * cfg.numHeads * cfg.headDim * pairs);
  });
});

describe('tiles of 512 rows × 1024 keys on long queries (flash off): key tiles cut from a 1500-slot page', () => {
  let engine: ModelEngine;
  beforeAll(async () => {
    engine = await ModelEngine.load(dir, cfg, { threads: 1, rowTile: 512, keyTile: 1024, flash: false });
  });
  afterAll(async () => {
    await engine?.close();
  });

  it('400 rows (1100..1499) over 1500 keys: tiles open [0, 1024) + masked [1024, 1500) in one chain call, matches the reference', async () => {
    const c = makeCase(range(1100, 400), range(0, 1500), 8);
    const before = await engine.stats();
    const got = await viaCache(engine, c, 'long');
    const after = await engine.stats();
    expectMatchesReference(got, c);
    expect(got.calls).toBe(1);
    expect(after.attendFlops - before.attendFlops).toBe(4 * cfg.numHeads * cfg.headDim * 400 * 1500);
  });

  it('100 rows over the same keys: the whole page in one call (no cut below rowTile × keyTile scores)', async () => {
    const c = makeCase(range(1400, 100), range(0, 1500), 9);
    const got = await viaCache(engine, c, 'short');
    expectMatchesReference(got, c);
    expect(got.calls).toBe(1);
  });

  it('600 causal rows (0..599) over their own keys: two row tiles; the first trims keys after row 511', async () => {
    const c = makeCase(range(0, 600), range(0, 600), 10);
    const before = await engine.stats();
    const got = await viaCache(engine, c, 'causal-600');
    const after = await engine.stats();
    expectMatchesReference(got, c);
    expect(got.calls).toBe(2);
    // issued FLOPs: rows 0..511 × keys 0..511 (trimmed) + rows 512..599 × keys 0..599
    const { numHeads: H, headDim: D } = cfg;
    expect(after.attendFlops - before.attendFlops).toBe(4 * H * D * (512 * 512 + 88 * 600));
  });
});

describe.each<[string, ExecutorOptions, number]>([
  ['up to 4 tiles per call (default)', {}, 3],
  ['tilesPerCall 8', { tilesPerCall: 8 }, 2],
  ['tilesPerCall 3', { tilesPerCall: 3 }, 4],
  ['tilesPerCall 1 (one call per page, merged in JS)', { tilesPerCall: 1 }, 12],
])('short queries over 12 whole pages of 4 keys (last one partly written), chains of open pages + a masked one or of masked pages: %s', (_name, opts, calls) => {
  let engine: ModelEngine;
  beforeAll(async () => {
    engine = await ModelEngine.load(dir, cfg, { threads: 1, pageSize: 4, ...opts });
  });
  afterAll(async () => {
    await engine?.close();
  });

  it.each([
    ['1 decode row', Int32Array.of(45), 0],
    ['3 decode rows', Int32Array.of(45, 46, 47), 0],
    ['14 scattered rows, some before every key', SCATTERED_Q, 10],
  ])(`%s over 45 keys: ${calls} calls, matches the reference`, async (_n, qpos, k0) => {
    const c = makeCase(qpos, range(k0, 45), 20 + qpos.length);
    const got = await viaCache(engine, c, 'many-pages');
    expectMatchesReference(got, c);
    expect(got.calls).toBe(calls);
  });
});

describe('rows per qkv / post / head call', () => {
  let small: ModelEngine;
  let base: ModelEngine;
  beforeAll(async () => {
    [small, base] = await Promise.all([ModelEngine.load(dir, cfg, { threads: 1, maxRowsPerCall: 7 }), ModelEngine.load(dir, cfg, { threads: 1 })]);
  });
  afterAll(async () => {
    await Promise.all([small?.close(), base?.close()]);
  });

  it('qkv, post and head in slices of 7 rows equal one call over 30 rows', async () => {
    const { hiddenSize: hid, numHeads: H, headDim: D } = cfg;
    const T = 30;
    const x = randomArray(T * hid, 11, 1);
    const pos = range(5, T);
    const [a, b] = await Promise.all([small.qkv(1, x, pos), base.qkv(1, x, pos)]);
    for (const key of ['q', 'k', 'v'] as const) expect(maxAbsDiff(a[key], b[key])).toBeLessThan(1e-6);
    const attn = randomArray(H * T * D, 12, 1);
    const [ya, yb] = await Promise.all([small.post(0, x, attn), base.post(0, x, attn)]);
    expect(maxAbsDiff(ya, yb)).toBeLessThan(1e-5);
    const [la, lb] = await Promise.all([small.head(x), base.head(x)]);
    expect(la.length).toBe(T * cfg.vocabSize);
    expect(maxAbsDiff(la, lb)).toBeLessThan(1e-5);
  });

  it('a 50-token forward in 7-row slices equals the default engine (logits of every row within 1e-5)', async () => {
    const ids = Int32Array.from({ length: 50 }, (_, i) => 3 + ((i * 17) % (cfg.vocabSize - 3)));
    const req = { ids, positions: range(0, 50), logits: 'all' as const };
    const [a, b] = await Promise.all([small.forward({ cacheId: 'f', ...req }), base.forward({ cacheId: 'f', ...req })]);
    expect(maxAbsDiff(a!, b!)).toBeLessThan(1e-5);
  });
});

describe('executor options are validated', () => {
  it('bad options are all reported in one error and the engine does not start', async () => {
    const bad = { keyTile: 0, rowTile: 2.5, attention: 'fast', maxRowsPerCall: -1, flash: 'yes' } as unknown as ExecutorOptions;
    const err = await ModelEngine.load(dir, cfg, bad).then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(err).not.toBeNull();
    for (const what of ['keyTile', 'rowTile', 'attention', 'maxRowsPerCall', 'flash']) expect(err!.message).toContain(what);
  });
});

describe('postQueryLayer: post(l) + queryLayer(l + 1) in one worker call', () => {
  let engine: ModelEngine;
  beforeAll(async () => {
    engine = await ModelEngine.load(dir, cfg, { threads: 1 });
  });
  afterAll(async () => {
    await engine?.close();
  });

  it('equals the two calls made separately (x, q, own partial, cache contents)', async () => {
    const ids = Int32Array.of(5, 9, 13, 2);
    const pos = range(0, ids.length);
    const x = await engine.embed(ids);
    for (const id of ['fused', 'split']) await engine.createCache(id);
    const g = (cacheId: string) => [{ cacheId, positions: pos }];
    const a0 = await engine.queryLayer(0, x, g('fused'));
    const b0 = await engine.queryLayer(0, x, g('split'));
    const fused = await engine.postQueryLayer(0, x, a0.own[0].o, g('fused'));
    const y = await engine.post(0, x, b0.own[0].o);
    const split = await engine.queryLayer(1, y, g('split'));
    expect(maxAbsDiff(fused.x, y)).toBe(0);
    expect(maxAbsDiff(fused.q[0], split.q[0])).toBe(0);
    expect(maxAbsDiff(fused.own[0].o, split.own[0].o)).toBe(0);
    expect(maxAbsDiff(fused.own[0].lse, split.own[0].lse)).toBe(0);
    expect(await engine.cacheInfo('fused')).toEqual(await engine.cacheInfo('split'));
    // the next step over both caches sees the same K/V
    const q2 = await engine.attendCache('fused', 1, fused.q[0], pos);
    const q2b = await engine.attendCache('split', 1, fused.q[0], pos);
    expect(maxAbsDiff(q2.o, q2b.o)).toBe(0);
    await expect(engine.postQueryLayer(cfg.numLayers - 1, x, a0.own[0].o, g('fused'))).rejects.toThrow(/no next layer/);
  });
});

describe('flash prefix (ORT CPU flash attention over the keys a row tile sees in full, LSE from a sink key)', () => {
  // rowTile 16 × keyTile 32 on pages of 64: a 300-row query is cut; flash groups of 48 rows (3 row
  // tiles) from row 144 on see ≥ FLASH_MIN_KEYS keys in full.
  const TILES: ExecutorOptions = { threads: 1, rowTile: 16, keyTile: 32, pageSize: 64, flashRows: 48 };
  let on: ModelEngine;
  let off: ModelEngine;
  beforeAll(async () => {
    [on, off] = await Promise.all([ModelEngine.load(dir, cfg, { ...TILES, flash: true }), ModelEngine.load(dir, cfg, TILES)]);
  });
  afterAll(async () => {
    await Promise.all([on?.close(), off?.close()]);
  });

  it('causal 300 rows over their keys on 5 pages (appended in 3 pieces): matches the reference, in fewer calls than the tiles alone', async () => {
    const c = makeCase(range(0, 300), range(0, 300), 40);
    const a = await viaCache(on, c, 'flash-causal', 3);
    const b = await viaCache(off, c, 'flash-causal', 3);
    expectMatchesReference(a, c);
    expectMatchesReference(b, c);
    expect(a.calls).toBeLessThan(b.calls);
    expect(maxAbsDiff(a.o, b.o)).toBeGreaterThan(0); // a different computation, not the tiles
  });

  it('rows after a gap in positions (Star block after its anchor): matches the reference', async () => {
    const kpos = Int32Array.from([...range(0, 150), ...range(1000, 150)]);
    const c = makeCase(range(1000, 150), kpos, 41);
    expectMatchesReference(await viaCache(on, c, 'flash-gap', 2), c);
  });

  it('positions that decrease across pages: no flash call, the same calls and numbers as without flash', async () => {
    const kpos = Int32Array.from([...range(150, 150), ...range(0, 150)]);
    const c = makeCase(range(150, 150), kpos, 42);
    const a = await viaCache(on, c, 'flash-unsorted', 2);
    const b = await viaCache(off, c, 'flash-unsorted', 2);
    expectMatchesReference(a, c);
    expect(a.calls).toBe(b.calls);
    expect(maxAbsDiff(a.o, b.o)).toBe(0);
    expect(maxAbsDiff(a.lse, b.lse)).toBe(0);
  });

  it('peaked rows (one score ≈ 78 above the rest: the sink weight underflows) fall back to the tiles: the same numbers as without flash', async () => {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = cfg;
    const c = makeCase(range(0, 300), range(0, 300), 43);
    // Key 0 = β·u in every KV head; every 10th query row = α·u in every head; α·β/√D = 78.
    const u = randomArray(D, 44, 1);
    const norm = Math.hypot(...u);
    const beta = Math.sqrt(78 * Math.sqrt(D));
    for (let h = 0; h < Hkv; h++) for (let d = 0; d < D; d++) c.k[h * 300 * D + d] = (beta * u[d]) / norm;
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < 300; i += 10) for (let d = 0; d < D; d++) c.q[(h * 300 + i) * D + d] = (beta * u[d]) / norm;
    }
    const a = await viaCache(on, c, 'flash-peaked', 3);
    const b = await viaCache(off, c, 'flash-peaked', 3);
    expect(maxAbsDiff(a.o, b.o)).toBe(0);
    expect(maxAbsDiff(a.lse, b.lse)).toBe(0);
    // against float64: lse up to ≈ 78, so allow float32's relative rounding on top of TOL
    const ref = attentionWithLse(c.q, c.k, c.v, c.qpos, c.kpos, { heads: H, kvHeads: Hkv, headDim: D });
    expect(maxAbsDiff(a.o, ref.o)).toBeLessThan(TOL);
    for (let r = 0; r < ref.lse.length; r++) expect(Math.abs(a.lse[r] - ref.lse[r])).toBeLessThan(TOL + 1e-6 * Math.abs(ref.lse[r]));
  });
});
