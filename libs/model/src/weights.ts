/**
 * HF checkpoint tensors → {@link ModelWeights} (float32, HF `(out, in)` layout).
 *
 * Every expected tensor is checked (presence, shape, dtype) before anything is read, and all
 * problems are reported together in one {@link ModelLoadError}. Tensors the model would silently
 * ignore (e.g. an `o_proj.bias`, or layers beyond `num_hidden_layers`) are reported too, since
 * ignoring them would produce wrong outputs without any warning.
 */
import * as fs from 'fs';
import * as path from 'path';
import { ModelLoadError } from '@starq/protocol/errors';
import { loadConfig } from './config';
import { FLOAT_DTYPES, openSafetensors, type SafetensorsIndex } from './safetensors';
import type { LayerWeights, ModelConfig, ModelWeights } from './types';

/** HF tensor names of one decoder layer. */
export function layerTensorNames(i: number) {
  const p = `model.layers.${i}`;
  return {
    inputNorm: `${p}.input_layernorm.weight`,
    q: `${p}.self_attn.q_proj.weight`,
    k: `${p}.self_attn.k_proj.weight`,
    v: `${p}.self_attn.v_proj.weight`,
    qBias: `${p}.self_attn.q_proj.bias`,
    kBias: `${p}.self_attn.k_proj.bias`,
    vBias: `${p}.self_attn.v_proj.bias`,
    o: `${p}.self_attn.o_proj.weight`,
    postNorm: `${p}.post_attention_layernorm.weight`,
    gate: `${p}.mlp.gate_proj.weight`,
    up: `${p}.mlp.up_proj.weight`,
    down: `${p}.mlp.down_proj.weight`,
  };
}

export const EMBED_TENSOR = 'model.embed_tokens.weight';
export const FINAL_NORM_TENSOR = 'model.norm.weight';
export const LM_HEAD_TENSOR = 'lm_head.weight';

/** Tensors that may appear in checkpoints and carry no parameters we need. */
const IGNORABLE = [/\.rotary_emb\.inv_freq$/];

/**
 * Every tensor the config requires, with its expected shape, in load order. `lm_head.weight` is
 * listed only when untied (when tied it may be present; its shape is checked separately).
 */
export function expectedTensors(config: ModelConfig): Map<string, number[]> {
  const { hiddenSize: h, intermediateSize: inter, numHeads, numKvHeads, headDim, vocabSize } = config;
  const qDim = numHeads * headDim;
  const kvDim = numKvHeads * headDim;
  const m = new Map<string, number[]>();
  m.set(EMBED_TENSOR, [vocabSize, h]);
  for (let i = 0; i < config.numLayers; i++) {
    const n = layerTensorNames(i);
    m.set(n.inputNorm, [h]);
    m.set(n.q, [qDim, h]);
    m.set(n.k, [kvDim, h]);
    m.set(n.v, [kvDim, h]);
    if (config.qkvBias) {
      m.set(n.qBias, [qDim]);
      m.set(n.kBias, [kvDim]);
      m.set(n.vBias, [kvDim]);
    }
    m.set(n.o, [h, qDim]);
    m.set(n.postNorm, [h]);
    m.set(n.gate, [inter, h]);
    m.set(n.up, [inter, h]);
    m.set(n.down, [h, inter]);
  }
  m.set(FINAL_NORM_TENSOR, [h]);
  if (!config.tieWordEmbeddings) m.set(LM_HEAD_TENSOR, [vocabSize, h]);
  return m;
}

const fmt = (shape: number[]): string => `[${shape.join(', ')}]`;
const sameShape = (a: number[], b: number[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * Checks presence, shape and dtype of every tensor; throws one error listing every problem.
 * Code `unsupported_model` when a problem is an unsupported dtype, otherwise `invalid_weights`.
 */
export function validateTensors(index: SafetensorsIndex, config: ModelConfig): void {
  const expected = expectedTensors(config);
  const invalid: string[] = [];
  const unsupported: string[] = [];
  const check = (name: string, shape: number[]): void => {
    if (!index.has(name)) {
      invalid.push(`missing tensor ${name} (expected shape ${fmt(shape)})`);
      return;
    }
    const info = index.info(name);
    if (!sameShape(info.shape, shape)) {
      invalid.push(`tensor ${name} has shape ${fmt(info.shape)}, expected ${fmt(shape)}`);
    }
    if (!(FLOAT_DTYPES as readonly string[]).includes(info.dtype)) {
      unsupported.push(`tensor ${name} has dtype ${info.dtype} (supported: ${FLOAT_DTYPES.join(', ')})`);
    }
  };
  for (const [name, shape] of expected) check(name, shape);
  if (config.tieWordEmbeddings && index.has(LM_HEAD_TENSOR)) {
    // Tied: a stored copy is allowed (and ignored) but must at least have the right shape.
    check(LM_HEAD_TENSOR, [config.vocabSize, config.hiddenSize]);
  }
  const unexpected = index
    .names()
    .filter((n) => !expected.has(n) && n !== LM_HEAD_TENSOR && !IGNORABLE.some((re) => re.test(n)));
  if (unexpected.length > 0) {
    const shown = unexpected.slice(0, 8).join(', ') + (unexpected.length > 8 ? `, … (${unexpected.length} in all)` : '');
    invalid.push(
      `unexpected tensors not used by ${config.architecture} with this config (would be silently ignored): ${shown}`,
    );
  }
  const all = [...unsupported, ...invalid];
  if (all.length > 0) {
    throw new ModelLoadError(
      unsupported.length > 0 ? 'unsupported_model' : 'invalid_weights',
      `weights in ${index.dir} do not match config.json (${all.length} problem${all.length === 1 ? '' : 's'}): ` +
        all.map((p, i) => `(${i + 1}) ${p}`).join('; '),
    );
  }
}

/**
 * Loads and validates the weights of an HF model directory as float32.
 * When `config.tieWordEmbeddings`, `lmHead` is the very same array as `embed`.
 *
 * @throws ModelLoadError `invalid_weights` (missing / mis-shaped / truncated tensors, listed),
 *   `unsupported_model` (unsupported dtypes)
 */
export function loadWeights(dir: string, config: ModelConfig): ModelWeights {
  const index = openSafetensors(dir);
  try {
    return readWeights(index, config);
  } finally {
    index.close();
  }
}

/** Validates then reads all weights from an opened checkpoint (the caller closes it). */
export function readWeights(index: SafetensorsIndex, config: ModelConfig): ModelWeights {
  validateTensors(index, config);
  const read = (name: string): Float32Array => index.readFloat32(name);
  const embed = read(EMBED_TENSOR); // (vocab, hidden)
  const layers: LayerWeights[] = [];
  for (let i = 0; i < config.numLayers; i++) {
    const n = layerTensorNames(i);
    layers.push({
      inputNorm: read(n.inputNorm), // (hidden)
      q: read(n.q), // (H·D, hidden)
      k: read(n.k), // (Hkv·D, hidden)
      v: read(n.v), // (Hkv·D, hidden)
      qBias: config.qkvBias ? read(n.qBias) : null, // (H·D)
      kBias: config.qkvBias ? read(n.kBias) : null, // (Hkv·D)
      vBias: config.qkvBias ? read(n.vBias) : null, // (Hkv·D)
      o: read(n.o), // (hidden, H·D)
      postNorm: read(n.postNorm), // (hidden)
      gate: read(n.gate), // (I, hidden)
      up: read(n.up), // (I, hidden)
      down: read(n.down), // (hidden, I)
    });
  }
  const finalNorm = read(FINAL_NORM_TENSOR); // (hidden)
  const lmHead = config.tieWordEmbeddings ? embed : read(LM_HEAD_TENSOR); // (vocab, hidden)
  return { embed, layers, finalNorm, lmHead };
}

/** A fully loaded model directory. */
export interface LoadedModel {
  config: ModelConfig;
  weights: ModelWeights;
  /** Absolute path of the model directory. */
  dir: string;
}

const DTYPE_NAMES: Record<string, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

/**
 * Checks that `dir` is an existing directory (error `model_not_found`, param `model`), then loads
 * its config and weights. `config.torchDtype` is filled from the stored embedding dtype when
 * `config.json` does not declare it.
 */
export function loadModelDir(dir: string): LoadedModel {
  const abs = path.resolve(dir);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(abs);
  } catch {
    throw new ModelLoadError('model_not_found', `model directory not found: ${abs}`, 'model');
  }
  if (!stat.isDirectory()) {
    throw new ModelLoadError(
      'model_not_found',
      `model path ${abs} is not a directory (expected a Hugging Face model directory with config.json and safetensors weights)`,
      'model',
    );
  }
  let config = loadConfig(abs);
  const index = openSafetensors(abs);
  try {
    const weights = readWeights(index, config);
    if (config.torchDtype === null) {
      const dtype = index.info(EMBED_TENSOR).dtype;
      config = { ...config, torchDtype: DTYPE_NAMES[dtype] ?? dtype };
    }
    return { config, weights, dir: abs };
  } finally {
    index.close();
  }
}
