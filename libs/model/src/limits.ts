/**
 * The model's position budget: how many positions one request may use, and the check every entry
 * point runs before any engine starts.
 */
import { CapacityError } from '@starq/protocol/errors';
import type { ModelConfig } from './types';

/** The most positions a request may use: `max_position_embeddings`, or the sliding window when smaller. */
export function positionLimit(config: Pick<ModelConfig, 'maxPositionEmbeddings' | 'slidingWindow'>): number {
  return config.slidingWindow !== null ? Math.min(config.maxPositionEmbeddings, config.slidingWindow) : config.maxPositionEmbeddings;
}

/** The sizes of one request, in tokens. */
export interface PositionBudget {
  contextTokens: number;
  queryTokens: number;
  maxNewTokens: number;
}

/** Names of the parameters an over-budget request blames (CLI flags or JSON fields). */
export interface PositionBudgetParams {
  /** Blamed when context + query alone reach the limit. @defaultValue 'context' */
  context?: string;
  /** Blamed otherwise. @defaultValue 'maxNewTokens' */
  maxNewTokens?: string;
}

/**
 * Throws `CapacityError('context_too_long')` when context + query + max new tokens exceeds
 * `maxPositions`, naming all four numbers ("context (N) + query (M) + max new tokens (K) = T tokens
 * exceeds the model's maximum of P positions") and blaming the context when context + query alone
 * reach the limit, the generation length otherwise.
 */
export function checkPositionBudget(b: PositionBudget, maxPositions: number, params: PositionBudgetParams = {}): void {
  const { contextTokens: N, queryTokens: M, maxNewTokens: K } = b;
  const total = N + M + K;
  if (total <= maxPositions) return;
  throw new CapacityError(
    'context_too_long',
    `context (${N}) + query (${M}) + max new tokens (${K}) = ${total} tokens exceeds the model's maximum of ${maxPositions} positions`,
    N + M >= maxPositions ? (params.context ?? 'context') : (params.maxNewTokens ?? 'maxNewTokens'),
  );
}
