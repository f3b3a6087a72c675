/**
 * The model's position limit and the check every entry point runs before accepting a request
 * (docs/DESIGN.md §7.3).
 *
 *   P = min(max_position_embeddings, sliding window when the model has one)
 *   a request reserves N + M + maxNewTokens positions and must satisfy N + M + maxNewTokens ≤ P
 *
 * Star's phase 2 attends to the whole context, so a sliding window bounds the context exactly like
 * the position limit does.
 */
import { CapacityError } from '@starq/protocol/errors';
import type { ModelConfig } from './types';

/** The two config fields the limit depends on. */
export type PositionConfig = Pick<ModelConfig, 'maxPositionEmbeddings' | 'slidingWindow'>;

/** P: the number of positions the model can attend over (0..P−1). */
export function positionLimit(config: PositionConfig): number {
  const { maxPositionEmbeddings: maxPos, slidingWindow } = config;
  return slidingWindow !== null ? Math.min(maxPos, slidingWindow) : maxPos;
}

/** What sets P, for messages: `sliding window (W)` or `position limit (max_position_embeddings = P)`. */
export function positionLimitSource(config: PositionConfig): string {
  const { maxPositionEmbeddings: maxPos, slidingWindow } = config;
  return slidingWindow !== null && slidingWindow < maxPos ? `sliding window (${slidingWindow})` : `position limit (max_position_embeddings = ${maxPos})`;
}

/** The token counts of one request. */
export interface PositionRequest {
  /** N, context tokens. */
  contextTokens: number;
  /** M, query tokens. */
  queryTokens: number;
  /** K, the most tokens the request may generate. */
  maxNewTokens: number;
}

/** Names of the offending parameter in the caller's vocabulary (CLI flag, JSON field, ...). */
export interface PositionParams {
  /** Blamed when the context and query alone fill P. @defaultValue 'context' */
  context: string;
  /** Blamed when only the generation does not fit. @defaultValue 'max_new_tokens' */
  maxNewTokens: string;
}

/** A request needs more positions than the model has. Code `context_too_long` (422). */
export class ContextTooLongError extends CapacityError {
  constructor(
    readonly request: PositionRequest,
    readonly limit: number,
    param: string,
  ) {
    const { contextTokens: N, queryTokens: M, maxNewTokens: K } = request;
    super(
      'context_too_long',
      `context (${N}) + query (${M}) + max new tokens (${K}) = ${N + M + K} exceeds the model's maximum of ${limit} positions: ` +
        (N + M >= limit ? 'shorten the context or the query' : `lower max new tokens to at most ${limit - N - M}`),
      param,
    );
  }
}

/**
 * Throws {@link ContextTooLongError} unless N + M + K ≤ `limit` (a number, or a model config whose
 * {@link positionLimit} is used). The param is the context's when N + M ≥ P, else max new tokens'.
 */
export function checkPositions(req: PositionRequest, limit: number | PositionConfig, params: Partial<PositionParams> = {}): void {
  const P = typeof limit === 'number' ? limit : positionLimit(limit);
  const { contextTokens: N, queryTokens: M, maxNewTokens: K } = req;
  if (N + M + K <= P) return;
  throw new ContextTooLongError(req, P, N + M >= P ? (params.context ?? 'context') : (params.maxNewTokens ?? 'max_new_tokens'));
}
