/**
 * Hugging Face `config.json` → validated {@link ModelConfig}.
 *
 * The parser is strict: every field we rely on is type-checked, every feature we do not implement
 * (other activations, o_proj / MLP biases, other RoPE scalings, quantisation, …) is rejected, and
 * ALL problems found are reported together in one {@link ModelLoadError} so a user fixes them in one
 * go. Error codes: `unsupported_model` when at least one problem is an unsupported feature or
 * architecture, otherwise `invalid_config` (malformed / missing / inconsistent values).
 */
import * as fs from 'fs';
import * as path from 'path';
import { ModelLoadError } from '@starq/protocol/errors';
import type { Architecture, ModelConfig, RopeScaling } from './types';

/** Architectures we implement, as spelled in `config.json` `architectures[0]`. */
export const SUPPORTED_ARCHITECTURES: readonly Architecture[] = [
  'LlamaForCausalLM',
  'MistralForCausalLM',
  'Qwen2ForCausalLM',
];

/** `model_type` → architecture, used only when `architectures` is absent (older configs). */
const MODEL_TYPE_TO_ARCH: Record<string, Architecture> = {
  llama: 'LlamaForCausalLM',
  mistral: 'MistralForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
};

/**
 * Defaults that `transformers` applies when a field is missing from `config.json` (per architecture
 * where they differ), so a directory loads here exactly when it would load there.
 */
const DEFAULTS: Record<Architecture, { maxPositionEmbeddings: number; slidingWindow: number | null }> = {
  LlamaForCausalLM: { maxPositionEmbeddings: 2048, slidingWindow: null },
  MistralForCausalLM: { maxPositionEmbeddings: 4096 * 32, slidingWindow: 4096 },
  Qwen2ForCausalLM: { maxPositionEmbeddings: 32768, slidingWindow: null },
};
const DEFAULT_RMS_NORM_EPS = 1e-6;
const DEFAULT_ROPE_THETA = 10000;

/** Problems collected while parsing; split so the error code can say which kind dominated. */
class Problems {
  readonly unsupported: string[] = [];
  readonly invalid: string[] = [];
  get count(): number {
    return this.unsupported.length + this.invalid.length;
  }
  /** Throws one error listing every problem, if there is any. */
  throwIfAny(source: string): void {
    if (this.count === 0) return;
    const all = [...this.unsupported, ...this.invalid];
    const code = this.unsupported.length > 0 ? 'unsupported_model' : 'invalid_config';
    const what = this.unsupported.length > 0 ? 'unsupported or invalid model' : 'invalid model config';
    throw new ModelLoadError(
      code,
      `${source}: ${what} (${all.length} problem${all.length === 1 ? '' : 's'}): ` +
        all.map((p, i) => `(${i + 1}) ${p}`).join('; '),
    );
  }
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === undefined) return 'missing';
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/**
 * Reads a positive integer field. Missing/null → `fallback` (or a problem when no fallback).
 * Returns NaN when invalid so later consistency checks can skip it.
 */
function posInt(cfg: Json, key: string, p: Problems, fallback?: number): number {
  const v = cfg[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    p.invalid.push(`\`${key}\` is required (a positive integer) but is missing`);
    return NaN;
  }
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
    p.invalid.push(`\`${key}\` must be a positive integer, got ${describe(v)}`);
    return NaN;
  }
  return v;
}

/** Reads a positive finite number field (missing/null → fallback). NaN when invalid. */
function posNumber(cfg: Json, key: string, p: Problems, fallback: number, where = ''): number {
  const v = cfg[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    p.invalid.push(`\`${where}${key}\` must be a positive number, got ${describe(v)}`);
    return NaN;
  }
  return v;
}

/** Reads a boolean field (missing/null → fallback). */
function bool(cfg: Json, key: string, p: Problems, fallback: boolean): boolean {
  const v = cfg[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') {
    p.invalid.push(`\`${key}\` must be true or false, got ${describe(v)}`);
    return fallback;
  }
  return v;
}

/** Resolves the architecture; throws immediately when it is unsupported (other checks would be noise). */
function resolveArchitecture(cfg: Json, source: string): Architecture {
  const archs = cfg.architectures;
  let name: string | undefined;
  if (archs !== undefined && archs !== null) {
    if (!Array.isArray(archs) || archs.length === 0 || typeof archs[0] !== 'string') {
      throw new ModelLoadError(
        'invalid_config',
        `${source}: \`architectures\` must be a non-empty array of strings, got ${describe(archs)}`,
      );
    }
    if (archs.length > 1) {
      throw new ModelLoadError(
        'unsupported_model',
        `${source}: multiple architectures ${describe(archs)} are not supported; expected exactly one of ${SUPPORTED_ARCHITECTURES.join(', ')}`,
      );
    }
    name = archs[0];
  } else if (typeof cfg.model_type === 'string') {
    name = MODEL_TYPE_TO_ARCH[cfg.model_type];
    if (name === undefined) {
      throw new ModelLoadError(
        'unsupported_model',
        `${source}: unsupported model_type ${describe(cfg.model_type)} (no \`architectures\` given); supported: ${Object.keys(MODEL_TYPE_TO_ARCH).join(', ')}`,
      );
    }
  } else {
    throw new ModelLoadError(
      'invalid_config',
      `${source}: neither \`architectures\` nor \`model_type\` is set; cannot tell which model this is`,
    );
  }
  if (!(SUPPORTED_ARCHITECTURES as readonly string[]).includes(name)) {
    throw new ModelLoadError(
      'unsupported_model',
      `${source}: unsupported architecture "${name}"; supported architectures: ${SUPPORTED_ARCHITECTURES.join(', ')}`,
    );
  }
  return name as Architecture;
}

/** Parses `rope_scaling` (or transformers ≥ 4.5x `rope_parameters`). */
function parseRopeScaling(raw: unknown, key: string, maxPos: number, p: Problems): RopeScaling {
  if (raw === undefined || raw === null) return { type: 'none' };
  if (!isObject(raw)) {
    p.invalid.push(`\`${key}\` must be an object or null, got ${describe(raw)}`);
    return { type: 'none' };
  }
  const kind = raw.rope_type ?? raw.type;
  if (kind === undefined || kind === null || kind === 'default') return { type: 'none' };
  if (kind !== 'llama3') {
    p.unsupported.push(
      `\`${key}\` type ${describe(kind)} is not supported (supported: "default", "llama3")`,
    );
    return { type: 'none' };
  }
  const where = `${key}.`;
  const need = (k: string): number => {
    const v = raw[k];
    if (v === undefined || v === null) {
      p.invalid.push(`\`${where}${k}\` is required for llama3 RoPE scaling but is missing`);
      return NaN;
    }
    return posNumber(raw, k, p, NaN, where);
  };
  const factor = need('factor');
  const lowFreqFactor = need('low_freq_factor');
  const highFreqFactor = need('high_freq_factor');
  const omp = raw.original_max_position_embeddings;
  let originalMaxPositionEmbeddings = NaN;
  if (typeof omp !== 'number' || !Number.isSafeInteger(omp) || omp <= 0) {
    p.invalid.push(
      `\`${where}original_max_position_embeddings\` must be a positive integer, got ${describe(omp)}`,
    );
  } else {
    originalMaxPositionEmbeddings = omp;
  }
  if (factor < 1) p.invalid.push(`\`${where}factor\` must be ≥ 1, got ${factor}`);
  if (highFreqFactor <= lowFreqFactor) {
    p.invalid.push(
      `\`${where}high_freq_factor\` (${highFreqFactor}) must be greater than \`low_freq_factor\` (${lowFreqFactor})`,
    );
  }
  if (originalMaxPositionEmbeddings > maxPos) {
    p.invalid.push(
      `\`${where}original_max_position_embeddings\` (${originalMaxPositionEmbeddings}) exceeds \`max_position_embeddings\` (${maxPos})`,
    );
  }
  return { type: 'llama3', factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings };
}

/** Sliding window per architecture (Mistral: `sliding_window`; Qwen2: only when enabled). */
function parseSlidingWindow(cfg: Json, arch: Architecture, numLayers: number, p: Problems): number | null {
  const readWindow = (fallback: number | null): number | null => {
    const v = cfg.sliding_window;
    if (v === undefined) return fallback;
    if (v === null) return null;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
      p.invalid.push(`\`sliding_window\` must be a positive integer or null, got ${describe(v)}`);
      return null;
    }
    return v;
  };
  switch (arch) {
    case 'LlamaForCausalLM':
      return null;
    case 'MistralForCausalLM':
      return readWindow(DEFAULTS.MistralForCausalLM.slidingWindow);
    case 'Qwen2ForCausalLM': {
      if (!bool(cfg, 'use_sliding_window', p, false)) return null;
      // Newer configs list per-layer attention types; older ones use `max_window_layers`
      // (layers i ≥ max_window_layers use the window). If any layer slides, we conservatively treat
      // the whole model as windowed: inputs within the window are then exact for all layers.
      let anySliding: boolean;
      const layerTypes = cfg.layer_types;
      if (Array.isArray(layerTypes)) {
        const bad = layerTypes.filter((t) => t !== 'full_attention' && t !== 'sliding_attention');
        if (bad.length > 0) p.unsupported.push(`\`layer_types\` contains unsupported types ${describe(bad)}`);
        anySliding = layerTypes.includes('sliding_attention');
      } else {
        const mwl = cfg.max_window_layers;
        if (mwl === undefined || mwl === null) anySliding = true;
        else if (typeof mwl !== 'number' || !Number.isSafeInteger(mwl) || mwl < 0) {
          p.invalid.push(`\`max_window_layers\` must be a non-negative integer, got ${describe(mwl)}`);
          anySliding = true;
        } else anySliding = mwl < numLayers;
      }
      if (!anySliding) return null;
      const w = readWindow(null);
      if (w === null) p.invalid.push('`use_sliding_window` is true but `sliding_window` is not a positive integer');
      return w;
    }
  }
}

/** A token id: non-negative integer below the vocabulary size. */
function tokenId(v: unknown, key: string, vocab: number, p: Problems): number | null {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    p.invalid.push(`\`${key}\` must be a non-negative integer token id, got ${describe(v)}`);
    return null;
  }
  if (Number.isFinite(vocab) && v >= vocab) {
    p.invalid.push(`\`${key}\` ${v} is outside the vocabulary (vocab_size ${vocab})`);
    return null;
  }
  return v;
}

/**
 * Validates a parsed HF `config.json` object and converts it to a {@link ModelConfig}.
 *
 * @param json   the parsed JSON value
 * @param source how to name the file in error messages (e.g. its path)
 * @throws ModelLoadError `unsupported_model` / `invalid_config` listing every problem found
 */
export function parseConfig(json: unknown, source = 'config.json'): ModelConfig {
  if (!isObject(json)) {
    throw new ModelLoadError('invalid_config', `${source}: expected a JSON object, got ${describe(json)}`);
  }
  const cfg = json;
  const architecture = resolveArchitecture(cfg, source);
  const p = new Problems();
  const defaults = DEFAULTS[architecture];

  // --- sizes ---
  const hiddenSize = posInt(cfg, 'hidden_size', p);
  const intermediateSize = posInt(cfg, 'intermediate_size', p);
  const numLayers = posInt(cfg, 'num_hidden_layers', p);
  const numHeads = posInt(cfg, 'num_attention_heads', p);
  // Default: one KV head per query head (no GQA). NaN (already reported) when heads is invalid.
  const numKvHeads = posInt(cfg, 'num_key_value_heads', p, numHeads);
  const vocabSize = posInt(cfg, 'vocab_size', p);
  const maxPositionEmbeddings = posInt(cfg, 'max_position_embeddings', p, defaults.maxPositionEmbeddings);

  let headDim: number;
  if (cfg.head_dim !== undefined && cfg.head_dim !== null) {
    headDim = posInt(cfg, 'head_dim', p);
  } else if (Number.isFinite(hiddenSize) && Number.isFinite(numHeads)) {
    headDim = hiddenSize / numHeads;
    if (!Number.isInteger(headDim)) {
      p.invalid.push(
        `\`hidden_size\` (${hiddenSize}) is not divisible by \`num_attention_heads\` (${numHeads}) and no \`head_dim\` is given`,
      );
      headDim = NaN;
    }
  } else {
    headDim = NaN;
  }
  if (Number.isFinite(headDim) && headDim % 2 !== 0) {
    p.invalid.push(`head dimension must be even for rotary embeddings, got ${headDim}`);
  }
  if (Number.isFinite(numHeads) && Number.isFinite(numKvHeads) && numHeads % numKvHeads !== 0) {
    p.invalid.push(
      `\`num_attention_heads\` (${numHeads}) must be divisible by \`num_key_value_heads\` (${numKvHeads})`,
    );
  }

  // --- numerics ---
  const rmsNormEps = posNumber(cfg, 'rms_norm_eps', p, DEFAULT_RMS_NORM_EPS);
  // transformers ≥ 4.5x may move rope settings into `rope_parameters`.
  const ropeParams = isObject(cfg.rope_parameters) ? cfg.rope_parameters : null;
  const ropeTheta =
    cfg.rope_theta !== undefined && cfg.rope_theta !== null
      ? posNumber(cfg, 'rope_theta', p, DEFAULT_ROPE_THETA)
      : ropeParams !== null
        ? posNumber(ropeParams, 'rope_theta', p, DEFAULT_ROPE_THETA, 'rope_parameters.')
        : DEFAULT_ROPE_THETA;
  const ropeScaling =
    cfg.rope_scaling !== undefined && cfg.rope_scaling !== null
      ? parseRopeScaling(cfg.rope_scaling, 'rope_scaling', maxPositionEmbeddings, p)
      : parseRopeScaling(ropeParams, 'rope_parameters', maxPositionEmbeddings, p);

  // --- features we do not implement ---
  const act = cfg.hidden_act ?? cfg.hidden_activation ?? 'silu';
  if (act !== 'silu') {
    p.unsupported.push(`\`hidden_act\` ${describe(act)} is not supported (only "silu")`);
  }
  if (architecture !== 'Qwen2ForCausalLM' && bool(cfg, 'attention_bias', p, false)) {
    p.unsupported.push(
      '`attention_bias: true` is not supported (it adds a bias to o_proj as well as q/k/v; o_proj bias is not implemented)',
    );
  }
  if (bool(cfg, 'mlp_bias', p, false)) {
    p.unsupported.push('`mlp_bias: true` is not supported (MLP projections must be bias-free)');
  }
  if (cfg.quantization_config !== undefined && cfg.quantization_config !== null) {
    p.unsupported.push('quantized checkpoints (`quantization_config`) are not supported; use F32/F16/BF16 weights');
  }

  const tieWordEmbeddings = bool(cfg, 'tie_word_embeddings', p, false);
  const qkvBias = architecture === 'Qwen2ForCausalLM';
  const slidingWindow = parseSlidingWindow(cfg, architecture, numLayers, p);

  // --- special tokens ---
  let bosTokenId: number | null = null;
  if (cfg.bos_token_id !== undefined && cfg.bos_token_id !== null) {
    bosTokenId = tokenId(cfg.bos_token_id, 'bos_token_id', vocabSize, p);
  }
  const eosTokenIds: number[] = [];
  const eos = cfg.eos_token_id;
  if (Array.isArray(eos)) {
    eos.forEach((id, i) => {
      const t = tokenId(id, `eos_token_id[${i}]`, vocabSize, p);
      if (t !== null && !eosTokenIds.includes(t)) eosTokenIds.push(t);
    });
  } else if (eos !== undefined && eos !== null) {
    const t = tokenId(eos, 'eos_token_id', vocabSize, p);
    if (t !== null) eosTokenIds.push(t);
  }

  const dt = cfg.torch_dtype ?? cfg.dtype ?? null;
  let torchDtype: string | null = null;
  if (dt !== null) {
    if (typeof dt !== 'string') p.invalid.push(`\`torch_dtype\` must be a string, got ${describe(dt)}`);
    else torchDtype = dt;
  }

  p.throwIfAny(source);
  return {
    architecture,
    hiddenSize,
    intermediateSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    vocabSize,
    maxPositionEmbeddings,
    rmsNormEps,
    ropeTheta,
    ropeScaling,
    tieWordEmbeddings,
    qkvBias,
    slidingWindow,
    bosTokenId,
    eosTokenIds,
    torchDtype,
  };
}

/**
 * Reads and parses a JSON file, turning every failure into a {@link ModelLoadError} that names the
 * file. Shared by the config and safetensors index loaders.
 *
 * @param code error code to use (e.g. `invalid_config`)
 * @param hint appended to the "not found" message (e.g. what the file is for)
 */
export function readJsonFile(file: string, code: string, hint = ''): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') {
      throw new ModelLoadError(code, `${file} not found${hint ? ` (${hint})` : ''}`);
    }
    throw new ModelLoadError(code, `cannot read ${file}: ${err.message}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new ModelLoadError(code, `${file} is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * Loads and validates `<dir>/config.json`.
 * @throws ModelLoadError naming the file when it is missing, unreadable or malformed
 */
export function loadConfig(dir: string): ModelConfig {
  const file = path.join(dir, 'config.json');
  const json = readJsonFile(file, 'invalid_config', 'every Hugging Face model directory needs a config.json');
  return parseConfig(json, file);
}
