/**
 * End-to-end tests of the `starq` command (docs/DESIGN.md §10): real `node bin/starq` processes against a
 * generated random checkpoint (and stories260K from ../shared when present).
 *
 * Every process is started up front in `beforeAll`, a few at a time, so the whole file costs a few
 * seconds of wall time; each test then checks one recorded run.
 */
import * as fs from 'fs';
import * as path from 'path';
import { loadModelDir } from '../libs/model/src/weights';
import { ReferenceModel } from '../libs/model/src/reference-forward';
import { SAFETENSORS_FILE, writeSafetensors, type TensorToWrite } from '../libs/model/src/safetensors';
import { randomCheckpointTensors, writeRandomCheckpoint, type RandomCheckpointOptions } from '@starq/model/synthetic/random-checkpoint';
import { layerTensorNames } from '../libs/model/src/weights';
import { TmpDirs, smallLlama } from '@starq/testing';
import { pool, type Run } from './helpers/cli';
import { sharedModel } from '@starq/model/shared-fixtures';

const { path: STORIES, present: haveStories } = sharedModel('stories260K', 'greedy_samples.json');
const itStories = haveStories ? it : it.skip;

const OPTS: RandomCheckpointOptions = smallLlama({ seed: 5 });

const tmp = new TmpDirs();
const dirs = { model: '', noConfig: '', truncated: '', wrongShape: '', unsupported: '' };
let runs: Record<string, Run> = {};

const CTX_IDS = [1, 5, 7, 9, 30, 31];
const QUERY_IDS = [11, 12];
const N_NEW = 8;
const N_STORIES = 64;

/** Jobs keyed by name; bad-input jobs carry the expected error code. */
function jobs(): Record<string, string[]> {
  const m = dirs.model;
  const g = (...a: string[]) => ['generate', '--model', m, ...a];
  const j: Record<string, string[]> = {
    json: g('--context-ids', CTX_IDS.join(','), '--query-ids', QUERY_IDS.join(','), '--mode', 'global', '--json', '--max-new-tokens', String(N_NEW), '--ignore-eos'),
    prompt: g('--prompt', 'the cat sat', '--mode', 'global', '--json', '--max-new-tokens', '4'),
    seedA: g('--prompt', 'hello world', '--mode', 'global', '--json', '--temperature', '0.8', '--seed', '7', '--max-new-tokens', '16', '--ignore-eos'),
    seedB: g('--prompt', 'hello world', '--mode', 'global', '--json', '--temperature', '0.8', '--seed', '7', '--max-new-tokens', '16', '--ignore-eos'),
    seedC: g('--prompt', 'hello world', '--mode', 'global', '--json', '--temperature', '0.8', '--seed', '8', '--max-new-tokens', '16', '--ignore-eos'),
    inspect: ['inspect', '--model', m],
    inspectJson: ['inspect', '--model', m, '--json'],
  };
  if (haveStories) {
    j.stories = ['generate', '--model', STORIES, '--prompt', 'Once upon a time', '--mode', 'global', '--json', '--max-new-tokens', String(N_STORIES)];
    j.storiesInspect = ['inspect', '--model', STORIES];
  }
  for (const [name, c] of BAD) j[`bad:${name}`] = c.args();
  return j;
}

const BAD: [string, { code: string; args: () => string[] }][] = [
  ['missing --model', { code: 'missing_flag', args: () => ['generate', '--prompt', 'hi', '--mode', 'global'] }],
  ['nonexistent model dir', { code: 'model_not_found', args: () => ['generate', '--model', path.join(dirs.model, 'nope'), '--prompt', 'hi', '--mode', 'global'] }],
  ['model dir without config.json', { code: 'invalid_config', args: () => ['generate', '--model', dirs.noConfig, '--prompt', 'hi', '--mode', 'global'] }],
  ['truncated safetensors', { code: 'invalid_weights', args: () => ['generate', '--model', dirs.truncated, '--prompt', 'hi', '--mode', 'global'] }],
  ['wrong tensor shape', { code: 'invalid_weights', args: () => ['generate', '--model', dirs.wrongShape, '--prompt', 'hi', '--mode', 'global'] }],
  ['unsupported architecture', { code: 'unsupported_model', args: () => ['generate', '--model', dirs.unsupported, '--prompt', 'hi', '--mode', 'global'] }],
  ['empty --prompt ""', { code: 'empty_prompt', args: () => ['generate', '--model', dirs.model, '--prompt', '', '--mode', 'global'] }],
  ['token id ≥ vocab in --query-ids', { code: 'invalid_token_id', args: () => ['generate', '--model', dirs.model, '--context-ids', '1,2', '--query-ids', String(OPTS.vocab), '--mode', 'global'] }],
  ['malformed --context-ids "1,x"', { code: 'invalid_token_ids', args: () => ['generate', '--model', dirs.model, '--context-ids', '1,x', '--query-ids', '5', '--mode', 'global'] }],
  ['--temperature -1', { code: 'invalid_sampling', args: () => ['generate', '--model', dirs.model, '--prompt', 'hi', '--mode', 'global', '--temperature', '-1'] }],
  ['--top-p 0', { code: 'invalid_sampling', args: () => ['generate', '--model', dirs.model, '--prompt', 'hi', '--mode', 'global', '--top-p', '0'] }],
  ['--max-new-tokens -3', { code: 'invalid_flag', args: () => ['generate', '--model', dirs.model, '--prompt', 'hi', '--mode', 'global', '--max-new-tokens', '-3'] }],
  ['unknown --mode foo', { code: 'invalid_mode', args: () => ['generate', '--model', dirs.model, '--prompt', 'hi', '--mode', 'foo'] }],
  ['unknown flag', { code: 'unknown_flag', args: () => ['generate', '--model', dirs.model, '--prompt', 'hi', '--mode', 'global', '--no-such-flag'] }],
];

/** Copy of the random checkpoint, for corrupting. */
function copyModel(): string {
  const d = tmp.make('starq-cli-bad-');
  for (const f of fs.readdirSync(dirs.model)) fs.copyFileSync(path.join(dirs.model, f), path.join(d, f));
  return d;
}

beforeAll(async () => {
  dirs.model = tmp.make('starq-cli-');
  writeRandomCheckpoint(dirs.model, OPTS);

  dirs.noConfig = copyModel();
  fs.rmSync(path.join(dirs.noConfig, 'config.json'));

  dirs.truncated = copyModel();
  const st = path.join(dirs.truncated, SAFETENSORS_FILE);
  fs.truncateSync(st, fs.statSync(st).size - 100);

  // A well-formed safetensors file whose k_proj is stored transposed: (hidden, Hkv·D) for (Hkv·D, hidden).
  dirs.wrongShape = copyModel();
  const tensors: Record<string, TensorToWrite> = {};
  for (const [name, t] of Object.entries(randomCheckpointTensors(OPTS))) tensors[name] = { dtype: 'F32', shape: t.shape, data: t.data };
  const k = tensors[layerTensorNames(1).k];
  k.shape = [k.shape[1], k.shape[0]];
  writeSafetensors(path.join(dirs.wrongShape, SAFETENSORS_FILE), tensors);

  dirs.unsupported = copyModel();
  const cfgFile = path.join(dirs.unsupported, 'config.json');
  const cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
  fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, architectures: ['GPT2LMHeadModel'], model_type: 'gpt2' }));

  runs = await pool(jobs(), 3, 60000);
}, 300_000); // ~20 CLI processes, 3 at a time: generous for a loaded machine

afterAll(() => tmp.cleanup());

/** The single JSON object a successful `generate --json` prints. */
function jsonOf(name: string): Record<string, any> {
  const r = runs[name];
  expect({ name, code: r.code, stderr: r.stderr.slice(0, 500) }).toEqual({ name, code: 0, stderr: expect.anything() });
  const lines = r.stdout.split('\n').filter((l) => l.trim() !== '');
  expect(lines).toHaveLength(1);
  return JSON.parse(lines[0]);
}

describe('starq generate --json', () => {
  it('prints exactly one JSON object with the fields of docs/DESIGN.md §10; --context-ids/--query-ids are used verbatim', () => {
    const out = jsonOf('json');
    expect(Object.keys(out).sort()).toEqual(
      ['mode', 'contextTokens', 'queryTokens', 'blockSize', 'anchorSize', 'hosts', 'generatedIds', 'text', 'finishReason', 'timings'].sort(),
    );
    expect(Object.keys(out.timings).sort()).toEqual(['phase1Ms', 'phase2Ms', 'firstTokenMs', 'decodeTokensPerSec'].sort());
    for (const v of Object.values(out.timings)) expect(typeof v === 'number' && Number.isFinite(v) && v >= 0).toBe(true);
    expect(out.mode).toBe('global');
    expect(out.hosts).toBe(1);
    expect(out.contextTokens).toBe(CTX_IDS.length); // no BOS added to ids
    expect(out.queryTokens).toBe(QUERY_IDS.length);
    expect(out.finishReason).toBe('length');
    expect(typeof out.text).toBe('string');
    expect(out.generatedIds).toHaveLength(N_NEW);
    // Same tokens as a float64 greedy run on exactly context ++ query.
    const { config, weights } = loadModelDir(dirs.model);
    const want = new ReferenceModel(config, weights).greedy([...CTX_IDS, ...QUERY_IDS], N_NEW);
    expect(out.generatedIds).toEqual(want);
  });

  it('--prompt: the last prompt token is the query', () => {
    const out = jsonOf('prompt');
    expect(out.queryTokens).toBe(1);
    expect(out.contextTokens).toBeGreaterThanOrEqual(1); // BOS + all but the last prompt token
    expect(out.generatedIds.length).toBeLessThanOrEqual(4);
    expect(out.finishReason).toBe(out.generatedIds.length === 4 ? 'length' : 'stop');
  });

  it('same --seed and --temperature 0.8 twice give the same ids; another seed gives others', () => {
    const a = jsonOf('seedA');
    const b = jsonOf('seedB');
    const c = jsonOf('seedC');
    expect(a.generatedIds).toHaveLength(16);
    expect(b.generatedIds).toEqual(a.generatedIds);
    expect(c.generatedIds).not.toEqual(a.generatedIds);
  });

  itStories('stories260K --mode global greedy on "Once upon a time" = greedy_samples.json (requires ../shared)', () => {
    const samples = JSON.parse(fs.readFileSync(path.join(STORIES, 'greedy_samples.json'), 'utf8'));
    const s = samples.prompt_once_upon_a_time;
    expect(s.prompt).toBe('Once upon a time');
    const out = jsonOf('stories');
    expect(out.contextTokens + out.queryTokens).toBe(s.prompt_tokens.length);
    expect(out.queryTokens).toBe(1);
    expect(out.generatedIds).toEqual(s.generated.slice(0, N_STORIES));
    expect(out.finishReason).toBe('length');
    expect(s.text.startsWith(s.prompt + out.text)).toBe(true);
  });
});

describe('starq inspect', () => {
  it('prints the architecture of a random checkpoint (text and --json)', () => {
    expect(runs.inspect.code).toBe(0);
    expect(runs.inspect.stdout).toMatch(/^architecture\s+LlamaForCausalLM$/m);
    expect(runs.inspectJson.code).toBe(0);
    const info = JSON.parse(runs.inspectJson.stdout);
    expect(info).toMatchObject({ architecture: 'LlamaForCausalLM', layers: OPTS.layers, vocabSize: OPTS.vocab, contextLength: OPTS.maxPositions });
  });

  itStories('prints the architecture of stories260K (requires ../shared)', () => {
    expect(runs.storiesInspect.code).toBe(0);
    expect(runs.storiesInspect.stdout).toMatch(/^architecture\s+LlamaForCausalLM$/m);
  });
});

describe('bad input: exit code 2 and exactly one stderr line with an error code', () => {
  it.each(BAD)('%s', (name, { code }) => {
    const r = runs[`bad:${name}`];
    const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
    expect({ code: r.code, stdout: r.stdout, lines }).toEqual({ code: 2, stdout: '', lines: [expect.stringContaining(`[${code}]`)] });
    expect(lines[0]).toMatch(/^starq: error \[[a-z_]+\]/);
  });
});
