/**
 * `starq eval fidelity` end to end: real `node bin/starq` processes on a generated random
 * checkpoint (and on stories260K + tinystories_sample.txt from ../shared when present), plus the
 * pure pieces of apps/cli/src/fidelity.ts (flag lists, windows, metrics).
 *
 * All processes start up front in `beforeAll`, a few at a time; each test checks one recorded run.
 */
import * as fs from 'fs';
import * as path from 'path';
import { loadModelDir } from '../libs/model/src/weights';
import { ReferenceModel } from '../libs/model/src/reference-forward';
import { StarqTokenizer } from '../libs/model/src/tokenizer';
import { mulberry32, writeRandomCheckpoint, type RandomCheckpointOptions } from '@starq/model/synthetic/random-checkpoint';
import {
  FidelityStats,
  accumulateRows,
  cutWindows,
  encodeText,
  fidelityCells,
  klFromLogProbs,
  logSoftmax64,
  parseAnchorSizes,
  parseBlockSizes,
} from '../apps/cli/src/fidelity';
import { TmpDirs, smallLlama } from '@starq/testing';
import { pool, type Run } from './helpers/cli';
import { sharedData, sharedModel } from '@starq/model/shared-fixtures';

const stories = sharedModel('stories260K');
const sample = sharedData('tinystories_sample.txt');
const haveStories = stories.present && sample.present;
const itStories = haveStories ? it : it.skip;

const OPTS: RandomCheckpointOptions = smallLlama({ maxPositions: 128, seed: 23 });

// The random run: N = 32, M = 8, 3 windows; b = 48 > N and b = 32 = N are Global.
const N = 32;
const M = 8;
const SAMPLES = 3;
const BLOCKS = [8, 12, 32, 48];
const ANCHORS = '0,4,b';

/**
 * Text the random tokenizer covers entirely: lowercase words (its alphabet starts with `▁` and
 * the lowercase letters), spaces and full stops — no newlines or capitals, which would be `<unk>`.
 */
function randomText(words: number, seed: number): string {
  const rand = mulberry32(seed);
  const letters = 'etaoinshrdlucmfwypvbgk';
  const out: string[] = [];
  for (let i = 0; i < words; i++) {
    const len = 1 + Math.floor(rand() * 6);
    let w = '';
    for (let j = 0; j < len; j++) w += letters[Math.floor(rand() * letters.length)];
    out.push(rand() < 0.1 ? w + '.' : w);
  }
  return out.join(' ');
}

const tmp = new TmpDirs();
let modelDir = '';
let textFile = '';
let shortFile = '';
let runs: Record<string, Run> = {};

const BAD: [string, { code: string; args: () => string[] }][] = [
  ['anchor larger than the block', { code: 'invalid_anchor_size', args: () => fid('--block-size', '8,16', '--anchor-size', '12') }],
  ['window longer than the position limit', { code: 'context_too_long', args: () => fid('--context-tokens', '120', '--query-tokens', '8', '--block-size', '32') }],
  ['text too short for the windows', { code: 'text_too_short', args: () => ['eval', 'fidelity', '--model', modelDir, '--text-file', shortFile, '--context-tokens', String(N), '--query-tokens', String(M), '--block-size', '8'] }],
  ['missing --block-size', { code: 'missing_flag', args: () => fid() }],
  ['malformed --anchor-size list', { code: 'invalid_anchor_size', args: () => fid('--block-size', '8', '--anchor-size', '0,x') }],
];

/** `eval fidelity` on the random model and text with N, M defaults (overridable: later flags win). */
function fid(...extra: string[]): string[] {
  return ['eval', 'fidelity', '--model', modelDir, '--text-file', textFile, '--context-tokens', String(N), '--query-tokens', String(M), ...extra];
}

beforeAll(async () => {
  modelDir = tmp.make('starq-fid-model-');
  writeRandomCheckpoint(modelDir, OPTS);
  const d = tmp.make('starq-fid-text-');
  textFile = path.join(d, 'text.txt');
  fs.writeFileSync(textFile, randomText(600, 4));
  shortFile = path.join(d, 'short.txt');
  fs.writeFileSync(shortFile, randomText(8, 5));
  const jobs: Record<string, string[]> = {
    json: fid('--block-size', BLOCKS.join(','), '--anchor-size', ANCHORS, '--samples', String(SAMPLES), '--json'),
    table: fid('--block-size', '16', '--samples', '1'),
  };
  if (haveStories) {
    jobs.stories = [
      'eval', 'fidelity', '--model', stories.path, '--text-file', sample.path, '--doc-separator', '<|endoftext|>',
      '--context-tokens', '128', '--query-tokens', '16', '--block-size', '32,128', '--samples', '2', '--json',
    ];
  }
  for (const [name, c] of BAD) jobs[`bad:${name}`] = c.args();
  runs = await pool(jobs, 3, 90000);
}, 120_000);

afterAll(() => tmp.cleanup());

function jsonOf(name: string): Record<string, any> {
  const r = runs[name];
  expect({ name, code: r.code, stderr: r.stderr.slice(-800) }).toEqual({ name, code: 0, stderr: expect.anything() });
  const lines = r.stdout.split('\n').filter((l) => l.trim() !== '');
  expect(lines).toHaveLength(1);
  return JSON.parse(lines[0]);
}

function checkStructure(out: Record<string, any>, n: number, m: number, samples: number): void {
  expect(Object.keys(out).sort()).toEqual(['cells', 'contextTokens', 'globalNll', 'model', 'queryTokens', 'samples'].sort());
  expect(out).toMatchObject({ contextTokens: n, queryTokens: m, samples });
  expect(Number.isFinite(out.globalNll) && out.globalNll > 0).toBe(true);
  for (const c of out.cells) {
    expect(Object.keys(c).sort()).toEqual(['anchorSize', 'blockSize', 'kl', 'nll', 'top1Agreement'].sort());
    expect(Number.isFinite(c.kl) && c.kl >= 0).toBe(true);
    expect(c.top1Agreement).toBeGreaterThanOrEqual(0);
    expect(c.top1Agreement).toBeLessThanOrEqual(1);
    expect(Number.isFinite(c.nll) && c.nll > 0).toBe(true);
  }
}

describe('starq eval fidelity (random checkpoint)', () => {
  it('--json: one object, the whole (b, a) grid with "b" resolved and duplicates dropped, KL ≥ 0', () => {
    const out = jsonOf('json');
    checkStructure(out, N, M, SAMPLES);
    expect(out.model).toBe(modelDir);
    const want = fidelityCells(BLOCKS, parseAnchorSizes(ANCHORS)).map((c) => [c.blockSize, c.anchorSize]);
    expect(out.cells.map((c: any) => [c.blockSize, c.anchorSize])).toEqual(want);
    expect(want).toContainEqual([8, 8]);
    expect(want).toContainEqual([48, 48]);
  });

  it('block size ≥ N equals Global: KL < 1e-6, top-1 agreement 1, same NLL', () => {
    const out = jsonOf('json');
    const global = out.cells.filter((c: any) => c.blockSize >= N);
    expect(global.length).toBe(6);
    for (const c of global) {
      expect(c.kl).toBeLessThan(1e-6);
      expect(c.top1Agreement).toBe(1);
      expect(Math.abs(c.nll - out.globalNll)).toBeLessThan(1e-4);
    }
    // Small blocks do change the distributions of a random model.
    expect(out.cells.find((c: any) => c.blockSize === 8 && c.anchorSize === 0).kl).toBeGreaterThan(1e-6);
  });

  it('globalNll = float64 reference NLL of the next window token over the same windows', () => {
    const out = jsonOf('json');
    // Windows built here by hand from the documented rule: BOS + N + M text tokens at ⌊j·(T−L)/(S−1)⌋.
    const tok = StarqTokenizer.load(modelDir);
    expect(tok.addsBosToken).toBe(true);
    const ids = tok.encode(fs.readFileSync(textFile, 'utf8'), { addSpecialTokens: false });
    expect(ids).not.toContain(0); // no <unk>: the text is inside the tokenizer's alphabet
    const L = N + M;
    const { config, weights } = loadModelDir(modelDir);
    const ref = new ReferenceModel(config, weights);
    let nll = 0;
    for (let j = 0; j < SAMPLES; j++) {
      const s = Math.floor((j * (ids.length - L)) / (SAMPLES - 1));
      const w = [tok.bosTokenId!, ...ids.slice(s, s + L)]; // N + M + 1 tokens
      const logits = ref.forward(w.slice(0, N + M)); // (N + M, V)
      for (let i = 0; i < M; i++) {
        const lp = logSoftmax64(logits.subarray((N + i) * config.vocabSize, (N + i + 1) * config.vocabSize));
        nll -= lp[w[N + i + 1]];
      }
    }
    expect(Math.abs(out.globalNll - nll / (SAMPLES * M))).toBeLessThan(1e-4);
  });

  it('without --json: a table on stdout, a summary on stderr', () => {
    const r = runs.table;
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/global NLL \d+\.\d{4}/);
    expect(r.stdout).toMatch(/block\s+anchor\s+KL\(global‖star\)\s+top-1 agree\s+NLL star/);
    // default anchors 0,b → two rows for b = 16
    expect(r.stdout).toMatch(/^\s+16\s+0\s/m);
    expect(r.stdout).toMatch(/^\s+16\s+16\s/m);
    expect(r.stderr).toMatch(/\[fidelity\] 1 window × 2 cells/);
  });
});

describe('starq eval fidelity: bad input exits 2 with one stderr line', () => {
  it.each(BAD)('%s', (name, { code }) => {
    const r = runs[`bad:${name}`];
    const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
    expect({ code: r.code, stdout: r.stdout, lines }).toEqual({ code: 2, stdout: '', lines: [expect.stringContaining(`[${code}]`)] });
    if (code === 'text_too_short') expect(lines[0]).toMatch(/the text file has \d+ tokens/);
  });
});

describe('starq eval fidelity on stories260K (requires ../shared)', () => {
  itStories('tinystories_sample.txt as [BOS] story …, N=128, M=16, 2 windows: structure, b ≥ N is Global (requires ../shared)', () => {
    const out = jsonOf('stories');
    checkStructure(out, 128, 16, 2);
    expect(out.cells.map((c: any) => [c.blockSize, c.anchorSize])).toEqual([[32, 0], [32, 32], [128, 0], [128, 128]]);
    expect(out.globalNll).toBeLessThan(2.5); // a trained model on its own kind of text
    for (const c of out.cells.filter((x: any) => x.blockSize === 128)) {
      expect(c.kl).toBeLessThan(1e-6);
      expect(c.top1Agreement).toBe(1);
    }
  });
});

describe('fidelity.ts pieces', () => {
  it('parses block and anchor lists', () => {
    expect(parseBlockSizes('64, 112,224,64')).toEqual([64, 112, 224]);
    expect(parseAnchorSizes('0,32,b,32')).toEqual([0, 32, 'b']);
    expect(() => parseBlockSizes('0')).toThrow(/block-size/);
    expect(() => parseBlockSizes('8,')).toThrow(/comma-separated/);
    expect(() => parseAnchorSizes('-1')).toThrow(/anchor-size/);
    expect(fidelityCells([32, 64], [0, 32, 'b'])).toEqual([
      { blockSize: 32, anchorSize: 0 },
      { blockSize: 32, anchorSize: 32 },
      { blockSize: 64, anchorSize: 0 },
      { blockSize: 64, anchorSize: 32 },
      { blockSize: 64, anchorSize: 64 },
    ]);
    expect(() => fidelityCells([16], [32])).toThrow(/larger than --block-size 16/);
  });

  it('cuts evenly spaced windows of N + M + 1 tokens (BOS first when given)', () => {
    const ids = Array.from({ length: 100 }, (_, i) => 10 + i);
    const w = cutWindows(ids, { contextTokens: 5, queryTokens: 3, samples: 3, bosId: 1 });
    expect(w.map((x) => x.start)).toEqual([0, 46, 92]); // T − L = 92
    expect(w[1].ids).toEqual([1, ...ids.slice(46, 54)]);
    const nb = cutWindows(ids, { contextTokens: 5, queryTokens: 3, samples: 1, bosId: null });
    expect(nb[0].ids).toEqual(ids.slice(0, 9));
    expect(cutWindows(ids.slice(0, 10), { contextTokens: 5, queryTokens: 3, samples: 3, bosId: 1 }).map((x) => x.start)).toEqual([0, 1, 2]);
    expect(() => cutWindows(ids.slice(0, 9), { contextTokens: 5, queryTokens: 3, samples: 3, bosId: 1 })).toThrow(/has 9 tokens.*at least 10/);
  });

  it('--doc-separator layout: [BOS] doc [BOS] doc …', () => {
    const enc = { encode: (t: string) => Array.from(t, (c) => c.charCodeAt(0)) };
    expect(encodeText(enc, 'ab\n<|e|>\ncd\n<|e|>\n', 1, '<|e|>')).toEqual([1, 97, 98, 1, 99, 100]);
    expect(encodeText(enc, 'ab', 1)).toEqual([97, 98]);
  });

  it('KL / top-1 / NLL in float64', () => {
    expect(klFromLogProbs(logSoftmax64([1, 2, 3]), logSoftmax64([1, 2, 3]))).toBe(0);
    // KL([0.5, 0.5] ‖ [0.25, 0.75]) = 0.5·ln 2 + 0.5·ln(2/3)
    const kl = klFromLogProbs(logSoftmax64([0, 0]), logSoftmax64([0, Math.log(3)]));
    expect(kl).toBeCloseTo(0.5 * Math.log(2) + 0.5 * Math.log(2 / 3), 12);
    const s = new FidelityStats();
    const g = new FidelityStats();
    // two rows, V = 3: row 0 same argmax, row 1 different
    accumulateRows(s, Float32Array.from([5, 0, 0, 0, 1, 0]), Float32Array.from([4, 0, 0, 1, 0, 0]), [0, 1], 3, g);
    expect(s.rows).toBe(2);
    expect(s.top1Agreement).toBe(0.5);
    expect(s.nll).toBeCloseTo((-logSoftmax64([4, 0, 0])[0] - logSoftmax64([1, 0, 0])[1]) / 2, 12);
    expect(g.nll).toBeCloseTo((-logSoftmax64([5, 0, 0])[0] - logSoftmax64([0, 1, 0])[1]) / 2, 12);
    expect(s.kl).toBeGreaterThan(0);
  });
});
