/**
 * Intake: a raw request body → the validated body and its token ids. Pure and synchronous; runs
 * in the intake worker threads (intake-pool.ts), never on the gateway's event loop, because
 * parsing a 16 MiB body and tokenizing long text take seconds.
 *
 * Order of checks (each a 4xx with a code and the offending field):
 * 1. the bytes are UTF-8 (http.ts parseJsonObject) (`invalid_utf8`), the text is JSON (`invalid_json`), an object
 *    (`invalid_body`), and no string in it holds a lone UTF-16 surrogate (`invalid_unicode`, from
 *    `\ud800`-style escapes);
 * 2. token-id arrays longer than the model's positions are refused before they are validated
 *    (`context_too_long`, 422);
 * 3. the body schema (schemas.ts);
 * 4. text is tokenized with a bound (bounded-encode.ts): text that cannot fit the model's
 *    positions is refused before most of it is tokenized (`context_too_long`, 422).
 *
 * The result carries the body without its prompt fields (they can be megabytes; the caller needs
 * the small ones) and the ids as Int32Arrays (transferred, not copied, back to the event loop).
 */
import { encodeWithin } from '@starq/model/bounded-encode';
import { resolvePrompt, type PromptEncoder, type PromptInput } from '@starq/model/prompt';
import type { StarqTokenizer } from '@starq/model/tokenizer';
import { CapacityError, InvalidInputError } from '@starq/protocol';
import { parseJsonObject } from '../http';
import { COMPLETION_PARAMS, NATIVE_PARAMS, withParamsSync } from '../params';
import { chatToIds, messageText } from '../prompting';
import { ChatBody, CompletionBody, JobBody, parseBody } from '../schemas';

export type IntakeRoute = 'job' | 'completion' | 'chat';

/** What intake knows of the model. */
export interface IntakeModel {
  tokenizer: StarqTokenizer | null;
  vocabSize: number;
  /** The model's position limit. */
  maxPositions: number;
}

export interface IntakeResult {
  /** The validated body without its prompt fields (`prompt`, `context`, `query`, ids, `messages`). */
  body: Record<string, unknown>;
  contextIds: Int32Array;
  queryIds: Int32Array;
  /** The field the context came from (capacity errors point at it). */
  contextParam: string;
}

const PROMPT_FIELDS: Record<IntakeRoute, string[]> = {
  job: ['prompt', 'context', 'query', 'contextIds', 'queryIds'],
  completion: ['prompt', 'query'],
  chat: ['messages'],
};

/** One body through the checks in the file doc. */
export function intake(route: IntakeRoute, bytes: Uint8Array, m: IntakeModel): IntakeResult {
  const raw = parseJsonObject(bytes);
  let ids: { contextIds: number[]; queryIds: number[] };
  let contextParam: string;
  let body: Record<string, unknown>;
  if (route === 'job') {
    refuseLongIdArrays(raw, ['contextIds', 'queryIds'], m.maxPositions);
    const b = parseBody(JobBody, raw);
    contextParam = b.prompt !== undefined ? 'prompt' : b.contextIds !== undefined ? 'contextIds' : 'context';
    const input: PromptInput = { prompt: b.prompt, context: b.context, query: b.query, contextIds: b.contextIds, queryIds: b.queryIds };
    ids = withParamsSync(NATIVE_PARAMS, () => resolvePrompt(input, boundedEncoder(m, input), m.vocabSize));
    body = b;
  } else if (route === 'completion') {
    refuseLongIdArrays(raw, ['prompt', 'query'], m.maxPositions);
    if (Array.isArray(raw.prompt) && raw.prompt.length === 1 && Array.isArray(raw.prompt[0])) refuseLongIdArrays({ prompt: raw.prompt[0] }, ['prompt'], m.maxPositions);
    const b = parseBody(CompletionBody, raw);
    contextParam = 'prompt';
    const prompt = Array.isArray(b.prompt) && b.prompt.length === 1 && (typeof b.prompt[0] === 'string' || Array.isArray(b.prompt[0])) ? (b.prompt[0] as string | number[]) : (b.prompt as string | number[]);
    const query = b.query ?? undefined;
    if (query !== undefined && typeof query !== typeof prompt) {
      throw new InvalidInputError('invalid_prompt', 'prompt and query must both be text or both be token ids', 'query');
    }
    ids = withParamsSync(COMPLETION_PARAMS, () => {
      if (typeof prompt === 'string') {
        const input: PromptInput = query === undefined ? { prompt } : { context: prompt, query: query as string };
        return resolvePrompt(input, boundedEncoder(m, input), m.vocabSize);
      }
      if (query !== undefined) return resolvePrompt({ contextIds: prompt, queryIds: query as number[] }, null, m.vocabSize);
      if (prompt.length < 2) throw new InvalidInputError('empty_context', 'a token-id prompt needs at least 2 tokens (context and query)', 'prompt');
      return resolvePrompt({ contextIds: prompt.slice(0, -1), queryIds: prompt.slice(-1) }, null, m.vocabSize);
    });
    body = b;
  } else {
    const b = parseBody(ChatBody, raw);
    contextParam = 'messages';
    if (!m.tokenizer) throw new InvalidInputError('no_tokenizer', 'this model has no tokenizer: chat needs one', 'messages');
    ids = chatToIds(
      m.tokenizer,
      b.messages.map((x) => ({ role: x.role, content: messageText(x.content) })),
      m.maxPositions,
    );
    body = b;
  }
  const small: Record<string, unknown> = { ...body };
  for (const k of PROMPT_FIELDS[route]) delete small[k];
  return { body: small, contextIds: Int32Array.from(ids.contextIds), queryIds: Int32Array.from(ids.queryIds), contextParam };
}

/** Token-id arrays longer than the model's positions are refused before the schema looks at each id. */
function refuseLongIdArrays(raw: Record<string, unknown>, fields: string[], maxPositions: number): void {
  for (const f of fields) {
    const v = raw[f];
    if (Array.isArray(v) && v.length > maxPositions && typeof v[0] !== 'string') {
      throw new CapacityError('context_too_long', `${f} has ${v.length} token ids, over the model's maximum of ${maxPositions} positions`, f);
    }
  }
}

/** The model's tokenizer, refusing any text that needs more than the model's positions. */
function boundedEncoder(m: IntakeModel, input: PromptInput): PromptEncoder | null {
  const tok = m.tokenizer;
  if (!tok) return null;
  return {
    encode: (text, opts) => encodeWithin(tok, text, { ...opts, limit: m.maxPositions, param: text === input.prompt ? 'prompt' : text === input.context ? 'context' : 'query' }),
  };
}
