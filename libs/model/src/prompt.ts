/**
 * Turning user input into (context ids, query ids), the same way for the CLI and the HTTP API.
 *
 * - `prompt` alone: the encoded prompt (with BOS when the tokenizer adds it); its last token is the
 *   query and everything before it the context.
 * - `context` + `query`: the context is encoded with special tokens (BOS), the query without.
 * - `contextIds` + `queryIds`: used verbatim (no BOS added), checked against the vocabulary.
 */
import { InvalidInputError } from '@starq/protocol/errors';

export interface PromptInput {
  prompt?: string;
  context?: string;
  query?: string;
  contextIds?: number[];
  queryIds?: number[];
}

export interface PromptTokens {
  contextIds: number[];
  queryIds: number[];
}

export interface PromptEncoder {
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
}

export function resolvePrompt(input: PromptInput, tokenizer: PromptEncoder | null, vocabSize: number): PromptTokens {
  const given = (['prompt', 'context', 'query', 'contextIds', 'queryIds'] as const).filter((k) => input[k] !== undefined);
  const kinds = [input.prompt !== undefined, input.context !== undefined || input.query !== undefined, input.contextIds !== undefined || input.queryIds !== undefined];
  if (kinds.filter(Boolean).length !== 1) {
    throw new InvalidInputError(
      'invalid_prompt',
      given.length === 0
        ? 'no input: give a prompt, or a context and a query, or context ids and query ids'
        : `give exactly one of: prompt | context + query | context ids + query ids (got ${given.join(', ')})`,
      given[1] ?? 'prompt',
    );
  }
  let out: PromptTokens;
  if (input.prompt !== undefined) {
    if (input.prompt.length === 0) throw new InvalidInputError('empty_prompt', 'the prompt is empty', 'prompt');
    const ids = needTokenizer(tokenizer, 'prompt').encode(input.prompt, { addSpecialTokens: true });
    if (ids.length === 0) throw new InvalidInputError('empty_prompt', 'the prompt encodes to no tokens', 'prompt');
    out = { contextIds: ids.slice(0, -1), queryIds: ids.slice(-1) };
  } else if (input.contextIds !== undefined || input.queryIds !== undefined) {
    if (!input.queryIds || input.queryIds.length === 0) throw new InvalidInputError('empty_query', 'query ids are required (at least one token)', 'query_ids');
    out = { contextIds: input.contextIds ?? [], queryIds: input.queryIds };
  } else {
    if (input.query === undefined || input.query.length === 0) throw new InvalidInputError('empty_query', 'the query is empty', 'query');
    if (input.context === undefined || input.context.length === 0) throw new InvalidInputError('empty_context', 'the context is empty', 'context');
    const tok = needTokenizer(tokenizer, 'context');
    out = { contextIds: tok.encode(input.context, { addSpecialTokens: true }), queryIds: tok.encode(input.query, { addSpecialTokens: false }) };
    if (out.queryIds.length === 0) throw new InvalidInputError('empty_query', 'the query encodes to no tokens', 'query');
  }
  checkIds(out.contextIds, vocabSize, input.contextIds ? 'context_ids' : 'context');
  checkIds(out.queryIds, vocabSize, input.queryIds ? 'query_ids' : 'query');
  return out;
}

function needTokenizer(t: PromptEncoder | null, param: string): PromptEncoder {
  if (!t) throw new InvalidInputError('no_tokenizer', 'this model has no tokenizer: pass token ids instead of text', param);
  return t;
}

export function checkIds(ids: number[], vocabSize: number, param: string): void {
  ids.forEach((id, i) => {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new InvalidInputError('invalid_token_id', `token id ${id} at index ${i} is outside the vocabulary [0, ${vocabSize})`, param);
    }
  });
}
