/**
 * A RULER prompt as Star Attention input, and fitting it to a target token length.
 *
 * A prompt has three texts: the context (haystack with needles, or the word list), the question and
 * the answer prefix. It is rendered to one string and tokenized once:
 * - plain (models without a chat template): `context + " " + question + " " + answerPrefix`,
 *   encoded with the tokenizer's special tokens (BOS first when the tokenizer adds one);
 * - chat (models with a template): the template applied to one user message
 *   `context + " " + question` with the assistant-turn opener, followed by the answer prefix
 *   (RULER puts the answer prefix after the opener), encoded without adding special tokens (the
 *   template supplies them) and with special-token strings matched.
 * Context ids = the tokens of the rendered text up to the start of the question (the longest common
 * prefix of that head's tokenization and the whole prompt's, at least 1 token); query ids = the
 * rest. So context ++ query is exactly the tokenization of the prompt, and its length is what RULER
 * calls the input length.
 */
import { InvalidInputError } from '@starq/protocol/errors';

export interface PromptTexts {
  context: string;
  question: string;
  answerPrefix: string;
}

export interface PromptIds {
  contextIds: number[];
  queryIds: number[];
}

/** What the prompt formatter needs from a tokenizer (StarqTokenizer has it). */
export interface RulerTokenizer {
  encode(text: string, opts?: { addSpecialTokens?: boolean; splitSpecialTokens?: boolean }): number[];
  readonly hasChatTemplate: boolean;
  applyChatTemplate(messages: { role: 'user' | 'assistant' | 'system'; content: string }[], opts?: { addGenerationPrompt?: boolean }): string;
}

export class PromptFormat {
  /** `chat` when the tokenizer has a chat template, else `plain`. */
  readonly kind: 'plain' | 'chat';

  constructor(private readonly tokenizer: RulerTokenizer) {
    this.kind = tokenizer.hasChatTemplate ? 'chat' : 'plain';
  }

  /** The rendered prompt and the character offset where the question starts. */
  render(p: PromptTexts): { text: string; questionAt: number } {
    if (this.kind === 'plain') {
      return { text: `${p.context} ${p.question} ${p.answerPrefix}`, questionAt: p.context.length + 1 };
    }
    const user = `${p.context} ${p.question}`;
    const rendered = this.tokenizer.applyChatTemplate([{ role: 'user', content: user }], { addGenerationPrompt: true });
    const at = rendered.indexOf(user);
    if (at < 0) throw new InvalidInputError('chat_template_error', 'the chat template does not reproduce the user message verbatim; cannot find where the question starts', 'model');
    return { text: rendered + p.answerPrefix, questionAt: at + p.context.length + 1 };
  }

  private encode(text: string): number[] {
    return this.kind === 'plain'
      ? this.tokenizer.encode(text, { addSpecialTokens: true, splitSpecialTokens: true })
      : this.tokenizer.encode(text, { addSpecialTokens: false, splitSpecialTokens: false });
  }

  /** Total tokens of the prompt (context + query). */
  countTokens(p: PromptTexts): number {
    return this.encode(this.render(p).text).length;
  }

  /** Context and query ids (see the module doc). */
  toIds(p: PromptTexts): PromptIds {
    const { text, questionAt } = this.render(p);
    const full = this.encode(text);
    if (full.length < 2) throw new InvalidInputError('length_too_short', `the prompt has ${full.length} token(s); need a context and a query`, 'lengths');
    const head = this.encode(text.slice(0, questionAt).trimEnd());
    let split = 0;
    while (split < head.length && split < full.length && head[split] === full[split]) split++;
    split = Math.min(Math.max(split, 1), full.length - 1);
    return { contextIds: full.slice(0, split), queryIds: full.slice(split) };
  }
}

/**
 * The largest `n` in [0, maxN] with `count(n) ≤ target`, by binary search (count is assumed
 * non-decreasing in n, as adding filler never removes tokens), or -1 when even `count(0)` exceeds the
 * target. Probes about log2(maxN) values.
 */
export function largestFitting(count: (n: number) => number, target: number, maxN: number): number {
  if (count(0) > target) return -1;
  let lo = 0; // fits
  let hi = maxN + 1; // first n known not to fit (maxN + 1 = unknown above maxN)
  while (hi - lo > 1) {
    const mid = lo + Math.floor((hi - lo) / 2);
    if (count(mid) <= target) lo = mid;
    else hi = mid;
  }
  return lo;
}
