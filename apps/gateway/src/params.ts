/**
 * Request field names: the libraries name parameters in snake_case (`context_ids`); each API
 * reports errors under its own field names. These maps and {@link relabel} translate.
 */
import { StarqError } from '@starq/protocol';

/** Library param names → the native API's field names. */
export const NATIVE_PARAMS: Record<string, string> = {
  context_ids: 'contextIds',
  query_ids: 'queryIds',
  block_size: 'blockSize',
  anchor_size: 'anchorSize',
  top_k: 'topK',
  top_p: 'topP',
  max_new_tokens: 'maxNewTokens',
};

const STAR_PARAMS: Record<string, string> = { block_size: 'star.block_size', anchor_size: 'star.anchor_size', hosts: 'star.hosts', mode: 'star.mode' };
/** Library param names → /v1/completions field names. */
export const COMPLETION_PARAMS: Record<string, string> = { ...STAR_PARAMS, context: 'prompt', context_ids: 'prompt', query_ids: 'query' };
/** Library param names → /v1/chat/completions field names. */
export const CHAT_PARAMS: Record<string, string> = { ...STAR_PARAMS, context: 'messages', prompt: 'messages', query: 'messages' };

/** Re-labels a StarqError's `param` through `map` (libraries name params in snake_case). */
export function relabel(e: unknown, map: Record<string, string>): unknown {
  if (e instanceof StarqError && e.param !== null && map[e.param] !== undefined) {
    return new StarqError(e.code, e.message, { param: map[e.param], status: e.status });
  }
  return e;
}

export async function withParams<T>(map: Record<string, string>, fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw relabel(e, map);
  }
}

/** Synchronous {@link withParams}. */
export function withParamsSync<T>(map: Record<string, string>, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw relabel(e, map);
  }
}
