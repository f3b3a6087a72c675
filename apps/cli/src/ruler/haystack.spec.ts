import { NoiseHaystack, TextHaystack, endsSentence, insertNeedles, toWords } from './haystack';
import { streamFor } from './rng';
import { CWE_WORDS, FILLER_SENTENCES, NEEDLE_KEYS, distinctWords } from './words';

describe('haystacks', () => {
  it('sentence ends', () => {
    for (const w of ['day.', 'go!', 'why?', 'said."', 'away.)', 'ok.”']) expect(endsSentence(w)).toBe(true);
    for (const w of ['Mr', 'said,', '"Hi', 'a.b c']) expect(endsSentence(w)).toBe(false);
  });

  it('text haystack: separators dropped, whitespace collapsed, starts at a sentence, wraps around', () => {
    const h = new TextHaystack('One two.\nThree four!\n<|endoftext|>\nFive six seven?', 'mini');
    expect(h.wordCount).toBe(7);
    const starts = new Set<string>();
    for (let seed = 0; seed < 20; seed++) {
      const w = h.words(streamFor(seed), 9);
      expect(w).toHaveLength(9);
      starts.add(w[0]);
      expect(w.join(' ')).not.toContain('<|endoftext|>');
    }
    expect([...starts].sort()).toEqual(['Five', 'One', 'Three']);
    expect(h.words(streamFor(1), 9)).toEqual(h.words(streamFor(1), 9));
    expect(() => new TextHaystack('no sentence end here', 'bad')).toThrow(expect.objectContaining({ code: 'haystack_too_short', param: 'haystack-file' }));
  });

  it('noise haystack: filler sentences, deterministic per stream', () => {
    const n = new NoiseHaystack();
    const w = n.words(streamFor('x'), 50);
    expect(w).toHaveLength(50);
    expect(n.words(streamFor('x'), 50)).toEqual(w);
    const vocab = new Set(FILLER_SENTENCES.flatMap(toWords));
    for (const x of w) expect(vocab.has(x)).toBe(true);
  });

  it('needles go after round(depth·S) complete sentences; a cut tail sentence stays last', () => {
    const words = toWords('A b. C d. E f. G');
    const { text, placed } = insertNeedles(words, [
      { text: 'N0.', depth: 0 },
      { text: 'N1.', depth: 0.5 },
      { text: 'N2.', depth: 1 },
      { text: 'N3.', depth: 0.5 },
    ]);
    expect(placed.map((p) => [p.boundary, p.sentences])).toEqual([[0, 3], [2, 3], [3, 3], [2, 3]]); // round(1.5) = 2
    expect(text).toBe('N0. A b. C d. N1. N3. E f. N2. G');
    expect(insertNeedles([], [{ text: 'N.', depth: 0.7 }]).text).toBe('N.');
    expect(() => insertNeedles(words, [{ text: 'N.', depth: 1.5 }])).toThrow(/depth/);
  });

  it('word lists: no duplicates; distinctWords extends the list with pseudo-words when asked for more', () => {
    expect(new Set(CWE_WORDS).size).toBe(CWE_WORDS.length);
    expect(new Set(NEEDLE_KEYS).size).toBe(NEEDLE_KEYS.length);
    const many = distinctWords(streamFor(3), CWE_WORDS.length + 200);
    expect(new Set(many).size).toBe(many.length);
    expect(distinctWords(streamFor(3), 20)).toEqual(distinctWords(streamFor(3), 20));
  });
});
