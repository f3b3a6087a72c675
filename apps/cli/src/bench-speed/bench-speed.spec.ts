/**
 * The pure parts of `starq bench speed`: FLOP counts against hand-computed values, flag parsing,
 * cell planning and the SVG chart.
 */
import type { ModelConfig } from '@starq/model/types';
import { planMode } from '@starq/attention';
import { causalPairs, phase1Flops, phase2Flops } from '@starq/model/perf/flops';
import { cellKvBytes, planCells } from './cells';
import { defaultIntermediate, parseSpeedFlags, parseTokenCount, resolveAnchorSize, resolveBlockSize, type SpeedFlags } from './options';
import { lineChart } from './svg-chart';

/** h=16, H=2, Hkv=1, D=8, I=32, L=1, vocab=32. */
const TINY: ModelConfig = {
  architecture: 'llama',
  hiddenSize: 16,
  intermediateSize: 32,
  numLayers: 1,
  numHeads: 2,
  numKvHeads: 1,
  headDim: 8,
  vocabSize: 32,
  maxPositionEmbeddings: 64,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  ropeScaling: null,
  tieWordEmbeddings: false,
  qkvBias: false,
  slidingWindow: null,
  bosTokenId: 1,
  eosTokenIds: [2],
} as unknown as ModelConfig;

const FLAGS: SpeedFlags = { contexts: '4096', modes: 'global,star,ring', blockSizes: '1/4', anchorSize: 'b', queryTokens: '16', newTokens: '16', seed: '0' };

describe('FLOP counts (hand-computed)', () => {
  // linear per token = 2·L·(h·H·D·2 + 2·h·Hkv·D + 3·h·I) = 2·(16·2·8·2 + 2·16·1·8 + 3·16·32) = 2·(512 + 256 + 1536) = 4608
  // attention per visible pair = 4·L·H·D = 4·1·2·8 = 64
  it('global N=8: 8 tokens × 4608 + 36 pairs × 64 = 39168', () => {
    const f = phase1Flops(TINY, 'global', planMode('global', 8));
    expect(f).toEqual({ linear: 36864, attention: 2304, lmHead: 0, total: 39168 });
  });

  it('star N=8, b=4, a=4: block 0 runs 4 tokens, block 1 runs anchor+block = 8 → 12·4608 + (10+36)·64 = 58240', () => {
    const f = phase1Flops(TINY, 'star', planMode('star', 8, { blockSize: 4, anchorSize: 4 }));
    expect(f).toEqual({ linear: 55296, attention: 2944, lmHead: 0, total: 58240 });
  });

  it('star N=8, b=4, a=0: two independent causal blocks → 8·4608 + (10+10)·64 = 38144', () => {
    expect(phase1Flops(TINY, 'star', planMode('star', 8, { blockSize: 4, anchorSize: 0 })).total).toBe(38144);
  });

  it('star N=12, b=4, a=4 on one host: the anchor once (4 tokens, 10 pairs), blocks 1–2 as 4 rows over anchor ++ block (26 pairs each) → 16·4608 + 72·64 = 78336', () => {
    const plan = planMode('star', 12, { blockSize: 4, anchorSize: 4, hosts: 1 });
    expect(phase1Flops(TINY, 'star', plan)).toEqual({ linear: 73728, attention: 4608, lmHead: 0, total: 78336 });
    // the paper's count: blocks 1 and 2 each run anchor ++ block = 8 tokens → 20·4608 + (10 + 36 + 36)·64 = 97408
    expect(phase1Flops(TINY, 'star', plan, { anchorPerBlock: true }).total).toBe(97408);
    // one block per host: every host encodes its own anchor, the two counts agree
    const spread = planMode('star', 12, { blockSize: 4, anchorSize: 4, hosts: 3 });
    expect(phase1Flops(TINY, 'star', spread).total).toBe(97408);
  });

  it('ring is exact attention: the same FLOPs as global, whatever the blocks', () => {
    expect(phase1Flops(TINY, 'ring', planMode('ring', 8, { blockSize: 3, hosts: 2 })).total).toBe(39168);
  });

  it('phase 2, N=8, M=2, 3 new tokens: 4 rows, 42 pairs, 3 lm_head rows → 18432 + 2688 + 3072 = 24192', () => {
    // rows: 2 query + 2 decode steps (the 3rd token is not fed back); pairs = 4·8 + 4·5/2 = 42; lm_head row = 2·16·32 = 1024
    expect(causalPairs(8, 4)).toBe(42);
    expect(phase2Flops(TINY, 8, 2, 3)).toEqual({ linear: 18432, attention: 2688, lmHead: 3072, total: 24192 });
  });
});

describe('flag parsing', () => {
  it('token counts accept K/M suffixes', () => {
    expect(parseTokenCount('4K')).toBe(4096);
    expect(parseTokenCount('64k')).toBe(65536);
    expect(parseTokenCount('1M')).toBe(1048576);
    expect(parseTokenCount('12')).toBe(12);
    expect(parseTokenCount('1.5K')).toBeNull();
  });

  it('block sizes as tokens and fractions; the fraction rounds up', () => {
    const o = parseSpeedFlags({ ...FLAGS, randomModel: 'hidden=256,layers=4,heads=8,kv-heads=2', blockSizes: '1/4,1/8,0.5,1024,2K', contexts: '4K,100' });
    expect(o.contexts).toEqual([4096, 100]);
    expect(o.blockSizes.map((b) => resolveBlockSize(b, 100))).toEqual([25, 13, 50, 1024, 2048]);
    expect(o.model).toEqual({ random: { hidden: 256, layers: 4, heads: 8, kvHeads: 2, intermediate: 688, vocab: 512 } });
    expect(defaultIntermediate(256)).toBe(688);
  });

  it('block and anchor sizes take K and M suffixes (16K, 1M)', () => {
    const o = parseSpeedFlags({ ...FLAGS, randomModel: 'hidden=256,layers=4,heads=8,kv-heads=2', contexts: '1M', blockSizes: '16K,1M', anchorSize: '4K' });
    expect(o.contexts).toEqual([1048576]);
    expect(o.blockSizes.map((b) => resolveBlockSize(b, 1048576))).toEqual([16384, 1048576]);
    expect(resolveAnchorSize(o.anchor, 1048576, 16384)).toBe(4096);
  });

  it('--predict-global-from takes a token count and refuses global in --modes', () => {
    expect(parseSpeedFlags({ ...FLAGS, model: 'x', modes: 'star', predictGlobalFrom: '64K' }).predictGlobalFrom).toBe(65536);
    expect(parseSpeedFlags({ ...FLAGS, model: 'x', modes: 'star' }).predictGlobalFrom).toBeNull();
    expect(() => parseSpeedFlags({ ...FLAGS, model: 'x', modes: 'global,star', predictGlobalFrom: '64K' })).toThrow(expect.objectContaining({ code: 'conflicting_flags', param: 'predict-global-from' }));
    expect(() => parseSpeedFlags({ ...FLAGS, model: 'x', modes: 'star', predictGlobalFrom: '64Q' })).toThrow(expect.objectContaining({ code: 'invalid_flag', param: 'predict-global-from' }));
  });

  it('reports every bad flag in one error, naming the first', () => {
    let err: unknown;
    try {
      parseSpeedFlags({ ...FLAGS, randomModel: 'hidden=30,layers=1,heads=4', contexts: '0,abc', modes: 'global,warp', blockSizes: '3/2', threads: '0' });
    } catch (e) {
      err = e;
    }
    const e = err as { code: string; param: string; message: string };
    expect(e.param).toBe('random-model');
    for (const part of ['kv-heads is required', 'multiple of heads', '"0"', '"abc"', '"warp"', '"3/2"', '--threads']) expect(e.message).toContain(part);
  });

  it('needs exactly one model source', () => {
    expect(() => parseSpeedFlags(FLAGS)).toThrow(/--model DIR or --random-model/);
    expect(() => parseSpeedFlags({ ...FLAGS, model: 'x', randomModel: 'hidden=8,layers=1,heads=1,kv-heads=1' })).toThrow(/not both/);
  });
});

describe('cell planning', () => {
  it('one global per context, one ring per host count (b = N/H), one star per block size', () => {
    const o = parseSpeedFlags({ ...FLAGS, model: 'x', contexts: '16,32', blockSizes: '1/2,1/4', hosts: '1,2', newTokens: '1', queryTokens: '1' });
    const cells = planCells(o, TINY);
    const summary = cells.map((c) => `${c.mode}:${c.contextTokens}:${c.blockSize}:${c.anchorSize}:${c.hosts}`);
    expect(summary).toEqual([
      'global:16:16:0:1',
      'ring:16:16:0:1',
      'star:16:8:8:1',
      'star:16:4:4:1',
      'ring:16:8:0:2',
      'star:16:8:8:2',
      'star:16:4:4:2',
      'global:32:32:0:1',
      'ring:32:32:0:1',
      'star:32:16:16:1',
      'star:32:8:8:1',
      'ring:32:16:0:2',
      'star:32:16:16:2',
      'star:32:8:8:2',
    ]);
  });

  it('--predict-global-from: Global runs at N₀ only; every other context gets a predicted (not run) Global cell', () => {
    const o = parseSpeedFlags({ ...FLAGS, model: 'x', contexts: '32,48', modes: 'star', blockSizes: '16', hosts: '2', predictGlobalFrom: '16', newTokens: '1', queryTokens: '1' });
    const cells = planCells(o, TINY);
    expect(cells.map((c) => `${c.mode}:${c.contextTokens}:${c.predictedFrom}`)).toEqual(['global:16:null', 'global:32:16', 'star:32:null', 'global:48:16', 'star:48:null']);
    // the predicted cells carry Global's own FLOP count at their context
    expect(cells[1].phase1Flops).toBe(phase1Flops(TINY, 'global', planMode('global', 32)).total);
  });

  it('KV bytes: every context row once, Star\'s anchor once per host holding an anchored block, the query actor\'s rows', () => {
    // kvBytesPerToken(TINY) = L·2·Hkv·D·4 + L·8 = 1·2·1·8·4 + 8 = 72
    // star N=64, b=a=16 on 2 hosts: host 0 holds blocks 0,1 (block 1 anchored), host 1 blocks 2,3 → 2 anchors of 16
    const star = planMode('star', 64, { blockSize: 16, anchorSize: 16, hosts: 2 });
    expect(cellKvBytes(TINY, 'star', star, 5)).toBe((64 + 2 * 16 + 5) * 72);
    // one block per host: host 0 holds only block 0 (no anchor) → one anchor
    const spread = planMode('star', 32, { blockSize: 16, anchorSize: 16, hosts: 2 });
    expect(cellKvBytes(TINY, 'star', spread, 0)).toBe((32 + 16) * 72);
    expect(cellKvBytes(TINY, 'global', planMode('global', 64), 5)).toBe((64 + 5) * 72);
    expect(cellKvBytes(TINY, 'ring', planMode('ring', 64, { blockSize: 32, hosts: 2 }), 0)).toBe(64 * 72);
  });

  it('rejects contexts beyond the position limit, listing each', () => {
    const o = parseSpeedFlags({ ...FLAGS, model: 'x', contexts: '60,100', newTokens: '4', queryTokens: '4' });
    expect(() => planCells(o, TINY)).toThrow(/context \(60\) \+ query \(4\) \+ max new tokens \(4\) = 68 exceeds the model's maximum of 64 positions.*context \(100\)/);
  });
});

describe('SVG chart', () => {
  it('draws one polyline per multi-point series, a legend entry per series, escapes names', () => {
    const svg = lineChart({
      title: 't <1>',
      xLabel: 'x',
      yLabel: 'y',
      xLog: true,
      yLog: true,
      series: [
        { name: 'a & b', points: [[1024, 10], [4096, 100], [16384, 1000]] },
        { name: 'single', points: [[2048, 50]] },
        { name: 'dropped', points: [[0, 5], [1024, -1]], dashed: true },
      ],
    });
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    expect(svg.match(/<polyline /g)).toHaveLength(1);
    expect(svg.match(/<circle /g)).toHaveLength(4);
    expect(svg).toContain('a &amp; b');
    expect(svg).toContain('t &lt;1&gt;');
    expect(svg).not.toContain('NaN');
    for (const label of ['1K', '4K', '16K', '10', '100', '1000']) expect(svg).toContain(`>${label}</text>`);
  });
});
