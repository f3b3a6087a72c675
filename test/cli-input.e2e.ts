/**
 * Input forms of `starq generate` (real `bin/starq` processes, a generated random checkpoint):
 * every ids/text flag has a file form, `-` reads stdin, conflicting forms are refused with a code
 * and the flag; a checkpoint without tokenizer.json runs on ids (text null); --help lists the flags
 * and the environment each command reads.
 */
import * as fs from 'fs';
import * as path from 'path';
import { writeRandomCheckpoint } from '@starq/model/synthetic/random-checkpoint';
import { TmpDirs } from '@starq/testing';
import { spawnStarq, type SpawnedRun } from './helpers/cli';

const tmp = new TmpDirs();
let model = '';
let noTok = '';
let dir = '';
const CTX = [1, 5, 7, 9, 30, 31, 2, 44];
const QUERY = [11, 12];
let runs: Record<string, SpawnedRun> = {};

/** name → [args, stdin] */
function jobs(): Record<string, [string[], string?]> {
  const g = (m: string, ...a: string[]) => ['generate', '--model', m, '--mode', 'star', '--block-size', '4', '--max-new-tokens', '5', '--ignore-eos', '--threads', '1', '--json', ...a];
  const ctxFile = path.join(dir, 'ctx.txt');
  const qFile = path.join(dir, 'q.json');
  fs.writeFileSync(ctxFile, `${CTX.slice(0, 4).join(', ')}\n${CTX.slice(4).join(' ')}\n`);
  fs.writeFileSync(qFile, JSON.stringify(QUERY));
  fs.writeFileSync(path.join(dir, 'empty.txt'), ' \n');
  fs.writeFileSync(path.join(dir, 'prompt.txt'), 'the cat sat on the mat');
  return {
    inline: [g(model, '--context-ids', CTX.join(','), '--query-ids', QUERY.join(','))],
    files: [g(model, '--context-ids-file', ctxFile, '--query-ids-file', qFile)],
    stdin: [g(model, '--context-ids-file', '-', '--query-ids', QUERY.join(',')), CTX.join('\n')],
    promptInline: [g(model, '--prompt', 'the cat sat on the mat')],
    promptStdin: [g(model, '--prompt-file', '-'), 'the cat sat on the mat'],
    noTokenizer: [g(noTok, '--context-ids', CTX.join(','), '--query-ids', QUERY.join(','))],
    noTokenizerText: [['generate', '--model', noTok, '--context-ids', CTX.join(','), '--query-ids', QUERY.join(','), '--mode', 'global', '--max-new-tokens', '3', '--ignore-eos', '--threads', '1']],
    'bad:two stdin': [g(model, '--context-ids-file', '-', '--query-ids-file', '-'), '1,2'],
    'bad:inline and file': [g(model, '--context-ids', '1,2', '--context-ids-file', ctxFile, '--query-ids', '3')],
    'bad:empty ids file': [g(model, '--context-ids-file', path.join(dir, 'empty.txt'), '--query-ids', '3')],
    'bad:garbage ids file': [g(model, '--context-ids-file', path.join(dir, 'prompt.txt'), '--query-ids', '3')],
    'bad:missing ids file': [g(model, '--context-ids-file', path.join(dir, 'nope.txt'), '--query-ids', '3')],
    'bad:text without tokenizer': [g(noTok, '--prompt', 'hello')],
    'bad:--prefix without --redis': [g(model, '--prompt', 'hello', '--prefix', 'x')],
    helpGenerate: [['generate', '--help']],
    helpUp: [['cluster', 'up', '--help']],
    helpStatus: [['cluster', 'status', '--help']],
    helpSubmit: [['submit', '--help']],
  };
}

const BAD: Record<string, { code: string; param: string }> = {
  'bad:two stdin': { code: 'conflicting_flags', param: 'query-ids-file' },
  'bad:inline and file': { code: 'conflicting_flags', param: 'context-ids' },
  'bad:empty ids file': { code: 'invalid_token_ids', param: 'context-ids-file' },
  'bad:garbage ids file': { code: 'invalid_token_ids', param: 'context-ids-file' },
  'bad:missing ids file': { code: 'file_not_found', param: 'context-ids-file' },
  'bad:text without tokenizer': { code: 'no_tokenizer', param: 'prompt' },
  'bad:--prefix without --redis': { code: 'invalid_flag', param: 'prefix' },
};

beforeAll(async () => {
  dir = tmp.make('starq-cli-input-');
  model = tmp.make('starq-cli-input-model-');
  writeRandomCheckpoint(model, { architecture: 'llama', hidden: 32, intermediate: 64, layers: 2, heads: 4, kvHeads: 2, vocab: 100, maxPositions: 256, dtype: 'F32', tied: false, sharded: false, seed: 5 });
  noTok = tmp.make('starq-cli-input-notok-');
  for (const f of fs.readdirSync(model)) if (!f.startsWith('tokenizer')) fs.copyFileSync(path.join(model, f), path.join(noTok, f));
  const all = Object.entries(jobs());
  let next = 0;
  await Promise.all(
    [0, 1, 2].map(async () => {
      while (next < all.length) {
        const [name, [args, input]] = all[next++];
        runs[name] = await spawnStarq(args, { input }).done;
      }
    }),
  );
}, 300_000);
afterAll(() => tmp.cleanup());

function json(name: string): Record<string, any> {
  const r = runs[name];
  expect({ name, code: r.code, stderr: r.stderr.slice(-500) }).toEqual({ name, code: 0, stderr: expect.anything() });
  return JSON.parse(r.stdout);
}

describe('ids and text from files and stdin', () => {
  it('--context-ids-file (commas, whitespace, JSON brackets) and stdin give the same tokens as inline ids', () => {
    const inline = json('inline');
    expect(inline.contextTokens).toBe(CTX.length);
    for (const name of ['files', 'stdin']) expect(json(name).generatedIds).toEqual(inline.generatedIds);
  });

  it('--prompt-file - reads the prompt from stdin', () => {
    expect(json('promptStdin')).toMatchObject({ generatedIds: json('promptInline').generatedIds, text: json('promptInline').text });
  });

  it('a checkpoint without tokenizer.json: ids in, ids out, text null (the same ids as with the tokenizer)', () => {
    const out = json('noTokenizer');
    expect(out.text).toBeNull();
    expect(out.generatedIds).toEqual(json('inline').generatedIds);
    const plain = runs.noTokenizerText;
    expect(plain.code).toBe(0);
    expect(plain.stdout.trim()).toMatch(/^\d+ \d+ \d+$/);
  });

  it.each(Object.entries(BAD))('%s: exit 2, one stderr line with the code and the flag', (name, { code, param }) => {
    const r = runs[name];
    const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
    expect({ code: r.code, stdout: r.stdout, lines }).toEqual({ code: 2, stdout: '', lines: [expect.stringContaining(`[${code}] (${param})`)] });
  });
});

describe('--help', () => {
  it('generate lists the file forms, --redis/--prefix and STARQ_PREFIX', () => {
    const h = runs.helpGenerate.stdout;
    for (const flag of ['--prompt-file', '--context-file', '--query-file', '--context-ids-file', '--query-ids-file', '--redis', '--prefix', 'Environment:', 'STARQ_PREFIX']) expect(h).toContain(flag);
  });
  it('cluster up / status share --redis and --prefix and list STARQ_PREFIX; submit lists STARQ_API_KEY', () => {
    for (const name of ['helpUp', 'helpStatus']) {
      for (const s of ['--redis <url>', '--prefix <p>', 'Environment:', 'STARQ_PREFIX']) expect(runs[name].stdout).toContain(s);
    }
    expect(runs.helpUp.stdout).toContain('STARQ_API_KEYS');
    for (const s of ['--context-ids-file', 'Environment:', 'STARQ_API_KEY']) expect(runs.helpSubmit.stdout).toContain(s);
  });
});
