/**
 * Shared model types. Everything downstream (graphs, reference forward, runtime) depends only on
 * these shapes, never on how a checkpoint was stored.
 */

export type Architecture = 'LlamaForCausalLM' | 'MistralForCausalLM' | 'Qwen2ForCausalLM';

/** `rope_scaling` variants we implement. Anything else is rejected by the config parser. */
export type RopeScaling =
  | { type: 'none' }
  | {
      type: 'llama3';
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositionEmbeddings: number;
    };

/** A validated model configuration (parsed once from HF `config.json`). */
export interface ModelConfig {
  architecture: Architecture;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  maxPositionEmbeddings: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling;
  /** lm_head shares the embedding matrix. */
  tieWordEmbeddings: boolean;
  /** q/k/v projections carry a bias (Qwen2). */
  qkvBias: boolean;
  /**
   * Sliding-window attention span, or null for full attention. Inputs longer than the window are
   * rejected (within the window, sliding-window attention equals full attention).
   */
  slidingWindow: number | null;
  /** Token ids (from config.json; the tokenizer may refine them). */
  bosTokenId: number | null;
  eosTokenIds: number[];
  /** Stored dtype of the checkpoint tensors (as declared in config.json `torch_dtype` or observed). */
  torchDtype: string | null;
}

/**
 * Model weights as float32, in the layout the graphs consume. Linear weights keep the HF layout
 * `(out, in)` row-major: `y = x · Wᵀ`.
 */
export interface LayerWeights {
  inputNorm: Float32Array; // (hidden)
  q: Float32Array; // (H·D, hidden)
  k: Float32Array; // (Hkv·D, hidden)
  v: Float32Array; // (Hkv·D, hidden)
  qBias: Float32Array | null; // (H·D)
  kBias: Float32Array | null; // (Hkv·D)
  vBias: Float32Array | null; // (Hkv·D)
  o: Float32Array; // (hidden, H·D)
  postNorm: Float32Array; // (hidden)
  gate: Float32Array; // (I, hidden)
  up: Float32Array; // (I, hidden)
  down: Float32Array; // (hidden, I)
}

export interface ModelWeights {
  embed: Float32Array; // (vocab, hidden)
  layers: LayerWeights[];
  finalNorm: Float32Array; // (hidden)
  lmHead: Float32Array; // (vocab, hidden) — the same array as `embed` when tied
}
