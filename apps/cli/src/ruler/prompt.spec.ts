import * as fs from 'fs';
import * as path from 'path';
import { StarqTokenizer } from '@starq/model/tokenizer';
import { writeRandomCheckpoint } from '@starq/model/synthetic/random-checkpoint';
import { TmpDirs } from '@starq/testing';
import { PromptFormat, largestFitting } from './prompt';

const tmp = new TmpDirs();
let plainDir = '';
let chatDir = '';
const TEMPLATE = '{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}';
const P = { context: 'the cat sat. the dog ran.', question: 'what is the number?', answerPrefix: 'the number is:' };

beforeAll(() => {
  const opts = { architecture: 'llama' as const, hidden: 8, intermediate: 16, layers: 1, heads: 2, kvHeads: 1, vocab: 200, maxPositions: 512, dtype: 'F32' as const, tied: true, sharded: false, seed: 1 };
  plainDir = tmp.make('starq-ruler-plain-');
  writeRandomCheckpoint(plainDir, opts);
  chatDir = tmp.make('starq-ruler-chat-');
  writeRandomCheckpoint(chatDir, opts);
  const cfgFile = path.join(chatDir, 'tokenizer_config.json');
  fs.writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfgFile, 'utf8')), chat_template: TEMPLATE }));
});
afterAll(() => tmp.cleanup());

describe('RULER prompt format', () => {
  it('plain (no chat template): BOS + context, then question and answer prefix; ids split at the question', () => {
    const tok = StarqTokenizer.load(plainDir);
    const f = new PromptFormat(tok);
    expect(f.kind).toBe('plain');
    const { contextIds, queryIds } = f.toIds(P);
    const full = tok.encode(`${P.context} ${P.question} ${P.answerPrefix}`, { addSpecialTokens: true });
    expect([...contextIds, ...queryIds]).toEqual(full);
    expect(contextIds).toEqual(tok.encode(P.context, { addSpecialTokens: true }));
    expect(tok.decode(queryIds, { skipSpecialTokens: true }).trim()).toBe(`${P.question} ${P.answerPrefix}`);
    expect(f.countTokens(P)).toBe(full.length);
  });

  it('chat template: one user message (context + question), assistant opener, then the answer prefix', () => {
    const tok = StarqTokenizer.load(chatDir);
    expect(tok.hasChatTemplate).toBe(true);
    const f = new PromptFormat(tok);
    expect(f.kind).toBe('chat');
    const rendered = f.render(P);
    expect(rendered.text).toBe(`<s>[user] ${P.context} ${P.question}\n[assistant] ${P.answerPrefix}`);
    expect(rendered.text.slice(rendered.questionAt)).toBe(`${P.question}\n[assistant] ${P.answerPrefix}`);
    const { contextIds, queryIds } = f.toIds(P);
    expect([...contextIds, ...queryIds]).toEqual(tok.encode(rendered.text, { addSpecialTokens: false, splitSpecialTokens: false }));
    expect(contextIds[0]).toBe(tok.bosTokenId); // from the template, not added twice
    expect(contextIds[1]).not.toBe(tok.bosTokenId);
    expect(tok.decode(queryIds, { skipSpecialTokens: true })).toContain('what is the number');
    expect(tok.decode(contextIds, { skipSpecialTokens: true })).not.toContain('what');
  });

  it('largestFitting: the largest n with count(n) ≤ target, −1 when nothing fits', () => {
    const count = (n: number) => 10 + 3 * n;
    expect(largestFitting(count, 100, 1000)).toBe(30);
    expect(largestFitting(count, 99, 1000)).toBe(29);
    expect(largestFitting(count, 100, 5)).toBe(5); // capped by maxN
    expect(largestFitting(count, 10, 1000)).toBe(0);
    expect(largestFitting(count, 9, 1000)).toBe(-1);
    let probes = 0;
    largestFitting((n) => (probes++, n), 500, 4096);
    expect(probes).toBeLessThanOrEqual(14);
  });
});
