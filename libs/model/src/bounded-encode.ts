/**
 * Tokenizing text that may be far too long for the model, at a cost bounded by the model's
 * position limit rather than by the text's size.
 *
 * 1. A text of `c` UTF-16 code units encodes to at least `c / maxCharsPerToken` tokens (see
 *    {@link StarqTokenizer.maxCharsPerToken}): above `limit × maxCharsPerToken` code units it is
 *    refused without tokenizing anything.
 * 2. A longer-than-one-chunk text is first counted chunk by chunk (chunks of
 *    {@link BOUNDED_CHUNK_CHARS} cut at whitespace) and refused as soon as the running count
 *    passes `limit` plus {@link BOUNDARY_SLACK_TOKENS} per chunk boundary (encoding the pieces of a
 *    text apart changes the count only at the cuts: a merge across a cut, a dummy-prefix space).
 * 3. Otherwise the whole text is encoded at once (exactly as an unbounded encode would) and its
 *    length checked against `limit`.
 */
import { CapacityError } from '@starq/protocol/errors';
import type { EncodeOptions } from './tokenizer';

/** Code units per counting chunk. */
export const BOUNDED_CHUNK_CHARS = 16384;
/** Tokens one chunk boundary may add to a chunked count (see step 2 above). */
export const BOUNDARY_SLACK_TOKENS = 32;

/** What {@link encodeWithin} needs of a tokenizer. */
export interface BoundableTokenizer {
  encode(text: string, options?: EncodeOptions): number[];
  readonly maxCharsPerToken: number;
}

export interface BoundedEncodeOptions extends EncodeOptions {
  /** Most tokens accepted (the model's position limit). */
  limit: number;
  /** Request field the text came from (the error's `param`). */
  param: string;
}

/** A text that encodes to more tokens than the limit (HTTP 422, code `context_too_long`). */
export class TextTooLongError extends CapacityError {
  constructor(message: string, param: string) {
    super('context_too_long', message, param);
  }
}

/**
 * `tok.encode(text, o)`, refusing a text with more than `o.limit` tokens early (see the file doc).
 * @throws TextTooLongError when the text needs more than `o.limit` tokens.
 */
export function encodeWithin(tok: BoundableTokenizer, text: string, o: BoundedEncodeOptions): number[] {
  const { limit, param, ...encodeOptions } = o;
  const perToken = tok.maxCharsPerToken;
  if (text.length > limit * perToken) {
    throw new TextTooLongError(
      `${param} has ${text.length} characters; this tokenizer turns at most ${perToken} characters into one token, so it needs more than ${limit} tokens, the model's maximum of positions (nothing was tokenized)`,
      param,
    );
  }
  if (text.length > BOUNDED_CHUNK_CHARS && Number.isFinite(limit)) {
    let counted = 0;
    let cuts = 0;
    for (let at = 0; at < text.length; cuts++) {
      const end = chunkEnd(text, at);
      counted += tok.encode(text.slice(at, end), { ...encodeOptions, addSpecialTokens: false }).length;
      at = end;
      if (counted > limit + BOUNDARY_SLACK_TOKENS * cuts + 1) {
        throw new TextTooLongError(`${param} encodes to more than ${limit} tokens (over ${counted - BOUNDARY_SLACK_TOKENS * cuts} in its first ${at} of ${text.length} characters), the model's maximum of positions`, param);
      }
    }
  }
  const ids = tok.encode(text, encodeOptions);
  if (ids.length > limit) throw new TextTooLongError(`${param} encodes to ${ids.length} tokens, over the model's maximum of ${limit} positions`, param);
  return ids;
}

/** End of the chunk starting at `at`: the last whitespace in its final 1024 code units, never inside a surrogate pair. */
function chunkEnd(text: string, at: number): number {
  let end = at + BOUNDED_CHUNK_CHARS;
  if (end >= text.length) return text.length;
  for (let i = end; i > end - 1024; i--) {
    const c = text.charCodeAt(i);
    if (c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d) return i;
  }
  const c = text.charCodeAt(end - 1);
  if (c >= 0xd800 && c <= 0xdbff) end--;
  return end;
}
