/**
 * Star / Ring / Global through the in-process LocalCluster (ORT engines in worker threads, hosts,
 * exact LSE merge) against
 *   - the engine-only global path (one ModelEngine: forward over context ++ query, generateGlobal),
 *   - the float64 reference of docs/DESIGN.md §2–§4 (reference-star.ts: ReferenceModel + @starq/attention).
 *
 * Part 1 runs on a random Llama checkpoint (no ../shared needed). Part 2 uses the real
 * stories260K model from ../shared (skipped when absent): fidelity of Star vs the float64
 * reference, KL(global‖star) and the anchor ablation (reported, never asserted to favour anchors).
 */
import * as fs from 'fs';
import * as path from 'path';
import { generateGlobal, type GenerateOptions } from '../generate';
import { ReferenceModel } from '../reference-forward';
import {
  klPerRow,
  meanKl,
  referenceExactPhase1,
  referenceGlobal,
  referencePhase2,
  referenceStar,
  referenceStarPhase1,
  top1Agreement,
  type Phase2Result64,
} from '../reference-star';
import { ModelEngine } from '../runtime/engine';
import { writeRandomCheckpoint, type RandomCheckpointOptions } from '../synthetic/random-checkpoint';
import type { ModelConfig } from '../types';
import { loadModelDir } from '../weights';
import { blockCacheId, planStar, phase1Positions, phase1Tokens, starPhase1, type BlockHandle, type EncodeBlockRequest, type Host } from '@starq/attention';
import { linearFlopsPerToken } from '../perf/flops';
import { LocalCluster, type LocalRequest } from './local-cluster';
import { LocalHost } from './local-host';
import { TmpDirs, maxAbsDiff, randomTokenIds, range } from '@starq/testing';
import { sharedModel } from '../shared-fixtures';

const GREEDY = { temperature: 0, topK: 0, topP: 1, seed: 0 };
const gen = (maxNewTokens: number): GenerateOptions => ({ maxNewTokens, sampling: GREEDY, stopIds: [] });

/** Engine-only global path: one forward over context ++ query, logits of the last M rows (M, V). */
async function engineGlobalQueryLogits(engine: ModelEngine, contextIds: number[], queryIds: number[], V: number): Promise<Float32Array> {
  const ids = Int32Array.from([...contextIds, ...queryIds]);
  const cacheId = `engine-global-${Math.random().toString(36).slice(2)}`;
  try {
    const all = await engine.forward({ cacheId, ids, positions: range(0, ids.length), logits: 'all' });
    return all!.slice(contextIds.length * V); // (M, V)
  } finally {
    await engine.dropCache(cacheId);
  }
}

// ==============================================================================================
// Part 1: random checkpoint

const RANDOM: RandomCheckpointOptions = {
  architecture: 'llama',
  hidden: 64,
  intermediate: 160,
  layers: 3,
  heads: 4,
  kvHeads: 2,
  vocab: 128,
  maxPositions: 1024,
  dtype: 'F32',
  tied: false,
  sharded: false,
  seed: 4242,
};

describe('Star / Ring / Global on a random Llama checkpoint (LocalCluster vs engine-only global and float64 reference)', () => {
  const tmp = new TmpDirs();
  const N = 200; // context
  const M = 12; // query
  const NEW = 16;
  let config: ModelConfig;
  let V: number;
  let ref: ReferenceModel;
  let cluster: LocalCluster;
  let engine: ModelEngine;
  let contextIds: number[];
  let queryIds: number[];
  let globalLogits: Float32Array; // (M, V) engine-only
  let globalIds: number[]; // engine-only generateGlobal
  let refGlobal: Phase2Result64;

  beforeAll(async () => {
    const dir = tmp.make('starq-star-spec-');
    writeRandomCheckpoint(dir, RANDOM);
    const loaded = loadModelDir(dir);
    config = loaded.config;
    V = config.vocabSize;
    ref = new ReferenceModel(config, loaded.weights);
    contextIds = [1, ...randomTokenIds(N - 1, V, 7001, 3)];
    queryIds = randomTokenIds(M, V, 7002, 3);
    cluster = await LocalCluster.start(dir, config, { hosts: 3 });
    engine = await ModelEngine.load(dir, config, { threads: 1 });
    globalLogits = await engineGlobalQueryLogits(engine, contextIds, queryIds, V);
    globalIds = (await generateGlobal(engine, contextIds, queryIds, gen(NEW))).generatedIds;
    refGlobal = referenceGlobal(ref, contextIds, queryIds, { maxNewTokens: NEW });
  });
  afterAll(async () => {
    await cluster?.close();
    await engine?.close();
    tmp.cleanup();
  });

  const req = (over: Partial<LocalRequest>): LocalRequest => ({ mode: 'star', contextIds, queryIds, ...over });

  it('sanity: the engine-only global path matches the float64 global reference (1e-4, same greedy ids)', () => {
    expect(globalLogits.length).toBe(M * V);
    expect(maxAbsDiff(globalLogits, refGlobal.queryLogits)).toBeLessThan(1e-4);
    expect(globalIds).toEqual(refGlobal.generatedIds);
    expect(globalIds).toHaveLength(NEW);
  });

  it('sanity: float64 references agree (exact phase 1 + merged phase 2 = plain causal; block 0 = causal prefix)', () => {
    const viaMerge = referencePhase2(ref, referenceExactPhase1(ref, contextIds), N, queryIds, { maxNewTokens: NEW });
    expect(maxAbsDiff(viaMerge.queryLogits, refGlobal.queryLogits)).toBeLessThan(1e-9);
    expect(viaMerge.generatedIds).toEqual(refGlobal.generatedIds);
    expect(viaMerge.stepLogits).toHaveLength(NEW);
    expect(maxAbsDiff(viaMerge.stepLogits[0], viaMerge.queryLogits.subarray((M - 1) * V))).toBe(0); // step 0 = last query row
    // Phase 1 layout: block k keeps rows at global positions k·b..; block 0 is a causal prefix of the context.
    const [exact] = referenceExactPhase1(ref, contextIds);
    const blocks = referenceStarPhase1(ref, contextIds, 64, 16);
    expect(blocks.map((blk) => [blk.start, blk.end])).toEqual([[0, 64], [64, 128], [128, 192], [192, 200]]);
    expect(Array.from(blocks[3].positions)).toEqual([192, 193, 194, 195, 196, 197, 198, 199]);
    const { numKvHeads: Hkv, headDim: D } = config;
    for (let l = 0; l < config.numLayers; l++) {
      expect(blocks[0].k[l].length).toBe(Hkv * 64 * D);
      for (let h = 0; h < Hkv; h++) {
        const prefix = exact.k[l].subarray(h * N * D, (h * N + 64) * D);
        expect(maxAbsDiff(blocks[0].k[l].subarray(h * 64 * D, (h + 1) * 64 * D), prefix)).toBeLessThan(1e-12);
      }
    }
  });

  it.each([[N], [N + 37], [1000]])('Star with b = %i ≥ N equals Global (logits 1e-5, greedy ids identical)', async (b) => {
    const r = req({ blockSize: b });
    expect(cluster.plan(r).numBlocks).toBe(1);
    const logits = await cluster.queryLogits(r);
    expect(maxAbsDiff(logits, globalLogits)).toBeLessThan(1e-5);
    const out = await cluster.generate(r, gen(NEW));
    expect(out.generatedIds).toEqual(globalIds);
    // and the float64 references agree with each other to float64 rounding
    const refStar = referenceStar(ref, contextIds, queryIds, b, b, { maxNewTokens: NEW });
    expect(maxAbsDiff(refStar.queryLogits, refGlobal.queryLogits)).toBeLessThan(1e-9);
    expect(refStar.generatedIds).toEqual(refGlobal.generatedIds);
  });

  // b = 200: 1 block; 50: 4 even blocks; 64: 64,64,64,8 (uneven last); 37: 6 blocks, last 15.
  const RING: [number, number][] = [];
  for (const hosts of [1, 2, 3]) for (const b of [N, 50, 64, 37]) RING.push([hosts, b]);
  it.each(RING)('Ring with hosts = %i, b = %i equals Global (logits 1e-4, greedy ids identical)', async (hosts, b) => {
    const r = req({ mode: 'ring', blockSize: b, hosts });
    const plan = cluster.plan(r);
    expect(plan.effectiveHosts).toBe(Math.min(hosts, Math.ceil(N / b)));
    const logits = await cluster.queryLogits(r);
    expect(maxAbsDiff(logits, globalLogits)).toBeLessThan(1e-4);
    const out = await cluster.generate(r, gen(NEW));
    expect(out.generatedIds).toEqual(globalIds);
  });

  it('Global mode through LocalCluster equals the engine-only global path (1e-5, greedy ids identical)', async () => {
    const r: LocalRequest = { mode: 'global', contextIds, queryIds };
    expect(cluster.plan(r).numBlocks).toBe(1);
    const logits = await cluster.queryLogits(r);
    expect(maxAbsDiff(logits, globalLogits)).toBeLessThan(1e-5);
    const out = await cluster.generate(r, gen(NEW));
    expect(out.generatedIds).toEqual(globalIds);
  });

  // [b, a, hosts]: a = 0, a < b, a = b, b not dividing N, a host holding several blocks.
  const STAR: [number, number, number][] = [
    [64, 0, 2], // 4 blocks (last 8), no anchor, 2 blocks per host
    [64, 32, 3], // a < b; host 0 holds 2 blocks
    [64, 64, 1], // a = b; one host holds all 4 blocks
    [48, 48, 2], // 5 blocks (last 8): hosts hold 3 + 2
    [30, 10, 3], // 7 blocks (last 20), small anchor
    [100, 100, 2], // 2 blocks, a = b = N/2: block 1's anchor is all of block 0, so Star is exact
    // Many blocks on one host, each anchor size: the host encodes the anchor once and every block over it.
    [20, 0, 1], // 10 blocks, no anchor
    [20, 7, 1], // 10 blocks, a < b
    [20, 20, 1], // 10 blocks, a = b
    [37, 37, 1], // 6 blocks (last 15), a = b
    [16, 5, 2], // 13 blocks (last 8): hosts hold 7 + 6, a < b
  ];
  it.each(STAR)('ORT Star (b = %i, a = %i, hosts = %i) equals the float64 reference (logits 1e-4, greedy ids identical)', async (b, a, hosts) => {
    const r = req({ blockSize: b, anchorSize: a, hosts });
    const plan = cluster.plan(r);
    expect(plan.numBlocks).toBe(Math.ceil(N / b));
    expect(plan.effectiveHosts).toBe(Math.min(hosts, plan.numBlocks));
    const refStar = referenceStar(ref, contextIds, queryIds, b, a, { maxNewTokens: NEW });
    const logits = await cluster.queryLogits(r);
    expect(maxAbsDiff(logits, refStar.queryLogits)).toBeLessThan(1e-4);
    const out = await cluster.generate(r, gen(NEW));
    expect(out.generatedIds).toEqual(refStar.generatedIds);
    // Star is exact iff every block's anchor covers all the context before it (docs/DESIGN.md §5.3:
    // a = b = N/2 reproduces Global); otherwise the case is not vacuous — Star really differs.
    const exact = plan.blocks.every((blk) => blk.start <= plan.anchorLength);
    if (exact) expect(maxAbsDiff(refStar.queryLogits, refGlobal.queryLogits)).toBeLessThan(1e-9);
    else expect(meanKl(refGlobal.queryLogits, refStar.queryLogits, V)).toBeGreaterThan(1e-8);
  });
});

describe('Anchor once per host (LocalHost): exact, shared, counted once, released with the last block', () => {
  const tmp = new TmpDirs();
  const N = 200;
  let config: ModelConfig;
  let engine: ModelEngine;
  let contextIds: number[];

  beforeAll(async () => {
    const dir = tmp.make('starq-anchor-spec-');
    writeRandomCheckpoint(dir, RANDOM);
    config = loadModelDir(dir).config;
    contextIds = [1, ...randomTokenIds(N - 1, config.vocabSize, 7101, 3)];
    engine = await ModelEngine.load(dir, config, { threads: 1 });
  });
  afterAll(async () => {
    await engine?.close();
    tmp.cleanup();
  });

  const request = (b: number, a: number, k: number, key: string): EncodeBlockRequest => {
    const blk = planStar({ contextLength: N, blockSize: b, anchorSize: a, hosts: 1 }).blocks[k];
    return { cacheId: `${key}/b${k}`, ids: Int32Array.from(phase1Tokens(contextIds, blk.phase1)), positions: phase1Positions(blk.phase1), keepFrom: blk.phase1.keepFrom };
  };
  const linearTokens = async (): Promise<number> => (await engine.stats()).linearFlops / linearFlopsPerToken(config);
  const anchorCaches = async () => (await engine.listCaches()).filter((c) => c.id.startsWith('anchor/'));

  it.each([[40, 24], [40, 40]])('b = %i, a = %i: anchor computed once for 3 blocks, reused by a later block, dropped with the last', async (b, a) => {
    const shared = new LocalHost('shared', engine);
    const t0 = await linearTokens();
    const handles = await Promise.all([1, 2, 3].map((k) => shared.encodeBlock(request(b, a, k, 'sh'))));
    expect(await linearTokens()).toBe(t0 + 3 * b + a); // 3 blocks' rows + the anchor once
    expect(handles.map((h) => h.tokens)).toEqual([b, b, b]);
    const anchors = await anchorCaches();
    expect(anchors.map((c) => c.tokens)).toEqual([a]);
    expect(shared.anchorBytes).toBe(anchors[0].bytes); // counted once
    expect(shared.newAnchorTokens(request(b, a, 4, 'sh'))).toBe(0);

    await shared.release(['sh/b1', 'sh/b2']);
    expect(await anchorCaches()).toHaveLength(1); // block 3 still uses it
    const t1 = await linearTokens();
    await shared.encodeBlock(request(b, a, 4, 'sh')); // a later block of the context reuses it
    expect(await linearTokens()).toBe(t1 + b);

    // The K/V kept equal those of anchor ++ block encoded whole (as in the paper), within float32 rounding.
    const whole = new LocalHost('whole', engine, { shareAnchors: false });
    await whole.encodeBlock(request(b, a, 4, 'wh'));
    expect(whole.anchorBytes).toBe(0);
    const qpos = range(N, 4);
    const q = Float32Array.from({ length: config.numHeads * 4 * config.headDim }, (_, i) => Math.sin(i));
    for (let l = 0; l < config.numLayers; l++) {
      const x = await shared.attend({ cacheIds: ['sh/b3', 'sh/b4'], layer: l, q, qpos });
      const y = await engine.attendCaches(['sh/b3', 'wh/b4'], l, q, qpos);
      expect(maxAbsDiff(x.o, y.o)).toBeLessThan(1e-5);
      expect(maxAbsDiff(x.lse, y.lse)).toBeLessThan(1e-5);
    }
    await whole.release(['wh/b4']);

    await shared.release(['sh/b3', 'sh/b4']);
    expect(await anchorCaches()).toHaveLength(0); // released with the last block
    expect(shared.anchorBytes).toBe(0);
    expect((await engine.listCaches()).map((c) => c.id)).toEqual([]);
  });

  it('starPhase1 sends each host one block at a time, in plan order (hosts in parallel), and reports every block', async () => {
    const plan = planStar({ contextLength: N, blockSize: 20, anchorSize: 20, hosts: 2 }); // 10 blocks, 5 per host
    const log: string[] = [];
    const inFlight = [0, 0];
    const peak = [0, 0];
    // Each plan host is a real LocalHost on the shared engine, wrapped to record its calls.
    const hosts: Host[] = [0, 1].map((i) => {
      const real = new LocalHost(`h${i}`, engine);
      return Object.assign(Object.create(real) as Host, {
        encodeBlock: async (req: EncodeBlockRequest): Promise<BlockHandle> => {
          peak[i] = Math.max(peak[i], ++inFlight[i]);
          log.push(`h${i}:${req.cacheId.slice(req.cacheId.lastIndexOf('/') + 1)}`);
          try {
            return await real.encodeBlock(req);
          } finally {
            inFlight[i]--;
          }
        },
      });
    });
    const reported: number[] = [];
    await starPhase1(plan, contextIds, hosts, 'seq', (_h, done, total) => {
      expect(total).toBe(10);
      reported.push(done);
    });
    expect(peak).toEqual([1, 1]);
    expect(log.filter((l) => l.startsWith('h0'))).toEqual(['h0:b0', 'h0:b1', 'h0:b2', 'h0:b3', 'h0:b4']);
    expect(log.filter((l) => l.startsWith('h1'))).toEqual(['h1:b5', 'h1:b6', 'h1:b7', 'h1:b8', 'h1:b9']);
    expect(reported).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const ids = plan.blocks.map((b) => blockCacheId('seq', b.index));
    for (const h of hosts) await h.release(ids); // each host drops its blocks and its own anchor
    expect((await engine.listCaches()).map((c) => c.id)).toEqual([]);
  });

  it('block 0 and a = 0 keep no anchor; a failed block leaves no cache and no anchor behind', async () => {
    const host = new LocalHost('plain', engine);
    await host.encodeBlock(request(40, 40, 0, 'p'));
    await host.encodeBlock(request(40, 0, 2, 'p0'));
    expect(await anchorCaches()).toHaveLength(0);
    const bad = request(40, 40, 1, 'bad');
    bad.ids[bad.ids.length - 1] = config.vocabSize; // outside the vocabulary
    await expect(host.encodeBlock(bad)).rejects.toMatchObject({ code: 'invalid_token_id' });
    expect((await engine.listCaches()).map((c) => c.id).sort()).toEqual(['p/b0', 'p0/b2']);
    await host.release(['p/b0', 'p0/b2']);
  });
});

// ==============================================================================================
// Part 2: stories260K from ../shared

const { path: STORIES, present: haveStories } = sharedModel('stories260K', 'model.safetensors', 'reference_long.json');
const describeStories = haveStories ? describe : describe.skip;

describeStories('Star on stories260K (requires ../shared): ORT vs float64 reference, KL(global‖star), anchor ablation', () => {
  const CTX = 448;
  const QRY = 32;
  const NEW = 16;
  const report: string[] = [];
  let config: ModelConfig;
  let V: number;
  let ref: ReferenceModel;
  let cluster: LocalCluster;
  let engine: ModelEngine;
  let tokens: number[];
  let contextIds: number[];
  let queryIds: number[];
  let global64: Phase2Result64; // float64 global, query logits (32, V)
  let globalOrt: Float32Array; // ORT engine-only global (32, V)

  /** Per (b, a): float64 star reference and ORT query logits (memoised: shared by several tests). */
  const cells = new Map<string, Promise<{ ref: Phase2Result64; ort: Float32Array }>>();
  const cell = (b: number, a: number) => {
    const key = `${b}/${a}`;
    if (!cells.has(key)) {
      cells.set(
        key,
        (async () => {
          const ort = await cluster.queryLogits({ mode: 'star', contextIds, queryIds, blockSize: b, anchorSize: a, hosts: 3 });
          return { ref: referenceStar(ref, contextIds, queryIds, b, a, { maxNewTokens: NEW }), ort };
        })(),
      );
    }
    return cells.get(key)!;
  };

  beforeAll(async () => {
    const loaded = loadModelDir(STORIES);
    config = loaded.config;
    V = config.vocabSize;
    ref = new ReferenceModel(config, loaded.weights);
    const fixture = JSON.parse(fs.readFileSync(path.join(STORIES, 'reference_long.json'), 'utf8')) as { token_ids: number[] };
    tokens = fixture.token_ids;
    expect(tokens).toHaveLength(CTX + QRY);
    contextIds = tokens.slice(0, CTX);
    queryIds = tokens.slice(CTX, CTX + QRY);
    cluster = await LocalCluster.start(STORIES, config, { hosts: 3 });
    engine = await ModelEngine.load(STORIES, config, { threads: 1 });
    global64 = referenceGlobal(ref, contextIds, queryIds, { maxNewTokens: NEW });
    globalOrt = await engineGlobalQueryLogits(engine, contextIds, queryIds, V);
  });
  afterAll(async () => {
    await cluster?.close();
    await engine?.close();
    if (report.length > 0) process.stderr.write(`\n[stories260K star fidelity, context ${CTX} + query ${QRY} of reference_long.json]\n${report.join('\n')}\n`);
  });

  it('sanity: the float64 global reference reproduces reference_long.json (last-position logits, greedy continuation)', () => {
    const fixture = JSON.parse(fs.readFileSync(path.join(STORIES, 'reference_long.json'), 'utf8')) as {
      last_position_logits: number[];
      greedy_continuation: { token_ids: number[] };
    };
    const last = global64.queryLogits.subarray((QRY - 1) * V, QRY * V);
    expect(maxAbsDiff(last, fixture.last_position_logits)).toBeLessThan(1e-9);
    expect(global64.generatedIds).toEqual(fixture.greedy_continuation.token_ids.slice(0, NEW));
    expect(maxAbsDiff(globalOrt, global64.queryLogits)).toBeLessThan(1e-4);
  });

  it.each([
    [64, 64],
    [128, 128],
  ])('Star (b = %i, a = %i): deterministic, query logits = float64 (1e-4), 16 greedy ids = float64, KL(global‖star) ORT = float64 (1e-4)', async (b, a) => {
    const { ref: star64, ort } = await cell(b, a);
    const again = await cluster.queryLogits({ mode: 'star', contextIds, queryIds, blockSize: b, anchorSize: a, hosts: 3 });
    expect(maxAbsDiff(again, ort)).toBe(0); // two runs bit-identical
    expect(maxAbsDiff(ort, star64.queryLogits)).toBeLessThan(1e-4);

    const out = await cluster.generate({ mode: 'star', contextIds, queryIds, blockSize: b, anchorSize: a, hosts: 3 }, gen(NEW));
    expect(star64.generatedIds).toHaveLength(NEW);
    expect(out.generatedIds).toEqual(star64.generatedIds);

    const kl64 = meanKl(global64.queryLogits, star64.queryLogits, V);
    const klOrt = meanKl(globalOrt, ort, V);
    expect(Math.abs(klOrt - kl64)).toBeLessThan(1e-4);
    const rows64 = klPerRow(global64.queryLogits, star64.queryLogits, V);
    const rowsOrt = klPerRow(globalOrt, ort, V);
    expect(maxAbsDiff(rowsOrt, rows64)).toBeLessThan(1e-4);
    const agree = top1Agreement(global64.queryLogits, star64.queryLogits, V);
    report.push(
      `b=${b} a=${a}: mean KL(global||star) float64 ${kl64.toFixed(6)}  ORT ${klOrt.toFixed(6)}  |diff| ${Math.abs(klOrt - kl64).toExponential(2)}; ` +
        `max row KL ${Math.max(...rows64).toFixed(5)}; top-1 agreement ${(agree * 100).toFixed(1)}%; ` +
        `greedy 16 star ${out.generatedIds.join(',') === global64.generatedIds.join(',') ? '=' : '≠'} global`,
    );
  });

  it('anchor ablation: mean KL(global‖star) over the 32 query positions, b ∈ {64, 128} × a ∈ {0, b}, ORT = float64 (1e-4)', async () => {
    const rows: string[] = ['anchor ablation, mean KL(global||star) over 32 query positions (float64 / ORT):', '  b \\ a    a = 0                                 a = b'];
    for (const b of [64, 128]) {
      const line: string[] = [];
      for (const a of [0, b]) {
        const { ref: star64, ort } = await cell(b, a);
        const kl64 = meanKl(global64.queryLogits, star64.queryLogits, V);
        const klOrt = meanKl(globalOrt, ort, V);
        expect(Number.isFinite(kl64)).toBe(true);
        expect(kl64).toBeGreaterThanOrEqual(0);
        expect(Math.abs(klOrt - kl64)).toBeLessThan(1e-4);
        line.push(`${kl64.toFixed(6)} / ${klOrt.toFixed(6)} (Δ ${Math.abs(klOrt - kl64).toExponential(1)})`);
      }
      rows.push(`  ${String(b).padStart(3)}      ${line.join('        ')}`);
    }
    report.push(rows.join('\n'));
  });

  it('phase 2 on the query actor cache: context 400 + query 8, 64 greedy tokens, star (b = a = 100) and global each equal their float64 reference', async () => {
    const ctx = tokens.slice(0, 400);
    const q = tokens.slice(400, 408);
    const NEW2 = 64;
    const star64 = referenceStar(ref, ctx, q, 100, 100, { maxNewTokens: NEW2 });
    const glob64 = referenceGlobal(ref, ctx, q, { maxNewTokens: NEW2 });
    const star = await cluster.generate({ mode: 'star', contextIds: ctx, queryIds: q, blockSize: 100, anchorSize: 100, hosts: 3 }, gen(NEW2));
    const glob = await cluster.generate({ mode: 'global', contextIds: ctx, queryIds: q }, gen(NEW2));
    expect(star.plan.numBlocks).toBe(4);
    expect(star.generatedIds).toHaveLength(NEW2);
    expect(glob.generatedIds).toHaveLength(NEW2);
    expect(star.generatedIds).toEqual(star64.generatedIds);
    expect(glob.generatedIds).toEqual(glob64.generatedIds);
    let same = 0;
    while (same < NEW2 && star64.generatedIds[same] === glob64.generatedIds[same]) same++;
    report.push(`generation (context 400 + query 8, 64 greedy tokens): star(100,100) and global agree on the first ${same} tokens`);
  });
});
