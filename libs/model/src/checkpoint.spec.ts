/**
 * Checkpoint loading: config parsing, safetensors reading/writing, weight mapping, the random
 * checkpoint generator, the real stories260K model (when ../shared is present), and one clear
 * error per kind of bad input.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Tokenizer } from '@huggingface/tokenizers';
import { ModelLoadError } from '@starq/protocol/errors';
import { loadConfig, parseConfig } from './config';
import {
  bf16ToFloat32,
  f16ToFloat32,
  float32ToBf16,
  float32ToF16,
  openSafetensors,
  roundToDtype,
  writeSafetensors,
  type FloatDtype,
  type TensorToWrite,
} from './safetensors';
import {
  randomCheckpointTensors,
  writeRandomCheckpoint,
  type RandomCheckpointOptions,
} from './synthetic/random-checkpoint';
import { layerTensorNames, loadModelDir, loadWeights } from './weights';
import type { LayerWeights } from './types';
import { sharedModel } from './shared-fixtures';

const tmpDirs: string[] = [];
function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'starq-ckpt-'));
  tmpDirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

const BASE: RandomCheckpointOptions = {
  architecture: 'llama',
  hidden: 16,
  intermediate: 40,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  vocab: 48,
  maxPositions: 128,
  dtype: 'F32',
  tied: false,
  sharded: false,
  seed: 7,
};

/** A fresh checkpoint directory. */
function checkpoint(overrides: Partial<RandomCheckpointOptions> = {}): string {
  const dir = tmpDir();
  writeRandomCheckpoint(dir, { ...BASE, ...overrides });
  return dir;
}

/** Runs `fn` and returns the ModelLoadError it throws (fails the test otherwise). */
function loadError(fn: () => unknown): ModelLoadError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ModelLoadError);
    return e as ModelLoadError;
  }
  throw new Error('expected a ModelLoadError, but nothing was thrown');
}

function readJson(file: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
}

/** Rewrites the single-file checkpoint in `dir` after editing its tensor map. */
function rewriteWeights(
  dir: string,
  opts: RandomCheckpointOptions,
  edit: (t: Record<string, TensorToWrite>) => void,
): void {
  const tensors: Record<string, TensorToWrite> = {};
  for (const [n, t] of Object.entries(randomCheckpointTensors(opts))) tensors[n] = { dtype: opts.dtype, ...t };
  edit(tensors);
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
}

// -------------------------------------------------------------------------------------------------

describe('round trip of generated checkpoints', () => {
  const cases: [RandomCheckpointOptions['architecture'], FloatDtype, boolean, boolean][] = [];
  const archs: RandomCheckpointOptions['architecture'][] = ['llama', 'llama3', 'mistral', 'qwen2'];
  const dtypes: FloatDtype[] = ['F32', 'F16', 'BF16'];
  archs.forEach((arch, a) =>
    dtypes.forEach((dtype, d) => {
      for (const sharded of [false, true]) cases.push([arch, dtype, sharded, (a + d + Number(sharded)) % 2 === 0]);
    }),
  );

  it.each(cases)('%s %s sharded=%s tied=%s', (architecture, dtype, sharded, tied) => {
    const opts: RandomCheckpointOptions = {
      ...BASE,
      architecture,
      dtype,
      sharded,
      tied,
      seed: 11,
      headDim: architecture === 'mistral' ? 6 : undefined, // head_dim ≠ hidden/heads
    };
    const dir = tmpDir();
    const written = writeRandomCheckpoint(dir, opts);
    expect(fs.existsSync(path.join(dir, 'model.safetensors.index.json'))).toBe(sharded);
    if (sharded) {
      const map = readJson(path.join(dir, 'model.safetensors.index.json')).weight_map as Record<string, string>;
      expect(new Set(Object.values(map)).size).toBeGreaterThanOrEqual(2);
    }

    const { config, weights, dir: loadedDir } = loadModelDir(dir);
    expect(loadedDir).toBe(path.resolve(dir));
    expect(config).toEqual(parseConfig(written));
    const headDim = opts.headDim ?? opts.hidden / opts.heads;
    expect(config).toMatchObject({
      architecture: { llama: 'LlamaForCausalLM', llama3: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM' }[architecture],
      hiddenSize: 16,
      intermediateSize: 40,
      numLayers: 2,
      numHeads: 4,
      numKvHeads: 2,
      headDim,
      vocabSize: 48,
      maxPositionEmbeddings: 128,
      tieWordEmbeddings: tied,
      qkvBias: architecture === 'qwen2',
      slidingWindow: null,
      bosTokenId: 1,
      eosTokenIds: [2],
      torchDtype: { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[dtype],
    });
    expect(config.ropeScaling).toEqual(
      architecture === 'llama3'
        ? { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 32 }
        : { type: 'none' },
    );

    // Values: exactly the generator's float32 values after storage rounding.
    const expected = randomCheckpointTensors(opts);
    const same = (actual: Float32Array | null, name: string): void => {
      expect(actual).not.toBeNull();
      expect(Array.from(actual!)).toEqual(Array.from(roundToDtype(expected[name].data, dtype)));
    };
    same(weights.embed, 'model.embed_tokens.weight');
    same(weights.finalNorm, 'model.norm.weight');
    weights.layers.forEach((layer, i) => {
      const n = layerTensorNames(i);
      for (const key of ['inputNorm', 'q', 'k', 'v', 'o', 'postNorm', 'gate', 'up', 'down'] as const) {
        same(layer[key], n[key]);
      }
      for (const key of ['qBias', 'kBias', 'vBias'] as const) {
        if (config.qkvBias) same(layer[key], n[key]);
        else expect(layer[key]).toBeNull();
      }
    });
    if (tied) expect(weights.lmHead).toBe(weights.embed);
    else same(weights.lmHead, 'lm_head.weight');
  });

  it('the same seed gives the same float32 values whatever the storage', () => {
    const a = loadModelDir(checkpoint({ seed: 3, sharded: true })).weights;
    const b = loadModelDir(checkpoint({ seed: 3 })).weights;
    const c = loadModelDir(checkpoint({ seed: 4 })).weights;
    expect(Array.from(a.layers[1].down)).toEqual(Array.from(b.layers[1].down));
    expect(Array.from(a.layers[1].down)).not.toEqual(Array.from(c.layers[1].down));
  });

  it('generated weights keep activations O(1)', () => {
    const w = loadModelDir(checkpoint({ hidden: 64, intermediate: 128 })).weights;
    const x = new Float32Array(64).map((_, i) => Math.sin(i)); // rms ≈ 0.7
    const layer: LayerWeights = w.layers[0];
    const y = new Float32Array(64);
    for (let r = 0; r < 64; r++) {
      let s = 0;
      for (let c = 0; c < 64; c++) s += layer.q[r * 64 + c] * x[c];
      y[r] = s;
    }
    const rms = (v: Float32Array): number => Math.sqrt(v.reduce((a, b) => a + b * b, 0) / v.length);
    expect(rms(y) / rms(x)).toBeGreaterThan(0.5);
    expect(rms(y) / rms(x)).toBeLessThan(2);
    for (const g of w.layers[0].inputNorm) expect(Math.abs(g - 1)).toBeLessThanOrEqual(0.1);
  });

  it('writes a tokenizer that @huggingface/tokenizers loads and encodes', () => {
    const dir = checkpoint({ vocab: 300 });
    const tok = new Tokenizer(readJson(path.join(dir, 'tokenizer.json')), readJson(path.join(dir, 'tokenizer_config.json')));
    expect(tok.token_to_id('<unk>')).toBe(0);
    expect(tok.token_to_id('<s>')).toBe(1);
    expect(tok.token_to_id('</s>')).toBe(2);
    expect(tok.get_vocab().size).toBe(300);
    const { ids } = tok.encode('the cat sat on the mat.');
    expect(ids[0]).toBe(1); // BOS added
    expect(ids.length).toBeGreaterThan(2);
    expect(ids.every((id) => id >= 0 && id < 300)).toBe(true);
    expect(ids.slice(1)).not.toContain(0); // every character is in the alphabet
    expect(tok.decode(ids, { skip_special_tokens: true })).toBe('the cat sat on the mat.');
    expect(tok.encode('a # b').ids).toContain(0); // unknown character → <unk>
    // Tiny vocabularies still produce a valid tokenizer.
    const small = checkpoint({ vocab: 8 });
    const tok8 = new Tokenizer(readJson(path.join(small, 'tokenizer.json')), readJson(path.join(small, 'tokenizer_config.json')));
    expect(tok8.get_vocab().size).toBe(8);
    expect(tok8.encode('tea').ids.every((id) => id < 8)).toBe(true);
  });

  it('writes config.json and generation_config.json with the expected fields', () => {
    const dir = checkpoint({ architecture: 'qwen2', tied: true });
    const cfg = readJson(path.join(dir, 'config.json'));
    expect(cfg.architectures).toEqual(['Qwen2ForCausalLM']);
    expect(cfg.use_sliding_window).toBe(false);
    expect(loadConfig(dir).slidingWindow).toBeNull();
    expect(readJson(path.join(dir, 'generation_config.json'))).toMatchObject({ bos_token_id: 1, eos_token_id: 2 });
  });
});

// -------------------------------------------------------------------------------------------------

describe('F16 / BF16 conversions', () => {
  const f32 = (x: number): number => Math.fround(x);

  it('decodes special F16 values exactly', () => {
    expect(Object.is(f16ToFloat32(0x0000), 0)).toBe(true);
    expect(Object.is(f16ToFloat32(0x8000), -0)).toBe(true);
    expect(f16ToFloat32(0x3c00)).toBe(1);
    expect(f16ToFloat32(0xc000)).toBe(-2);
    expect(f16ToFloat32(0x7bff)).toBe(65504); // max finite
    expect(f16ToFloat32(0x0400)).toBe(2 ** -14); // min normal
    expect(f16ToFloat32(0x0001)).toBe(2 ** -24); // min subnormal
    expect(f16ToFloat32(0x03ff)).toBe(1023 * 2 ** -24); // max subnormal
    expect(f16ToFloat32(0x8001)).toBe(-(2 ** -24));
    expect(f16ToFloat32(0x7c00)).toBe(Infinity);
    expect(f16ToFloat32(0xfc00)).toBe(-Infinity);
    expect(f16ToFloat32(0x7e00)).toBeNaN();
    expect(f16ToFloat32(0x7c01)).toBeNaN(); // signalling NaN stays NaN, not Infinity
    expect(f16ToFloat32(0x3555)).toBe(f32(0x155 / 1024 + 1) * 2 ** -2);
  });

  it('encodes F16 with round-to-nearest-even, overflow and underflow', () => {
    expect(float32ToF16(0)).toBe(0x0000);
    expect(float32ToF16(-0)).toBe(0x8000);
    expect(float32ToF16(1)).toBe(0x3c00);
    expect(float32ToF16(65504)).toBe(0x7bff);
    expect(float32ToF16(65519)).toBe(0x7bff); // below the midpoint to 65536 → max finite
    expect(float32ToF16(65520)).toBe(0x7c00); // midpoint, ties to even → Infinity
    expect(float32ToF16(1e6)).toBe(0x7c00);
    expect(float32ToF16(-1e6)).toBe(0xfc00);
    expect(float32ToF16(Infinity)).toBe(0x7c00);
    expect(float32ToF16(-Infinity)).toBe(0xfc00);
    expect(f16ToFloat32(float32ToF16(NaN))).toBeNaN();
    expect(float32ToF16(1 + 2 ** -11)).toBe(0x3c00); // tie → even (down)
    expect(float32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie → even (up)
    expect(float32ToF16(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01); // just above the tie
    expect(float32ToF16(2 ** -24)).toBe(0x0001);
    expect(float32ToF16(2 ** -25)).toBe(0x0000); // tie between 0 and min subnormal → 0
    expect(float32ToF16(2 ** -25 + 2 ** -40)).toBe(0x0001);
    expect(float32ToF16(3 * 2 ** -25)).toBe(0x0002); // 1.5 subnormal units → 2 (even)
    expect(float32ToF16(-(2 ** -26))).toBe(0x8000); // underflow keeps the sign
    expect(float32ToF16(1e-30)).toBe(0x0000);
    expect(float32ToF16(2 ** -14 - 2 ** -26)).toBe(0x0400); // rounds up into the min normal
    expect(float32ToF16(1023.5 * 2 ** -24)).toBe(0x0400); // tie, 1023 odd → 1024 = min normal
  });

  it('F16: every bit pattern round-trips, and encoding picks the nearest value (ties to even)', () => {
    const failures: string[] = [];
    for (let h = 0; h < 0x10000; h++) {
      const v = f16ToFloat32(h);
      if (Number.isNaN(v)) {
        const isNanPattern = ((h >> 10) & 0x1f) === 0x1f && (h & 0x3ff) !== 0;
        if (!isNanPattern || !Number.isNaN(f16ToFloat32(float32ToF16(v)))) failures.push(`NaN 0x${h.toString(16)}`);
      } else if (float32ToF16(v) !== h) {
        failures.push(`0x${h.toString(16)} → ${v} → 0x${float32ToF16(v).toString(16)}`);
      }
    }
    // Random finite float32s within the half range: no representable half is closer.
    let seed = 12345;
    const rnd = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    for (let i = 0; i < 20000; i++) {
      const x = f32((rnd() * 2 - 1) * 2 ** (Math.floor(rnd() * 42) - 26));
      const h = float32ToF16(x);
      const err = Math.abs(f16ToFloat32(h) - x);
      for (const nb of [h - 1, h + 1]) {
        if (nb < 0 || (nb & 0x7fff) >= 0x7c00 || (nb & 0x8000) !== (h & 0x8000)) continue;
        const nErr = Math.abs(f16ToFloat32(nb) - x);
        if (err > nErr || (err === nErr && (h & 1) !== 0)) failures.push(`${x} → 0x${h.toString(16)}, neighbour 0x${nb.toString(16)}`);
      }
    }
    expect(failures).toEqual([]);
  });

  it('BF16: special values, ties to even, and every bit pattern round-trips', () => {
    expect(bf16ToFloat32(0x3f80)).toBe(1);
    expect(bf16ToFloat32(0x7f80)).toBe(Infinity);
    expect(bf16ToFloat32(0xff80)).toBe(-Infinity);
    expect(bf16ToFloat32(0x7fc0)).toBeNaN();
    expect(Object.is(bf16ToFloat32(0x8000), -0)).toBe(true);
    expect(bf16ToFloat32(0x0001)).toBe(2 ** -133); // subnormal
    expect(float32ToBf16(1 + 2 ** -8)).toBe(0x3f80); // tie → even (down)
    expect(float32ToBf16(1 + 3 * 2 ** -8)).toBe(0x3f82); // tie → even (up)
    expect(float32ToBf16(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81);
    expect(float32ToBf16(3.4028234663852886e38)).toBe(0x7f80); // max float32 rounds to Infinity
    expect(float32ToBf16(-Infinity)).toBe(0xff80);
    expect(bf16ToFloat32(float32ToBf16(NaN))).toBeNaN();
    expect(bf16ToFloat32(float32ToBf16(f32(Number.NaN)))).toBeNaN();
    const failures: string[] = [];
    for (let h = 0; h < 0x10000; h++) {
      const v = bf16ToFloat32(h);
      const back = float32ToBf16(v);
      if (Number.isNaN(v) ? !Number.isNaN(bf16ToFloat32(back)) : back !== h) failures.push(`0x${h.toString(16)} → 0x${back.toString(16)}`);
    }
    expect(failures).toEqual([]);
  });

  it('stores and reads special values through safetensors files', () => {
    const dir = tmpDir();
    const values = new Float32Array([0, -0, 1, -2.5, 65504, 70000, 2 ** -24, 2 ** -25, 1e-40, Infinity, -Infinity, NaN]);
    for (const dtype of ['F32', 'F16', 'BF16'] as FloatDtype[]) {
      const file = path.join(dir, `${dtype}.safetensors`);
      writeSafetensors(file, { t: { dtype, shape: [3, 4], data: values } });
      fs.renameSync(file, path.join(dir, 'model.safetensors'));
      const index = openSafetensors(dir);
      try {
        expect(index.info('t')).toMatchObject({ dtype, shape: [3, 4] });
        const got = index.readFloat32('t');
        const want = roundToDtype(values, dtype);
        for (let i = 0; i < values.length; i++) expect(Object.is(got[i], want[i])).toBe(true);
      } finally {
        index.close();
      }
    }
    const f16 = roundToDtype(values, 'F16');
    expect(Array.from(f16.slice(4, 9))).toEqual([65504, Infinity, 2 ** -24, 0, 0]);
  });
});

// -------------------------------------------------------------------------------------------------

describe('stories260K (real checkpoint from ../shared)', () => {
  const { path: dir, present } = sharedModel('stories260K');
  const maybe = present ? it : it.skip;

  maybe('loads stories260K: shapes and tied embeddings (requires ../shared)', () => {
    const { config, weights } = loadModelDir(dir);
    expect(config).toMatchObject({
      architecture: 'LlamaForCausalLM',
      hiddenSize: 64,
      intermediateSize: 172,
      numLayers: 5,
      numHeads: 8,
      numKvHeads: 4,
      headDim: 8,
      vocabSize: 512,
      maxPositionEmbeddings: 512,
      tieWordEmbeddings: true,
      qkvBias: false,
      slidingWindow: null,
      ropeScaling: { type: 'none' },
      bosTokenId: 1,
      eosTokenIds: [2],
      torchDtype: 'float32',
    });
    expect(weights.embed.length).toBe(512 * 64);
    expect(weights.lmHead).toBe(weights.embed);
    expect(weights.finalNorm.length).toBe(64);
    expect(weights.layers).toHaveLength(5);
    for (const l of weights.layers) {
      expect([l.q.length, l.k.length, l.v.length, l.o.length]).toEqual([64 * 64, 32 * 64, 32 * 64, 64 * 64]);
      expect([l.gate.length, l.up.length, l.down.length]).toEqual([172 * 64, 172 * 64, 64 * 172]);
      expect([l.inputNorm.length, l.postNorm.length]).toEqual([64, 64]);
      expect(l.qBias).toBeNull();
    }
    const all = [weights.embed, weights.finalNorm, ...weights.layers.flatMap((l) => [l.q, l.k, l.v, l.o, l.gate, l.up, l.down])];
    for (const a of all) expect(a.every(Number.isFinite)).toBe(true);
  });
});

// -------------------------------------------------------------------------------------------------

describe('bad inputs give clear errors', () => {
  it('missing model directory', () => {
    const dir = path.join(os.tmpdir(), 'starq-definitely-missing-model-dir');
    const e = loadError(() => loadModelDir(dir));
    expect(e.code).toBe('model_not_found');
    expect(e.param).toBe('model');
    expect(e.message).toContain(dir);
  });

  it('model path is a file', () => {
    const dir = checkpoint();
    const e = loadError(() => loadModelDir(path.join(dir, 'config.json')));
    expect(e.code).toBe('model_not_found');
    expect(e.message).toContain('not a directory');
  });

  it('missing config.json', () => {
    const dir = checkpoint();
    fs.rmSync(path.join(dir, 'config.json'));
    const e = loadError(() => loadModelDir(dir));
    expect(e.code).toBe('invalid_config');
    expect(e.message).toContain(path.join(dir, 'config.json'));
    expect(e.message).toContain('not found');
  });

  it('malformed config.json', () => {
    const dir = checkpoint();
    fs.writeFileSync(path.join(dir, 'config.json'), '{"architectures": ["LlamaForCausalLM"], ');
    const e = loadError(() => loadModelDir(dir));
    expect(e.code).toBe('invalid_config');
    expect(e.message).toContain(path.join(dir, 'config.json'));
    expect(e.message).toContain('not valid JSON');
  });

  it('config.json that is not an object', () => {
    const e = loadError(() => parseConfig([1, 2, 3]));
    expect(e.code).toBe('invalid_config');
    expect(e.message).toContain('expected a JSON object');
  });

  it('unsupported architecture', () => {
    const e = loadError(() =>
      parseConfig({ architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', n_embd: 768 }, '/m/config.json'),
    );
    expect(e.code).toBe('unsupported_model');
    expect(e.message).toContain('GPT2LMHeadModel');
    expect(e.message).toContain('LlamaForCausalLM');
    expect(e.message).toContain('/m/config.json');
  });

  const validLlama = (): Record<string, unknown> => ({
    architectures: ['LlamaForCausalLM'],
    hidden_size: 64,
    intermediate_size: 128,
    num_hidden_layers: 2,
    num_attention_heads: 8,
    num_key_value_heads: 4,
    vocab_size: 100,
    max_position_embeddings: 256,
    bos_token_id: 1,
    eos_token_id: 2,
  });

  it('several unsupported features are all listed in one error', () => {
    const e = loadError(() =>
      parseConfig({
        ...validLlama(),
        hidden_act: 'gelu',
        attention_bias: true,
        mlp_bias: true,
        rope_scaling: { rope_type: 'yarn', factor: 4 },
        quantization_config: { quant_method: 'gptq' },
      }),
    );
    expect(e.code).toBe('unsupported_model');
    for (const s of ['hidden_act', 'gelu', 'attention_bias', 'o_proj', 'mlp_bias', 'yarn', 'quantization_config']) {
      expect(e.message).toContain(s);
    }
    expect(e.message).toContain('5 problems');
  });

  it('several malformed values are all listed in one error', () => {
    const e = loadError(() =>
      parseConfig({
        ...validLlama(),
        hidden_size: -64,
        num_attention_heads: 6,
        intermediate_size: 12.5,
        vocab_size: undefined,
        rms_norm_eps: 'small',
        head_dim: 7,
        tie_word_embeddings: 'yes',
        eos_token_id: [2, 1000],
      }),
    );
    expect(e.code).toBe('invalid_config');
    for (const s of [
      '`hidden_size` must be a positive integer, got -64',
      '`intermediate_size` must be a positive integer, got 12.5',
      '`vocab_size` is required',
      '`rms_norm_eps` must be a positive number',
      'must be even',
      '`num_attention_heads` (6) must be divisible by `num_key_value_heads` (4)',
      '`tie_word_embeddings` must be true or false',
    ]) {
      expect(e.message).toContain(s);
    }
  });

  it('bad llama3 rope_scaling and out-of-vocab token ids are reported', () => {
    const e = loadError(() =>
      parseConfig({
        ...validLlama(),
        rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 4, high_freq_factor: 1 },
        eos_token_id: [2, 100],
      }),
    );
    expect(e.code).toBe('invalid_config');
    expect(e.message).toContain('original_max_position_embeddings');
    expect(e.message).toContain('high_freq_factor');
    expect(e.message).toContain('`eos_token_id[1]` 100 is outside the vocabulary');
  });

  it('accepted config variants', () => {
    const base = validLlama();
    expect(parseConfig({ ...base, rope_scaling: { type: 'default' } }).ropeScaling).toEqual({ type: 'none' });
    expect(parseConfig({ ...base, num_key_value_heads: undefined }).numKvHeads).toBe(8);
    expect(parseConfig({ ...base, eos_token_id: [2, 3, 2] }).eosTokenIds).toEqual([2, 3]);
    expect(parseConfig({ ...base, eos_token_id: null }).eosTokenIds).toEqual([]);
    expect(parseConfig(base)).toMatchObject({ headDim: 8, tieWordEmbeddings: false, rmsNormEps: 1e-6, ropeTheta: 10000 });
    const mistral = { ...base, architectures: ['MistralForCausalLM'] };
    expect(parseConfig({ ...mistral, sliding_window: 64 }).slidingWindow).toBe(64);
    expect(parseConfig({ ...mistral, sliding_window: null }).slidingWindow).toBeNull();
    const qwen = { ...base, architectures: ['Qwen2ForCausalLM'], sliding_window: 128 };
    expect(parseConfig({ ...qwen, use_sliding_window: false })).toMatchObject({ slidingWindow: null, qkvBias: true, tieWordEmbeddings: false });
    expect(parseConfig({ ...qwen, use_sliding_window: true, max_window_layers: 1 }).slidingWindow).toBe(128);
    expect(parseConfig({ ...qwen, use_sliding_window: true, max_window_layers: 2 }).slidingWindow).toBeNull();
  });

  it('missing tensor', () => {
    const dir = checkpoint();
    const name = layerTensorNames(1).k;
    rewriteWeights(dir, BASE, (t) => delete t[name]);
    const e = loadError(() => loadModelDir(dir));
    expect(e.code).toBe('invalid_weights');
    expect(e.message).toContain(`missing tensor ${name} (expected shape [8, 16])`);
  });

  it('wrong shapes are all listed', () => {
    const dir = checkpoint();
    const n0 = layerTensorNames(0);
    rewriteWeights(dir, BASE, (t) => {
      t[n0.gate].shape = [16, 40]; // (hidden, I): transposed
      delete t['model.norm.weight'];
    });
    const e = loadError(() => loadModelDir(dir));
    expect(e.code).toBe('invalid_weights');
    expect(e.message).toContain(`tensor ${n0.gate} has shape [16, 40], expected [40, 16]`);
    expect(e.message).toContain('missing tensor model.norm.weight (expected shape [16])');
    expect(e.message).toContain('2 problems');
  });

  it('tensors the model would ignore are rejected', () => {
    const dir = checkpoint();
    rewriteWeights(dir, BASE, (t) => {
      t['model.layers.0.self_attn.o_proj.bias'] = { dtype: 'F32', shape: [16], data: new Float32Array(16) };
    });
    const e = loadError(() => loadModelDir(dir));
    expect(e.code).toBe('invalid_weights');
    expect(e.message).toContain('model.layers.0.self_attn.o_proj.bias');
  });

  it('truncated safetensors file', () => {
    const dir = checkpoint();
    const file = path.join(dir, 'model.safetensors');
    const size = fs.statSync(file).size;
    fs.truncateSync(file, size - 100);
    const e = loadError(() => loadModelDir(dir));
    expect(e.code).toBe('invalid_weights');
    expect(e.message).toContain(file);
    expect(e.message).toContain('truncated');
    expect(e.message).toContain(`expected at least ${size} bytes but the file has ${size - 100} bytes`);
    expect(e.message).toContain('lm_head.weight'); // the last tensor written
  });

  it('truncated safetensors header', () => {
    const dir = checkpoint();
    const file = path.join(dir, 'model.safetensors');
    fs.truncateSync(file, 20);
    const e = loadError(() => loadModelDir(dir));
    expect(e.code).toBe('invalid_weights');
    expect(e.message).toMatch(/truncated: the header needs \d+ bytes but the file has only 20 bytes/);
  });

  it('not a safetensors file', () => {
    const dir = checkpoint();
    fs.writeFileSync(path.join(dir, 'model.safetensors'), 'this is not a safetensors file at all');
    const e = loadError(() => loadModelDir(dir));
    expect(e.code).toBe('invalid_weights');
    expect(e.message).toContain('model.safetensors');
  });

  it('unsupported dtype (I64)', () => {
    const dir = checkpoint();
    const file = path.join(dir, 'model.safetensors');
    // Hand-written file: one I64 tensor followed by the rest as F32.
    const tensors = randomCheckpointTensors(BASE);
    const header: Record<string, unknown> = {};
    const chunks: Buffer[] = [];
    let off = 0;
    for (const [name, t] of Object.entries(tensors)) {
      const i64 = name === 'model.norm.weight';
      const bytes = i64 ? Buffer.alloc(t.data.length * 8) : Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      header[name] = { dtype: i64 ? 'I64' : 'F32', shape: t.shape, data_offsets: [off, off + bytes.length] };
      off += bytes.length;
      chunks.push(bytes);
    }
    const json = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    fs.writeFileSync(file, Buffer.concat([len, json, ...chunks]));

    const e = loadError(() => loadModelDir(dir));
    expect(e.code).toBe('unsupported_model');
    expect(e.message).toContain('tensor model.norm.weight has dtype I64');
    // Reading it directly names the tensor, dtype and file too.
    const index = openSafetensors(dir);
    try {
      const e2 = loadError(() => index.readFloat32('model.norm.weight'));
      expect(e2.message).toContain('"model.norm.weight"');
      expect(e2.message).toContain('I64');
      expect(e2.message).toContain(file);
    } finally {
      index.close();
    }
  });

  it('no weights at all', () => {
    const dir = checkpoint();
    fs.rmSync(path.join(dir, 'model.safetensors'));
    const e = loadError(() => loadModelDir(dir));
    expect(e.code).toBe('invalid_weights');
    expect(e.message).toContain('model.safetensors.index.json');
  });

  it('sharded checkpoint with a missing shard', () => {
    const dir = checkpoint({ sharded: true });
    const shard = path.join(dir, 'model-00002-of-00002.safetensors');
    fs.rmSync(shard);
    const e = loadError(() => loadWeights(dir, loadConfig(dir)));
    expect(e.code).toBe('invalid_weights');
    expect(e.message).toContain('model-00002-of-00002.safetensors');
    expect(e.message).toContain('missing');
  });

  it('sharded index pointing at the wrong shard', () => {
    const dir = checkpoint({ sharded: true });
    const indexFile = path.join(dir, 'model.safetensors.index.json');
    const index = readJson(indexFile) as { weight_map: Record<string, string> };
    index.weight_map['model.embed_tokens.weight'] = 'model-00002-of-00002.safetensors';
    fs.writeFileSync(indexFile, JSON.stringify(index));
    const e = loadError(() => loadModelDir(dir));
    expect(e.code).toBe('invalid_weights');
    expect(e.message).toContain('"model.embed_tokens.weight"');
  });
});
