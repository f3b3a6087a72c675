/**
 * Golden test of the ORT engine on the real pretrained stories260K model (../shared): logits and
 * greedy continuations must reproduce the float64 numpy fixtures of the model's README.
 */
import * as fs from 'fs';
import * as path from 'path';
import { loadConfig } from '../config';
import { DEFAULT_SAMPLING, generateGlobal } from '../generate';
import { ReferenceModel } from '../reference-forward';
import { loadModelDir } from '../weights';
import { ModelEngine } from './engine';
import { maxAbsDiff, range, rowsOf, top2 } from '@starq/testing';
import { sharedModel } from '../shared-fixtures';

const { path: MODEL_DIR, present } = sharedModel('stories260K', 'reference.json');
const describeShared = present ? describe : describe.skip;

interface Fixture {
  n_tokens: number;
  token_ids: number[];
  last_position_logits: number[];
  argmax_per_position: number[];
  max_logit_per_position: number[];
  greedy_continuation: { n_new_tokens: number; token_ids: number[] };
}

const TOL = 1e-4;

describeShared('ModelEngine on stories260K (golden float64 fixtures; requires ../shared)', () => {
  let engine: ModelEngine;
  let V: number;
  let reference: ReferenceModel | null = null; // built lazily, only to judge near-ties

  beforeAll(async () => {
    const config = loadConfig(MODEL_DIR);
    V = config.vocabSize;
    engine = await ModelEngine.load(MODEL_DIR, config, { threads: 1 });
  });
  afterAll(async () => {
    await engine?.close();
  });

  describe.each(['reference.json', 'reference_long.json'])('%s', (file) => {
    const fx = (): Fixture => JSON.parse(fs.readFileSync(path.join(MODEL_DIR, file), 'utf8')) as Fixture;

    it('last-position logits match the float64 fixture within 1e-4', async () => {
      const f = fx();
      expect(f.token_ids).toHaveLength(f.n_tokens);
      const ids = Int32Array.from(f.token_ids);
      const logits = await engine.forward({ cacheId: `golden-last-${file}`, ids, positions: range(0, ids.length), logits: 'last' });
      await engine.dropCache(`golden-last-${file}`);
      expect(logits).not.toBeNull();
      expect(logits!.length).toBe(V);
      expect(maxAbsDiff(logits!, f.last_position_logits)).toBeLessThan(TOL);
    });

    it('per-position argmax and max logit match the fixture (all-rows logits)', async () => {
      const f = fx();
      const ids = Int32Array.from(f.token_ids);
      const T = ids.length;
      const all = await engine.forward({ cacheId: `golden-all-${file}`, ids, positions: range(0, T), logits: 'all' });
      await engine.dropCache(`golden-all-${file}`);
      expect(all!.length).toBe(T * V);
      // The last row of 'all' is the same computation as 'last'.
      expect(maxAbsDiff(rowsOf(all!, V, T - 1), f.last_position_logits)).toBeLessThan(TOL);

      let maxLogitErr = 0;
      const mismatches: { pos: number; engine: number; fixture: number; gap64: number }[] = [];
      for (let t = 0; t < T; t++) {
        const { argmax } = top2(all!, V, t);
        maxLogitErr = Math.max(maxLogitErr, Math.abs(all![t * V + argmax] - f.max_logit_per_position[t]));
        if (argmax !== f.argmax_per_position[t]) mismatches.push({ pos: t, engine: argmax, fixture: f.argmax_per_position[t], gap64: NaN });
      }
      expect(maxLogitErr).toBeLessThan(TOL);
      if (mismatches.length > 0) {
        // A different argmax is acceptable only at a float64 near-tie (top-2 gap < 1e-4).
        if (!reference) {
          const { config, weights } = loadModelDir(MODEL_DIR);
          reference = new ReferenceModel(config, weights);
        }
        const ref = reference.forward(f.token_ids);
        for (const m of mismatches) {
          const t = top2(ref, V, m.pos);
          expect(t.argmax).toBe(m.fixture); // the float64 reference itself agrees with the fixture
          m.gap64 = t.gap;
        }
        expect(mismatches.filter((m) => !(m.gap64 < TOL))).toEqual([]);
      }
    });

    it('reproduces the 32-token greedy continuation through generateGlobal', async () => {
      const f = fx();
      const want = f.greedy_continuation.token_ids;
      expect(want).toHaveLength(f.greedy_continuation.n_new_tokens);
      const r = await generateGlobal(engine, f.token_ids.slice(0, -1), f.token_ids.slice(-1), {
        maxNewTokens: want.length,
        sampling: DEFAULT_SAMPLING,
        stopIds: [], // the model ends stories with BOS: nothing may stop it early
      });
      expect(r.generatedIds).toEqual(want);
      expect(r.finishReason).toBe('length');
      // generateGlobal drops its cache when done.
      expect((await engine.listCaches()).filter((c) => c.id.startsWith('global-'))).toEqual([]);
    });
  });
});
