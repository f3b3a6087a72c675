import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { InvalidInputError, ModelLoadError } from '@starq/protocol/errors';
import { StarqTokenizer } from './tokenizer';
import { sharedModel } from './shared-fixtures';

const { path: STORIES_DIR, present: HAVE_STORIES } = sharedModel('stories260K', 'tokenizer_fixtures.json');

// ---------------------------------------------------------------------------------------------
// A tiny Llama-style BPE tokenizer built in a temp dir (no ../shared needed).
//   ids 0..3: <unk> <s> </s> <|eot|> (special), 4..259: <0x00>..<0xFF>, then pieces.
// ---------------------------------------------------------------------------------------------

const SPECIALS = ['<unk>', '<s>', '</s>', '<|eot|>'];
const PIECES = ['▁', 'h', 'e', 'l', 'o', 'w', 'r', 'd', '.', '▁h', 'll', '▁he', '▁hell', '▁hello', '▁w', '▁wo', 'or', '<', '>', 's'];
const MERGES = [['▁', 'h'], ['l', 'l'], ['▁h', 'e'], ['▁he', 'll'], ['▁hell', 'o'], ['▁', 'w'], ['▁w', 'o']];

function tinyTokenizerJson(): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  SPECIALS.forEach((t, i) => (vocab[t] = i));
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 4 + b;
  PIECES.forEach((p, i) => (vocab[p] = 260 + i));
  return {
    version: '1.0',
    added_tokens: SPECIALS.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '▁' },
        { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges: MERGES },
  };
}

const CHAT_TEMPLATE =
  "{{ bos_token }}{% for m in messages %}{% if m['role'] not in ['user', 'assistant'] %}{{ raise_exception('unknown role ' + m['role']) }}{% endif %}" +
  '<|{{ m.role }}|>{{ m.content }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}';

const tempDirs: string[] = [];
function modelDir(files: Record<string, unknown>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'starq-tok-'));
  tempDirs.push(dir);
  for (const [name, content] of Object.entries(files)) {
    fs.writeFileSync(path.join(dir, name), typeof content === 'string' ? content : JSON.stringify(content));
  }
  return dir;
}
afterAll(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error');
}

describe('StarqTokenizer (tiny BPE in a temp dir)', () => {
  const baseConfig = { bos_token: '<s>', eos_token: { content: '<|eot|>' }, unk_token: '<unk>', chat_template: CHAT_TEMPLATE };
  let tok: StarqTokenizer;
  beforeAll(() => {
    tok = StarqTokenizer.load(
      modelDir({
        'tokenizer.json': tinyTokenizerJson(),
        'tokenizer_config.json': baseConfig,
        'generation_config.json': { bos_token_id: 1, eos_token_id: [2, 3] },
        'config.json': { bos_token_id: 1, eos_token_id: 2 },
      }),
    );
  });

  it('encodes with BOS from the post-processor and decodes back', () => {
    const ids = tok.encode('hello world.');
    // <s> ▁hello ▁wo r l d .
    expect(ids).toEqual([1, 273, 275, 266, 263, 267, 268]);
    expect(tok.encode('hello world.', { addSpecialTokens: false })).toEqual(ids.slice(1));
    expect(tok.decode(ids.slice(1))).toBe('hello world.');
    expect(tok.decode(ids)).toBe('<s> hello world.');
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('hello world.');
    expect(tok.decode([])).toBe('');
    expect(tok.addsBosToken).toBe(true);
    expect(tok.vocabSize).toBe(260 + PIECES.length);
  });

  it('falls back to bytes for unknown characters', () => {
    const ids = tok.encode('hé', { addSpecialTokens: false });
    // ▁h, then é = C3 A9 as byte pieces
    expect(ids).toEqual([269, 4 + 0xc3, 4 + 0xa9]);
    expect(tok.decode(ids)).toBe('hé');
  });

  it('matches special-token strings unless splitSpecialTokens is set', () => {
    expect(tok.encode('<s>', { addSpecialTokens: false })).toEqual([1]);
    // "▁" "<" "s" ">" as ordinary pieces
    expect(tok.encode('<s>', { addSpecialTokens: false, splitSpecialTokens: true })).toEqual([260, 277, 279, 278]);
    expect(tok.encode('<s>', { splitSpecialTokens: true })).toEqual([1, 260, 277, 279, 278]);
    const splitByDefault = StarqTokenizer.fromFiles({ tokenizer: tinyTokenizerJson(), tokenizerConfig: baseConfig }, { splitSpecialTokens: true });
    expect(splitByDefault.encode('<|eot|>', { addSpecialTokens: false })).not.toContain(3);
  });

  it('resolves BOS/EOS: tokenizer_config first, then generation_config, config.json as fallback', () => {
    expect(tok.bosTokenId).toBe(1);
    expect(tok.eosTokenIds).toEqual([3, 2]); // <|eot|> from tokenizer_config, then generation_config [2, 3] deduplicated
    expect(tok.eosToken).toBe('<|eot|>');
    const t = tinyTokenizerJson();
    const noTc = StarqTokenizer.fromFiles({ tokenizer: t, generationConfig: { eos_token_id: [2, 3] }, config: { bos_token_id: 1, eos_token_id: 0 } });
    expect(noTc.eosTokenIds).toEqual([2, 3]);
    expect(noTc.bosTokenId).toBe(1);
    expect(noTc.bosToken).toBe('<s>');
    const onlyConfig = StarqTokenizer.fromFiles({ tokenizer: t, config: { bos_token_id: 1, eos_token_id: 2 } });
    expect(onlyConfig.eosTokenIds).toEqual([2]);
    expect(onlyConfig.eosToken).toBe('</s>');
    const stm = StarqTokenizer.fromFiles({ tokenizer: t, specialTokensMap: { eos_token: '</s>' }, config: { eos_token_id: 3 } });
    expect(stm.eosTokenIds).toEqual([2]);
    const nullInConfig = StarqTokenizer.fromFiles({ tokenizer: t, tokenizerConfig: { bos_token: null }, config: { bos_token_id: 1 } });
    expect(nullInConfig.bosTokenId).toBe(1);
    const none = StarqTokenizer.fromFiles({ tokenizer: t });
    expect(none.bosTokenId).toBeNull();
    expect(none.eosTokenIds).toEqual([]);
  });

  it('applies the chat template with bos/eos variables', () => {
    expect(tok.hasChatTemplate).toBe(true);
    const messages = [
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: 'hello' },
      { role: 'user', content: 'bye' },
    ];
    expect(tok.applyChatTemplate(messages)).toBe('<s><|user|>hi<|eot|><|assistant|>hello<|eot|><|user|>bye<|eot|>');
    expect(tok.applyChatTemplate(messages.slice(0, 1), { addGenerationPrompt: true })).toBe('<s><|user|>hi<|eot|><|assistant|>');
    const ids = tok.encodeChat(messages.slice(0, 1));
    expect(ids[0]).toBe(1);
    expect(ids.filter((id) => id === 1)).toHaveLength(1); // no second BOS
    expect(ids).toContain(3);
  });

  it('uses the "default" entry of a named chat-template list', () => {
    const t = StarqTokenizer.fromFiles({
      tokenizer: tinyTokenizerJson(),
      tokenizerConfig: { ...baseConfig, chat_template: [{ name: 'tool_use', template: 'TOOLS' }, { name: 'default', template: '{{ messages[0].content }}!' }] },
    });
    expect(t.applyChatTemplate([{ role: 'user', content: 'x' }])).toBe('x!');
  });

  it('reports chat-template errors as InvalidInputError', () => {
    const noTemplate = StarqTokenizer.fromFiles({ tokenizer: tinyTokenizerJson(), tokenizerConfig: { bos_token: '<s>' } }, {}, 'tiny');
    expect(noTemplate.hasChatTemplate).toBe(false);
    const err = catchError(() => noTemplate.applyChatTemplate([{ role: 'user', content: 'hi' }]));
    expect(err).toBeInstanceOf(InvalidInputError);
    expect(err).toMatchObject({ code: 'no_chat_template', param: 'messages' });
    expect((err as Error).message).toMatch(/tiny has no chat template/);

    expect(catchError(() => tok.applyChatTemplate([{ role: 'system', content: 'x' }]))).toMatchObject({ code: 'chat_template_error', param: 'messages' });
    expect(catchError(() => tok.applyChatTemplate([{ role: 'user' } as never]))).toMatchObject({ code: 'invalid_messages' });
    const noDefault = StarqTokenizer.fromFiles({ tokenizer: tinyTokenizerJson(), tokenizerConfig: { chat_template: [{ name: 'rag', template: 'x' }] } });
    expect(noDefault.hasChatTemplate).toBe(false);
    expect(catchError(() => noDefault.applyChatTemplate([]))).toMatchObject({ code: 'no_chat_template' });
  });

  it('reads chat_template.jinja when tokenizer_config.json has no template', () => {
    const t = StarqTokenizer.load(modelDir({ 'tokenizer.json': tinyTokenizerJson(), 'chat_template.jinja': '[{{ messages | length }}]' }));
    expect(t.applyChatTemplate([{ role: 'user', content: 'a' }])).toBe('[1]');
  });

  it('rejects unknown ids in decode', () => {
    expect(catchError(() => tok.decode([1, 99999]))).toMatchObject({ code: 'invalid_token_id', param: 'ids' });
    expect(catchError(() => tok.decode([1.5]))).toBeInstanceOf(InvalidInputError);
  });

  it('throws ModelLoadError for missing or malformed files', () => {
    const missing = catchError(() => StarqTokenizer.load(path.join(os.tmpdir(), 'starq-no-such-model-dir')));
    expect(missing).toBeInstanceOf(ModelLoadError);
    expect(missing).toMatchObject({ code: 'tokenizer_not_found', param: 'model' });
    expect(catchError(() => StarqTokenizer.load(modelDir({ 'config.json': {} })))).toMatchObject({ code: 'tokenizer_not_found' });
    const sp = catchError(() => StarqTokenizer.load(modelDir({ 'tokenizer.model': 'x' })));
    expect((sp as Error).message).toMatch(/tokenizer\.model/);
    expect(catchError(() => StarqTokenizer.load(modelDir({ 'tokenizer.json': '{ not json' })))).toMatchObject({ code: 'invalid_tokenizer', param: 'model' });
    expect(catchError(() => StarqTokenizer.load(modelDir({ 'tokenizer.json': { version: '1.0' } })))).toMatchObject({ code: 'invalid_tokenizer' });
    const badModel = { ...tinyTokenizerJson(), model: { type: 'Nonsense' } };
    expect(catchError(() => StarqTokenizer.load(modelDir({ 'tokenizer.json': badModel })))).toMatchObject({ code: 'invalid_tokenizer' });
    expect(
      catchError(() => StarqTokenizer.load(modelDir({ 'tokenizer.json': tinyTokenizerJson(), 'tokenizer_config.json': '[1,' }))),
    ).toMatchObject({ code: 'invalid_tokenizer' });
    expect(
      catchError(() => StarqTokenizer.load(modelDir({ 'tokenizer.json': tinyTokenizerJson(), 'tokenizer_config.json': { eos_token: '<nope>' } }))),
    ).toMatchObject({ code: 'invalid_tokenizer' });
    expect(
      catchError(() => StarqTokenizer.load(modelDir({ 'tokenizer.json': tinyTokenizerJson(), 'generation_config.json': { eos_token_id: 'x' } }))),
    ).toMatchObject({ code: 'invalid_tokenizer' });
  });

  it('decodes incrementally without emitting U+FFFD mid-character', () => {
    const text = 'hello 你好 wé';
    const ids = tok.encode(text, { addSpecialTokens: false });
    const dec = tok.createIncrementalDecoder();
    const deltas = ids.map((id) => dec.push(id));
    const out = deltas.join('') + dec.flush();
    expect(out).toBe(tok.decode(ids));
    expect(out).toBe(text);
    for (const d of deltas) expect(d).not.toContain('\uFFFD');
    expect(deltas.filter((d) => d === '').length).toBeGreaterThanOrEqual(4); // bytes held back until complete
  });

  it('holds back clean-up prefixes so streamed text equals the cleaned decode', () => {
    const t = StarqTokenizer.fromFiles({ tokenizer: tinyTokenizerJson(), tokenizerConfig: { clean_up_tokenization_spaces: true } });
    const ids = [273, 260, 268]; // "hello", "▁", "." → "hello ." → cleaned "hello."
    expect(t.decode(ids)).toBe('hello.');
    let emitted = '';
    for (let i = 1; i <= ids.length; i++) emitted += t.decodeIncremental(ids.slice(0, i), emitted.length);
    emitted += t.decodeIncremental(ids, emitted.length, { final: true });
    expect(emitted).toBe('hello.');
  });
});

// ---------------------------------------------------------------------------------------------

interface FixtureCase {
  text: string;
  ids: number[];
  decoded: string;
}

(HAVE_STORIES ? describe : describe.skip)('StarqTokenizer on stories260K (requires ../shared)', () => {
  let tok: StarqTokenizer;
  let cases: FixtureCase[];
  beforeAll(() => {
    // run.c encodes a literal "<s>" as characters: split special tokens to match it.
    tok = StarqTokenizer.load(STORIES_DIR, { splitSpecialTokens: true });
    cases = (JSON.parse(fs.readFileSync(path.join(STORIES_DIR, 'tokenizer_fixtures.json'), 'utf8')) as { cases: FixtureCase[] }).cases;
  });

  it('has the expected metadata', () => {
    expect(cases).toHaveLength(22);
    expect(tok.vocabSize).toBe(512);
    expect(tok.bosTokenId).toBe(1);
    expect(tok.eosTokenIds).toEqual([2]);
    expect(tok.addsBosToken).toBe(true);
    expect(tok.hasChatTemplate).toBe(false);
  });

  it('encodes all fixture texts to the run.c ids (BOS included)', () => {
    for (const c of cases) expect({ text: c.text, ids: tok.encode(c.text) }).toEqual({ text: c.text, ids: c.ids });
  });

  it('decodes ids[1:] of all fixtures to the run.c text', () => {
    for (const c of cases) expect({ ids: c.ids, text: tok.decode(c.ids.slice(1)) }).toEqual({ ids: c.ids, text: c.decoded });
  });

  it('matches a literal <s> as the special token without splitSpecialTokens', () => {
    const hf = StarqTokenizer.load(STORIES_DIR);
    expect(hf.encode('<s>', { addSpecialTokens: false })).toEqual([1]);
    expect(tok.encode('<s>', { addSpecialTokens: false })).not.toContain(1);
    const literal = cases.find((c) => c.text.startsWith('<s>'))!;
    expect(hf.encode(literal.text)).not.toEqual(literal.ids);
  });

  it('streams multibyte UTF-8 from byte-fallback pieces without U+FFFD', () => {
    const text = 'Emoji 😀 and 你好 and привет';
    const ids = tok.encode(text, { addSpecialTokens: false });
    expect(ids.some((id) => id >= 3 && id <= 258)).toBe(true); // byte fallback in use
    const dec = tok.createIncrementalDecoder();
    const deltas = ids.map((id) => dec.push(id));
    expect(deltas.join('') + dec.flush()).toBe(text);
    for (const d of deltas) expect(d).not.toContain('\uFFFD');
    // Mid-emoji, nothing of it is emitted yet.
    const emoji = ids.findIndex((id) => id === 3 + 0xf0);
    expect(emoji).toBeGreaterThan(0);
    expect(tok.decodeIncremental(ids.slice(0, emoji + 2), 'Emoji '.length)).toBe('');
  });
});
