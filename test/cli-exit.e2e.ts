/**
 * Exit paths of the real `starq` command and of model engines, each repeated many times in a row
 * because the failures they guard against were intermittent:
 * - an engine call fails while sibling engines are inside ORT calls: every engine is closed and
 *   the process exits 2 — never 134 (`terminate called after throwing an instance of
 *   'Napi::Error'`, a worker terminated inside `InferenceSession.run`);
 * - `starq generate` with a context that does not fit: `context_too_long` with all four numbers,
 *   exit 2, before any engine starts;
 * - SIGINT / SIGTERM while `starq generate` runs: exit 130 / 143 after its engines stopped;
 * - a 20 KB command line (ORT's telemetry overflows a worker's stack on /proc/self/cmdline):
 *   `starq generate` runs, and an engine in a process with such a command line refuses with
 *   `command_line_too_long` instead of crashing with SIGSEGV.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { writeRandomCheckpoint } from '@starq/model/synthetic/random-checkpoint';
import { sharedData, sharedModel } from '@starq/model/shared-fixtures';
import { TmpDirs } from '@starq/testing';
import { ROOT, spawnStarq, type SpawnedRun } from './helpers/cli';

const { path: STORIES, present: haveStoriesModel } = sharedModel('stories260K');
const { path: TINYSTORIES, present: haveText } = sharedData('tinystories_sample.txt');
const haveStories = haveStoriesModel && haveText;
const itStories = haveStories ? it : it.skip;

const tmp = new TmpDirs();
let model = '';

beforeAll(() => {
  model = tmp.make('starq-cli-exit-');
  writeRandomCheckpoint(model, { architecture: 'llama', hidden: 128, intermediate: 256, layers: 4, heads: 4, kvHeads: 2, vocab: 100, maxPositions: 8192, dtype: 'F32', tied: false, sharded: false, seed: 3 });
});
afterAll(() => tmp.cleanup());

/** Runs `fn(i)` for i < n with at most `limit` at once; results in order. */
async function repeat<T>(n: number, limit: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await fn(i);
      }
    }),
  );
  return out;
}

/** The engine-exit child program (test/helpers/engine-exit-child.ts) in a fresh node process. */
function engineChild(env: Record<string, string>, padding: string[] = []): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  const boot = `require('tsx/cjs/api').register({ tsconfig: ${JSON.stringify(path.join(ROOT, 'tsconfig.json'))} }); require(${JSON.stringify(path.join(__dirname, 'helpers', 'engine-exit-child.ts'))});`;
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['-e', boot, ...padding], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    p.on('close', (code, signal) => resolve({ code, signal, stderr }));
  });
}

const summary = (r: { code: number | null; signal?: NodeJS.Signals | null; stderr: string }) => ({ code: r.code, signal: r.signal ?? null, stderr: r.stderr.slice(-600) });

describe('engines shut down between ORT calls', () => {
  it('an engine call fails while two sibling engines run forwards: exit 2 every time (12 runs)', async () => {
    const runs = await repeat(12, 2, () => engineChild({ ENGINE_EXIT_MODE: 'busy-error', ENGINE_EXIT_MODEL: model, ENGINE_EXIT_TOKENS: '1024' }));
    for (const r of runs) expect(summary(r)).toEqual({ code: 2, signal: null, stderr: '' });
  }, 300_000);

  it('a process whose command line ORT would crash on gets command_line_too_long, not SIGSEGV', async () => {
    const long = await engineChild({ ENGINE_EXIT_MODE: 'load', ENGINE_EXIT_MODEL: model }, ['x'.repeat(20_000)]);
    expect(summary(long)).toEqual({ code: 3, signal: null, stderr: expect.stringContaining('[command_line_too_long]') });
    const short = await engineChild({ ENGINE_EXIT_MODE: 'load', ENGINE_EXIT_MODEL: model });
    expect(summary(short)).toEqual({ code: 0, signal: null, stderr: '' });
  }, 120_000);
});

describe('starq generate exit codes', () => {
  itStories('a context that does not fit: context_too_long with all four numbers, exit 2, before any engine (10 runs, with and without --json; requires ../shared)', async () => {
    const dir = tmp.make('starq-cli-story-');
    const story = path.join(dir, 'story.txt');
    fs.writeFileSync(story, fs.readFileSync(TINYSTORIES, 'utf8').slice(0, 1000));
    const args = ['generate', '--model', STORIES, '--context-file', story, '--query', ' Then', '--mode', 'star', '--max-new-tokens', '96', '--ignore-eos'];
    const runs = await repeat(10, 2, (i) => spawnStarq(i % 2 ? [...args, '--json'] : args).done);
    for (const r of runs) {
      expect({ code: r.code, signal: r.signal, stdout: r.stdout }).toEqual({ code: 2, signal: null, stdout: '' });
      const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
      expect(lines).toEqual([expect.stringMatching(/^starq: error \[context_too_long\] \(max-new-tokens\): context \(\d+\) \+ query \(\d+\) \+ max new tokens \(96\) = \d+ exceeds the model's maximum of 512 positions/)]);
      expect(r.stderr).not.toMatch(/phase 1/); // refused before phase 1 started
    }
  }, 300_000);

  it('SIGINT / SIGTERM while generating: exit 130 / 143 every time, never an abort (10 runs)', async () => {
    const ids = Array.from({ length: 3000 }, (_, i) => (i * 13 + 5) % 100).join(' ');
    const args = ['generate', '--model', model, '--context-ids-file', '-', '--query-ids', '7', '--mode', 'star', '--hosts', '3', '--max-new-tokens', '2000', '--ignore-eos', '--threads', '1', '--json'];
    const runs: (SpawnedRun & { sig: NodeJS.Signals })[] = await repeat(10, 2, async (i) => {
      const sig: NodeJS.Signals = i % 2 === 0 ? 'SIGINT' : 'SIGTERM';
      // Half the runs are signalled once phase 1 reports progress (engines busy), half at a fixed
      // delay after start (anywhere from start-up to decoding).
      let sent = false;
      const send = () => {
        if (!sent) {
          sent = true;
          run.proc.kill(sig);
        }
      };
      const run = spawnStarq(args, { input: ids, onStderr: (all) => i % 4 < 2 && /phase 1/.test(all) && send() });
      const timer = i % 4 >= 2 ? setTimeout(send, 300 + 700 * i) : null;
      const r = await run.done;
      if (timer) clearTimeout(timer);
      return { ...r, sig };
    });
    for (const r of runs) {
      expect({ sig: r.sig, code: r.code, signal: r.signal, abort: /terminate called|Napi::Error|Segmentation/.test(r.stderr) }).toEqual({ sig: r.sig, code: r.sig === 'SIGINT' ? 130 : 143, signal: null, abort: false });
      expect(r.stderr).toContain(`stopped by ${r.sig}`);
    }
  }, 400_000);

  it('a 20 KB command line (7,000 --context-ids) runs: the launcher re-executes itself with a short argv', async () => {
    const ctx = Array.from({ length: 7000 }, (_, i) => (i * 17 + 1) % 100);
    const list = ctx.join(',');
    expect(list.length).toBeGreaterThan(19_000);
    const r = await spawnStarq(['generate', '--model', model, '--context-ids', list, '--query-ids', '4,5', '--mode', 'star', '--hosts', '2', '--max-new-tokens', '3', '--ignore-eos', '--threads', '1', '--json']).done;
    expect(summary(r)).toEqual({ code: 0, signal: null, stderr: expect.anything() });
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({ contextTokens: 7000, queryTokens: 2, finishReason: 'length' });
    expect(out.generatedIds).toHaveLength(3);
  }, 300_000);
});
