/**
 * The RULER generators with real tokenizers: a generated random checkpoint's (always) and niah-1M's
 * (needs ../shared). Determinism, target length within LENGTH_TOLERANCE, needle depths, answers
 * present in the context, context ++ query = the prompt's tokenization.
 */
import * as fs from 'fs';
import { StarqTokenizer } from '@starq/model/tokenizer';
import { writeRandomCheckpoint } from '@starq/model/synthetic/random-checkpoint';
import { TmpDirs } from '@starq/testing';
import { type Haystack, NoiseHaystack, TextHaystack, endsSentence, toWords } from './haystack';
import { PromptFormat } from './prompt';
import { contains } from './scoring';
import { CWE_COMMON, LENGTH_TOLERANCE, MULTI_NEEDLES, TASKS, VT_HOPS, type RulerSample, type TaskName, evenDepth, generateSample, joinKeys } from './tasks';
import { sharedData, sharedModel } from '@starq/model/shared-fixtures';

const niah = sharedModel('niah-1M', 'tokenizer.json');
const sample = sharedData('tinystories_sample.txt');
const NIAH = niah.path;
const SAMPLE_TEXT = sample.path;
const haveShared = niah.present && sample.present;
const itShared = haveShared ? it : it.skip;

const tmp = new TmpDirs();
let randomTok: StarqTokenizer;

/** Lowercase story-like text with sentence ends, inside the random tokenizer's alphabet. */
const RANDOM_TEXT = Array.from({ length: 400 }, (_, i) => `the ${['cat', 'dog', 'bird', 'fish'][i % 4]} sat on mat number ${i} and looked around${i % 3 === 0 ? '!' : '.'}`).join(' ');

beforeAll(() => {
  const dir = tmp.make('starq-ruler-tok-');
  writeRandomCheckpoint(dir, { architecture: 'llama', hidden: 8, intermediate: 16, layers: 1, heads: 2, kvHeads: 1, vocab: 300, maxPositions: 8192, dtype: 'F32', tied: true, sharded: false, seed: 3 });
  randomTok = StarqTokenizer.load(dir);
});
afterAll(() => tmp.cleanup());

function gen(tok: StarqTokenizer, task: TaskName, length: number, index: number, samples: number, seed = 7, haystack: Haystack = new TextHaystack(RANDOM_TEXT, 'random')): RulerSample {
  return generateSample({ task, length, index, samples, seed }, { format: new PromptFormat(tok), haystack });
}

function tokens(s: RulerSample): number {
  return s.contextIds.length + s.queryIds.length;
}

/** The checks every sample must pass. */
function checkSample(tok: StarqTokenizer, s: RulerSample): void {
  // Length: at most the target, at most LENGTH_TOLERANCE short.
  expect(tokens(s)).toBeLessThanOrEqual(s.length);
  expect(tokens(s)).toBeGreaterThanOrEqual(s.length - LENGTH_TOLERANCE);
  // context ++ query is the tokenization of the whole prompt; the context starts with BOS.
  const full = tok.encode(`${s.texts.context} ${s.texts.question} ${s.texts.answerPrefix}`, { addSpecialTokens: true, splitSpecialTokens: true });
  expect([...s.contextIds, ...s.queryIds]).toEqual(full);
  expect(s.contextIds[0]).toBe(tok.bosTokenId);
  expect(s.contextIds).toEqual(tok.encode(s.texts.context, { addSpecialTokens: true, splitSpecialTokens: true }));
  // Every reference is in the context (and, for needle tasks, the needles are in it verbatim).
  for (const r of s.references) expect(contains(s.texts.context, r)).toBe(true);
  for (const n of s.needles) expect(s.texts.context).toContain(n.text);
}

describe('RULER generators (random test tokenizer)', () => {
  it.each(TASKS.map((t) => [t]))('%s: deterministic, hits the length, answer in the context', (task) => {
    for (const length of [1024, 2048]) {
      const a = gen(randomTok, task, length, 1, 3);
      const b = gen(randomTok, task, length, 1, 3);
      expect(b).toEqual(a);
      checkSample(randomTok, a);
      // Another seed gives another prompt; the sample does not depend on the others generated.
      expect(gen(randomTok, task, length, 1, 3, 8).contextIds).not.toEqual(a.contextIds);
      expect(gen(randomTok, task, length, 2, 3).contextIds).not.toEqual(a.contextIds);
    }
  });

  it('niah_single: needle depths spread evenly over the samples (boundary = round(d·sentences))', () => {
    const S = 5;
    const got = Array.from({ length: S }, (_, i) => gen(randomTok, 'niah_single', 1024, i, S));
    expect(got.map((s) => s.depth)).toEqual([0, 0.25, 0.5, 0.75, 1]);
    for (const s of got) {
      const [n] = s.needles;
      expect(n.depth).toBe(s.depth);
      expect(n.boundary).toBe(Math.round(s.depth * n.sentences));
      // Measured in the text: the needle's offset / the context length ≈ the depth.
      const at = s.texts.context.indexOf(n.text);
      const rel = at / Math.max(1, s.texts.context.length - n.text.length);
      expect(Math.abs(rel - s.depth)).toBeLessThan(0.05);
      // It sits at a sentence boundary: the word before it ends a sentence (or it is first).
      if (at > 0) expect(endsSentence(toWords(s.texts.context.slice(0, at)).pop()!)).toBe(true);
    }
    // Depth 0 opens the context; depth 1 is followed by no complete sentence (at most the cut tail).
    expect(got[0].texts.context.startsWith(got[0].needles[0].text)).toBe(true);
    const last = got[S - 1];
    const tail = last.texts.context.slice(last.texts.context.indexOf(last.needles[0].text) + last.needles[0].text.length);
    expect(toWords(tail).some(endsSentence)).toBe(false);
    expect(evenDepth(0, 1)).toBe(0.5);
  });

  it('multikey / multivalue / multiquery: 4 needles, the first at the sample depth, the right references', () => {
    const mk = gen(randomTok, 'niah_multikey', 2048, 2, 4);
    expect(mk.needles).toHaveLength(MULTI_NEEDLES);
    const keys = mk.needles.map((n) => /for (\S+) is:/.exec(n.text)![1]);
    expect(new Set(keys).size).toBe(MULTI_NEEDLES);
    expect(mk.needles[0].depth).toBeCloseTo(2 / 3, 12);
    expect(mk.texts.question).toBe(`What is the special magic number for ${keys[0]}?`);
    expect(mk.references).toEqual([/is: (\d+)\./.exec(mk.needles[0].text)![1]]);

    const mv = gen(randomTok, 'niah_multivalue', 2048, 0, 4);
    const mvKeys = new Set(mv.needles.map((n) => /for (\S+) is:/.exec(n.text)![1]));
    expect(mvKeys.size).toBe(1);
    expect(mv.references).toEqual(mv.needles.map((n) => /is: (\d+)\./.exec(n.text)![1]));
    expect(mv.texts.question).toBe(`What are all the special magic numbers for ${[...mvKeys][0]}?`);

    const mq = gen(randomTok, 'niah_multiquery', 2048, 3, 4);
    const mqKeys = mq.needles.map((n) => /for (\S+) is:/.exec(n.text)![1]);
    expect(mq.texts.question).toBe(`What are all the special magic numbers for ${joinKeys(mqKeys)}?`);
    expect(mq.texts.answerPrefix).toBe(`The special magic numbers for ${joinKeys(mqKeys)} are:`);
    expect(mq.references).toHaveLength(MULTI_NEEDLES);
    expect(mq.needles[0].depth).toBe(1);
    // Numbers: 5–7 digits, none contained in another.
    for (const s of [mk, mv, mq]) {
      const nums = s.needles.map((n) => /is: (\d+)\./.exec(n.text)![1]);
      for (const v of nums) expect(v).toMatch(/^[1-9]\d{4,6}$/);
      for (const v of nums) for (const w of nums) if (v !== w) expect(w.includes(v)).toBe(false);
    }
  });

  it('vt: one chain of 4 hops in order, every variable resolves to the asked value', () => {
    const s = gen(randomTok, 'vt', 2048, 1, 4);
    expect(s.needles).toHaveLength(VT_HOPS + 1);
    const value = /value (\d+)/.exec(s.texts.question)![1];
    const assign = new Map<string, string>();
    let last = -1;
    for (const n of s.needles) {
      const [, name, rhs] = /^VAR ([A-Z]{5}) = (\S+)\.$/.exec(n.text)!;
      assign.set(name, /^\d+$/.test(rhs) ? rhs : assign.get(rhs)!);
      const at = s.texts.context.indexOf(n.text);
      expect(at).toBeGreaterThan(last); // statements appear in chain order
      last = at;
    }
    expect(s.references).toEqual([...assign.keys()]);
    for (const v of assign.values()) expect(v).toBe(value);
    expect(s.needles[0].depth).toBeCloseTo(1 / 3, 12);
  });

  it('cwe: the 10 references are exactly the most frequent words (RULER frequencies 6/1 below 4096, 30/3 from 4096)', () => {
    for (const [length, fc, fu] of [[2048, 6, 1], [4096, 30, 3]] as const) {
      const s = gen(randomTok, 'cwe', length, 0, 1);
      const entries = s.texts.context.replace(/^Here is a numbered list of words: /, '').split(/ ?\d+\. /).filter((w) => w !== '');
      const counts = new Map<string, number>();
      for (const w of entries) counts.set(w, (counts.get(w) ?? 0) + 1);
      expect(s.references).toHaveLength(CWE_COMMON);
      for (const r of s.references) expect(counts.get(r)).toBe(fc);
      const uncommon = [...counts].filter(([w]) => !s.references.includes(w)).map(([, c]) => c);
      expect(uncommon.filter((c) => c !== fu).length).toBeLessThanOrEqual(1); // only the last word may be cut short
      for (const c of uncommon) expect(c).toBeLessThanOrEqual(fu);
      expect(uncommon.reduce((a, b) => a + b, 0)).toBe(s.fillUnits);
      checkSample(randomTok, s);
    }
  });

  it('synthetic haystack: deterministic, fills the length', () => {
    const a = gen(randomTok, 'niah_single', 1024, 0, 2, 5, new NoiseHaystack());
    expect(gen(randomTok, 'niah_single', 1024, 0, 2, 5, new NoiseHaystack())).toEqual(a);
    checkSample(randomTok, a);
  });

  it('a length too short for the fixed parts is length_too_short', () => {
    expect(() => gen(randomTok, 'niah_multiquery', 200, 0, 1)).toThrow(expect.objectContaining({ code: 'length_too_short', param: 'lengths' }));
  });
});

describe('RULER generators on niah-1M (needs ../shared)', () => {
  itShared('every task at 1024 and 4000 tokens with the TinyStories haystack: within tolerance, answers present (requires ../shared)', () => {
    const tok = StarqTokenizer.load(NIAH);
    const hay = new TextHaystack(fs.readFileSync(SAMPLE_TEXT, 'utf8'), 'tinystories');
    for (const task of TASKS) {
      for (const length of [1024, 4000]) {
        for (const index of [0, 3]) {
          const s = gen(tok, task, length, index, 4, 0, hay);
          checkSample(tok, s);
        }
      }
    }
    // niah-1M's format: the needle and the query as its README gives them.
    const s = gen(tok, 'niah_single', 1024, 0, 1, 0, hay);
    const key = /for (\S+) is:/.exec(s.needles[0].text)![1];
    expect(s.needles[0].text).toBe(`The special magic number for ${key} is: ${s.references[0]}.`);
    expect(tok.decode(s.queryIds, { skipSpecialTokens: true }).trim()).toBe(`What is the special magic number for ${key}? The special magic number for ${key} is:`);
    expect(s.texts.context).not.toContain('<|endoftext|>');
  });
});
