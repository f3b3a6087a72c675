import * as fs from 'fs';
import * as path from 'path';
import { mergePartials64, attentionPartial64, planBlocks, phase1Positions, phase1Tokens } from '@starq/attention';
import { ReferenceKvCache, ReferenceModel, argmax, concatRows64, referenceForward } from './reference-forward';
import { applyRopeInPlace, ropeCosSin, ropeCosSin64, ropeInvFreq } from './rope';
import type { LayerWeights, ModelConfig, ModelWeights } from './types';
import { loadModelDir } from './weights';
import { mulberry32 } from '@starq/testing';
import { sharedModel } from './shared-fixtures';

const { path: STORIES, present: haveStories } = sharedModel('stories260K', 'model.safetensors');

const rng = mulberry32;

/** A tiny random model (no I/O): Qwen2-style q/k/v bias, GQA, untied lm_head. */
function tinyModel(seed: number, over: Partial<ModelConfig> = {}): { config: ModelConfig; weights: ModelWeights } {
  const config: ModelConfig = {
    architecture: 'Qwen2ForCausalLM',
    hiddenSize: 16,
    intermediateSize: 24,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 4,
    vocabSize: 32,
    maxPositionEmbeddings: 256,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    ropeScaling: { type: 'none' },
    tieWordEmbeddings: false,
    qkvBias: true,
    slidingWindow: null,
    bosTokenId: 1,
    eosTokenIds: [2],
    torchDtype: 'float32',
    ...over,
  };
  const r = rng(seed);
  const t = (n: number, s = 0.3) => Float32Array.from({ length: n }, () => (r() * 2 - 1) * s);
  const norm = (n: number) => Float32Array.from({ length: n }, () => 1 + (r() - 0.5) * 0.2);
  const { hiddenSize: n, numHeads: H, numKvHeads: Hkv, headDim: D, intermediateSize: I, vocabSize: V } = config;
  const layers: LayerWeights[] = Array.from({ length: config.numLayers }, () => ({
    inputNorm: norm(n),
    q: t(H * D * n),
    k: t(Hkv * D * n),
    v: t(Hkv * D * n),
    qBias: config.qkvBias ? t(H * D, 0.1) : null,
    kBias: config.qkvBias ? t(Hkv * D, 0.1) : null,
    vBias: config.qkvBias ? t(Hkv * D, 0.1) : null,
    o: t(n * H * D),
    postNorm: norm(n),
    gate: t(I * n),
    up: t(I * n),
    down: t(n * I),
  }));
  const embed = t(V * n, 1);
  return { config, weights: { embed, layers, finalNorm: norm(n), lmHead: config.tieWordEmbeddings ? embed : t(V * n) } };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('rope', () => {
  const base = { headDim: 8, ropeTheta: 10000 };

  it('plain inverse frequencies are theta^(-2i/D)', () => {
    expect(Array.from(ropeInvFreq({ ...base, ropeScaling: { type: 'none' } }))).toEqual([1, 0.1, 0.01, 0.001].map((x, i) => (i === 0 ? 1 : expect.closeTo(x, 15))));
  });

  it('llama3 scaling: high band unchanged, low band / factor, middle band smoothed', () => {
    // D = 8, theta = 1e4 → f = 1, 0.1, 0.01, 0.001; wavelengths 2π, 62.8, 628, 6283.
    // orig = 64, low = 1, high = 4 → high-frequency wavelength bound 16, low-frequency bound 64.
    const inv = ropeInvFreq({
      ...base,
      ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 },
    });
    expect(inv.length).toBe(4);
    expect(inv[0]).toBe(1); // 2π < 16: unchanged
    // 16 ≤ 62.83 ≤ 64: smooth = (64/62.832 − 1)/(4 − 1) = 0.0061972..., f = (1 − s)·0.1/8 + s·0.1
    const s = (64 / ((2 * Math.PI) / 0.1) - 1) / 3;
    expect(s).toBeCloseTo(0.0061972119, 10);
    expect(inv[1]).toBeCloseTo((1 - s) * 0.0125 + s * 0.1, 15);
    expect(inv[1]).toBeCloseTo(0.013042256043820465, 15);
    expect(inv[2]).toBeCloseTo(0.00125, 16); // 628 > 64: f / 8
    expect(inv[3]).toBeCloseTo(0.000125, 17);
  });

  it('cos/sin tables (T, D/2) and rotate_half application', () => {
    const inv = Float64Array.of(1, 0.5); // D = 4
    const { cos, sin } = ropeCosSin64(inv, [0, 3]);
    expect(Array.from(cos)).toEqual([1, 1, Math.cos(3), Math.cos(1.5)]);
    expect(Array.from(sin)).toEqual([0, 0, Math.sin(3), Math.sin(1.5)]);
    const f32 = ropeCosSin(inv, [0, 3]);
    expect(f32.cos).toBeInstanceOf(Float32Array);
    expect(f32.sin[2]).toBe(Math.fround(Math.sin(3)));
    // x (1 head, T = 2, D = 4) = [x1 | x2]
    const x = Float64Array.of(1, 2, 3, 4, 1, 2, 3, 4);
    applyRopeInPlace(x, cos, sin, 1, 2, 4);
    expect(Array.from(x.subarray(0, 4))).toEqual([1, 2, 3, 4]); // position 0: identity
    const [c0, c1, s0, s1] = [Math.cos(3), Math.cos(1.5), Math.sin(3), Math.sin(1.5)];
    expect(x[4]).toBeCloseTo(1 * c0 - 3 * s0, 15);
    expect(x[5]).toBeCloseTo(2 * c1 - 4 * s1, 15);
    expect(x[6]).toBeCloseTo(3 * c0 + 1 * s0, 15);
    expect(x[7]).toBeCloseTo(4 * c1 + 2 * s1, 15);
  });
});

describe('ReferenceModel (tiny random model)', () => {
  it('KV-cached steps equal the full forward', () => {
    const { config, weights } = tinyModel(1);
    const m = new ReferenceModel(config, weights);
    const ids = [1, 5, 9, 3, 17, 30, 2, 8, 11];
    const full = m.forward(ids); // (T, V)
    const cache = new ReferenceKvCache(config.numLayers);
    const a = m.step(ids.slice(0, 4), cache);
    const b = m.step(ids.slice(4, 5), cache);
    const c = m.step(ids.slice(5), cache);
    const V = config.vocabSize;
    expect(maxAbsDiff(a, full.subarray(0, 4 * V))).toBeLessThan(1e-12);
    expect(maxAbsDiff(b, full.subarray(4 * V, 5 * V))).toBeLessThan(1e-12);
    expect(maxAbsDiff(c, full.subarray(5 * V))).toBeLessThan(1e-12);
    expect(cache.length).toBe(ids.length);
    expect(maxAbsDiff(referenceForward(config, weights, ids), full)).toBe(0);
  });

  it('RoPE is relative: shifting all positions leaves the logits unchanged', () => {
    const { config, weights } = tinyModel(2, { tieWordEmbeddings: true, qkvBias: false, architecture: 'LlamaForCausalLM' });
    const m = new ReferenceModel(config, weights);
    const ids = [4, 8, 15, 16, 23, 10];
    const a = m.forward(ids);
    const b = m.forward(ids, ids.map((_, i) => i + 37));
    expect(maxAbsDiff(a, b)).toBeLessThan(1e-9);
  });

  it('greedy decoding equals argmax of full recomputation', () => {
    const { config, weights } = tinyModel(3);
    const m = new ReferenceModel(config, weights);
    const ids = [1, 7, 7, 3];
    const got = m.greedy(ids, 6);
    const seq = [...ids];
    for (let s = 0; s < 6; s++) {
      const logits = m.forward(seq);
      seq.push(argmax(logits, seq.length - 1, config.vocabSize));
    }
    expect(got).toEqual(seq.slice(ids.length));
  });

  it('expresses Star Attention (docs/DESIGN.md §5.3): two blocks with a = b reproduce Global exactly', () => {
    const { config, weights } = tinyModel(4);
    const m = new ReferenceModel(config, weights);
    const { numLayers: L, numKvHeads: Hkv, numHeads: H, headDim: D, vocabSize: V } = config;
    const ctx = [1, 4, 9, 16, 25, 6, 17, 30, 11, 3]; // N = 10
    const query = [5, 12, 7]; // M = 3
    const N = ctx.length;
    const global = m.forward([...ctx, ...query]).subarray(N * V); // (M, V)

    for (const [b, a] of [
      [5, 5], // a = b = N/2: block 1's phase-1 sequence is the whole causal prefix → exact
      [10, 10], // b ≥ N: one block → exact
      [16, 16],
    ]) {
      const plan = planBlocks(N, b, a);
      // Phase 1: per block, run the layers on anchor ++ block, keep the block's K/V rows.
      const kv = plan.blocks.map((blk) => {
        const pos = phase1Positions(blk.phase1);
        let x = m.embed(phase1Tokens(ctx, blk.phase1));
        const k: Float64Array[] = [];
        const v: Float64Array[] = [];
        const keep = blk.phase1.keepFrom;
        const T = blk.phase1.length;
        for (let l = 0; l < L; l++) {
          const r = m.qkv(l, x, pos);
          const sliceRows = (t: Float64Array) => {
            const out = new Float64Array(Hkv * (T - keep) * D);
            for (let h = 0; h < Hkv; h++) out.set(t.subarray((h * T + keep) * D, (h + 1) * T * D), h * (T - keep) * D);
            return out;
          };
          k.push(sliceRows(r.k));
          v.push(sliceRows(r.v));
          x = m.post(l, x, m.attend(r.q, r.k, r.v, pos, pos).o);
        }
        return { k, v, pos: Array.from(pos.subarray(keep)) };
      });
      // Phase 2: query rows at N..N+M−1 attend to every block (one partial each) and to themselves.
      const qPos = query.map((_, i) => N + i);
      let x = m.embed(query);
      for (let l = 0; l < L; l++) {
        const r = m.qkv(l, x, qPos);
        const shape = { heads: H, kvHeads: Hkv, headDim: D };
        const parts = kv.map((blk) => attentionPartial64(r.q, blk.k[l], blk.v[l], qPos, blk.pos, shape));
        parts.push(attentionPartial64(r.q, r.k, r.v, qPos, qPos, shape));
        x = m.post(l, x, mergePartials64(parts).o);
      }
      const star = m.head(x);
      expect(maxAbsDiff(star, global)).toBeLessThan(1e-12);
    }
    // concatRows64 sanity (used by the KV cache): (1, 1, 2) ++ (1, 2, 2)
    expect(Array.from(concatRows64(Float64Array.of(1, 2), Float64Array.of(3, 4, 5, 6), 1, 2))).toEqual([1, 2, 3, 4, 5, 6]);
  });
});

interface ReferenceFixture {
  token_ids: number[];
  last_position_logits: number[];
  argmax_per_position: number[];
  greedy_continuation?: { token_ids: number[]; n_new_tokens: number };
}

(haveStories ? describe : describe.skip)('stories260K float64 reference (requires ../shared)', () => {
  const { config, weights } = haveStories ? loadModelDir(STORIES) : ({} as ReturnType<typeof loadModelDir>);
  const model = haveStories ? new ReferenceModel(config, weights) : (null as unknown as ReferenceModel);

  for (const file of ['reference.json', 'reference_long.json']) {
    it(`${file}: last-position logits within 1e-9 and argmax at every position`, () => {
      const ref = JSON.parse(fs.readFileSync(path.join(STORIES, file), 'utf8')) as ReferenceFixture;
      const T = ref.token_ids.length;
      const V = config.vocabSize;
      const logits = model.forward(ref.token_ids); // (T, V)
      expect(maxAbsDiff(logits.subarray((T - 1) * V), ref.last_position_logits)).toBeLessThan(1e-9);
      const am = Array.from({ length: T }, (_, t) => argmax(logits, t, V));
      expect(am).toEqual(ref.argmax_per_position);
    });
  }

  it('reference.json: greedy continuation (32 tokens, float64 KV cache)', () => {
    const ref = JSON.parse(fs.readFileSync(path.join(STORIES, 'reference.json'), 'utf8')) as ReferenceFixture;
    const want = ref.greedy_continuation!.token_ids;
    expect(want).toHaveLength(32);
    expect(model.greedy(ref.token_ids, want.length)).toEqual(want);
  });
});
