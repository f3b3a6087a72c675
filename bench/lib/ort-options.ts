/**
 * ORT session options for benchmark probes. `engineSessionOptions` mirrors what the engine's
 * executor uses (libs/model/src/runtime/executor.ts), so probe timings are comparable with the
 * engine's own: the same intra-op thread count and spinning disabled.
 */
import type * as ort from 'onnxruntime-node';

export function engineSessionOptions(threads: number, spinning = false): ort.InferenceSession.SessionOptions {
  const spin = spinning ? '1' : '0';
  return {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    extra: { session: { intra_op: { allow_spinning: spin }, inter_op: { allow_spinning: spin } } },
  };
}
