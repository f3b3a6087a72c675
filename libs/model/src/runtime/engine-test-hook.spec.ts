/**
 * `EngineOptions.testEncodeDelayMs`: the hook that makes an encode last a known time on any
 * machine. It must hold the worker thread only (the caller's event loop keeps running), apply to
 * context-encoding forwards (no logits) and leave logits-returning forwards alone.
 */
import { loadConfig } from '../config';
import { writeRandomCheckpoint } from '../synthetic/random-checkpoint';
import { ModelEngine } from './engine';
import { TmpDirs, range } from '@starq/testing';

const DELAY_MS = 1000;
const tmp = new TmpDirs();
let engine: ModelEngine;

beforeAll(async () => {
  const dir = tmp.make('starq-engine-hook-');
  writeRandomCheckpoint(dir, { architecture: 'llama', hidden: 16, intermediate: 32, layers: 1, heads: 2, kvHeads: 1, vocab: 32, maxPositions: 64, dtype: 'F32', tied: true, sharded: false, seed: 1 });
  engine = await ModelEngine.load(dir, loadConfig(dir), { testEncodeDelayMs: DELAY_MS });
});

afterAll(async () => {
  await engine?.close();
  tmp.cleanup();
});

it('blocks the worker, not the caller, for the delay before an encode', async () => {
  const ids = Int32Array.from([1, 5, 7, 9]);
  let timerFiredFirst: boolean | null = null;
  const t0 = performance.now();
  const encode = engine.forward({ cacheId: 'c', ids, positions: range(0, 4), logits: 'none' }).then(() => {
    timerFiredFirst ??= false;
  });
  setTimeout(() => (timerFiredFirst ??= true), 50); // the caller's event loop is free meanwhile
  await encode;
  expect(performance.now() - t0).toBeGreaterThanOrEqual(DELAY_MS - 1);
  expect(timerFiredFirst).toBe(true);
});

it('does not delay a forward that returns logits', async () => {
  await engine.forward({ cacheId: 'd', ids: Int32Array.of(1, 2), positions: range(0, 2), logits: 'none' }); // delayed
  // A tiny logits forward right after is not: it finishes long before a DELAY_MS timer would fire.
  let delayElapsed = false;
  const timer = setTimeout(() => (delayElapsed = true), DELAY_MS);
  const logits = await engine.forward({ cacheId: 'd', ids: Int32Array.of(3), positions: Int32Array.of(2), logits: 'last' });
  clearTimeout(timer);
  expect(logits).toHaveLength(32);
  expect(delayElapsed).toBe(false);
});
