/**
 * The tokenizer of a Hugging Face model directory: `tokenizer.json` (run by
 * `@huggingface/tokenizers`) plus the optional `tokenizer_config.json`, `special_tokens_map.json`,
 * `generation_config.json`, `config.json` and `chat_template.jinja`. Everything is read from disk;
 * nothing touches the network.
 *
 * What lives here:
 * - `encode` / `decode` with Hugging Face semantics (BOS comes from the tokenizer's post-processor,
 *   exactly as `transformers` does it; the `add_bos_token` flag of tokenizer_config.json is not
 *   consulted separately);
 * - BOS/EOS ids resolved from the config files (precedence documented on {@link StarqTokenizer});
 * - streaming-safe incremental decoding ({@link StarqTokenizer.decodeIncremental},
 *   {@link IncrementalDecoder});
 * - chat templates rendered with `@huggingface/jinja`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';
import { InvalidInputError, ModelLoadError } from '@starq/protocol/errors';

/** One chat message, as passed to the chat template. Extra fields are passed through. */
export interface ChatMessage {
  role: string;
  content: string;
  [extra: string]: unknown;
}

export interface TokenizerLoadOptions {
  /**
   * Default for {@link EncodeOptions.splitSpecialTokens}. When absent, tokenizer_config.json's
   * `split_special_tokens` is used, else `false` (the Hugging Face default).
   */
  splitSpecialTokens?: boolean;
}

export interface EncodeOptions {
  /**
   * Let the post-processor add its special tokens (e.g. BOS for Llama). @defaultValue true.
   * Use `false` for text that continues a sequence (query tokens, chat-rendered prompts).
   */
  addSpecialTokens?: boolean;
  /**
   * Treat special-token strings in the text (`<s>`, `</s>`, `<|im_end|>`, …) as ordinary characters
   * instead of matching them as special tokens — Python `tokenizers`' `encode_special_tokens = true`,
   * `transformers`' `split_special_tokens=True`. This is llama2.c run.c's behaviour, and it keeps
   * user text from injecting control tokens. Special tokens added by the post-processor (BOS) are
   * still added. Non-special added tokens are still matched. @defaultValue the load-time default.
   */
  splitSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens (BOS, EOS, chat markers, …) from the text. @defaultValue false */
  skipSpecialTokens?: boolean;
  /**
   * Apply the BERT-era clean-up (`" ."` → `"."`, `" n't"` → `"n't"`, …).
   * @defaultValue tokenizer_config.json `clean_up_tokenization_spaces`, else false.
   */
  cleanUpTokenizationSpaces?: boolean;
}

export interface IncrementalDecodeOptions extends DecodeOptions {
  /**
   * The sequence is complete: emit everything, including a trailing U+FFFD from an incomplete
   * UTF-8 sequence that will now never be completed. @defaultValue false
   */
  final?: boolean;
}

export interface ChatTemplateOptions {
  /** Append the template's assistant-turn opener (`add_generation_prompt`). @defaultValue false */
  addGenerationPrompt?: boolean;
  /** Extra template variables (e.g. `tools`, `date_string`). They cannot override `messages`. */
  variables?: Record<string, unknown>;
}

/**
 * Parsed contents of a model directory's tokenizer files (`undefined` = file absent). Lets callers
 * (and tests) build a tokenizer without a directory; {@link StarqTokenizer.load} fills it from disk.
 */
export interface TokenizerFiles {
  /** tokenizer.json (required). */
  tokenizer: unknown;
  /** tokenizer_config.json */
  tokenizerConfig?: unknown;
  /** special_tokens_map.json */
  specialTokensMap?: unknown;
  /** generation_config.json */
  generationConfig?: unknown;
  /** config.json */
  config?: unknown;
  /** chat_template.jinja (newer `transformers` store the template there instead of the config). */
  chatTemplate?: string;
}

type JsonObject = Record<string, unknown>;

/** Patterns replaced by `clean_up_tokenization_spaces` (as in transformers / tokenizers.js). */
const CLEANUP_PATTERNS = [' .', ' ?', ' !', ' ,', " ' ", " n't", " 'm", " 's", " 've", " 're"];
const REPLACEMENT_CHAR = 0xfffd;

/**
 * A Hugging Face tokenizer plus the model's special-token metadata.
 *
 * **BOS/EOS precedence.** A special token named in a config file as a string or as
 * `{"content": …}` is resolved through the vocabulary; an id that is not in the vocabulary is a
 * load error. `null` means "not set" and falls through.
 * - `bosTokenId`: tokenizer_config.json `bos_token` → special_tokens_map.json `bos_token` →
 *   generation_config.json `bos_token_id` → config.json `bos_token_id` → `null`.
 * - `eosTokenIds` (generation stops on any of them, in this order, without duplicates): the token
 *   named by tokenizer_config.json `eos_token` (else special_tokens_map.json `eos_token`), followed
 *   by every id of generation_config.json `eos_token_id` (number or array). Only when both are
 *   absent: config.json `eos_token_id` (number or array). Otherwise `[]`.
 *
 * Whether encode adds BOS is decided by tokenizer.json's post-processor alone (see
 * {@link StarqTokenizer.addsBosToken}).
 */
export class StarqTokenizer {
  /** Where the tokenizer came from (the model directory), for error messages. */
  readonly source: string;
  /** Number of token ids the tokenizer knows: highest id + 1 (the model may have more logits). */
  readonly vocabSize: number;
  /** BOS id (see the class doc for precedence), or null when the model defines none. */
  readonly bosTokenId: number | null;
  /** EOS ids (see the class doc for precedence); may be empty. */
  readonly eosTokenIds: number[];
  /** BOS / EOS strings, as given to chat templates (`''` there when null). */
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  /** True when `encode(text)` (with special tokens) starts with {@link bosTokenId}. */
  readonly addsBosToken: boolean;

  private readonly hf: Tokenizer;
  /** tokenizer.json with its special added tokens removed; built lazily for split mode. */
  private splitHf: Tokenizer | null = null;
  private maxCharsCache: number | null = null;
  private readonly tokenizerJson: JsonObject;
  private readonly libConfig: JsonObject;
  private readonly splitSpecialTokensDefault: boolean;
  private readonly cleanUpDefault: boolean;
  private readonly specialIds: ReadonlySet<number>;
  private readonly specialVars: Record<string, string>;
  /** The chat template: parsed, failed to parse, or unusable (reason given), or none. */
  private readonly chat:
    | { kind: 'ok'; template: Template }
    | { kind: 'broken'; reason: string }
    | { kind: 'none'; reason: string };

  /**
   * Loads the tokenizer of a Hugging Face model directory. **Synchronous** (plain file reads).
   * @throws ModelLoadError `tokenizer_not_found` when the directory or its tokenizer.json is missing,
   *   `invalid_tokenizer` when a file is malformed or unsupported (param `model`).
   */
  static load(dir: string, options: TokenizerLoadOptions = {}): StarqTokenizer {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(dir);
    } catch {
      throw new ModelLoadError('tokenizer_not_found', `Model directory ${dir} does not exist.`);
    }
    if (!stat.isDirectory()) {
      throw new ModelLoadError('tokenizer_not_found', `Model path ${dir} is not a directory; pass a Hugging Face model directory.`);
    }
    const tokenizerPath = path.join(dir, 'tokenizer.json');
    if (!fs.existsSync(tokenizerPath)) {
      const hint = fs.existsSync(path.join(dir, 'tokenizer.model'))
        ? ' It has a SentencePiece tokenizer.model only; save the tokenizer with transformers (a "fast" tokenizer) to produce tokenizer.json.'
        : '';
      throw new ModelLoadError('tokenizer_not_found', `No tokenizer.json in ${dir}; starq needs a Hugging Face tokenizer.json.${hint}`);
    }
    const files: TokenizerFiles = {
      tokenizer: readJson(tokenizerPath),
      tokenizerConfig: readJson(path.join(dir, 'tokenizer_config.json'), true),
      specialTokensMap: readJson(path.join(dir, 'special_tokens_map.json'), true),
      generationConfig: readJson(path.join(dir, 'generation_config.json'), true),
      config: readJson(path.join(dir, 'config.json'), true),
      chatTemplate: readText(path.join(dir, 'chat_template.jinja')),
    };
    return StarqTokenizer.fromFiles(files, options, dir);
  }

  /**
   * Builds a tokenizer from already-parsed files (see {@link TokenizerFiles}).
   * @param source Name used in error messages (normally the model directory).
   * @throws ModelLoadError `invalid_tokenizer` when the contents are malformed or unsupported.
   */
  static fromFiles(files: TokenizerFiles, options: TokenizerLoadOptions = {}, source = '<memory>'): StarqTokenizer {
    return new StarqTokenizer(files, options, source);
  }

  private constructor(files: TokenizerFiles, options: TokenizerLoadOptions, source: string) {
    this.source = source;
    const tj = files.tokenizer;
    if (!isObject(tj) || !isObject(tj.model)) {
      throw new ModelLoadError('invalid_tokenizer', `${source}: tokenizer.json has no "model" object; it is not a Hugging Face tokenizer.json.`);
    }
    const tc = optionalObject(files.tokenizerConfig, source, 'tokenizer_config.json');
    const stm = optionalObject(files.specialTokensMap, source, 'special_tokens_map.json');
    const gen = optionalObject(files.generationConfig, source, 'generation_config.json');
    const cfg = optionalObject(files.config, source, 'config.json');

    // tokenizers.js requires these keys to exist (null allowed) and expects plain-string tokens in its config.
    this.tokenizerJson = { normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, added_tokens: [], ...tj };
    if (!Array.isArray(this.tokenizerJson.added_tokens)) {
      throw new ModelLoadError('invalid_tokenizer', `${source}: tokenizer.json "added_tokens" must be an array.`);
    }
    this.libConfig = { ...tc };
    for (const key of ['bos_token', 'eos_token', 'unk_token', 'pad_token', 'sep_token', 'cls_token', 'mask_token']) {
      const content = tokenContent(tc[key], source, `tokenizer_config.json ${key}`);
      if (content === null) delete this.libConfig[key];
      else this.libConfig[key] = content;
    }
    this.hf = buildHfTokenizer(this.tokenizerJson, this.libConfig, source);

    let maxId = -1;
    for (const id of this.hf.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    this.specialIds = new Set(
      (this.tokenizerJson.added_tokens as unknown[]).filter((t): t is JsonObject => isObject(t) && t.special === true).map((t) => Number(t.id)),
    );

    this.splitSpecialTokensDefault =
      options.splitSpecialTokens ?? optionalBoolean(tc.split_special_tokens, source, 'tokenizer_config.json split_special_tokens') ?? false;
    this.cleanUpDefault =
      optionalBoolean(tc.clean_up_tokenization_spaces, source, 'tokenizer_config.json clean_up_tokenization_spaces') ?? false;

    // --- BOS / EOS (precedence documented on the class) ---
    const bosName =
      tokenContent(tc.bos_token, source, 'tokenizer_config.json bos_token') ??
      tokenContent(stm.bos_token, source, 'special_tokens_map.json bos_token');
    this.bosTokenId =
      bosName !== null
        ? this.requireId(bosName, 'bos_token')
        : (idList(gen.bos_token_id, source, 'generation_config.json bos_token_id')[0] ??
          idList(cfg.bos_token_id, source, 'config.json bos_token_id')[0] ??
          null);
    this.bosToken = bosName ?? (this.bosTokenId !== null ? (this.hf.id_to_token(this.bosTokenId) ?? null) : null);

    const eosName =
      tokenContent(tc.eos_token, source, 'tokenizer_config.json eos_token') ??
      tokenContent(stm.eos_token, source, 'special_tokens_map.json eos_token');
    const eos: number[] = eosName !== null ? [this.requireId(eosName, 'eos_token')] : [];
    eos.push(...idList(gen.eos_token_id, source, 'generation_config.json eos_token_id'));
    if (eos.length === 0) eos.push(...idList(cfg.eos_token_id, source, 'config.json eos_token_id'));
    this.eosTokenIds = [...new Set(eos)];
    this.eosToken = eosName ?? (this.eosTokenIds.length > 0 ? (this.hf.id_to_token(this.eosTokenIds[0]) ?? null) : null);

    this.addsBosToken = this.bosTokenId !== null && this.hf.encode('', { add_special_tokens: true }).ids[0] === this.bosTokenId;

    this.specialVars = {};
    for (const key of ['bos_token', 'eos_token', 'unk_token', 'pad_token']) {
      const value = key === 'bos_token' ? this.bosToken : key === 'eos_token' ? this.eosToken : this.libConfig[key];
      if (typeof value === 'string') this.specialVars[key] = value;
    }
    this.chat = resolveChatTemplate(tc.chat_template, files.chatTemplate, source);
  }

  // ------------------------------------------------------------------ encode / decode

  /**
   * Text → token ids. With `addSpecialTokens` (default) the post-processor adds what the model
   * expects (BOS for Llama-style tokenizers, nothing for Qwen2).
   */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const addSpecial = options.addSpecialTokens ?? true;
    const split = options.splitSpecialTokens ?? this.splitSpecialTokensDefault;
    if (!split) return this.hf.encode(text, { add_special_tokens: addSpecial }).ids;
    // The split tokenizer does not know the special tokens as added tokens, so its ids for the
    // post-processor's tokens (e.g. "<s>") may be wrong: map its token strings back through the
    // full tokenizer, which knows them all.
    const enc = this.splitTokenizer().encode(text, { add_special_tokens: addSpecial });
    return enc.tokens.map((token, i) => this.hf.token_to_id(token) ?? enc.ids[i]);
  }

  /**
   * Token ids → text. An empty list gives `''`.
   * @throws InvalidInputError `invalid_token_id` (param `ids`) for an id the tokenizer does not know.
   */
  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    if (ids.length === 0) return '';
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize || this.hf.id_to_token(id) === undefined) {
        throw new InvalidInputError('invalid_token_id', `Token id ${id} is not in the tokenizer vocabulary of ${this.source} (0..${this.vocabSize - 1}).`, 'ids');
      }
    }
    return this.hf.decode(ids as number[], {
      skip_special_tokens: options.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: options.cleanUpTokenizationSpaces ?? this.cleanUpDefault,
    });
  }

  /**
   * Streaming helper: given **all** ids generated so far and how many characters of their decoded
   * text were already emitted, returns the new text to emit (possibly `''`). Append it to your
   * output and add its `length` to `emittedChars`.
   *
   * Text that a later token can still change is held back: a trailing U+FFFD (an incomplete UTF-8
   * sequence, e.g. the first byte-fallback piece `<0xE4>` of "你") and, with clean-up enabled, a
   * trailing `" "`/`" n"`/`" '"`… that a following token could turn into `"."`/`"n't"`/`"'s"`. Pass
   * `final: true` at the end of the sequence to flush it. Concatenating all deltas (with the final
   * call) equals `decode(ids, options)`.
   *
   * Decodes the whole sequence on each call (O(n) per token); fine for generation lengths.
   */
  decodeIncremental(ids: readonly number[], emittedChars: number, options: IncrementalDecodeOptions = {}): string {
    const text = this.decode(ids, options);
    const end = options.final ? text.length : stableLength(text, options.cleanUpTokenizationSpaces ?? this.cleanUpDefault);
    return end > emittedChars ? text.slice(emittedChars, end) : '';
  }

  /** A stateful wrapper around {@link decodeIncremental} for one generated sequence. */
  createIncrementalDecoder(options: DecodeOptions = {}): IncrementalDecoder {
    return new IncrementalDecoder(this, options);
  }

  /** The id of a token string (`undefined` when absent), e.g. `tokenToId('<s>') === 1`. */
  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  /** The token string of an id (`undefined` when absent), e.g. `idToToken(1) === '<s>'`. */
  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }

  /**
   * The most UTF-16 code units of input text that one token can stand for: the longest token
   * string of the vocabulary and of the added tokens (a byte-level token string has one character
   * per byte, a SentencePiece byte-fallback token `<0xAB>` stands for one byte). So a text of `c`
   * code units encodes to at least `c / maxCharsPerToken` tokens, which lets a caller refuse text
   * that cannot fit a position limit without tokenizing it. `Infinity` when the tokenizer's
   * normalizer may shrink text (Unicode composition, stripping, replacements by shorter strings):
   * then no such bound holds.
   */
  get maxCharsPerToken(): number {
    if (this.maxCharsCache === null) this.maxCharsCache = normalizerMayShrink(this.tokenizerJson.normalizer) ? Infinity : longestToken(this.tokenizerJson);
    return this.maxCharsCache;
  }

  /** True for ids of special added tokens (BOS, EOS, unk, chat markers, …). */
  isSpecialTokenId(id: number): boolean {
    return this.specialIds.has(id);
  }

  // ------------------------------------------------------------------ chat templates

  /** True when the model ships a usable-looking chat template (tokenizer_config.json or chat_template.jinja). */
  get hasChatTemplate(): boolean {
    return this.chat.kind !== 'none';
  }

  /**
   * Renders the chat template (variables `messages`, `add_generation_prompt`, `bos_token`,
   * `eos_token`, `unk_token`, `pad_token`, plus `options.variables`). The result usually already
   * contains BOS: encode it with `addSpecialTokens: false`, or use {@link encodeChat}.
   * @throws InvalidInputError `no_chat_template` when the model has none; `invalid_messages` for
   *   malformed messages; `chat_template_error` when the template rejects them (param `messages`).
   * @throws ModelLoadError `invalid_chat_template` when the model's template does not parse.
   */
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
    if (this.chat.kind === 'none') {
      throw new InvalidInputError('no_chat_template', `Model ${this.source} has no chat template (${this.chat.reason}); send a plain prompt instead of chat messages.`, 'messages');
    }
    if (this.chat.kind === 'broken') {
      throw new ModelLoadError('invalid_chat_template', `The chat template of ${this.source} cannot be parsed: ${this.chat.reason}`);
    }
    validateMessages(messages);
    try {
      return this.chat.template.render({
        ...this.specialVars,
        ...options.variables,
        messages,
        add_generation_prompt: options.addGenerationPrompt ?? false,
      });
    } catch (err) {
      throw new InvalidInputError('chat_template_error', `The chat template of ${this.source} rejected the messages: ${errorMessage(err)}`, 'messages');
    }
  }

  /**
   * Chat messages → prompt ids: {@link applyChatTemplate}, then encode without adding special
   * tokens and with special-token strings matched (the template's markers must become tokens).
   */
  encodeChat(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): number[] {
    return this.encode(this.applyChatTemplate(messages, options), { addSpecialTokens: false, splitSpecialTokens: false });
  }

  // ------------------------------------------------------------------ internals

  private requireId(token: string, key: string): number {
    const id = this.hf.token_to_id(token);
    if (id === undefined) {
      throw new ModelLoadError('invalid_tokenizer', `${this.source}: ${key} ${JSON.stringify(token)} is not in the tokenizer vocabulary.`);
    }
    return id;
  }

  private splitTokenizer(): Tokenizer {
    if (this.splitHf === null) {
      const added = (this.tokenizerJson.added_tokens as unknown[]).filter((t) => !(isObject(t) && t.special === true));
      this.splitHf = buildHfTokenizer({ ...this.tokenizerJson, added_tokens: added }, this.libConfig, this.source);
    }
    return this.splitHf;
  }
}

/**
 * Incremental decoder for one sequence: `push` generated ids, get printable text deltas; `flush`
 * at the end. The concatenation of all returned strings equals `tokenizer.decode(ids, options)`.
 */
export class IncrementalDecoder {
  private readonly ids: number[] = [];
  private emitted = '';

  constructor(
    private readonly tokenizer: StarqTokenizer,
    private readonly options: DecodeOptions = {},
  ) {}

  /** Appends one or more ids; returns the text that became final (possibly `''`). */
  push(ids: number | readonly number[]): string {
    if (typeof ids === 'number') this.ids.push(ids);
    else this.ids.push(...ids);
    return this.take(false);
  }

  /** Ends the sequence: returns whatever was held back. */
  flush(): string {
    return this.take(true);
  }

  /** The text emitted so far. */
  get text(): string {
    return this.emitted;
  }

  /** All ids pushed so far. */
  get tokenIds(): readonly number[] {
    return this.ids;
  }

  private take(final: boolean): string {
    const delta = this.tokenizer.decodeIncremental(this.ids, this.emitted.length, { ...this.options, final });
    this.emitted += delta;
    return delta;
  }
}

// ---------------------------------------------------------------------- helpers

/**
 * Length of the prefix of `text` that no further token can change: without a trailing run of
 * U+FFFD (incomplete UTF-8) and, with clean-up, without a trailing proper prefix of a clean-up
 * pattern (all patterns start with a space).
 */
function stableLength(text: string, cleanUp: boolean): number {
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === REPLACEMENT_CHAR) end--;
  if (cleanUp) {
    for (let hold = 3; hold >= 1; hold--) {
      if (end < hold) continue;
      const tail = text.slice(end - hold, end);
      if (CLEANUP_PATTERNS.some((p) => p.length > hold && p.startsWith(tail))) {
        end -= hold;
        break;
      }
    }
  }
  return end;
}

function buildHfTokenizer(tokenizerJson: JsonObject, config: JsonObject, source: string): Tokenizer {
  try {
    return new Tokenizer(tokenizerJson, config);
  } catch (err) {
    throw new ModelLoadError('invalid_tokenizer', `${source}: tokenizer.json is malformed or unsupported: ${errorMessage(err)}`);
  }
}

function resolveChatTemplate(
  raw: unknown,
  jinjaFile: string | undefined,
  source: string,
): { kind: 'ok'; template: Template } | { kind: 'broken'; reason: string } | { kind: 'none'; reason: string } {
  let text: string | null = null;
  if (raw === undefined || raw === null) {
    if (jinjaFile === undefined) return { kind: 'none', reason: 'no "chat_template" in tokenizer_config.json and no chat_template.jinja' };
    text = jinjaFile;
  } else if (typeof raw === 'string') {
    text = raw;
  } else if (Array.isArray(raw) || isObject(raw)) {
    // Named templates: [{name, template}, …] (tokenizer_config.json) or {name: template}.
    const named = new Map<string, unknown>();
    if (Array.isArray(raw)) {
      for (const entry of raw) {
        if (!isObject(entry) || typeof entry.name !== 'string' || typeof entry.template !== 'string') {
          throw new ModelLoadError('invalid_tokenizer', `${source}: tokenizer_config.json chat_template entries must be {"name", "template"} strings.`);
        }
        named.set(entry.name, entry.template);
      }
    } else {
      for (const [name, template] of Object.entries(raw)) named.set(name, template);
    }
    const chosen = named.get('default');
    if (chosen === undefined) {
      return { kind: 'none', reason: `its named chat templates (${[...named.keys()].join(', ')}) include none named "default"` };
    }
    if (typeof chosen !== 'string') {
      throw new ModelLoadError('invalid_tokenizer', `${source}: tokenizer_config.json chat_template "default" must be a string.`);
    }
    text = chosen;
  } else {
    throw new ModelLoadError('invalid_tokenizer', `${source}: tokenizer_config.json chat_template must be a string or a list of {"name", "template"}.`);
  }
  try {
    return { kind: 'ok', template: new Template(text) };
  } catch (err) {
    return { kind: 'broken', reason: errorMessage(err) };
  }
}

function validateMessages(messages: readonly ChatMessage[]): void {
  if (!Array.isArray(messages)) {
    throw new InvalidInputError('invalid_messages', 'messages must be a list of {"role", "content"} objects.', 'messages');
  }
  messages.forEach((m: unknown, i) => {
    if (!isObject(m) || typeof m.role !== 'string' || typeof m.content !== 'string') {
      throw new InvalidInputError('invalid_messages', `messages[${i}] must be an object with string "role" and "content".`, 'messages');
    }
  });
}

/** Reads a JSON file; `undefined` when optional and absent. */
function readJson(file: string, optional = false): unknown {
  const text = readText(file);
  if (text === undefined) {
    if (optional) return undefined;
    throw new ModelLoadError('tokenizer_not_found', `${file} does not exist.`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ModelLoadError('invalid_tokenizer', `${file} is not valid JSON: ${errorMessage(err)}`);
  }
}

/** Reads a text file; `undefined` when it does not exist. */
function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ModelLoadError('invalid_tokenizer', `Cannot read ${file}: ${errorMessage(err)}`);
  }
}

function optionalObject(value: unknown, source: string, file: string): JsonObject {
  if (value === undefined) return {};
  if (!isObject(value)) throw new ModelLoadError('invalid_tokenizer', `${source}: ${file} must contain a JSON object.`);
  return value;
}

function optionalBoolean(value: unknown, source: string, what: string): boolean | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') throw new ModelLoadError('invalid_tokenizer', `${source}: ${what} must be true or false.`);
  return value;
}

/** A special token given as `"<s>"` or `{"content": "<s>", …}`; null when unset. */
function tokenContent(value: unknown, source: string, what: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return value;
  if (isObject(value) && typeof value.content === 'string') return value.content;
  throw new ModelLoadError('invalid_tokenizer', `${source}: ${what} must be a string or {"content": string}.`);
}

/** A token id given as a number or a list of numbers; `[]` when unset. */
function idList(value: unknown, source: string, what: string): number[] {
  if (value === undefined || value === null) return [];
  const list = Array.isArray(value) ? value : [value];
  for (const id of list) {
    if (!Number.isInteger(id) || (id as number) < 0) {
      throw new ModelLoadError('invalid_tokenizer', `${source}: ${what} must be a non-negative integer or a list of them.`);
    }
  }
  return list as number[];
}

/**
 * True unless every step of the normalizer keeps or grows the text's length: Prepend, Lowercase
 * (may grow: 'İ' → 'i̇'), NFD/NFKD decomposition, and string Replace by content at least as long.
 */
function normalizerMayShrink(n: unknown): boolean {
  if (n === null || n === undefined) return false;
  if (!isObject(n)) return true;
  switch (n.type) {
    case 'Sequence':
      return !Array.isArray(n.normalizers) || n.normalizers.some((x) => normalizerMayShrink(x));
    case 'Prepend':
    case 'Lowercase':
    case 'NFD':
    case 'NFKD':
      return false;
    case 'Replace': {
      const pattern = isObject(n.pattern) ? n.pattern.String : undefined;
      return !(typeof pattern === 'string' && typeof n.content === 'string' && n.content.length >= pattern.length);
    }
    default:
      return true;
  }
}

/** Longest token string (UTF-16 units) of a tokenizer.json's vocabulary and added tokens. */
function longestToken(tj: JsonObject): number {
  let max = 1;
  const model = isObject(tj.model) ? tj.model : {};
  const vocab = model.vocab;
  const tokens: unknown[] = Array.isArray(vocab) ? vocab.map((v) => (Array.isArray(v) ? v[0] : v)) : isObject(vocab) ? Object.keys(vocab) : [];
  for (const t of tokens) if (typeof t === 'string' && t.length > max) max = t.length;
  for (const t of tj.added_tokens as unknown[]) if (isObject(t) && typeof t.content === 'string' && t.content.length > max) max = t.content.length;
  return max;
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
