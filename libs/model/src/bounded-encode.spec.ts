/**
 * encodeWithin: the same ids as an unbounded encode for text that fits; text that cannot fit is
 * refused having tokenized little or none of it (counted through a wrapper around the tokenizer).
 */
import { BOUNDED_CHUNK_CHARS, encodeWithin, type BoundableTokenizer } from './bounded-encode';
import { randomCheckpointTokenizer } from './synthetic/random-checkpoint';
import { StarqTokenizer } from './tokenizer';

const { tokenizer: tj, config } = randomCheckpointTokenizer(128);
const tok = StarqTokenizer.fromFiles({ tokenizer: tj, tokenizerConfig: config });

/** The tokenizer, counting the characters it was asked to encode. */
function counting(maxChars = tok.maxCharsPerToken): BoundableTokenizer & { chars: number } {
  const c = {
    chars: 0,
    maxCharsPerToken: maxChars,
    encode: (text: string, o?: { addSpecialTokens?: boolean }) => {
      c.chars += text.length;
      return tok.encode(text, o);
    },
  };
  return c;
}

const words = (n: number) => Array.from({ length: n }, (_, i) => ['the', 'cat', 'sat', 'on', 'a', 'mat'][i % 6]).join(' ');

describe('encodeWithin', () => {
  it('gives the unbounded ids for text that fits', () => {
    const text = words(300);
    expect(encodeWithin(tok, text, { limit: 4096, param: 'context' })).toEqual(tok.encode(text));
    expect(encodeWithin(tok, text, { limit: 4096, param: 'query', addSpecialTokens: false })).toEqual(tok.encode(text, { addSpecialTokens: false }));
  });

  it('knows how many characters one token can cover', () => {
    expect(tok.maxCharsPerToken).toBeGreaterThanOrEqual(1);
    const longest = Math.max(...Object.keys((tj as { model: { vocab: Record<string, number> } }).model.vocab).map((k) => k.length));
    expect(tok.maxCharsPerToken).toBe(longest);
    const nfc = StarqTokenizer.fromFiles({ tokenizer: { ...tj, normalizer: { type: 'NFC' } }, tokenizerConfig: config });
    expect(nfc.maxCharsPerToken).toBe(Infinity); // composition shrinks text: no bound
  });

  it('refuses text beyond limit × maxCharsPerToken without tokenizing it', () => {
    const t = counting();
    const text = 'x'.repeat(1_000_000);
    expect(() => encodeWithin(t, text, { limit: 512, param: 'context' })).toThrow(expect.objectContaining({ code: 'context_too_long', status: 422, param: 'context' }));
    expect(t.chars).toBe(0);
  });

  it('without a character bound, stops counting soon after the limit', () => {
    const t = counting(Infinity);
    const text = words(200_000); // ~1.1M characters
    expect(() => encodeWithin(t, text, { limit: 2000, param: 'prompt' })).toThrow(expect.objectContaining({ code: 'context_too_long', param: 'prompt' }));
    expect(t.chars).toBeLessThan(4 * BOUNDED_CHUNK_CHARS);
  });

  it('refuses text that just misses the limit, after the exact count', () => {
    const text = words(3000);
    const n = tok.encode(text).length;
    expect(encodeWithin(counting(Infinity), text, { limit: n, param: 'context' })).toHaveLength(n);
    expect(() => encodeWithin(counting(Infinity), text, { limit: n - 1, param: 'context' })).toThrow(expect.objectContaining({ code: 'context_too_long' }));
  });
});
