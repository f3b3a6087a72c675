/**
 * `starq bench speed` end to end on tiny sizes: real `node bin/starq` processes, in-process hosts
 * and (with --cluster) real actor processes on the local Redis. Checks the output's structure, the
 * counted FLOPs against hand-computed values, the plots and bad-input handling — never timings.
 */
import * as fs from 'fs';
import * as path from 'path';
import Redis from 'ioredis';
import { writeRandomCheckpoint } from '@starq/model/synthetic/random-checkpoint';
import { TmpDirs } from '@starq/testing';
import { starq as run, type Run } from './helpers/cli';


function starq(args: string[]): Promise<Run> {
  return run(args, 400_000);
}

const CELL_FIELDS = ['mode', 'contextTokens', 'blockSize', 'anchorSize', 'hosts', 'phase1Ms', 'firstTokenMs', 'decodeTokensPerSec', 'gflop', 'gflops', 'ratioVsGlobal', 'ratioVsRing', 'peakRssMb'];

// Random model hidden=32, layers=1, heads=2, kv-heads=1 → D = 16, intermediate = ⌈8·32/3/16⌉·16 = 96.
// linear per token = 2·(32·2·16·2 + 2·32·1·16 + 3·32·96) = 2·(2048 + 1024 + 9216) = 24576
// attention per visible pair = 4·1·2·16 = 128
// global N=64: 64·24576 + (64·65/2 = 2080)·128 = 1572864 + 266240 = 1839104 FLOP
// star N=64, b=32, a=32: block 0 = 32 tokens (528 pairs), block 1 = 32 anchor + 32 = 64 tokens (2080 pairs)
//   → 96·24576 + 2608·128 = 2359296 + 333824 = 2693120 FLOP
// ring N=64: exact attention → same as global, 1839104 FLOP
const HAND_GFLOP: Record<string, number> = { 'global/64': 1839104e-9, 'star/64/32': 2693120e-9, 'ring/64': 1839104e-9 };

const tmp = new TmpDirs();
afterAll(() => tmp.cleanup());

function checkDoc(doc: { roofline: { matmulGflops: number }; cells: Record<string, unknown>[] }, expectCells: number): void {
  expect(doc.roofline.matmulGflops).toBeGreaterThan(0);
  expect(doc.cells).toHaveLength(expectCells);
  for (const c of doc.cells) {
    for (const f of CELL_FIELDS) expect(c).toHaveProperty(f);
    for (const f of ['phase1Ms', 'firstTokenMs', 'decodeTokensPerSec', 'gflop', 'gflops', 'peakRssMb']) {
      expect(typeof c[f]).toBe('number');
      expect(c[f] as number).toBeGreaterThan(0);
    }
    expect(c.firstTokenMs as number).toBeGreaterThanOrEqual(c.phase1Ms as number);
    expect(c.ratioVsGlobal).not.toBeNull(); // every context has a global cell here
    if (c.mode === 'global') expect(c.ratioVsGlobal).toBe(1);
    if (c.mode === 'ring') expect(c.ratioVsRing).toBe(1);
    if (c.mode === 'star') expect(typeof c.ratioVsRing).toBe('number');
  }
  for (const [key, gflop] of Object.entries(HAND_GFLOP)) {
    const [mode, N, b] = key.split('/');
    const cell = doc.cells.find((c) => c.mode === mode && c.contextTokens === Number(N) && (b === undefined || c.blockSize === Number(b)));
    expect(cell).toBeDefined();
    expect(cell!.gflop as number).toBeCloseTo(gflop, 12);
  }
}

describe('starq bench speed', () => {
  it('in-process: table, JSON with the documented fields, hand-checked FLOPs, plots, progress', async () => {
    const dir = tmp.make('starq-bench-speed-');
    const json = path.join(dir, 'speed.json');
    const plots = path.join(dir, 'plots');
    const r = await starq([
      'bench', 'speed', '--random-model', 'hidden=32,layers=1,heads=2,kv-heads=1', '--contexts', '32,64', '--modes', 'global,star,ring',
      '--block-sizes', '1/2,16', '--hosts', '2', '--threads', '2', '--query-tokens', '2', '--new-tokens', '3', '--json', json, '--plots', plots,
    ]);
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    // 2 contexts × (global + ring + star N/2 + star 16); at N=32, N/2 = 16 is the same cell and runs once
    const doc = JSON.parse(fs.readFileSync(json, 'utf8'));
    checkDoc(doc, 7);
    expect(doc.backend).toBe('in-process');
    expect(doc.cells.every((c: { generatedTokens: number }) => c.generatedTokens === 3)).toBe(true);
    expect(r.stdout).toMatch(/roofline: ORT fp32 MatMul .* GFLOP\/s/);
    expect(r.stdout.split('\n').filter((l) => /^(global|star|ring)\s/.test(l))).toHaveLength(7);
    expect(r.stderr).toMatch(/\[bench\] cell 1\/7: global N=32/);
    expect(r.stderr).toMatch(/phase 1 blocks 2\/2 100%/);
    for (const f of ['phase1-vs-context.svg', 'speedup-vs-blocks.svg']) {
      const svg = fs.readFileSync(path.join(plots, f), 'utf8');
      expect(svg).toMatch(/^<svg xmlns/);
      expect(svg).toContain('<polyline');
    }
  }, 300000);

  it('--json - prints exactly one JSON object on stdout (the table goes to stderr)', async () => {
    const r = await starq(['bench', 'speed', '--random-model', 'hidden=32,layers=1,heads=2,kv-heads=1', '--contexts', '64', '--modes', 'global,star',
      '--block-sizes', '32', '--hosts', '1', '--query-tokens', '1', '--new-tokens', '2', '--json', '-']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.cells.map((c: { mode: string }) => c.mode)).toEqual(['global', 'star']);
    expect(doc.cells[1].gflop).toBeCloseTo(HAND_GFLOP['star/64/32'], 12);
    expect(r.stderr).toMatch(/^global\s+64/m);
  }, 300000);

  it('--predict-global-from: Global measured at N₀ only, predicted (not run) at N from that rate; KV and expected-memory fields', async () => {
    const r = await starq(['bench', 'speed', '--random-model', 'hidden=32,layers=1,heads=2,kv-heads=1', '--contexts', '64', '--modes', 'star',
      '--block-sizes', '16', '--hosts', '2', '--threads', '2', '--query-tokens', '1', '--new-tokens', '2', '--predict-global-from', '32', '--json', '-']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    const [g32, g64, star] = doc.cells;
    expect(doc.cells.map((c: { mode: string; contextTokens: number; predicted: boolean }) => `${c.mode}:${c.contextTokens}:${c.predicted}`)).toEqual(['global:32:false', 'global:64:true', 'star:64:false']);
    expect(g64.gflop).toBeCloseTo(HAND_GFLOP['global/64'], 12);
    expect(g64.predictedFrom).toBe(32);
    expect(g64.gflops).toBe(g32.gflops); // the rate measured at 32
    expect(g64.phase1Ms).toBeCloseTo((g64.gflop / g32.gflops) * 1000, 6);
    for (const f of ['firstTokenMs', 'decodeTokensPerSec', 'peakRssMb', 'expectedMb']) expect(g64[f]).toBeNull();
    expect(star.ratioVsGlobal).toBeCloseTo(g64.phase1Ms / star.phase1Ms, 9);
    // KV: kvBytesPerToken = 1 layer · (2·1·16·4 + 8) = 136; star N=64, b=a=16 on 2 hosts: 64 rows + 2 anchors of 16 + 3 own rows
    expect(star.kvMb * 2 ** 20).toBeCloseTo((64 + 32 + 3) * 136, 6);
    expect(star.expectedMb).toBeCloseTo(star.kvMb + star.baseRssMb, 9);
    expect(star.peakVsExpected).toBeCloseTo(star.peakRssMb / star.expectedMb, 9);
    expect(r.stderr).toMatch(/^global \(predicted, not run\)\s+64/m);
    expect(r.stderr).toMatch(/global at N = 64 is predicted, not run/);
    expect(r.stderr).toMatch(/\[bench\] cell 2\/2: star N=64/);
  }, 300000);

  it('--cluster: real host processes on Redis, same structure, no keys left behind', async () => {
    const dir = tmp.make('starq-bench-speed-');
    const json = path.join(dir, 'cluster.json');
    const prefix = `starq-test-bench-${process.pid}-${Date.now()}`;
    const r = await starq([
      'bench', 'speed', '--cluster', '--prefix', prefix, '--random-model', 'hidden=32,layers=1,heads=2,kv-heads=1', '--contexts', '64', '--modes', 'global,star,ring',
      '--block-sizes', '1/2', '--hosts', '2', '--threads', '2', '--query-tokens', '2', '--new-tokens', '3', '--json', json,
    ]);
    expect(r.code).toBe(0);
    const doc = JSON.parse(fs.readFileSync(json, 'utf8'));
    checkDoc(doc, 3);
    expect(doc.backend).toBe('cluster');
    expect(doc.cells.find((c: { mode: string }) => c.mode === 'star').hosts).toBe(2);
    const redis = new Redis('redis://127.0.0.1:6379', { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await redis.connect();
      expect(await redis.keys(`${prefix}:*`)).toEqual([]);
    } finally {
      redis.disconnect();
    }
  }, 400000);

  it('bad flags: exit 2 with one coded line naming every problem', async () => {
    const r = await starq(['bench', 'speed', '--random-model', 'hidden=32,layers=1,heads=2,kv-heads=1', '--contexts', '0', '--modes', 'global,warp']);
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^starq: error \[invalid_flag\] \(contexts\): .*"0".*"warp"/);
    // a model whose position limit the context exceeds: refused before any engine starts
    const dir = tmp.make('starq-bench-speed-');
    writeRandomCheckpoint(dir, { architecture: 'llama', hidden: 16, intermediate: 32, layers: 1, heads: 2, kvHeads: 1, vocab: 32, maxPositions: 128, dtype: 'F32', tied: true, sharded: false, seed: 3 });
    const r2 = await starq(['bench', 'speed', '--model', dir, '--contexts', '64,200', '--query-tokens', '4', '--new-tokens', '4']);
    expect(r2.code).toBe(2);
    expect(r2.stderr.trim().split('\n')).toHaveLength(1);
    expect(r2.stderr).toMatch(/^starq: error \[context_too_long\] \(contexts\): context \(200\) \+ query \(4\) \+ max new tokens \(4\) = 208 exceeds the model's maximum of 128 positions/);
  }, 300000);
});
