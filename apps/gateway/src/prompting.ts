/**
 * Pure text helpers of the OpenAI routes: chat messages → (context, query) token ids, and stop
 * sequences over streamed text.
 */
import { encodeWithin } from '@starq/model/bounded-encode';
import type { ChatMessage, StarqTokenizer } from '@starq/model/tokenizer';
import { InvalidInputError } from '@starq/protocol';

/**
 * A chat as Star Attention input. The whole conversation is rendered with the model's chat
 * template (plus the assistant-turn opener unless the last message is an assistant prefix) and
 * tokenized once; the tokens of everything before the last user message (rendered alone) are the
 * context, the rest — the last user message and the assistant prefix — is the query. Splitting the
 * one tokenization keeps context ++ query identical to the rendered prompt's tokens; if the two
 * renderings disagree at the boundary, the split moves to their last common token. The context
 * keeps at least one token (BOS with most templates) and the query at least one.
 * A rendering longer than `limit` tokens is refused early (see bounded-encode.ts).
 * @throws TextTooLongError `context_too_long` (param `messages`) above `limit` tokens.
 * @throws InvalidInputError `no_chat_template` (model without a template), `invalid_messages`,
 *   `chat_template_error`, `empty_prompt`.
 */
export function chatToIds(tokenizer: StarqTokenizer, messages: ChatMessage[], limit = Infinity): { contextIds: number[]; queryIds: number[] } {
  const encodeChat = (msgs: ChatMessage[], addGenerationPrompt: boolean) =>
    encodeWithin(tokenizer, tokenizer.applyChatTemplate(msgs, { addGenerationPrompt }), { limit, param: 'messages', addSpecialTokens: false, splitSpecialTokens: false });
  const lastUser = messages.map((m) => m.role).lastIndexOf('user');
  if (lastUser < 0) throw new InvalidInputError('invalid_messages', 'messages must contain at least one user message (its text is the query)', 'messages');
  const endsWithAssistant = messages[messages.length - 1].role === 'assistant';
  const full = encodeChat(messages, !endsWithAssistant);
  if (full.length < 2) throw new InvalidInputError('empty_prompt', `the rendered chat has ${full.length} token(s); need at least 2 (context and query)`, 'messages');
  let head: number[] = [];
  if (lastUser > 0) head = encodeChat(messages.slice(0, lastUser), false);
  else {
    try {
      head = encodeChat([], false);
    } catch {
      head = []; // templates that index messages[0]
    }
  }
  let split = 0;
  while (split < head.length && split < full.length && head[split] === full[split]) split++;
  split = Math.min(Math.max(split, 1), full.length - 1);
  return { contextIds: full.slice(0, split), queryIds: full.slice(split) };
}

/** Content of a chat message: a string or a list of text parts (joined). */
export function messageText(content: string | { type: 'text'; text: string }[]): string {
  return typeof content === 'string' ? content : content.map((p) => p.text).join('');
}

/**
 * Stop sequences over text that arrives in pieces. `push` returns the text that is safe to emit
 * (never any part of a stop sequence) and whether a stop sequence was reached; text that could be
 * the beginning of a stop sequence is held back until the next piece decides it.
 */
export class StopMatcher {
  private pending = '';
  private stoppedAt = false;

  constructor(private readonly stops: string[]) {}

  get stopped(): boolean {
    return this.stoppedAt;
  }

  push(delta: string): { text: string; stopped: boolean } {
    if (this.stoppedAt) return { text: '', stopped: true };
    if (this.stops.length === 0) return { text: delta, stopped: false };
    this.pending += delta;
    let cut = -1;
    for (const s of this.stops) {
      const i = this.pending.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      const text = this.pending.slice(0, cut);
      this.pending = '';
      this.stoppedAt = true;
      return { text, stopped: true };
    }
    let hold = 0;
    for (const s of this.stops) {
      for (let k = Math.min(s.length - 1, this.pending.length); k > hold; k--) {
        if (this.pending.endsWith(s.slice(0, k))) {
          hold = k;
          break;
        }
      }
    }
    const text = this.pending.slice(0, this.pending.length - hold);
    this.pending = this.pending.slice(this.pending.length - hold);
    return { text, stopped: false };
  }

  /** The end of the text: whatever was held back. */
  flush(): string {
    const t = this.stoppedAt ? '' : this.pending;
    this.pending = '';
    return t;
  }
}
