/**
 * The RULER-style tasks and their seeded sample generator.
 *
 * Needle tasks use niah-1M's format: needles `The special magic number for {key} is: {number}.`
 * (key: a simple word or name, number: 5–7 digits) inserted at sentence boundaries of the haystack,
 * then the question and the answer prefix.
 *
 * | task | context | question → answer prefix | references |
 * |---|---|---|---|
 * | niah_single | 1 needle | What is the special magic number for K? → The special magic number for K is: | the number |
 * | niah_multikey | 4 needles, 4 keys, 1 asked | as niah_single | the asked key's number |
 * | niah_multivalue | 4 needles, 1 key, 4 numbers | What are all the special magic numbers for K? → The special magic numbers for K are: | all 4 numbers |
 * | niah_multiquery | 4 needles, 4 keys, all asked | What are all the special magic numbers for K1, K2, K3 and K4? → The special magic numbers for K1, K2, K3 and K4 are: | all 4 numbers |
 * | vt | 5 statements `VAR X1 = V.`, `VAR X2 = X1.` … (1 chain, 4 hops; names of 5 capitals, V of 5 digits) | Which variables are assigned the value V in the text above? → The variables assigned the value V are: | the 5 names |
 * | cwe | `Here is a numbered list of words: 1. w 2. w …`: 10 common words × f_c + uncommon × f_u, shuffled | Which 10 words appear most often in the list above? → The 10 words that appear most often are: | the 10 common words |
 *
 * cwe follows RULER's frequencies: f_c = 6, f_u = 1 below 4096 tokens, f_c = 30, f_u = 3 from 4096 on;
 * the number of uncommon entries fills the length (the last uncommon word may appear fewer than f_u
 * times). RULER also prepends a worked example to vt and cwe; we do not.
 *
 * Depth. Sample i of S has depth `d_i = i/(S − 1)` (0.5 when S = 1): evenly spread from the start
 * (0, right after BOS) to the end (1, after the last complete haystack sentence, i.e. at most a
 * partial sentence before the question). The first needle (niah_single's only one, multikey's asked
 * one, multivalue's and multiquery's first, vt's value assignment) goes after `round(d_i · sentences)`
 * complete haystack sentences (haystack.ts); the others at seeded uniform depths (vt's later
 * statements at sorted uniform depths in [d_i, 1], so the chain stays in order).
 *
 * Length. The haystack (or, for cwe, the number of uncommon entries) is the largest whose prompt,
 * measured with the model's tokenizer (see prompt.ts), has at most `length` tokens. The fill unit is
 * one haystack word (one list entry for cwe), so the prompt is 0 to about one unit's tokens short of
 * the target; {@link LENGTH_TOLERANCE} bounds that for the tested tokenizers.
 */
import type { Rng } from '@starq/model/sampling';
import { InvalidInputError } from '@starq/protocol/errors';
import { type Haystack, type NeedlePlacement, type PlacedNeedle, insertNeedles } from './haystack';
import { type PromptFormat, type PromptTexts, largestFitting } from './prompt';
import { distinctNumbers, randInt, sampleDistinct, shuffled, streamFor } from './rng';
import { NEEDLE_KEYS, distinctWords } from './words';

export const TASKS = ['niah_single', 'niah_multikey', 'niah_multivalue', 'niah_multiquery', 'vt', 'cwe'] as const;
export type TaskName = (typeof TASKS)[number];

export interface TaskSpec {
  name: TaskName;
  /** Smallest accepted `--lengths` value. Shorter prompts are also rejected when the fixed parts alone do not fit. */
  minLength: number;
  /** Default `--max-new-tokens`. */
  maxNewTokens: number;
}

export const TASK_SPECS: Record<TaskName, TaskSpec> = {
  niah_single: { name: 'niah_single', minLength: 128, maxNewTokens: 10 },
  niah_multikey: { name: 'niah_multikey', minLength: 256, maxNewTokens: 10 },
  niah_multivalue: { name: 'niah_multivalue', minLength: 256, maxNewTokens: 40 },
  niah_multiquery: { name: 'niah_multiquery', minLength: 384, maxNewTokens: 40 },
  vt: { name: 'vt', minLength: 256, maxNewTokens: 30 },
  cwe: { name: 'cwe', minLength: 512, maxNewTokens: 80 },
};

/** Needles per multi-needle task (RULER's standard configuration: 4). */
export const MULTI_NEEDLES = 4;
/** vt: hops of the chain (5 variables). */
export const VT_HOPS = 4;
/** cwe: number of common words. */
export const CWE_COMMON = 10;

/**
 * Upper bound of `length − tokens` for a generated prompt, checked by the unit tests for the random
 * test tokenizer and niah-1M's (measured on niah-1M: at most 7 short for the haystack tasks, 9 for
 * cwe). Each run reports the min/max prompt tokens per (task, length).
 */
export const LENGTH_TOLERANCE = 12;

export interface SampleRequest {
  task: TaskName;
  /** Target tokens of context + query. */
  length: number;
  /** Sample index 0..samples−1 (sets the depth). */
  index: number;
  samples: number;
  seed: number;
}

export interface RulerSample {
  task: TaskName;
  length: number;
  index: number;
  /** The sample's evenly spread depth d_i. */
  depth: number;
  texts: PromptTexts;
  contextIds: number[];
  queryIds: number[];
  /** Strings the answer must contain (string_match_all). */
  references: string[];
  /** The inserted needles (niah_*, vt), first needle first; [] for cwe. */
  needles: PlacedNeedle[];
  /** Haystack words used (cwe: uncommon entries). */
  fillUnits: number;
}

export interface GeneratorEnv {
  format: PromptFormat;
  haystack: Haystack;
}

/** d_i = i/(S − 1), 0.5 for a single sample. */
export function evenDepth(index: number, samples: number): number {
  return samples <= 1 ? 0.5 : index / (samples - 1);
}

/** "A", "A and B", "A, B and C". */
export function joinKeys(keys: readonly string[]): string {
  return keys.length <= 1 ? (keys[0] ?? '') : `${keys.slice(0, -1).join(', ')} and ${keys[keys.length - 1]}`;
}

export function needleText(key: string, value: string): string {
  return `The special magic number for ${key} is: ${value}.`;
}

interface NeedleLayout {
  needles: NeedlePlacement[];
  question: string;
  answerPrefix: string;
  references: string[];
}

function niahLayout(task: TaskName, rng: Rng, depth: number): NeedleLayout {
  const single = (key: string, value: string): NeedleLayout => ({
    needles: [{ text: needleText(key, value), depth }],
    question: `What is the special magic number for ${key}?`,
    answerPrefix: `The special magic number for ${key} is:`,
    references: [value],
  });
  const others = (n: number) => Array.from({ length: n }, () => rng.next());
  switch (task) {
    case 'niah_single': {
      const [key] = sampleDistinct(rng, NEEDLE_KEYS, 1);
      return single(key, distinctNumbers(rng, 1)[0]);
    }
    case 'niah_multikey': {
      const keys = sampleDistinct(rng, NEEDLE_KEYS, MULTI_NEEDLES);
      const values = distinctNumbers(rng, MULTI_NEEDLES);
      const depths = [depth, ...others(MULTI_NEEDLES - 1)];
      const layout = single(keys[0], values[0]);
      layout.needles = keys.map((k, i) => ({ text: needleText(k, values[i]), depth: depths[i] }));
      return layout;
    }
    case 'niah_multivalue': {
      const [key] = sampleDistinct(rng, NEEDLE_KEYS, 1);
      const values = distinctNumbers(rng, MULTI_NEEDLES);
      const depths = [depth, ...others(MULTI_NEEDLES - 1)];
      return {
        needles: values.map((v, i) => ({ text: needleText(key, v), depth: depths[i] })),
        question: `What are all the special magic numbers for ${key}?`,
        answerPrefix: `The special magic numbers for ${key} are:`,
        references: values,
      };
    }
    case 'niah_multiquery': {
      const keys = sampleDistinct(rng, NEEDLE_KEYS, MULTI_NEEDLES);
      const values = distinctNumbers(rng, MULTI_NEEDLES);
      const depths = [depth, ...others(MULTI_NEEDLES - 1)];
      return {
        needles: keys.map((k, i) => ({ text: needleText(k, values[i]), depth: depths[i] })),
        question: `What are all the special magic numbers for ${joinKeys(keys)}?`,
        answerPrefix: `The special magic numbers for ${joinKeys(keys)} are:`,
        references: values,
      };
    }
    case 'vt': {
      const names: string[] = [];
      while (names.length < VT_HOPS + 1) {
        let n = '';
        for (let i = 0; i < 5; i++) n += String.fromCharCode(65 + randInt(rng, 0, 25));
        if (!names.includes(n) && n !== 'VAR') names.push(n);
      }
      const value = distinctNumbers(rng, 1, 5, 5)[0];
      const later = Array.from({ length: VT_HOPS }, () => depth + (1 - depth) * rng.next()).sort((a, b) => a - b);
      return {
        needles: names.map((n, i) => ({ text: `VAR ${n} = ${i === 0 ? value : names[i - 1]}.`, depth: i === 0 ? depth : later[i - 1] })),
        question: `Which variables are assigned the value ${value} in the text above?`,
        answerPrefix: `The variables assigned the value ${value} are:`,
        references: names,
      };
    }
    default:
      throw new Error(`niahLayout: not a needle task: ${task}`);
  }
}

function tooShort(req: SampleRequest, tokens: number): InvalidInputError {
  return new InvalidInputError(
    'length_too_short',
    `--lengths ${req.length} is too short for ${req.task}: its prompt takes ${tokens} tokens with no filler at all; use a length of at least ${tokens + 64}`,
    'lengths',
  );
}

function needleSample(req: SampleRequest, env: GeneratorEnv, depth: number): RulerSample {
  const layout = niahLayout(req.task, streamFor(req.seed, req.task, req.length, req.index, 'needles'), depth);
  // Every word takes at least one token, so `length` words are more than enough.
  const words = env.haystack.words(streamFor(req.seed, req.task, req.length, req.index, 'haystack'), req.length);
  const texts = (n: number) => {
    const { text, placed } = insertNeedles(words.slice(0, n), layout.needles);
    return { texts: { context: text, question: layout.question, answerPrefix: layout.answerPrefix }, placed };
  };
  const n = largestFitting((k) => env.format.countTokens(texts(k).texts), req.length, words.length);
  if (n < 0) throw tooShort(req, env.format.countTokens(texts(0).texts));
  const { texts: t, placed } = texts(n);
  return { task: req.task, length: req.length, index: req.index, depth, texts: t, ...env.format.toIds(t), references: layout.references, needles: placed, fillUnits: n };
}

function cweSample(req: SampleRequest, env: GeneratorEnv, depth: number): RulerSample {
  const [fc, fu] = req.length < 4096 ? [6, 1] : [30, 3];
  // Fill unit: one uncommon entry. k entries = ⌈k/f_u⌉ uncommon words, the last one repeated
  // k − (⌈k/f_u⌉ − 1)·f_u ≤ f_u times, so no uncommon word is more frequent than f_u.
  const maxEntries = Math.max(1, Math.floor(req.length / 2)); // every entry takes ≥ 2 tokens
  const pool = distinctWords(streamFor(req.seed, req.task, req.length, req.index, 'words'), CWE_COMMON + Math.ceil(maxEntries / fu));
  const common = pool.slice(0, CWE_COMMON);
  const question = `Which ${CWE_COMMON} words appear most often in the list above?`;
  const answerPrefix = `The ${CWE_COMMON} words that appear most often are:`;
  const texts = (k: number): PromptTexts => {
    const list: string[] = [];
    for (const w of common) for (let r = 0; r < fc; r++) list.push(w);
    for (let e = 0; e < k; e++) list.push(pool[CWE_COMMON + Math.floor(e / fu)]);
    const order = shuffled(streamFor(req.seed, req.task, req.length, req.index, 'order', k), list);
    return { context: `Here is a numbered list of words: ${order.map((w, i) => `${i + 1}. ${w}`).join(' ')}`, question, answerPrefix };
  };
  const k = largestFitting((n) => env.format.countTokens(texts(n)), req.length, maxEntries);
  if (k < 0) throw tooShort(req, env.format.countTokens(texts(0)));
  const t = texts(k);
  return { task: req.task, length: req.length, index: req.index, depth, texts: t, ...env.format.toIds(t), references: common, needles: [], fillUnits: k };
}

/** One sample: a pure function of (task, length, index, samples, seed, haystack, tokenizer). */
export function generateSample(req: SampleRequest, env: GeneratorEnv): RulerSample {
  const depth = evenDepth(req.index, req.samples);
  return req.task === 'cwe' ? cweSample(req, env, depth) : needleSample(req, env, depth);
}
