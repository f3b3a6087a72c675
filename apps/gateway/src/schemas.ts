/**
 * Request bodies, validated with zod. A bad body becomes one 400 error naming the first bad field
 * in `param` (a path such as `contextIds[3]`, `messages[0].content`, `star.block_size`); the
 * message lists every problem found.
 *
 * Codes: `missing_field`, `unknown_field` (native API only: the OpenAI routes ignore fields they
 * do not know, as OpenAI-compatible servers do), `invalid_type`, `invalid_value`.
 */
import { z } from 'zod';
import { HttpError } from './http';

const MAX_INT = 2 ** 31 - 1;

const int = (min: number, what: string) =>
  z
    .number({ invalid_type_error: `must be an integer (${what})` })
    .int(`must be an integer (${what})`)
    .min(min, `must be ≥ ${min} (${what})`)
    .max(MAX_INT, `must be ≤ ${MAX_INT} (${what})`);
const tokenId = z.number({ invalid_type_error: 'token ids must be integers' }).int('token ids must be integers').min(0, 'token ids must be ≥ 0').max(MAX_INT, 'token id too large');
const temperature = z.number({ invalid_type_error: 'must be a number ≥ 0' }).finite().min(0, 'must be ≥ 0 (0 = greedy)').max(1e6, 'must be ≤ 1e6');
const topP = z.number({ invalid_type_error: 'must be a number in (0, 1]' }).gt(0, 'must be in (0, 1]').max(1, 'must be in (0, 1]');
const topK = int(0, '0 = off');
const seed = z
  .number({ invalid_type_error: 'must be an integer' })
  .int('must be an integer')
  .refine((n) => Number.isSafeInteger(n), 'must be a safe integer (|seed| < 2^53)');
const mode = z.enum(['star', 'global', 'ring'], { errorMap: () => ({ message: 'must be one of star, global, ring' }) });

/** POST /v1/jobs (camelCase field names, like the rest of the native API). */
export const JobBody = z
  .object({
    model: z.string().min(1, 'must not be empty').optional(),
    prompt: z.string().optional(),
    context: z.string().optional(),
    contextIds: z.array(tokenId).optional(),
    query: z.string().optional(),
    queryIds: z.array(tokenId).optional(),
    mode: mode.default('star'),
    blockSize: int(1, 'tokens per context block').optional(),
    anchorSize: int(0, 'anchor tokens').optional(),
    hosts: int(1, 'host count').optional(),
    maxNewTokens: int(1, 'tokens to generate').default(32),
    temperature: temperature.default(0),
    topP: topP.default(1),
    topK: topK.default(0),
    seed: seed.default(0),
    ignoreEos: z.boolean().default(false),
    cache: z.boolean().default(true),
  })
  .strict();
export type JobBody = z.infer<typeof JobBody>;

const stop = z.union([z.string(), z.array(z.string()).max(4, 'at most 4 stop sequences')]).nullish();

/** The `star` extension object of the OpenAI routes. */
const Star = z
  .object({
    mode: mode.optional(),
    block_size: int(1, 'tokens per context block').nullish(),
    anchor_size: int(0, 'anchor tokens').nullish(),
    hosts: int(1, 'host count').nullish(),
    cache: z.boolean().nullish(),
  })
  .strict()
  .nullish();

/** Fields OpenAI clients may send that starq cannot honour unless they have their neutral value. */
const common = {
  model: z.string({ required_error: 'is required' }).min(1, 'must not be empty'),
  max_tokens: int(1, 'tokens to generate').nullish(),
  temperature: temperature.nullish(),
  top_p: topP.nullish(),
  top_k: z.number().int().min(-1).max(MAX_INT).nullish(), // vLLM-style extension; -1 / 0 = off
  seed: seed.nullish(),
  stop,
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).passthrough().nullish(),
  n: z.literal(1, { errorMap: () => ({ message: 'only n = 1 is supported' }) }).nullish(),
  presence_penalty: z.literal(0, { errorMap: () => ({ message: 'penalties are not supported (use 0)' }) }).nullish(),
  frequency_penalty: z.literal(0, { errorMap: () => ({ message: 'penalties are not supported (use 0)' }) }).nullish(),
  ignore_eos: z.boolean().nullish(),
  user: z.string().nullish(),
  star: Star,
};

/** POST /v1/completions. `prompt` is text or token ids; `query` (extension) splits context/query. */
export const CompletionBody = z
  .object({
    ...common,
    prompt: z.union([z.string(), z.array(tokenId).min(1, 'must not be empty'), z.array(z.string()).length(1, 'only one prompt per request is supported'), z.array(z.array(tokenId)).length(1, 'only one prompt per request is supported')], {
      errorMap: () => ({ message: 'must be a string or an array of token ids' }),
    }),
    query: z.union([z.string(), z.array(tokenId).min(1, 'must not be empty')], { errorMap: () => ({ message: 'must be a string or an array of token ids' }) }).nullish(),
    echo: z.literal(false, { errorMap: () => ({ message: 'echo is not supported' }) }).nullish(),
    logprobs: z.literal(0, { errorMap: () => ({ message: 'logprobs are not supported' }) }).nullish(),
    best_of: z.literal(1, { errorMap: () => ({ message: 'only best_of = 1 is supported' }) }).nullish(),
    suffix: z.null({ invalid_type_error: 'suffix is not supported' }).nullish(),
  })
  .passthrough();
export type CompletionBody = z.infer<typeof CompletionBody>;

const TextPart = z.object({ type: z.literal('text'), text: z.string() }).passthrough();
const Message = z
  .object({
    role: z.enum(['system', 'user', 'assistant', 'developer', 'tool'], { errorMap: () => ({ message: 'must be one of system, user, assistant, developer, tool' }) }),
    content: z.union([z.string(), z.array(TextPart, { invalid_type_error: 'must be a string or a list of text parts' })], { errorMap: () => ({ message: 'must be a string or a list of {"type":"text","text"} parts' }) }),
    name: z.string().nullish(),
  })
  .passthrough();

/** POST /v1/chat/completions. */
export const ChatBody = z
  .object({
    ...common,
    messages: z.array(Message, { required_error: 'is required' }).min(1, 'must contain at least one message'),
    max_completion_tokens: int(1, 'tokens to generate').nullish(),
    logprobs: z.literal(false, { errorMap: () => ({ message: 'logprobs are not supported' }) }).nullish(),
    tools: z.array(z.unknown()).max(0, 'tools are not supported').nullish(),
  })
  .passthrough();
export type ChatBody = z.infer<typeof ChatBody>;

function pathString(path: (string | number)[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${p}` : p;
  return out;
}

/** Parses `body` with `schema` or throws one 400 HttpError naming the first bad field. */
export function parseBody<S extends z.ZodTypeAny>(schema: S, body: unknown): z.infer<S> {
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const described = r.error.issues.map((i) => describe(i));
  const first = described[0];
  const message = described.length === 1 ? first.message : `${described.length} problems: ${described.map((d) => d.message).join('; ')}`;
  throw new HttpError(400, first.code, message, first.param);
}

function describe(i: z.ZodIssue): { code: string; param: string; message: string } {
  if (i.code === z.ZodIssueCode.unrecognized_keys) {
    const param = pathString([...i.path, i.keys[0]]);
    return { code: 'unknown_field', param, message: `unknown field${i.keys.length > 1 ? 's' : ''} ${i.keys.map((k) => JSON.stringify(pathString([...i.path, k]))).join(', ')}` };
  }
  const param = pathString(i.path) || 'body';
  if (i.code === z.ZodIssueCode.invalid_type) {
    if (i.received === 'undefined') return { code: 'missing_field', param, message: `${param} is required` };
    return { code: 'invalid_type', param, message: `${param} must be of type ${i.expected}, got ${i.received}` };
  }
  if (i.code === z.ZodIssueCode.invalid_union) {
    return { code: 'invalid_type', param, message: `${param} ${i.message}` };
  }
  return { code: 'invalid_value', param, message: `${param} ${i.message}` };
}
