/**
 * Batched phase-2 attention (`ExecutorOptions.attendBatching`: `BatchedAttention` sends the tiles of
 * many items to ORT in one call) against the float64 reference `attentionWithLse` and against the
 * per-request path (`attendBatching: false`: each item through the tiled backend on its own), on a
 * batch chosen to hit the edge cases: a decode row over a whole written page (open tile), over
 * several pages, over a partly written page (unwritten slots masked) and over two caches, rows
 * causal inside their own cache, a row that sees no key, keys stored out of position order, and
 * items too large to batch (handed to the tiled backend).
 *
 * Tolerance: o and lse within 2e-5 of the float64 reference (|q·k|/√D up to ≈ 5), for both paths,
 * as in tiling.spec.ts; rows with no visible key exactly o = 0, lse = −∞.
 * Row independence, bit for bit: an item's partial is the same alone, in any batch, in any order,
 * however the tiles are cut into calls (score budget), and `attendCaches` of the item alone.
 */
import { attentionWithLse, type AttendRequest, type Partial } from '@starq/attention';
import { loadConfig } from '../config';
import { mulberry32, writeRandomCheckpoint } from '../synthetic/random-checkpoint';
import type { ModelConfig } from '../types';
import { ModelEngine } from './engine';
import type { ExecutorOptions } from './executor';
import { TmpDirs, expectPartialNear, maxAbsDiff } from '@starq/testing';

const TOL = 2e-5;
/** Small tiles so that modest items exceed them (rowTile × keyTile = 512 score entries); pages of 128. */
const BASE: ExecutorOptions = { threads: 1, rowTile: 16, keyTile: 32, pageSize: 128 };

const tmp = new TmpDirs();
let dir: string;
let cfg: ModelConfig;
/** batched, per-request (the reference path), batched with one tile per call */
let eb: ModelEngine;
let ep: ModelEngine;
let e1: ModelEngine;

beforeAll(async () => {
  dir = tmp.make('starq-batched-attention-');
  writeRandomCheckpoint(dir, { architecture: 'llama', hidden: 64, intermediate: 96, layers: 1, heads: 4, kvHeads: 2, vocab: 50, maxPositions: 4096, dtype: 'F32', tied: false, sharded: false, seed: 9 });
  cfg = loadConfig(dir);
  eb = await ModelEngine.load(dir, cfg, BASE);
  ep = await ModelEngine.load(dir, cfg, { ...BASE, attendBatching: false });
  e1 = await ModelEngine.load(dir, cfg, { ...BASE, scoreBudgetBytes: 1 });
  for (const c of CACHES) for (const e of [eb, ep, e1]) await fill(e, c);
});
afterAll(async () => {
  await Promise.all([eb, ep, e1].map((e) => e?.close()));
  tmp.cleanup();
});

function randomArray(n: number, seed: number, a: number): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => (2 * r() - 1) * a);
}

const range = (a: number, n: number): number[] => Array.from({ length: n }, (_, i) => a + i);

/** A cache: random K/V at `kpos` (storage order), sized for `reserve` tokens. */
interface CacheSpec {
  id: string;
  kpos: number[];
  reserve: number;
  seed: number;
}

const SHUFFLED = (() => {
  const s = range(10, 45);
  const r = mulberry32(77);
  for (let i = s.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [s[i], s[j]] = [s[j], s[i]];
  }
  return s;
})();

const CACHES: CacheSpec[] = [
  { id: 'page', kpos: range(0, 100), reserve: 100, seed: 1 }, // one whole written page
  { id: 'pages3', kpos: range(0, 300), reserve: 300, seed: 3 }, // pages of 128, 128, 44
  { id: 'own', kpos: range(300, 20), reserve: 64, seed: 5 }, // 20 of 64 slots written
  { id: 'small', kpos: range(0, 30), reserve: 30, seed: 7 },
  { id: 'late', kpos: range(10, 80), reserve: 80, seed: 9 },
  { id: 'shuffled', kpos: SHUFFLED, reserve: 45, seed: 11 },
  { id: 'b0', kpos: range(0, 40), reserve: 40, seed: 13 },
  { id: 'b1', kpos: range(40, 24), reserve: 64, seed: 15 },
  ...range(0, 8).map((i) => ({ id: `r${i}`, kpos: range(0, 60 + 7 * i), reserve: 60 + 7 * i, seed: 30 + i })),
];

const kvOf = (c: CacheSpec): { k: Float32Array; v: Float32Array } => {
  const n = cfg.numKvHeads * c.kpos.length * cfg.headDim;
  return { k: randomArray(n, c.seed, 1.5), v: randomArray(n, c.seed + 100, 1) }; // (Hkv, Tk, D) each
};

async function fill(e: ModelEngine, c: CacheSpec): Promise<void> {
  const { k, v } = kvOf(c);
  await e.createCache(c.id, c.reserve);
  await e.appendKv(c.id, 0, k, v, Int32Array.from(c.kpos));
}

interface Item extends AttendRequest {
  name: string;
}

function item(name: string, qpos: number[], cacheIds: string[], seed: number): Item {
  return { name, cacheIds, layer: 0, q: randomArray(cfg.numHeads * qpos.length * cfg.headDim, seed, 1.5), qpos: Int32Array.from(qpos) };
}

/** The mixed batch (names say what each item exercises). */
const ITEMS = (): Item[] => [
  item('decode over a whole written page (open tile)', [320], ['page'], 10),
  item('decode over three written pages', [320], ['pages3'], 11),
  item('decode over a partly written page', [319], ['own'], 12),
  item('3 rows, causal over own cache + a block', [305, 319, 310], ['small', 'own'], 13),
  item('a row that sees no key', [5], ['late'], 14),
  item('keys out of position order', [30, 12, 60], ['shuffled'], 15),
  item('more rows than rowTile (tiled backend)', range(100, 40), ['pages3'], 16),
  item('rows × page above rowTile × keyTile (tiled backend)', range(400, 8), ['pages3'], 17),
  item('decode over two blocks', [700], ['b0', 'b1'], 18),
];
/** Items the batched path sends to the tiled backend. */
const LARGE = new Set([6, 7]);

function expectMatchesReference(got: Partial, it: Item): void {
  const { numHeads: H, numKvHeads: Hkv, headDim: D } = cfg;
  const specs = it.cacheIds.map((id) => CACHES.find((c) => c.id === id)!);
  const Tk = specs.reduce((n, c) => n + c.kpos.length, 0);
  const k = new Float32Array(Hkv * Tk * D); // (Hkv, Tk, D): every cache's keys, concatenated
  const v = new Float32Array(Hkv * Tk * D);
  let t0 = 0;
  for (const c of specs) {
    const n = c.kpos.length;
    const kv = kvOf(c);
    for (let h = 0; h < Hkv; h++) {
      k.set(kv.k.subarray(h * n * D, (h + 1) * n * D), (h * Tk + t0) * D);
      v.set(kv.v.subarray(h * n * D, (h + 1) * n * D), (h * Tk + t0) * D);
    }
    t0 += n;
  }
  const ref = attentionWithLse(it.q, k, v, it.qpos, specs.flatMap((c) => c.kpos), { heads: H, kvHeads: Hkv, headDim: D });
  expectPartialNear(got, ref, D, TOL);
}

const calls = async (e: ModelEngine, f: () => Promise<unknown>): Promise<number> => {
  const before = (await e.stats()).attendCalls;
  await f();
  return (await e.stats()).attendCalls - before;
};

const bits = (p: Partial): number[] => [...new Uint32Array(p.o.buffer, p.o.byteOffset, p.o.length), ...new Uint32Array(p.lse.buffer, p.lse.byteOffset, p.lse.length)];

describe('batched phase-2 attention (attendBatching)', () => {
  it('every item of a mixed batch equals the float64 reference within 2e-5, as on the per-request path', async () => {
    const its = ITEMS();
    const got = await eb.attendMany(its);
    const per = await ep.attendMany(its);
    expect(got).toHaveLength(its.length);
    for (let i = 0; i < its.length; i++) {
      expect([its[i].name, got[i].heads, got[i].rows, got[i].headDim]).toEqual([its[i].name, cfg.numHeads, its[i].qpos.length, cfg.headDim]);
      expectMatchesReference(got[i], its[i]);
      expectMatchesReference(per[i], its[i]);
      expect(maxAbsDiff(got[i].o, per[i].o)).toBeLessThan(2 * TOL);
    }
  });

  it('a decode row over one whole written page, and items too large to batch, give the per-request bits', async () => {
    const its = ITEMS();
    const got = await eb.attendMany(its);
    const per = await ep.attendMany(its);
    for (const i of [0, ...LARGE]) expect([its[i].name, bits(got[i])]).toEqual([its[i].name, bits(per[i])]);
  });

  it('row independence: an item gives the same bits alone, in any batch and order, however the tiles are cut into calls', async () => {
    const its = ITEMS();
    const full = await eb.attendMany(its);
    const reversed = (await eb.attendMany([...its].reverse())).reverse();
    const onePerCall = await e1.attendMany(its);
    for (let i = 0; i < its.length; i++) {
      const want = bits((await eb.attendMany([its[i]]))[0]);
      expect([its[i].name, bits(full[i])]).toEqual([its[i].name, want]);
      expect(bits(reversed[i])).toEqual(want);
      expect(bits(await eb.attendCaches(its[i].cacheIds, 0, its[i].q, its[i].qpos))).toEqual(want); // Host.attend = attendMany's item
      if (!LARGE.has(i)) expect(bits(onePerCall[i])).toEqual(want); // (the tiled backend cuts large items by the score budget too)
      const mixed = await eb.attendMany([its[(i + 1) % its.length], its[i], its[i], its[(i + 3) % its.length]]);
      expect(bits(mixed[1])).toEqual(want);
      expect(bits(mixed[2])).toEqual(want);
    }
  });

  it('eight decode rows over their own pages take one ORT call (the per-request path: eight; one tile per call: eight); thirteen take three', async () => {
    const its = range(0, 8).map((i) => item(`r${i}`, [400], [`r${i}`], 40 + i));
    expect(await calls(eb, () => eb.attendMany(its))).toBe(1);
    expect(await calls(ep, () => ep.attendMany(its))).toBe(8);
    expect(await calls(e1, () => e1.attendMany(its))).toBe(8);
    // 13 tiles: calls of a power-of-two number of tiles (8 + 4 + 1), so only such sessions are ever built
    const thirteen = range(0, 13).map((i) => item(`r${i % 8}`, [400], [`r${i % 8}`], 60 + i));
    expect(await calls(eb, () => eb.attendMany(thirteen))).toBe(3);
  });

  it("the query engine's own partials: queryLayer over stacked groups makes one attend call and matches the per-request path", async () => {
    const { hiddenSize: hid } = cfg;
    const lens = [1, 3, 1, 2];
    const groups = lens.map((n, g) => ({ cacheId: `q${g}`, positions: Int32Array.from(range(20 * g, n)) }));
    const x = randomArray(lens.reduce((a, b) => a + b, 0) * hid, 5, 1); // (T, hidden)
    const out: Partial[][] = [];
    for (const e of [eb, ep]) {
      for (const g of groups) await e.createCache(g.cacheId, 8);
      out.push((await e.queryLayer(0, x, groups)).own);
      const n = await calls(e, () => e.queryLayer(0, x, groups.map((g) => ({ ...g, positions: g.positions.map((p) => p + 10) }))));
      expect(n).toBe(e === eb ? 1 : groups.length);
      for (const g of groups) await e.dropCache(g.cacheId);
    }
    out[0].forEach((p, g) => expect(maxAbsDiff(p.o, out[1][g].o)).toBeLessThan(2 * TOL));
  });

  it('no items, and an item whose caches have no key for its rows', async () => {
    expect(await eb.attendMany([])).toEqual([]);
    const [empty] = await eb.attendMany([item('sees nothing', [1], ['late'], 3)]);
    expect(Array.from(empty.lse)).toEqual(new Array(cfg.numHeads).fill(-Infinity));
    expect(empty.o.every((x) => x === 0)).toBe(true);
  });

  it('a cache missing on the host fails the whole call with its name; attendBatching must be a boolean', async () => {
    await expect(eb.attendMany([item('ok', [400], ['page'], 1), item('missing', [400], ['nope'], 2)])).rejects.toThrow(/nope/);
    await expect(ModelEngine.load(dir, cfg, { attendBatching: 'yes' as unknown as boolean })).rejects.toMatchObject({ code: 'invalid_executor_options' });
  });
});
