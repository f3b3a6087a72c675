/**
 * `starq eval ruler` end to end: real `node bin/starq` processes on a generated random checkpoint
 * (JSON structure, table, progress on stderr, bad input), and niah-1M on TinyStories from ../shared
 * when present (a trained retrieval model must find needles at 512 tokens).
 *
 * All processes start up front in `beforeAll`, a few at a time; each test checks one recorded run.
 */
import * as fs from 'fs';
import * as path from 'path';
import { writeRandomCheckpoint, type RandomCheckpointOptions } from '@starq/model/synthetic/random-checkpoint';
import { TmpDirs, smallLlama } from '@starq/testing';
import { pool, type Run } from './helpers/cli';
import { sharedData, sharedModel } from '@starq/model/shared-fixtures';

const niah = sharedModel('niah-1M');
const sample = sharedData('tinystories_sample.txt');
const haveShared = niah.present && sample.present;
const itShared = haveShared ? it : it.skip;

const OPTS: RandomCheckpointOptions = smallLlama({ vocab: 200, maxPositions: 600, seed: 29 });

const tmp = new TmpDirs();
let modelDir = '';
let textFile = '';
let jsonFile = '';
let runs: Record<string, Run> = {};

/** `eval ruler` on the random model (later flags win). */
function ruler(...extra: string[]): string[] {
  return ['eval', 'ruler', '--model', modelDir, ...extra];
}

const BAD: [string, { code: string; param: string; args: () => string[] }][] = [
  ['unknown task', { code: 'invalid_task', param: 'tasks', args: () => ruler('--tasks', 'niah_single,qa') }],
  ['length above the position limit', { code: 'length_too_long', param: 'lengths', args: () => ruler('--tasks', 'niah_single', '--lengths', '1000') }],
  ['no room for the answer', { code: 'length_too_long', param: 'lengths', args: () => ruler('--tasks', 'niah_single', '--lengths', '600') }],
  ['length below the task minimum', { code: 'length_too_short', param: 'lengths', args: () => ruler('--tasks', 'cwe', '--lengths', '300') }],
  ['bad block fraction', { code: 'invalid_block_size', param: 'block-size', args: () => ruler('--tasks', 'niah_single', '--lengths', '256', '--block-size', '3/2') }],
  ['samples 0', { code: 'invalid_flag', param: 'samples', args: () => ruler('--tasks', 'niah_single', '--lengths', '256', '--samples', '0') }],
  ['anchor larger than the block', { code: 'invalid_anchor_size', param: 'anchor-size', args: () => ruler('--tasks', 'niah_single', '--lengths', '256', '--block-size', '1/8', '--anchor-size', '64') }],
  ['missing model directory', { code: 'model_not_found', param: 'model', args: () => ['eval', 'ruler', '--model', path.join(modelDir, 'nope'), '--lengths', '256'] }],
  ['no --model', { code: 'missing_flag', param: 'model', args: () => ['eval', 'ruler', '--lengths', '256'] }],
];

beforeAll(async () => {
  modelDir = tmp.make('starq-ruler-model-');
  writeRandomCheckpoint(modelDir, OPTS);
  const d = tmp.make('starq-ruler-out-');
  textFile = path.join(d, 'hay.txt');
  fs.writeFileSync(textFile, Array.from({ length: 200 }, (_, i) => `the fox ran to tree ${i} and sat down.`).join('\n<|endoftext|>\n'));
  jsonFile = path.join(d, 'out.json');
  const jobs: Record<string, string[]> = {
    json: ruler('--tasks', 'niah_single,vt', '--lengths', '256,300', '--samples', '2', '--block-size', '1/4,50', '--seed', '1', '--json'),
    table: ruler('--tasks', 'niah_multikey', '--lengths', '320', '--samples', '2', '--modes', 'star', '--block-size', '1/4', '--anchor-size', '0,b',
      '--haystack-file', textFile, '--max-new-tokens', '4', '--json', jsonFile),
  };
  if (haveShared) {
    jobs.niah = ['eval', 'ruler', '--model', niah.path, '--tasks', 'niah_single', '--lengths', '512', '--samples', '8', '--modes', 'global',
      '--seed', '0', '--haystack-file', sample.path, '--json', '-'];
  }
  for (const [name, c] of BAD) jobs[`bad:${name}`] = c.args();
  runs = await pool(jobs, 3, 110000);
}, 300_000);

afterAll(() => tmp.cleanup());

function ok(name: string): Run {
  const r = runs[name];
  expect({ name, code: r.code, stderr: r.stderr.slice(-800) }).toEqual({ name, code: 0, stderr: expect.anything() });
  return r;
}

function jsonOf(name: string): Record<string, any> {
  const lines = ok(name).stdout.split('\n').filter((l) => l.trim() !== '');
  expect(lines).toHaveLength(1);
  return JSON.parse(lines[0]);
}

describe('starq eval ruler (random checkpoint)', () => {
  it('--json: one object, a result per task × length × mode cell with the required names', () => {
    const out = jsonOf('json');
    expect(out).toMatchObject({ model: modelDir, haystack: 'noise', prompt: 'plain', seed: 1, samples: 2 });
    expect(out.results).toHaveLength(2 * 2 * 3);
    const keys = out.results.map((c: any) => [c.task, c.length, c.mode, c.blockSize ?? null, c.anchorSize ?? null]);
    const perTask = (t: string) => [
      [t, 256, 'global', null, null],
      [t, 256, 'star', 64, 64],
      [t, 256, 'star', 50, 50],
      [t, 300, 'global', null, null],
      [t, 300, 'star', 75, 75],
      [t, 300, 'star', 50, 50],
    ];
    expect(keys).toEqual([...perTask('niah_single'), ...perTask('vt')]);
    for (const c of out.results) {
      for (const k of ['task', 'length', 'mode', 'accuracy', 'samples']) expect(c).toHaveProperty(k);
      expect(c.samples).toBe(2);
      expect(c.accuracy).toBeGreaterThanOrEqual(0);
      expect(c.accuracy).toBeLessThanOrEqual(1);
      expect(c.maxNewTokens).toBe(c.task === 'vt' ? 30 : 10);
      expect(c.meanGeneratedTokens).toBeLessThanOrEqual(c.maxNewTokens);
      if (c.mode === 'star') expect(c.retention === null || typeof c.retention === 'number').toBe(true);
    }
    for (const l of out.lengths) {
      expect(l.maxTokens).toBeLessThanOrEqual(l.length);
      expect(l.minTokens).toBeGreaterThanOrEqual(l.length - 12);
    }
  });

  it('progress on stderr: cells, samples done, ETA; then a summary line', () => {
    const err = ok('json').stderr;
    expect(err).toMatch(/\[ruler cells 0\/12 done\] niah_single L=256 generating samples \d\/2/);
    expect(err).toMatch(/\[ruler cell 1\/12\] niah_single L=256 global \d\/2 \d+% [\d.]+s elapsed, ETA [\d.]+s/);
    expect(err).toMatch(/\[ruler cell 12\/12, run ETA [\dhms]+\] vt L=300 star b=50 a=50 2\/2 100%/);
    expect(err).toMatch(/\[ruler\] 2 tasks × 2 lengths, 12 cells × 2 samples on 4 hosts in [\dhms]+\n$/);
  });

  it('--json FILE: the table on stdout, the object in the file; star-only cells have no retention', () => {
    const r = ok('table');
    expect(r.stdout).toMatch(/task\s+length\s+tokens\s+mode\s+block\s+anchor\s+samples\s+accuracy\s+retention/);
    expect(r.stdout).toMatch(/niah_multikey\s+320\s+\d+(-\d+)?\s+star\s+80\s+0\s+2\s+\d+\.\d%\s+-/);
    expect(r.stdout).toMatch(/niah_multikey\s+320\s+\d+(-\d+)?\s+star\s+80\s+80\s+2\s/);
    expect(r.stdout).toContain(`haystack file:${textFile}`);
    expect(r.stderr).toContain(`JSON written to ${jsonFile}`);
    const out = JSON.parse(fs.readFileSync(jsonFile, 'utf8'));
    expect(out.results.map((c: any) => [c.mode, c.blockSize, c.anchorSize, c.anchor, c.retention, c.maxNewTokens])).toEqual([
      ['star', 80, 0, '0', null, 4],
      ['star', 80, 80, 'b', null, 4],
    ]);
  });
});

describe('starq eval ruler: bad input exits 2 with one coded stderr line', () => {
  it.each(BAD)('%s', (name, { code, param }) => {
    const r = runs[`bad:${name}`];
    const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
    expect({ code: r.code, stdout: r.stdout, lines }).toEqual({ code: 2, stdout: '', lines: [expect.stringContaining(`[${code}] (${param})`)] });
  });
});

describe('starq eval ruler on niah-1M (needs ../shared)', () => {
  itShared('niah_single at 512 tokens, global, 8 samples on TinyStories: the trained model finds most needles (requires ../shared)', () => {
    const out = jsonOf('niah');
    expect(out.results).toHaveLength(1);
    const [c] = out.results;
    expect(c).toMatchObject({ task: 'niah_single', length: 512, mode: 'global', samples: 8 });
    // Measured 8/8 with seed 0 (87.5–100% over seeds); README: 100% at 1024.
    expect(c.accuracy).toBeGreaterThanOrEqual(0.5);
  });
});
