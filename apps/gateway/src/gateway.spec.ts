/**
 * Unit tests of the gateway's pure parts: configuration, authentication, body parsing and
 * validation, stop sequences, the chat → (context, query) split. The HTTP API end to end is
 * tested in test/gateway.e2e.ts.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { StarqTokenizer } from '@starq/model/tokenizer';
import { writeRandomCheckpoint } from '@starq/model/synthetic/random-checkpoint';
import { Authenticator } from './auth';
import { parseGatewayConfig } from './config';
import { compareEntryIds } from './event-hub';
import { parseJsonObject, readBody, toErrorResponse, type Req } from './http';
import { chatToIds, StopMatcher } from './prompting';
import { ChatBody, CompletionBody, JobBody, parseBody } from './schemas';

let dir = '';
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'starq-gw-unit-'));
  writeRandomCheckpoint(dir, { architecture: 'llama', hidden: 16, intermediate: 32, layers: 1, heads: 2, kvHeads: 1, vocab: 80, maxPositions: 128, dtype: 'F32', tied: true, sharded: false, seed: 1 });
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function errorOf(fn: () => unknown): { status: number; code: string; param: string | null; message: string } {
  try {
    fn();
  } catch (e) {
    const { status, body } = toErrorResponse(e, () => undefined);
    return { status, ...body.error };
  }
  throw new Error('expected an error');
}

describe('parseGatewayConfig', () => {
  it('reads every variable with defaults', () => {
    const cfg = parseGatewayConfig({ STARQ_MODEL_DIR: dir, STARQ_API_KEYS: ' a1 , b2 ,', STARQ_ADMIN_KEY: 'adm', STARQ_GATEWAY_PORT: '0', STARQ_MAX_QUEUE: '5' });
    expect(cfg).toMatchObject({ redisUrl: 'redis://127.0.0.1:6379', prefix: 'starq', modelDir: dir, modelId: path.basename(dir), host: '127.0.0.1', port: 0, apiKeys: ['a1', 'b2'], adminKey: 'adm', maxQueue: 5, maxBodyBytes: 16 * 1024 * 1024, sseKeepAliveMs: 15000, sseRetryMs: 3000 });
    expect(parseGatewayConfig({ STARQ_MODEL_DIR: dir, STARQ_SSE_KEEPALIVE_MS: '500', STARQ_SSE_RETRY_MS: '0' })).toMatchObject({ sseKeepAliveMs: 500, sseRetryMs: 0 });
    expect(errorOf(() => parseGatewayConfig({ STARQ_MODEL_DIR: dir, STARQ_SSE_KEEPALIVE_MS: '0' })).message).toContain('STARQ_SSE_KEEPALIVE_MS');
  });

  it('reports every bad variable in one error and never echoes a key', () => {
    const e = errorOf(() => parseGatewayConfig({ STARQ_MODEL_DIR: '/nope', STARQ_GATEWAY_PORT: '70000', STARQ_MAX_BODY_BYTES: 'lots', STARQ_REDIS_URL: 'http://x', STARQ_API_KEYS: 'secret-one', STARQ_ADMIN_KEY: 'secret-one' }));
    expect(e).toMatchObject({ status: 400, code: 'invalid_config', param: 'env' });
    for (const v of ['STARQ_MODEL_DIR', 'STARQ_GATEWAY_PORT', 'STARQ_MAX_BODY_BYTES', 'STARQ_REDIS_URL', 'STARQ_ADMIN_KEY']) expect(e.message).toContain(v);
    expect(e.message).not.toContain('secret-one');
    expect(errorOf(() => parseGatewayConfig({})).message).toMatch(/STARQ_MODEL_DIR is required/);
  });
});

describe('Authenticator', () => {
  const req = (authorization?: string) => ({ headers: authorization === undefined ? {} : { authorization } }) as Req;
  const auth = new Authenticator({ apiKeys: ['user-key-1', 'user-key-2'], adminKey: 'admin-key' });

  it('accepts user keys on user routes and the admin key everywhere', () => {
    const a = auth.authenticate(req('Bearer user-key-1'), 'user');
    const b = auth.authenticate(req('Bearer user-key-2'), 'user');
    expect(a.admin).toBe(false);
    expect(a.owner).not.toBe(b.owner);
    expect(a.owner).not.toContain('user-key');
    expect(auth.authenticate(req('bearer admin-key'), 'admin').admin).toBe(true);
    expect(auth.authenticate(req('Bearer admin-key'), 'user').admin).toBe(true);
  });

  it('401 for missing, malformed or wrong keys; 403 for a user key on admin routes', () => {
    expect(errorOf(() => auth.authenticate(req(), 'user'))).toMatchObject({ status: 401, code: 'missing_api_key' });
    expect(errorOf(() => auth.authenticate(req('Basic abc'), 'user'))).toMatchObject({ status: 401, code: 'invalid_authorization' });
    expect(errorOf(() => auth.authenticate(req('Bearer nope'), 'user'))).toMatchObject({ status: 401, code: 'invalid_api_key' });
    expect(errorOf(() => auth.authenticate(req('Bearer user-key-1'), 'admin'))).toMatchObject({ status: 403, code: 'admin_required' });
  });

  it('with no keys configured everything is open', () => {
    const open = new Authenticator({ apiKeys: [], adminKey: null });
    expect(open.enabled).toBe(false);
    expect(open.authenticate(req(), 'admin')).toEqual({ owner: 'anonymous', admin: true });
  });

  it('names job owners for the dashboard without revealing keys', () => {
    const owner = (k: string) => auth.authenticate(req(`Bearer ${k}`), 'user').owner;
    expect(auth.ownerLabel(owner('user-key-2'))).toBe('API key #2');
    expect(auth.ownerLabel(owner('admin-key'))).toBe('admin key');
    expect(auth.ownerLabel('anonymous')).toBe('anonymous');
    expect(auth.ownerLabel('0123456789abcdef')).toBe('retired key');
  });
});

describe('request bodies', () => {
  it('applies the native defaults', () => {
    expect(parseBody(JobBody, { contextIds: [1, 2], queryIds: [3] })).toMatchObject({ mode: 'star', maxNewTokens: 32, temperature: 0, topP: 1, topK: 0, seed: 0, ignoreEos: false, cache: true });
  });

  it('names the first bad field, lists every problem', () => {
    const e = errorOf(() => parseBody(JobBody, { contextIds: [1, 'x'], queryIds: [3], blockSize: -1, extra: true }));
    expect(e).toMatchObject({ status: 400, param: 'contextIds[1]', code: 'invalid_type' });
    expect(e.message).toMatch(/^3 problems: .*blockSize.*unknown field "extra"/);
    expect(errorOf(() => parseBody(CompletionBody, { prompt: 'x' }))).toMatchObject({ code: 'missing_field', param: 'model' });
    expect(errorOf(() => parseBody(CompletionBody, { model: 'm', prompt: 'x', star: { block_size: 0 } }))).toMatchObject({ code: 'invalid_value', param: 'star.block_size' });
    expect(errorOf(() => parseBody(ChatBody, { model: 'm', messages: [{ role: 'user', content: 5 }] }))).toMatchObject({ param: 'messages[0].content' });
    // OpenAI routes ignore fields they do not know (clients send extras).
    expect(parseBody(CompletionBody, { model: 'm', prompt: 'x', logit_bias: {} }).model).toBe('m');
  });

  const body = (text: string, headers: Record<string, string> = {}) => {
    const s = new PassThrough() as unknown as Req;
    (s as { headers: Record<string, string> }).headers = headers;
    setImmediate(() => (s as unknown as PassThrough).end(text));
    return s;
  };

  it('reads bounded bodies: 413 over the limit, 415 for a non-JSON Content-Type', async () => {
    await expect(readBody(body('{"a":1}'), 1024)).resolves.toEqual(Buffer.from('{"a":1}'));
    await expect(readBody(body('{"a":1}', { 'content-type': 'application/json; charset=UTF-8' }), 1024)).resolves.toHaveLength(7);
    await expect(readBody(body('{}', { 'content-type': 'application/vnd.api+json' }), 1024)).resolves.toHaveLength(2);
    await expect(readBody(body('x'.repeat(2000)), 1024)).rejects.toMatchObject({ code: 'body_too_large', status: 413 });
    await expect(readBody(body('{}', { 'content-length': '5000' }), 1024)).rejects.toMatchObject({ code: 'body_too_large' });
    for (const ct of ['application/x-www-form-urlencoded', 'text/plain', 'multipart/form-data; boundary=x', 'application/json; charset=latin1']) {
      await expect(readBody(body('{}', { 'content-type': ct }), 1024)).rejects.toMatchObject({ code: 'unsupported_media_type', status: 415, param: 'Content-Type' });
    }
  });

  it('parses bodies strictly: 400 for bad JSON, non-objects, invalid UTF-8 and lone surrogates', () => {
    const parse = (b: string | Buffer) => errorOf(() => parseJsonObject(Buffer.from(b as string)));
    expect(parseJsonObject(Buffer.from('{"a":"é😀"}'))).toEqual({ a: 'é😀' });
    expect(parse('{"a":')).toMatchObject({ code: 'invalid_json', status: 400 });
    expect(parse('')).toMatchObject({ code: 'invalid_json' });
    expect(parse('"str"')).toMatchObject({ code: 'invalid_body' });
    expect(parse(Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]))).toMatchObject({ code: 'invalid_utf8', status: 400 });
    expect(parse(Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc3, 0x22, 0x7d])).message).toContain('offset 6');
    expect(parse('{"context":"ok","query":"a\\ud800b"}')).toMatchObject({ code: 'invalid_unicode', param: 'query' });
    expect(parse('{"messages":[{"role":"user","content":"\\udc00"}]}')).toMatchObject({ code: 'invalid_unicode', param: 'messages[0].content' });
    expect(parseJsonObject(Buffer.from('{"q":"\\ud83d\\ude00"}'))).toEqual({ q: '😀' }); // an escaped pair is fine
  });
});

describe('StopMatcher', () => {
  it('holds back a possible stop prefix and cuts at the earliest stop sequence', () => {
    const m = new StopMatcher(['END', 'xy']);
    expect(m.push('hello E')).toEqual({ text: 'hello ', stopped: false });
    expect(m.push('N')).toEqual({ text: '', stopped: false });
    expect(m.push('Dless')).toEqual({ text: '', stopped: true });
    expect(m.push('more')).toEqual({ text: '', stopped: true });
    const n = new StopMatcher(['END']);
    expect(n.push('aE')).toEqual({ text: 'a', stopped: false });
    expect(n.push('x')).toEqual({ text: 'Ex', stopped: false });
    expect(n.push('E')).toEqual({ text: '', stopped: false });
    expect(n.flush()).toBe('E');
    expect(new StopMatcher([]).push('anything')).toEqual({ text: 'anything', stopped: false });
  });
});

describe('chatToIds', () => {
  it('context ++ query is the rendered chat; the last user message starts the query', () => {
    const tc = path.join(dir, 'tokenizer_config.json');
    const cfg = JSON.parse(fs.readFileSync(tc, 'utf8'));
    const withTemplate = StarqTokenizer.fromFiles({
      tokenizer: JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8')),
      tokenizerConfig: { ...cfg, chat_template: '{{ bos_token }}{% for m in messages %}{{ m.role }}: {{ m.content }} {% endfor %}{% if add_generation_prompt %}assistant:{% endif %}' },
    });
    const messages = [
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'a long document' },
      { role: 'assistant', content: 'ok' },
      { role: 'user', content: 'question' },
    ];
    const { contextIds, queryIds } = chatToIds(withTemplate, messages);
    expect([...contextIds, ...queryIds]).toEqual(withTemplate.encodeChat(messages, { addGenerationPrompt: true }));
    expect(withTemplate.decode(queryIds)).toMatch(/question/);
    expect(withTemplate.decode(contextIds)).not.toMatch(/question/);
    const single = chatToIds(withTemplate, [{ role: 'user', content: 'hi' }]);
    expect(single.contextIds).toEqual([1]); // BOS
    expect(errorOf(() => chatToIds(withTemplate, [{ role: 'system', content: 'x' }]))).toMatchObject({ code: 'invalid_messages', param: 'messages' });
    expect(errorOf(() => chatToIds(StarqTokenizer.load(dir), messages))).toMatchObject({ status: 400, code: 'no_chat_template' });
  });
});

it('compareEntryIds orders Redis stream ids numerically', () => {
  expect(compareEntryIds('0', '1-0')).toBeLessThan(0);
  expect(compareEntryIds('10-0', '9-5')).toBeGreaterThan(0);
  expect(compareEntryIds('5-10', '5-9')).toBeGreaterThan(0);
  expect(compareEntryIds('5-1', '5-1')).toBe(0);
});
