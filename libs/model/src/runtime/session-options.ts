/**
 * The one source of onnxruntime session options: the engine's sessions, the MatMul roofline and the
 * benchmark probes all build theirs here, so every timing compares like with like.
 */
import type * as ort from 'onnxruntime-node';
import { InvalidInputError } from '@starq/protocol/errors';
import { executionProvidersFor, type ExecutionProviderChoice } from './execution-provider';

export interface SessionSettings {
  /** Intra-op threads per session. @defaultValue 1 */
  threads?: number;
  /** ORT graph optimization level. @defaultValue 'all' */
  graphOptimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /**
   * Let idle intra-/inter-op threads spin. Several sessions share few cores, and spinning threads
   * steal the cores from each other. @defaultValue false
   */
  spinning?: boolean;
  /**
   * Execution provider, resolved beforehand (`resolveExecutionProvider`: a `cuda` request is
   * checked there, so that a missing library is one clear startup error). `cpu` leaves ORT's
   * default. @defaultValue `{ provider: 'cpu', cudaDeviceId: 0 }`
   */
  executionProvider?: ExecutionProviderChoice;
}

/** Defaults of `SessionSettings` (see each field's doc). */
export const SESSION_DEFAULTS: Readonly<Required<SessionSettings>> = {
  threads: 1,
  graphOptimization: 'all',
  spinning: false,
  executionProvider: { provider: 'cpu', cudaDeviceId: 0 },
};

/**
 * ORT session options from settings: `threads` intra-op threads, one inter-op thread, sequential
 * execution, the given graph optimization, spinning off unless asked for, and the execution
 * provider (CUDA first with CPU for the ops it lacks, or ORT's default CPU provider).
 */
export function sessionOptions(settings: SessionSettings = {}): ort.InferenceSession.SessionOptions {
  const s = { ...SESSION_DEFAULTS, ...definedOnly(settings) };
  if (!Number.isSafeInteger(s.threads) || s.threads < 1) throw new InvalidInputError('invalid_session_options', `threads must be an integer ≥ 1, got ${String(s.threads)}`, 'threads');
  const spin = s.spinning ? '1' : '0';
  return {
    intraOpNumThreads: s.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: s.graphOptimization,
    extra: { session: { intra_op: { allow_spinning: spin }, inter_op: { allow_spinning: spin } } },
    ...(s.executionProvider.provider === 'cpu' ? {} : { executionProviders: executionProvidersFor(s.executionProvider) }),
  };
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
