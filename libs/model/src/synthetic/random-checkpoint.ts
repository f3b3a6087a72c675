/**
 * Tiny random Hugging Face checkpoints for tests: `config.json`, `generation_config.json`,
 * safetensors weights (single file or ≥ 2 shards + index) and a small BPE tokenizer
 * (`tokenizer.json` + `tokenizer_config.json`) loadable by `@huggingface/tokenizers`.
 *
 * Weights come from a seeded PRNG and are generated in a fixed order that does not depend on the
 * dtype or sharding, so the same seed yields the same float32 values in every storage variant
 * (use {@link randomCheckpointTensors} to get them for comparisons).
 */
import * as fs from 'fs';
import * as path from 'path';
import {
  SAFETENSORS_FILE,
  SAFETENSORS_INDEX_FILE,
  writeSafetensors,
  type FloatDtype,
  type TensorToWrite,
} from '../safetensors';
import { EMBED_TENSOR, FINAL_NORM_TENSOR, LM_HEAD_TENSOR, layerTensorNames } from '../weights';

export interface RandomCheckpointOptions {
  /** `llama3` = Llama with llama3 `rope_scaling`. */
  architecture: 'llama' | 'llama3' | 'mistral' | 'qwen2';
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  /** Defaults to hidden / heads. When different, `head_dim` is written to config.json. */
  headDim?: number;
  /** Vocabulary size (≥ 4: `<unk>`, `<s>`, `</s>` and at least one piece). */
  vocab: number;
  maxPositions: number;
  dtype: FloatDtype;
  tied: boolean;
  /** Split the weights across ≥ 2 shard files with a `model.safetensors.index.json`. */
  sharded: boolean;
  seed: number;
  /** @defaultValue 10000 */
  ropeTheta?: number;
  /** Mistral only: `sliding_window` (default null = full attention). */
  slidingWindow?: number | null;
}

/** The `config.json` object written (HF field names). */
export type HfConfigJson = Record<string, unknown>;

/** mulberry32: a tiny, fast, deterministic 32-bit PRNG. Returns uniforms in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Special tokens, always ids 0, 1, 2. */
export const UNK = '<unk>';
export const BOS = '<s>';
export const EOS = '</s>';

const ARCH_NAMES = {
  llama: ['LlamaForCausalLM', 'llama'],
  llama3: ['LlamaForCausalLM', 'llama'],
  mistral: ['MistralForCausalLM', 'mistral'],
  qwen2: ['Qwen2ForCausalLM', 'qwen2'],
} as const;

const TORCH_DTYPE: Record<FloatDtype, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

/** Builds the HF `config.json` object for the options. */
export function randomCheckpointConfig(opts: RandomCheckpointOptions): HfConfigJson {
  const [arch, modelType] = ARCH_NAMES[opts.architecture];
  const cfg: HfConfigJson = {
    architectures: [arch],
    model_type: modelType,
    hidden_size: opts.hidden,
    intermediate_size: opts.intermediate,
    num_hidden_layers: opts.layers,
    num_attention_heads: opts.heads,
    num_key_value_heads: opts.kvHeads,
    vocab_size: opts.vocab,
    max_position_embeddings: opts.maxPositions,
    rms_norm_eps: 1e-5,
    rope_theta: opts.ropeTheta ?? 10000,
    hidden_act: 'silu',
    tie_word_embeddings: opts.tied,
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: TORCH_DTYPE[opts.dtype],
  };
  if (opts.headDim !== undefined) cfg.head_dim = opts.headDim;
  switch (opts.architecture) {
    case 'llama':
      Object.assign(cfg, { rope_scaling: null, attention_bias: false, mlp_bias: false });
      break;
    case 'llama3':
      Object.assign(cfg, {
        rope_scaling: {
          rope_type: 'llama3',
          factor: 8.0,
          low_freq_factor: 1.0,
          high_freq_factor: 4.0,
          // Small so that the low-frequency RoPE components of a tiny model are actually rescaled.
          original_max_position_embeddings: Math.min(32, opts.maxPositions),
        },
        attention_bias: false,
        mlp_bias: false,
        eos_token_id: [2], // llama3 configs list several eos ids
      });
      break;
    case 'mistral':
      cfg.sliding_window = opts.slidingWindow ?? null;
      break;
    case 'qwen2':
      // As in real Qwen2 configs: a window is declared but disabled.
      Object.assign(cfg, { use_sliding_window: false, sliding_window: opts.maxPositions, max_window_layers: opts.layers });
      break;
  }
  return cfg;
}

/**
 * The float32 tensors of the checkpoint (before dtype rounding), keyed by HF name, in a fixed order.
 * Linear weights ~ U(−√3, √3)/√in (unit variance after projection), norms 1 ± 0.1, qwen2 biases
 * ± 0.1, embeddings ~ U(−1, 1). `lm_head.weight` is omitted when tied.
 */
export function randomCheckpointTensors(opts: RandomCheckpointOptions): Record<string, { shape: number[]; data: Float32Array }> {
  const rand = mulberry32(opts.seed);
  const headDim = opts.headDim ?? opts.hidden / opts.heads;
  const qDim = opts.heads * headDim;
  const kvDim = opts.kvHeads * headDim;
  const out: Record<string, { shape: number[]; data: Float32Array }> = {};
  const fill = (name: string, shape: number[], f: () => number): void => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = f();
    out[name] = { shape, data };
  };
  const u = (): number => rand() * 2 - 1; // U(−1, 1)
  const linear = (name: string, outDim: number, inDim: number): void => {
    const s = Math.sqrt(3 / inDim);
    fill(name, [outDim, inDim], () => u() * s);
  };
  const norm = (name: string, dim: number): void => fill(name, [dim], () => 1 + 0.1 * u());

  fill(EMBED_TENSOR, [opts.vocab, opts.hidden], u); // (vocab, hidden)
  for (let i = 0; i < opts.layers; i++) {
    const n = layerTensorNames(i);
    norm(n.inputNorm, opts.hidden);
    linear(n.q, qDim, opts.hidden); // (H·D, hidden)
    linear(n.k, kvDim, opts.hidden); // (Hkv·D, hidden)
    linear(n.v, kvDim, opts.hidden); // (Hkv·D, hidden)
    if (opts.architecture === 'qwen2') {
      fill(n.qBias, [qDim], () => 0.1 * u());
      fill(n.kBias, [kvDim], () => 0.1 * u());
      fill(n.vBias, [kvDim], () => 0.1 * u());
    }
    linear(n.o, opts.hidden, qDim); // (hidden, H·D)
    norm(n.postNorm, opts.hidden);
    linear(n.gate, opts.intermediate, opts.hidden); // (I, hidden)
    linear(n.up, opts.intermediate, opts.hidden); // (I, hidden)
    linear(n.down, opts.hidden, opts.intermediate); // (hidden, I)
  }
  norm(FINAL_NORM_TENSOR, opts.hidden);
  if (!opts.tied) linear(LM_HEAD_TENSOR, opts.vocab, opts.hidden); // (vocab, hidden)
  return out;
}

/**
 * Builds a small BPE tokenizer with exactly `vocab` tokens: `<unk>`, `<s>`, `</s>` (ids 0-2), then
 * single characters (`▁` marks a word start), then merged pieces. Text is pre-tokenized Metaspace
 * style (spaces → `▁`, one prepended), characters outside the alphabet become `<unk>`, and `<s>`
 * is added by the post-processor.
 */
export function randomCheckpointTokenizer(vocab: number): { tokenizer: Record<string, unknown>; config: Record<string, unknown> } {
  if (!Number.isInteger(vocab) || vocab < 4) throw new Error(`tokenizer vocab must be an integer ≥ 4, got ${vocab}`);
  const specials = [UNK, BOS, EOS];
  const alphabet = ['▁', ...'etaoinshrdlucmfwypvbgkjqxz', ...'.,!?\'"-:;', ...'0123456789', ...'TSOHIMALBW'];
  const base = alphabet.slice(0, vocab - specials.length);
  const tokens = [...specials, ...base];
  const known = new Set(tokens);
  const merges: string[] = [];
  // Fill the vocabulary with merges: level 1 joins two base pieces, later levels extend the pieces
  // of the previous level by one base piece. `▁` only ever starts a piece.
  let prev = base;
  while (tokens.length < vocab) {
    const next: string[] = [];
    for (const a of prev) {
      for (const b of base) {
        if (b === '▁' || tokens.length >= vocab) continue;
        const t = a + b;
        if (known.has(t)) continue;
        known.add(t);
        tokens.push(t);
        next.push(t);
        merges.push(`${a} ${b}`);
      }
    }
    if (next.length === 0) throw new Error('tokenizer: cannot fill the vocabulary'); // unreachable for |base| ≥ 2
    prev = next;
  }
  const special = (content: string, id: number) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((s, i) => special(s, i)),
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: false },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: BOS, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: BOS, type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: BOS, type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { [BOS]: { id: BOS, ids: [1], tokens: [BOS] } },
    },
    decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: false },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: UNK,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(tokens.map((t, i) => [t, i])),
      merges,
    },
  };
  const config = {
    add_bos_token: true,
    add_eos_token: false,
    bos_token: BOS,
    eos_token: EOS,
    unk_token: UNK,
    pad_token: null,
    clean_up_tokenization_spaces: false,
    model_max_length: 1 << 30,
    tokenizer_class: 'PreTrainedTokenizerFast',
  };
  return { tokenizer, config };
}

function writeJson(file: string, value: unknown): void {
  fs.writeFileSync(file, JSON.stringify(value, null, 2) + '\n');
}

/**
 * Writes a complete random HF model directory into `dir` (created if needed) and returns the
 * `config.json` object written.
 */
export function writeRandomCheckpoint(dir: string, opts: RandomCheckpointOptions): HfConfigJson {
  fs.mkdirSync(dir, { recursive: true });
  const config = randomCheckpointConfig(opts);
  writeJson(path.join(dir, 'config.json'), config);
  writeJson(path.join(dir, 'generation_config.json'), {
    bos_token_id: 1,
    eos_token_id: config.eos_token_id,
    do_sample: false,
  });
  const { tokenizer, config: tokConfig } = randomCheckpointTokenizer(opts.vocab);
  writeJson(path.join(dir, 'tokenizer.json'), tokenizer);
  writeJson(path.join(dir, 'tokenizer_config.json'), tokConfig);

  const tensors: Record<string, TensorToWrite> = {};
  for (const [name, t] of Object.entries(randomCheckpointTensors(opts))) {
    tensors[name] = { dtype: opts.dtype, shape: t.shape, data: t.data };
  }
  if (!opts.sharded) {
    writeSafetensors(path.join(dir, SAFETENSORS_FILE), tensors);
    return config;
  }
  // Shard: split the (ordered) tensor list in two halves by count → 2 files + index.
  const names = Object.keys(tensors);
  const half = Math.ceil(names.length / 2);
  const parts = [names.slice(0, half), names.slice(half)];
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  parts.forEach((part, i) => {
    const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(parts.length).padStart(5, '0')}.safetensors`;
    const shard: Record<string, TensorToWrite> = {};
    for (const n of part) {
      shard[n] = tensors[n];
      weightMap[n] = file;
      totalSize += tensors[n].data.length * (opts.dtype === 'F32' ? 4 : 2);
    }
    writeSafetensors(path.join(dir, file), shard);
  });
  writeJson(path.join(dir, SAFETENSORS_INDEX_FILE), { metadata: { total_size: totalSize }, weight_map: weightMap });
  return config;
}
