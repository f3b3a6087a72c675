/**
 * Haystacks: the filler text around the needles, as a stream of words that starts at a sentence.
 *
 * - From a text file (`--haystack-file`): the file's text with `<|endoftext|>` document separators
 *   removed and all whitespace collapsed to single spaces, split into words. A sample reads the words
 *   from a seeded random sentence start on, wrapping around at the end of the file.
 * - Synthetic ("noise", when no file is given): sentences drawn at random, with replacement, from
 *   {@link FILLER_SENTENCES}.
 *
 * A word is a maximal run of non-space characters; a sentence ends after a word whose last
 * characters are `.`, `!` or `?` (optionally followed by closing quotes or brackets).
 */
import type { Rng } from '@starq/model/sampling';
import { InvalidInputError } from '@starq/protocol/errors';
import { FILLER_SENTENCES } from './words';

/** The document separator of TinyStories-style files, removed from file haystacks. */
export const DOC_SEPARATOR = '<|endoftext|>';

const SENTENCE_END = /[.!?]["'”’)\]]*$/;

/** True when a sentence ends with this word. */
export function endsSentence(word: string): boolean {
  return SENTENCE_END.test(word);
}

/** Splits text into words (runs of non-space characters). */
export function toWords(text: string): string[] {
  return text.split(/\s+/).filter((w) => w !== '');
}

export interface Haystack {
  /** `file:PATH` or `noise`, for reports. */
  readonly name: string;
  /** `count` words of filler for one sample, starting at a sentence. */
  words(rng: Rng, count: number): string[];
}

/** A haystack read from text (see the module doc). */
export class TextHaystack implements Haystack {
  private readonly all: string[];
  /** Indices in `all` of the first word of every sentence. */
  private readonly starts: number[];

  /** @throws InvalidInputError `haystack_too_short` (param `haystack-file`) when the text has no complete sentence. */
  constructor(text: string, readonly name: string) {
    this.all = toWords(text.split(DOC_SEPARATOR).join(' '));
    this.starts = [];
    for (let i = 0; i < this.all.length; i++) if (i === 0 || endsSentence(this.all[i - 1])) this.starts.push(i);
    if (this.all.length === 0 || !this.all.some(endsSentence)) {
      throw new InvalidInputError('haystack_too_short', `the haystack file ${name} has no complete sentence (${this.all.length} words)`, 'haystack-file');
    }
  }

  get wordCount(): number {
    return this.all.length;
  }

  words(rng: Rng, count: number): string[] {
    const start = this.starts[Math.floor(rng.next() * this.starts.length)];
    const out: string[] = [];
    for (let i = 0; out.length < count; i++) out.push(this.all[(start + i) % this.all.length]);
    return out;
  }
}

/** The synthetic haystack (see the module doc). */
export class NoiseHaystack implements Haystack {
  readonly name = 'noise';

  words(rng: Rng, count: number): string[] {
    const out: string[] = [];
    while (out.length < count) {
      for (const w of toWords(FILLER_SENTENCES[Math.floor(rng.next() * FILLER_SENTENCES.length)])) out.push(w);
    }
    return out.slice(0, count);
  }
}

/** A needle to insert at a relative depth of the haystack (0 = first, 1 = last). */
export interface NeedlePlacement {
  text: string;
  depth: number;
}

export interface PlacedNeedle extends NeedlePlacement {
  /** Complete haystack sentences before it: round(depth · sentences). */
  boundary: number;
  /** Complete haystack sentences (boundaries are 0..sentences). */
  sentences: number;
}

/**
 * Joins haystack words into text with each needle inserted after `round(depth · S)` of the S
 * complete sentences of the words, so a needle always follows a sentence end (or opens the text).
 * A trailing partial sentence (the haystack is cut at a word to hit a token length) comes after
 * everything else. Needles at the same boundary keep their order. Parts are joined by single spaces.
 */
export function insertNeedles(words: readonly string[], needles: readonly NeedlePlacement[]): { text: string; placed: PlacedNeedle[] } {
  // starts[s] = word index where complete sentence s starts; starts[S] = end of the complete sentences.
  const starts: number[] = [0];
  for (let i = 0; i < words.length; i++) if (endsSentence(words[i])) starts.push(i + 1);
  const S = starts.length - 1;
  const placed: PlacedNeedle[] = needles.map((n) => {
    if (!(n.depth >= 0 && n.depth <= 1)) throw new Error(`needle depth must be in [0, 1], got ${n.depth}`);
    return { ...n, boundary: Math.round(n.depth * S), sentences: S };
  });
  const parts: string[] = [];
  for (let s = 0; s <= S; s++) {
    for (const p of placed) if (p.boundary === s) parts.push(p.text);
    if (s < S) parts.push(words.slice(starts[s], starts[s + 1]).join(' '));
  }
  if (starts[S] < words.length) parts.push(words.slice(starts[S]).join(' '));
  return { text: parts.join(' '), placed };
}
