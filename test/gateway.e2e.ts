/**
 * End-to-end tests of the HTTP gateway against a real cluster: `starq cluster up` (Redis at
 * 127.0.0.1:6379 under a random prefix, 2 host processes, 1 query actor, the gateway on a free
 * port) serving a generated random checkpoint with a chat template, plus a second gateway on an
 * empty cluster for the "no actors" answers.
 *
 * - Jobs over HTTP give exactly what `starq generate --json` gives in-process (LocalCluster);
 *   SSE streams every token in order; cancel works mid-phase-1 and mid-generation and leaves no
 *   queued job or KV block behind.
 * - The official `openai` client works unchanged (chat and completions, streaming and not).
 * - Malformed and hostile requests get their documented status and error body; a normal job
 *   submitted right after still completes.
 * - 50 concurrent jobs all complete with the right tokens (none lost or duplicated).
 * - `starq submit --stream`, /health, /ready, /metrics; keys never appear in any log.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import OpenAI from 'openai';
import type { Redis } from 'ioredis';
import { blockCacheId, planMode, privateBlockKey } from '../libs/attention/src';
import { ActorClient, createQueue, createRedis } from '@starq/actors';
import { HOST_METHODS } from '@starq/cluster';
import { contextKey, RedisKeys } from '../libs/protocol/src';
import { loadConfig } from '../libs/model/src/config';
import { LocalCluster } from '../libs/model/src/local/local-cluster';
import { StarqTokenizer } from '../libs/model/src/tokenizer';
import type { RandomCheckpointOptions } from '@starq/model/synthetic/random-checkpoint';
import { deletePrefix, randomPrefix, REDIS_URL, sleep, spawnTracked, stopProcess, until, waitExit } from './helpers/cluster';
import { CHAT_TEMPLATE, readSse, request, startGateway, writeModel, type SseEvent } from './helpers/gateway';
import { randomTokenIds, TmpDirs, smallLlama } from '@starq/testing';
import { sharedModel } from '@starq/model/shared-fixtures';

jest.setTimeout(180000);

const { path: STORIES, present: haveStories } = sharedModel('stories260K');

const OPTS: RandomCheckpointOptions = smallLlama({ hidden: 64, intermediate: 128, vocab: 128, maxPositions: 4096, seed: 3 });
const VOCAB = OPTS.vocab;
/** KV bytes per context token on a host: layers · 2 (K, V) · kvHeads · headDim · 4 + layers · 8. */
const KV_PER_TOKEN = OPTS.layers * 2 * OPTS.kvHeads * (OPTS.hidden / OPTS.heads) * 4 + OPTS.layers * 8;
const KV_LIMIT = 1024 * 1024; // per host: the cluster holds ~3970 context tokens, under the 4096 positions
const MAX_BODY = 256 * 1024;

const rnd = () => Math.random().toString(36).slice(2, 10);
const K1 = `sk-user1-${rnd()}`;
const K2 = `sk-user2-${rnd()}`;
const ADMIN = `sk-admin-${rnd()}`;
const BAD = `sk-wrong-${rnd()}`;

const tmp = new TmpDirs();
let modelDir = '';
let modelId = '';
let plainDir = '';
let prefix = '';
let prefix2 = '';
let redis: Redis;
let up: ReturnType<typeof spawnTracked>;
let url = '';
let g2: Awaited<ReturnType<typeof startGateway>> | null = null;
let local: LocalCluster | null = null;
let tokenizer: StarqTokenizer;
let actors: ActorClient;
let hostIds: string[] = [];

const CTX_TEXT = 'once upon a time there was a little cat who liked to sit on the warm mat by the door. every day the cat watched the birds. ';

/** Jobs compared with `starq generate --json` (in-process LocalCluster). */
const PARITY: { name: string; body: Record<string, unknown>; args: string[] }[] = (() => {
  const ctxA = [1, ...randomTokenIds(299, VOCAB, 11, 3)];
  const qA = randomTokenIds(4, VOCAB, 12, 3);
  const ctxC = [1, ...randomTokenIds(239, VOCAB, 13, 3)];
  const qC = randomTokenIds(3, VOCAB, 14, 3);
  return [
    {
      name: 'star, token ids, greedy',
      body: { contextIds: ctxA, queryIds: qA, mode: 'star', blockSize: 64, hosts: 2, maxNewTokens: 16, ignoreEos: true },
      args: ['--context-ids', ctxA.join(','), '--query-ids', qA.join(','), '--mode', 'star', '--block-size', '64', '--hosts', '2', '--max-new-tokens', '16', '--ignore-eos'],
    },
    {
      name: 'star, text, seeded sampling with top-k/top-p and an anchor',
      body: { context: CTX_TEXT.repeat(3), query: 'what did the cat see', mode: 'star', blockSize: 48, anchorSize: 16, hosts: 2, maxNewTokens: 16, temperature: 0.8, topP: 0.9, topK: 20, seed: 7 },
      args: ['--context', CTX_TEXT.repeat(3), '--query', 'what did the cat see', '--mode', 'star', '--block-size', '48', '--anchor-size', '16', '--hosts', '2', '--max-new-tokens', '16', '--temperature', '0.8', '--top-p', '0.9', '--top-k', '20', '--seed', '7'],
    },
    {
      name: 'ring, token ids, greedy',
      body: { contextIds: ctxC, queryIds: qC, mode: 'ring', blockSize: 64, hosts: 2, maxNewTokens: 12, ignoreEos: true },
      args: ['--context-ids', ctxC.join(','), '--query-ids', qC.join(','), '--mode', 'ring', '--block-size', '64', '--hosts', '2', '--max-new-tokens', '12', '--ignore-eos'],
    },
  ];
})();
const cliResults: Record<string, any> = {};

const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

async function submit(body: unknown, key: string = K1): Promise<string> {
  const r = await request(url, 'POST', '/v1/jobs', { key, body });
  if (r.status !== 202) throw new Error(`POST /v1/jobs: ${r.status} ${r.text}`);
  return r.json.id;
}

async function getJob(id: string, key: string = K1): Promise<any> {
  const r = await request(url, 'GET', `/v1/jobs/${id}`, { key });
  if (r.status !== 200) throw new Error(`GET /v1/jobs/${id}: ${r.status} ${r.text}`);
  return r.json;
}

async function waitJob(id: string, key: string = K1, timeoutMs = 90000): Promise<any> {
  return until(`job ${id} to finish`, async () => {
    const j = await getJob(id, key);
    return TERMINAL.has(j.status) ? j : null;
  }, timeoutMs, 100);
}

/** Cache ids of a star job's blocks (as the cluster names them; `privateOf`: a cache: false job's own blocks). */
function jobCacheIds(contextIds: number[], blockSize: number, privateOf?: string): string[] {
  const plan = planMode('star', contextIds.length, { blockSize });
  const key = contextKey({ model: modelId, mode: 'star', blockSize: plan.blockSize, anchorSize: plan.anchorSize, contextIds });
  return plan.blocks.map((b) => blockCacheId(privateOf ? privateBlockKey(key, privateOf) : key, b.index));
}

/** Cache ids every host holds right now. */
async function heldCacheIds(): Promise<Set<string>> {
  const out = new Set<string>();
  for (const h of hostIds) {
    const s = await actors.handle(h).call<{ cacheIds: string[] }>(HOST_METHODS.stats, undefined, { timeoutMs: 5000 });
    for (const c of s.cacheIds) out.add(c);
  }
  return out;
}

async function queueCounts(): Promise<{ blocks: Record<string, number>; requests: Record<string, number> }> {
  const r = await request(url, 'GET', '/admin/cluster', { key: ADMIN });
  return r.json.queues;
}

beforeAll(async () => {
  modelDir = writeModel(tmp.make('starq-gw-model-'), OPTS, CHAT_TEMPLATE);
  modelId = path.basename(modelDir);
  plainDir = haveStories ? STORIES : writeModel(tmp.make('starq-gw-plain-'), { ...OPTS, maxPositions: 256, seed: 4 }, null);
  tokenizer = StarqTokenizer.load(modelDir);
  prefix = randomPrefix('gw');
  prefix2 = randomPrefix('gw2');
  redis = await createRedis(REDIS_URL, { connectionName: 'starq-e2e-gateway' });
  up = spawnTracked(
    ['bin/starq', 'cluster', 'up', '--hosts', '2', '--redis', REDIS_URL, '--prefix', prefix, '--model', modelDir, '--port', '0', '--api-key', K1, '--api-key', K2, '--kv-limit', String(KV_LIMIT)],
    { ...process.env, STARQ_ADMIN_KEY: ADMIN, STARQ_MAX_BODY_BYTES: String(MAX_BODY) },
  );
  // `starq generate --json` in-process, concurrently with the cluster's start-up.
  const gens = PARITY.map((c) => ({ c, p: spawnTracked(['bin/starq', 'generate', '--model', modelDir, ...c.args, '--threads', '1', '--json'], process.env) }));
  g2 = await startGateway({ STARQ_REDIS_URL: REDIS_URL, STARQ_PREFIX: prefix2, STARQ_MODEL_DIR: plainDir, STARQ_API_KEYS: K1, STARQ_MAX_QUEUE: '1' });
  const readyLine = await until(
    '`ready {...}` from starq cluster up',
    async () => {
      if (up.proc.exitCode !== null) throw new Error(`starq cluster up exited (${up.proc.exitCode}):\n${up.out()}`);
      return up.stdout().split('\n').find((l) => l.startsWith('ready ')) ?? null;
    },
    150000,
  );
  const ready = JSON.parse(readyLine.slice('ready '.length));
  url = ready.gateway;
  hostIds = ready.hosts;
  actors = new ActorClient(redis, { keys: new RedisKeys(prefix) });
  await actors.start();
  for (const { c, p } of gens) {
    expect(await waitExit(p.proc, 120000)).toBe(true);
    if (p.proc.exitCode !== 0) throw new Error(`starq generate (${c.name}) failed:\n${p.out()}`);
    cliResults[c.name] = JSON.parse(p.stdout().trim());
  }
  local = await LocalCluster.start(modelDir, loadConfig(modelDir), { hosts: 2, hostThreads: 1, queryThreads: 1 });
}, 240000);

afterAll(async () => {
  await local?.close().catch(() => undefined);
  await actors?.close().catch(() => undefined);
  if (up?.proc.pid && up.proc.exitCode === null) {
    process.kill(up.proc.pid, 'SIGINT');
    if (!(await waitExit(up.proc, 30000))) await stopProcess(up.proc, 1000);
  }
  if (g2) await stopProcess(g2.proc, 5000);
  if (redis) {
    for (const p of [prefix, prefix2]) if (p) await deletePrefix(redis, p);
    redis.disconnect();
  }
  tmp.cleanup();
}, 60000);

describe('starq cluster up starts the gateway', () => {
  it('ready line names the gateway; /health and /ready answer; probes need no key', async () => {
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(hostIds).toHaveLength(2);
    const health = await request(url, 'GET', '/health');
    expect(health.status).toBe(200);
    expect(health.json).toEqual({ status: 'ok' });
    const ready = await request(url, 'GET', '/ready');
    expect(ready.status).toBe(200);
    expect(ready.json).toMatchObject({ status: 'ready', redis: true, hosts: 2, queryActors: 1 });
    const models = await request(url, 'GET', '/v1/models', { key: K1 });
    expect(models.json).toMatchObject({ object: 'list', data: [{ id: modelId, object: 'model', max_model_len: OPTS.maxPositions }] });
  });
});

describe('native jobs API', () => {
  it('jobs over HTTP generate exactly what `starq generate --json` does in-process (star, sampled star, ring)', async () => {
    const ids = await Promise.all(PARITY.map((c) => submit(c.body)));
    for (const [i, id] of ids.entries()) {
      const job = await waitJob(id);
      const want = cliResults[PARITY[i].name];
      expect({ case: PARITY[i].name, status: job.status }).toEqual({ case: PARITY[i].name, status: 'completed' });
      expect(Object.keys(job.result).sort()).toEqual(Object.keys(want).sort());
      expect(Object.keys(job.result.timings).sort()).toEqual(Object.keys(want.timings).sort());
      // `hosts` counts the hosts that ended up holding blocks: on a cluster any free host takes a
      // block job, so one host may take them all when the other is busy.
      const { timings: _a, hosts: gotHosts, ...got } = job.result;
      const { timings: _b, hosts: wantHosts, ...exp } = want;
      expect(got).toEqual(exp);
      expect(gotHosts).toBeGreaterThanOrEqual(1);
      expect(gotHosts).toBeLessThanOrEqual(wantHosts);
      expect(job.progress.tokens).toBe(want.generatedIds.length);
      expect(job.progress.blocks.done).toBe(job.progress.blocks.total);
      expect(job.timings.phase1Ms).toBeGreaterThanOrEqual(0);
    }
  });

  it('SSE streams phase-1 progress, every token in order with its text, then the result', async () => {
    const ctx = [1, ...randomTokenIds(299, VOCAB, 21, 3)];
    const id = await submit({ contextIds: ctx, queryIds: [5, 6], blockSize: 8, hosts: 2, maxNewTokens: 20, ignoreEos: true, cache: false });
    const events = await readSse(url, `/v1/jobs/${id}/events`, K1);
    expect(events[0].name).toBe('job');
    const last = events[events.length - 1];
    expect(last.name).toBe('result');
    expect(last.data.status).toBe('completed');
    const result = last.data.result;
    const tokens = events.filter((e) => e.name === 'token').map((e) => e.data);
    expect(tokens.map((t) => t.index)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(tokens.map((t) => t.id)).toEqual(result.generatedIds);
    expect(tokens.map((t) => t.text).join('')).toBe(result.text);
    const progress = events.filter((e) => e.name === 'progress').map((e) => e.data);
    expect(progress.length).toBeGreaterThan(0);
    for (let i = 1; i < progress.length; i++) expect(progress[i].blocks.done).toBeGreaterThanOrEqual(progress[i - 1].blocks.done);
    expect(progress[progress.length - 1]).toEqual({ status: 'generating', blocks: { done: 38, total: 38 }, tokens: 0 });
    // Every progress event precedes the first token.
    expect(events.findIndex((e) => e.name === 'token')).toBeGreaterThan(events.map((e) => e.name).lastIndexOf('progress'));
    // A reader arriving after the end gets the same tokens, replayed, and the result.
    const again = await readSse(url, `/v1/jobs/${id}/events`, K1);
    expect(again[0].data.status).toBe('completed');
    expect(again.filter((e) => e.name === 'token').map((e) => e.data)).toEqual(tokens);
    expect(again[again.length - 1]).toEqual(last);
  });

  it('cancel during phase 1 frees the queued block jobs, stops the request and releases its KV', async () => {
    const ctx = [1, ...randomTokenIds(1999, VOCAB, 31, 3)];
    const id = await submit({ contextIds: ctx, queryIds: [7], blockSize: 1, hosts: 2, maxNewTokens: 4, cache: false });
    const cacheIds = jobCacheIds(ctx, 1, id);
    const seen: SseEvent[] = [];
    const stream = readSse(url, `/v1/jobs/${id}/events`, K1, { onEvent: (e) => seen.push(e) });
    await until('a few blocks to be encoded', async () => seen.some((e) => e.name === 'progress' && e.data.blocks.done >= 3), 60000, 20);
    const del = await request(url, 'DELETE', `/v1/jobs/${id}`, { key: K1 });
    expect(del.status).toBe(200);
    expect(del.json.status).toBe('cancelled');
    const events = await stream;
    expect(events[events.length - 1]).toMatchObject({ name: 'error', data: { error: { code: 'cancelled' }, job: { status: 'cancelled' } } });
    expect(events.some((e) => e.name === 'token')).toBe(false);
    // Queued blocks are gone at once; the blocks being encoded finish, then the query actor takes the
    // request, sees the cancel and releases every block.
    await until('no block job waiting or running', async () => {
      const q = await queueCounts();
      return q.blocks.waiting === 0 && q.blocks.active === 0 && q.requests.waiting === 0 && q.requests.active === 0 && q.requests['waiting-children'] === 0;
    }, 30000);
    await until('the cancelled job\'s KV blocks to be released', async () => {
      const held = await heldCacheIds();
      return cacheIds.every((c) => !held.has(c));
    }, 30000);
    const handles = await Promise.all(cacheIds.slice(0, 50).map((c) => redis.exists(`${prefix}:kv:${c}`)));
    expect(handles.every((x) => x === 0)).toBe(true);
    const job = await getJob(id);
    expect(job.status).toBe('cancelled');
    expect(job.progress.blocks.encoded).toBeGreaterThan(0);
    expect(job.progress.blocks.encoded).toBeLessThan(job.progress.blocks.total); // most blocks never ran
    expect(job.progress.tokens).toBe(0);
  });

  it('cancel during generation stops it within a step and releases the KV; the cluster keeps serving', async () => {
    const ctx = [1, ...randomTokenIds(199, VOCAB, 41, 3)];
    const id = await submit({ contextIds: ctx, queryIds: [9, 10], blockSize: 50, hosts: 2, maxNewTokens: 3000, ignoreEos: true, cache: false });
    const cacheIds = jobCacheIds(ctx, 50, id);
    let tokens = 0;
    const stream = readSse(url, `/v1/jobs/${id}/events`, K1, { onEvent: (e) => void (e.name === 'token' && tokens++) });
    await until('5 tokens', async () => tokens >= 5, 60000, 10);
    const del = await request(url, 'DELETE', `/v1/jobs/${id}`, { key: K1 });
    expect(del.status).toBe(200);
    expect(del.json.status).toBe('cancelled');
    const events = await stream;
    expect(events[events.length - 1]).toMatchObject({ name: 'error', data: { error: { code: 'cancelled' } } });
    await until('the request to end', async () => {
      const q = await queueCounts();
      return q.requests.active === 0;
    }, 30000);
    await until('its KV blocks to be released', async () => {
      const held = await heldCacheIds();
      return cacheIds.every((c) => !held.has(c));
    }, 30000);
    const a = await getJob(id);
    await sleep(500);
    const b = await getJob(id);
    expect(a.status).toBe('cancelled');
    expect(b.progress.tokens).toBe(a.progress.tokens); // generation stopped
    expect(a.progress.tokens).toBeLessThan(100);
    // Cancelling again is a no-op; the cluster serves the next job.
    expect((await request(url, 'DELETE', `/v1/jobs/${id}`, { key: K1 })).json.status).toBe('cancelled');
    const next = await waitJob(await submit({ contextIds: ctx.slice(0, 40), queryIds: [9], maxNewTokens: 3, hosts: 2 }));
    expect(next.status).toBe('completed');
  });
});

describe('jobs that fail after they were accepted', () => {
  it('a block no host can hold fails the job with the host\'s reason (status, SSE and OpenAI answer)', async () => {
    // One 2100-token block needs more KV than a host's limit (the cluster as a whole has room).
    const ctx = [1, ...randomTokenIds(2099, VOCAB, 61, 3)];
    const body = { contextIds: ctx, queryIds: [4], blockSize: 2100, maxNewTokens: 2 };
    const id = await submit(body);
    const events = await readSse(url, `/v1/jobs/${id}/events`, K1);
    expect(events[events.length - 1]).toMatchObject({ name: 'error', data: { error: { code: 'block_too_large' }, job: { status: 'failed' } } });
    expect(await getJob(id)).toMatchObject({ status: 'failed', error: { code: 'block_too_large' }, result: null });
    const r = await request(url, 'POST', '/v1/completions', { key: K1, body: { model: modelId, prompt: ctx, query: [4], max_tokens: 2, star: { block_size: 2100 } } });
    expect(r.status).toBe(422);
    expect(r.json.error.code).toBe('block_too_large');
  });
});

describe('OpenAI-compatible API (official openai client)', () => {
  let client: OpenAI;
  beforeAll(() => {
    client = new OpenAI({ apiKey: K1, baseURL: `${url}/v1`, maxRetries: 0 });
  });

  it('lists the model', async () => {
    const list = await client.models.list();
    expect(list.data.map((m) => m.id)).toEqual([modelId]);
    expect((await client.models.retrieve(modelId)).id).toBe(modelId);
  });

  it('completions: non-streaming = streaming = the native job; usage counts; stop sequences', async () => {
    const prompt = CTX_TEXT;
    const star = { block_size: 16, hosts: 2 };
    const params = { model: modelId, prompt, max_tokens: 12, temperature: 0, ignore_eos: true, star } as any;
    const full = await client.completions.create(params);
    expect(full.object).toBe('text_completion');
    expect(full.choices).toHaveLength(1);
    expect(full.choices[0].finish_reason).toBe('length');
    const promptIds = tokenizer.encode(prompt);
    expect(full.usage).toEqual({ prompt_tokens: promptIds.length, completion_tokens: 12, total_tokens: promptIds.length + 12 });

    const native = await waitJob(await submit({ prompt, blockSize: 16, hosts: 2, maxNewTokens: 12, ignoreEos: true }));
    expect(full.choices[0].text).toBe(tokenizer.decode(native.result.generatedIds, { skipSpecialTokens: true }));

    const stream = (await client.completions.create({ ...params, stream: true, stream_options: { include_usage: true } })) as unknown as AsyncIterable<OpenAI.Completion>;
    let text = '';
    let finish: string | null = null;
    let usage: unknown = null;
    for await (const chunk of stream) {
      for (const c of chunk.choices) {
        text += c.text;
        if (c.finish_reason) finish = c.finish_reason;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe(full.choices[0].text);
    expect(finish).toBe('length');
    expect(usage).toEqual(full.usage);

    // Context + query given separately (extension field `query`).
    const split = await client.completions.create({ model: modelId, prompt: CTX_TEXT, query: 'the cat', max_tokens: 5, temperature: 0, ignore_eos: true, star } as any);
    expect(split.usage!.prompt_tokens).toBe(tokenizer.encode(CTX_TEXT).length + tokenizer.encode('the cat', { addSpecialTokens: false }).length);

    // A stop sequence taken from the middle of the unstopped text.
    const at = Math.floor(full.choices[0].text.length / 2);
    const stopSeq = full.choices[0].text.slice(at, at + 2);
    const stopped = await client.completions.create({ ...params, stop: [stopSeq] });
    expect(stopped.choices[0].finish_reason).toBe('stop');
    expect(stopped.choices[0].text).toBe(full.choices[0].text.slice(0, full.choices[0].text.indexOf(stopSeq)));
    expect(stopped.usage!.completion_tokens).toBeLessThanOrEqual(12);
  });

  it('chat: rendered with the chat template; non-streaming = streaming; last user message is the query', async () => {
    const messages = [
      { role: 'system' as const, content: 'you answer about cats' },
      { role: 'user' as const, content: CTX_TEXT },
      { role: 'assistant' as const, content: 'the cat sat' },
      { role: 'user' as const, content: 'where did it sit' },
    ];
    const params = { model: modelId, messages, max_tokens: 10, temperature: 0, ignore_eos: true, star: { block_size: 16, hosts: 2 } } as any;
    const full = await client.chat.completions.create(params);
    expect(full.object).toBe('chat.completion');
    expect(full.choices[0].message.role).toBe('assistant');
    expect(full.choices[0].finish_reason).toBe('length');
    const rendered = tokenizer.encodeChat(messages, { addGenerationPrompt: true });
    expect(full.usage).toEqual({ prompt_tokens: rendered.length, completion_tokens: 10, total_tokens: rendered.length + 10 });
    // Context = the conversation before the last user message (up to the token where its own
    // rendering and the full one part), query = the rest.
    const head = tokenizer.encodeChat(messages.slice(0, 3));
    const split = (full as any).star.context_tokens as number;
    expect(split + (full as any).star.query_tokens).toBe(rendered.length);
    expect(split).toBeLessThanOrEqual(head.length);
    expect(split).toBeGreaterThanOrEqual(head.length - 2);
    expect(rendered.slice(0, split)).toEqual(head.slice(0, split));
    // Same ids as a native job on the same context/query split.
    const native = await waitJob(await submit({ contextIds: rendered.slice(0, split), queryIds: rendered.slice(split), blockSize: 16, hosts: 2, maxNewTokens: 10, ignoreEos: true }));
    expect(full.choices[0].message.content).toBe(tokenizer.decode(native.result.generatedIds, { skipSpecialTokens: true }));

    const stream = (await client.chat.completions.create({ ...params, stream: true })) as unknown as AsyncIterable<OpenAI.ChatCompletionChunk>;
    let text = '';
    let role: string | undefined;
    let finish: string | null = null;
    for await (const chunk of stream) {
      const c = chunk.choices[0];
      if (!c) continue;
      role = role ?? c.delta.role;
      text += c.delta.content ?? '';
      if (c.finish_reason) finish = c.finish_reason;
    }
    expect(role).toBe('assistant');
    expect(text).toBe(full.choices[0].message.content);
    expect(finish).toBe('length');
  });

  it('errors come back as OpenAI API errors (unknown model, model without chat template)', async () => {
    await expect(client.completions.create({ model: 'no-such-model', prompt: 'hi' })).rejects.toMatchObject({ status: 404, code: 'model_not_found', param: 'model' });
    const other = new OpenAI({ apiKey: K1, baseURL: `${g2!.url}/v1`, maxRetries: 0 });
    const plainId = path.basename(plainDir);
    await expect(other.chat.completions.create({ model: plainId, messages: [{ role: 'user', content: 'hi' }] })).rejects.toMatchObject({ status: 400, code: 'no_chat_template', param: 'messages' });
    await expect(new OpenAI({ apiKey: BAD, baseURL: `${url}/v1`, maxRetries: 0 }).models.list()).rejects.toMatchObject({ status: 401, code: 'invalid_api_key' });
  });
});

describe('malformed and hostile requests', () => {
  it('each gets its documented status and error body; a normal job right after completes', async () => {
    const ctx = [1, ...randomTokenIds(59, VOCAB, 51, 3)];
    const done = await waitJob(await submit({ contextIds: ctx, queryIds: [4], maxNewTokens: 2, hosts: 2 }));
    const bigCtx = [1, ...randomTokenIds(4049, VOCAB, 52, 3)];
    type Case = { name: string; method?: string; path?: string; key?: string | null; body?: unknown; headers?: Record<string, string>; chunked?: boolean; status: number; code: string; param?: string | null; message?: RegExp; base?: () => string };
    const job = (extra: Record<string, unknown>) => ({ contextIds: ctx, queryIds: [4], maxNewTokens: 2, ...extra });
    const chat = (extra: Record<string, unknown>) => ({ model: modelId, messages: [{ role: 'user', content: 'hi' }], ...extra });
    const cases: Case[] = [
      { name: 'no Authorization header', key: null, body: job({}), status: 401, code: 'missing_api_key' },
      { name: 'wrong API key', key: BAD, body: job({}), status: 401, code: 'invalid_api_key' },
      { name: 'not a Bearer header', key: null, headers: { Authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }, body: job({}), status: 401, code: 'invalid_authorization' },
      { name: 'user key on an admin endpoint', method: 'GET', path: '/admin/jobs', status: 403, code: 'admin_required' },
      { name: 'truncated JSON', body: '{"contextIds": [1, 2', status: 400, code: 'invalid_json' },
      { name: 'empty body', body: '', status: 400, code: 'invalid_json' },
      { name: 'JSON array body', body: '[1,2,3]', status: 400, code: 'invalid_body' },
      { name: 'unknown field', body: job({ bogus: 1 }), status: 400, code: 'unknown_field', param: 'bogus' },
      { name: '__proto__ key', body: `{"contextIds":[1,2],"queryIds":[3],"__proto__":{"admin":true}}`, status: 400, code: 'unknown_field', param: '__proto__' },
      { name: 'maxNewTokens of the wrong type', body: job({ maxNewTokens: 'ten' }), status: 400, code: 'invalid_type', param: 'maxNewTokens' },
      { name: 'negative maxNewTokens', body: job({ maxNewTokens: -5 }), status: 400, code: 'invalid_value', param: 'maxNewTokens' },
      { name: 'blockSize 0', body: job({ blockSize: 0 }), status: 400, code: 'invalid_value', param: 'blockSize' },
      { name: 'huge blockSize', body: job({ blockSize: 1e12 }), status: 400, code: 'invalid_value', param: 'blockSize' },
      { name: 'fractional topK', body: job({ topK: 1.5 }), status: 400, code: 'invalid_type', param: 'topK' },
      { name: 'negative temperature', body: job({ temperature: -1 }), status: 400, code: 'invalid_value', param: 'temperature' },
      { name: 'topP 0', body: job({ topP: 0 }), status: 400, code: 'invalid_value', param: 'topP' },
      { name: 'unknown mode', body: job({ mode: 'warp' }), status: 400, code: 'invalid_value', param: 'mode' },
      { name: 'anchor larger than block', body: job({ blockSize: 8, anchorSize: 9 }), status: 400, code: 'invalid_anchor_size', param: 'anchorSize' },
      { name: 'global mode with a block size', body: job({ mode: 'global', blockSize: 8 }), status: 400, code: 'invalid_mode_option', param: 'blockSize' },
      { name: 'empty queryIds', body: job({ queryIds: [] }), status: 400, code: 'empty_query', param: 'queryIds' },
      { name: 'token id = vocab size', body: job({ queryIds: [VOCAB] }), status: 400, code: 'invalid_token_id', param: 'queryIds' },
      { name: 'negative token id', body: job({ contextIds: [1, -1] }), status: 400, code: 'invalid_value', param: 'contextIds[1]' },
      { name: 'prompt and context together', body: { prompt: 'a', context: 'b', query: 'c' }, status: 400, code: 'invalid_prompt' },
      { name: 'no input at all', body: { maxNewTokens: 3 }, status: 400, code: 'invalid_prompt' },
      { name: 'unknown model (native)', body: job({ model: 'gpt-5' }), status: 404, code: 'model_not_found', param: 'model' },
      { name: 'completions without model', path: '/v1/completions', body: { prompt: 'hi' }, status: 400, code: 'missing_field', param: 'model' },
      { name: 'completions with n = 2', path: '/v1/completions', body: { model: modelId, prompt: 'hi', n: 2 }, status: 400, code: 'invalid_value', param: 'n' },
      { name: 'completions with an empty stop sequence', path: '/v1/completions', body: { model: modelId, prompt: 'hi there', stop: '' }, status: 400, code: 'invalid_value', param: 'stop' },
      { name: 'completions with a bad star.block_size', path: '/v1/completions', body: { model: modelId, prompt: 'hi there', star: { block_size: -3 } }, status: 400, code: 'invalid_value', param: 'star.block_size' },
      { name: 'chat messages not a list', path: '/v1/chat/completions', body: chat({ messages: 'hello' }), status: 400, code: 'invalid_type', param: 'messages' },
      { name: 'chat with an unknown role', path: '/v1/chat/completions', body: chat({ messages: [{ role: 'robot', content: 'x' }] }), status: 400, code: 'invalid_value', param: 'messages[0].role' },
      { name: 'chat without a user message', path: '/v1/chat/completions', body: chat({ messages: [{ role: 'system', content: 'x' }] }), status: 400, code: 'invalid_messages', param: 'messages' },
      { name: 'non-JSON Content-Type', body: job({}), headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, status: 415, code: 'unsupported_media_type', param: 'Content-Type' },
      { name: 'JSON in a non-UTF-8 charset', body: job({}), headers: { 'Content-Type': 'application/json; charset=iso-8859-1' }, status: 415, code: 'unsupported_media_type' },
      { name: 'invalid UTF-8 bytes', body: Buffer.concat([Buffer.from('{"context":"a'), Buffer.from([0xc3, 0x28]), Buffer.from('","query":"b"}')]), status: 400, code: 'invalid_utf8' },
      { name: 'a lone surrogate escape', body: '{"context":"once upon","query":"a \\udc00 b"}', status: 400, code: 'invalid_unicode', param: 'query' },
      { name: 'body over the limit (Content-Length)', body: 'x'.repeat(MAX_BODY + 10), status: 413, code: 'body_too_large', message: new RegExp(String(MAX_BODY)) },
      { name: 'body over the limit (chunked)', body: JSON.stringify(job({ contextIds: Array(150000).fill(5) })), chunked: true, status: 413, code: 'body_too_large' },
      { name: 'context over the cluster KV capacity', body: job({ contextIds: bigCtx, queryIds: [4], maxNewTokens: 1, blockSize: 512 }), status: 422, code: 'context_over_capacity', param: 'contextIds', message: new RegExp(`${bigCtx.length * KV_PER_TOKEN}.*${2 * KV_LIMIT}`) },
      { name: 'context + max tokens over the position limit', body: job({ contextIds: bigCtx, queryIds: [4], maxNewTokens: 100 }), status: 422, code: 'context_too_long', message: /= 4151 exceeds the model's maximum of 4096 positions/ },
      { name: 'unknown job id', method: 'GET', path: '/v1/jobs/does-not-exist', status: 404, code: 'job_not_found' },
      { name: 'path traversal in the job id', method: 'GET', path: '/v1/jobs/..%2F..%2Fadmin', status: 404, code: 'job_not_found' },
      { name: "another key's job", method: 'GET', path: `/v1/jobs/${done.id}`, key: K2, status: 404, code: 'job_not_found' },
      { name: 'cancel a completed job', method: 'DELETE', path: `/v1/jobs/${done.id}`, status: 409, code: 'job_finished' },
      { name: 'unknown route', method: 'GET', path: '/v2/everything', status: 404, code: 'not_found' },
    ];
    expect(cases.length).toBeGreaterThanOrEqual(25);
    const failures: string[] = [];
    for (const c of cases) {
      const r = await request(c.base?.() ?? url, c.method ?? 'POST', c.path ?? '/v1/jobs', { key: c.key === undefined ? K1 : c.key, body: c.body, headers: c.headers, chunked: c.chunked });
      const e = r.json?.error;
      const ok =
        r.status === c.status &&
        e &&
        Object.keys(r.json).join() === 'error' &&
        Object.keys(e).sort().join() === 'code,message,param,type' &&
        e.code === c.code &&
        typeof e.message === 'string' &&
        e.message.length > 10 &&
        (c.param === undefined || e.param === c.param) &&
        (c.message === undefined || c.message.test(e.message));
      if (!ok) failures.push(`${c.name}: expected ${c.status} ${c.code}${c.param !== undefined ? ` (${c.param})` : ''}, got ${r.status} ${r.text.slice(0, 300)}`);
    }
    expect(failures).toEqual([]);
    // The gateway and cluster are unharmed.
    // (It asks for far more hosts than the cluster has: accepted; the 2 live hosts hold the blocks.)
    const after = await waitJob(await submit({ contextIds: ctx, queryIds: [6], maxNewTokens: 3, hosts: 1000 }));
    expect(after.status).toBe('completed');
    expect(after.result.hosts).toBeLessThanOrEqual(2);
    expect(after.result.generatedIds.length).toBeGreaterThan(0);
  });

  it('a gateway whose cluster has no actors: 503 on submit, 429 when its queue is full, /ready 503', async () => {
    const base = g2!.url;
    const ready = await request(base, 'GET', '/ready');
    expect(ready.status).toBe(503);
    expect(ready.json).toMatchObject({ status: 'not_ready', hosts: 0, queryActors: 0, error: { code: 'not_ready' } });
    const body = { prompt: 'hello there', maxNewTokens: 2 };
    const r503 = await request(base, 'POST', '/v1/jobs', { key: K1, body });
    expect(r503.status).toBe(503);
    expect(r503.json.error).toMatchObject({ code: 'cluster_unavailable', param: null });
    // One unfinished request fills a queue limited to 1 (STARQ_MAX_QUEUE=1).
    const conn = redis.duplicate({ maxRetriesPerRequest: null });
    const q = createQueue('requests', { connection: conn, prefix: new RedisKeys(prefix2).bullPrefix });
    try {
      await q.add('request', { placeholder: true }, { jobId: 'placeholder' });
      const r429 = await request(base, 'POST', '/v1/jobs', { key: K1, body });
      expect(r429.status).toBe(429);
      expect(r429.headers['retry-after']).toBe('1');
      expect(r429.json.error).toMatchObject({ code: 'queue_full', type: 'rate_limit_error' });
      expect(r429.json.error.message).toMatch(/1 unfinished requests.*limit of 1/);
    } finally {
      await q.obliterate({ force: true }).catch(() => undefined);
      await q.close();
      conn.disconnect();
    }
  });
});

describe('load', () => {
  it('50 concurrent small jobs all complete with the right tokens; none lost or duplicated', async () => {
    const N = 50;
    const jobs = Array.from({ length: N }, (_, i) => {
      const ctx = [1, ...randomTokenIds(20 + (i % 5) * 10, VOCAB, 1000 + i, 3)];
      return { ctx, query: randomTokenIds(2, VOCAB, 2000 + i, 3), mode: i % 3 === 2 ? ('global' as const) : ('star' as const) };
    });
    const before = await queueCounts();
    const ids = await Promise.all(
      jobs.map((j) => submit({ contextIds: j.ctx, queryIds: j.query, mode: j.mode, ...(j.mode === 'star' ? { hosts: 2 } : {}), maxNewTokens: 6, ignoreEos: true, cache: false })),
    );
    expect(new Set(ids).size).toBe(N);
    const finals = await Promise.all(ids.map((id) => readSse(url, `/v1/jobs/${id}/events`, K1, { timeoutMs: 150000 })));
    const expected: number[][] = [];
    for (const j of jobs) {
      const r = await local!.generate({ mode: j.mode, contextIds: j.ctx, queryIds: j.query, ...(j.mode === 'star' ? { hosts: 2 } : {}) }, { maxNewTokens: 6, sampling: { temperature: 0, topK: 0, topP: 1, seed: 0 }, stopIds: [], ignoreEos: true });
      expected.push(r.generatedIds);
    }
    finals.forEach((events, i) => {
      const last = events[events.length - 1];
      expect({ i, name: last.name, status: last.data.status }).toEqual({ i, name: 'result', status: 'completed' });
      expect({ i, ids: last.data.result.generatedIds }).toEqual({ i, ids: expected[i] });
      expect(events.filter((e) => e.name === 'token').map((e) => e.data.index)).toEqual([0, 1, 2, 3, 4, 5]);
    });
    // Each request ran exactly once: one result event in its stream, one more completed request per job.
    for (const id of ids) {
      const entries = (await redis.xrange(`${prefix}:events:${id}`, '-', '+')) as [string, string[]][];
      expect(entries.filter(([, f]) => JSON.parse(f[1]).type === 'done')).toHaveLength(1);
    }
    const after = await queueCounts();
    expect(after.requests.completed - before.requests.completed).toBe(N);
    expect(after.requests.failed).toBe(before.requests.failed);
  });
});

describe('starq submit', () => {
  it('--stream shows phase-1 progress on stderr and streams the same text as the job result', async () => {
    const dir = tmp.make('starq-gw-submit-');
    const file = path.join(dir, 'context.txt');
    fs.writeFileSync(file, CTX_TEXT.repeat(2));
    const args = ['bin/starq', 'submit', '--url', url, '--context-file', file, '--query', 'the cat', '--block-size', '16', '--hosts', '2', '--max-new-tokens', '12', '--ignore-eos'];
    const streamed = spawnTracked([...args, '--stream'], { ...process.env, STARQ_API_KEY: K1 });
    const json = spawnTracked([...args, '--api-key', K1, '--json'], process.env);
    const wrong = spawnTracked([...args, '--api-key', BAD], process.env);
    for (const p of [streamed, json, wrong]) expect(await waitExit(p.proc, 60000)).toBe(true);
    expect({ code: streamed.proc.exitCode, out: streamed.out().slice(-1000) }).toMatchObject({ code: 0 });
    expect({ code: json.proc.exitCode, out: json.out().slice(-1000) }).toMatchObject({ code: 0 });
    const result = JSON.parse(json.stdout().trim());
    expect(result.generatedIds).toHaveLength(12);
    expect(streamed.stdout()).toBe(result.text + '\n');
    expect(streamed.out()).toMatch(/phase 1 \d+\/\d+/);
    expect(wrong.proc.exitCode).toBe(2);
    expect(wrong.out()).toMatch(/error \[invalid_api_key\]/);
  });
});

describe('metrics and logs', () => {
  it('/metrics exposes queue depths, jobs by status, latencies, tokens, KV per host and the exchange round trip', async () => {
    const r = await request(url, 'GET', '/metrics');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/plain/);
    const m = r.text;
    for (const re of [
      /^starq_queue_jobs\{queue="requests",state="completed"\} [1-9]\d*$/m,
      /^starq_queue_jobs\{queue="blocks",state="waiting"\} 0$/m,
      /^starq_jobs\{status="generating"\} \d+$/m,
      /^starq_jobs_finished_total\{status="completed",kind="job"\} [1-9]\d*$/m,
      /^starq_jobs_finished_total\{status="cancelled",kind="job"\} [1-9]\d*$/m,
      /^starq_jobs_finished_total\{status="completed",kind="chat"\} [1-9]\d*$/m,
      /^starq_phase1_seconds_count [1-9]\d*$/m,
      /^starq_phase2_seconds_count [1-9]\d*$/m,
      /^starq_decode_tokens_per_second_count [1-9]\d*$/m,
      /^starq_generated_tokens_total [1-9]\d*$/m,
      /^starq_actors\{type="host"\} 2$/m,
    ]) {
      expect(m).toMatch(re);
    }
    for (const h of hostIds) {
      expect(m).toMatch(new RegExp(`^starq_kv_bytes\\{host="${h}"\\} \\d+$`, 'm'));
      expect(m).toMatch(new RegExp(`^starq_exchange_round_trip_seconds_count\\{host="${h}"\\} [1-9]\\d*$`, 'm'));
    }
  });

  it('admin endpoints answer the admin key; no key ever appears in any process output', async () => {
    const jobs = await request(url, 'GET', '/admin/jobs?limit=5', { key: ADMIN });
    expect(jobs.status).toBe(200);
    expect(jobs.json.data).toHaveLength(5);
    const cluster = await request(url, 'GET', '/admin/cluster', { key: ADMIN });
    expect(cluster.json.actors.map((a: { id: string }) => a.id).sort()).toEqual(expect.arrayContaining(hostIds));
    const logs = up.out() + g2!.out();
    for (const k of [K1, K2, ADMIN, BAD]) expect(logs.includes(k)).toBe(false);
  });
});
