/**
 * Token generation shared by every attention mode. A mode supplies one function — "run these new
 * tokens at these positions and give me the last row's logits" — and this loop does sampling,
 * stopping and timing. Global mode (exact causal attention over context ++ query) is implemented
 * here on one `ModelEngine`; Star and Ring supply their own step functions.
 */
import { InvalidInputError } from '@starq/protocol/errors';
import type { ModelEngine } from './runtime/engine';
import { Rng, sample, validateSamplingParams } from './sampling';

export interface SamplingOptions {
  /** 0 = greedy. @defaultValue 0 */
  temperature: number;
  /** 0 = off. @defaultValue 0 */
  topK: number;
  /** 1 = off. @defaultValue 1 */
  topP: number;
  /** PRNG seed: the same seed gives the same tokens. @defaultValue 0 */
  seed: number;
}

export const DEFAULT_SAMPLING: SamplingOptions = { temperature: 0, topK: 0, topP: 1, seed: 0 };

export interface GenerateOptions {
  maxNewTokens: number;
  sampling: SamplingOptions;
  /** Token ids that end generation (EOS; the stop token itself is not returned). */
  stopIds: number[];
  /** Keep generating through stop ids until maxNewTokens. @defaultValue false */
  ignoreEos?: boolean;
  /** Called for every generated token, in order. */
  onToken?: (id: number, index: number) => void;
  /** Called when phase 1 (context encoding) progresses: done/total units. */
  onProgress?: (done: number, total: number) => void;
  /**
   * Global mode: encode the context in forward passes of at most this many tokens (each chunk
   * attends to the cache of the previous ones), reporting progress after each. @defaultValue 2048
   */
  prefillChunkTokens?: number;
}

export interface Timings {
  phase1Ms: number;
  phase2Ms: number;
  firstTokenMs: number;
  decodeTokensPerSec: number;
}

export interface GenerationResult {
  generatedIds: number[];
  finishReason: 'length' | 'stop';
  timings: Timings;
}

/**
 * Phase 2 of any mode. `step(ids, positions)` runs new tokens through the model (appending their
 * K/V wherever the mode keeps them) and returns the logits of the last row.
 */
export type StepFn = (ids: Int32Array, positions: Int32Array) => Promise<Float32Array>;

/**
 * Run the query chunk at positions N..N+M−1, then decode one token at a time.
 * `phase1Ms` is filled in by the caller; `start` is when phase 2 began.
 */
export async function decodeLoop(step: StepFn, contextLen: number, queryIds: number[], opts: GenerateOptions): Promise<Omit<GenerationResult, 'timings'> & { timings: Omit<Timings, 'phase1Ms'> }> {
  validateGenerateOptions(opts);
  const start = performance.now();
  const rng = new Rng(opts.sampling.seed);
  const stop = new Set(opts.ignoreEos ? [] : opts.stopIds);
  const M = queryIds.length;
  let logits = await step(Int32Array.from(queryIds), Int32Array.from(queryIds, (_, i) => contextLen + i));
  const generated: number[] = [];
  let finishReason: 'length' | 'stop' = 'length';
  let firstTokenMs = 0;
  let decodeStart = 0;
  while (generated.length < opts.maxNewTokens) {
    const id = sample(logits, opts.sampling, rng);
    if (generated.length === 0) {
      firstTokenMs = performance.now() - start;
      decodeStart = performance.now();
    }
    if (stop.has(id)) {
      finishReason = 'stop';
      break;
    }
    generated.push(id);
    opts.onToken?.(id, generated.length - 1);
    if (generated.length >= opts.maxNewTokens) break;
    const pos = contextLen + M + generated.length - 1;
    logits = await step(Int32Array.of(id), Int32Array.of(pos));
  }
  const end = performance.now();
  const decodeSteps = Math.max(0, generated.length - 1);
  return {
    generatedIds: generated,
    finishReason,
    timings: {
      phase2Ms: end - start,
      firstTokenMs,
      decodeTokensPerSec: decodeSteps > 0 ? decodeSteps / ((end - decodeStart) / 1000) : 0,
    },
  };
}

export function validateGenerateOptions(opts: GenerateOptions): void {
  if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 0) {
    throw new InvalidInputError('invalid_max_new_tokens', `max new tokens must be an integer ≥ 0, got ${opts.maxNewTokens}`, 'max_new_tokens');
  }
  validateSamplingParams(opts.sampling);
  const c = opts.prefillChunkTokens;
  if (c !== undefined && (!Number.isInteger(c) || c < 1)) {
    throw new InvalidInputError('invalid_prefill_chunk', `prefill chunk must be an integer ≥ 1, got ${c}`, 'prefill_chunk_tokens');
  }
}

/**
 * Global mode: ordinary causal attention over context ++ query on one engine. Phase 1 encodes the
 * context into a fresh cache; phase 2 runs the query and the generated tokens on the same cache.
 */
export async function generateGlobal(engine: ModelEngine, contextIds: number[], queryIds: number[], opts: GenerateOptions): Promise<GenerationResult> {
  validateGenerateOptions(opts);
  const cacheId = `global-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`;
  const N = contextIds.length;
  const reserve = N + queryIds.length + opts.maxNewTokens;
  try {
    const t0 = performance.now();
    await engine.createCache(cacheId, reserve);
    const chunk = opts.prefillChunkTokens ?? 2048;
    for (let s = 0; s < N; s += chunk) {
      const e = Math.min(N, s + chunk);
      const ids = Int32Array.from(contextIds.slice(s, e));
      await engine.forward({ cacheId, ids, positions: Int32Array.from(ids, (_, i) => s + i), logits: 'none' });
      opts.onProgress?.(e, N);
    }
    const phase1Ms = performance.now() - t0;
    const step: StepFn = async (ids, positions) => (await engine.forward({ cacheId, ids, positions, logits: 'last' }))!;
    const r = await decodeLoop(step, N, queryIds, opts);
    return { ...r, timings: { phase1Ms, ...r.timings } };
  } finally {
    await engine.dropCache(cacheId).catch(() => undefined);
  }
}
