/**
 * End-to-end test of resumable job event streams (`GET /v1/jobs/:id/events` with `Last-Event-ID`
 * or `?lastEventId=`): a real gateway process, two host actors and a query actor on the real Redis
 * under a random key prefix (every process and key removed afterwards). The streams are read with
 * a raw node:http client that can drop the connection right after any event, as a load balancer
 * cutting a long connection would.
 *
 * - Every event has an `id:`; ids only increase; each stream starts with a `retry:` hint.
 * - Dropped after k tokens and resumed (twice, live), the pieces put together are exactly one
 *   uninterrupted stream of the job: same tokens (index, id, text, event id), one result, no
 *   duplicate id, nothing missing. Also when the job finished while the client was away, and with
 *   `?lastEventId=` (the header wins over it).
 * - Resuming after the final event gives 204 (EventSource stops reconnecting); a job that failed
 *   with no stream entry (a block too large for a host) ends with an `.end` id and resumes alike.
 * - Malformed ids → 400 `invalid_last_event_id`; ids from the future, of another job, or the end
 *   of an unfinished job → 400 `unknown_last_event_id`.
 * - `: ping` keep-alive comments flow while a long phase 1 sends nothing else; a stream dropped
 *   in phase 1 resumes and ends with the job's cancellation.
 */
import * as http from 'node:http';
import { SseParser } from '@starq/sse';
import { REDIS_URL, stopProcess, TestCluster, until } from './helpers/cluster';
import { request, startGateway, writeModel } from './helpers/gateway';
import { randomTokenIds, TmpDirs, smallLlama } from '@starq/testing';
import type { RandomCheckpointOptions } from '@starq/model/synthetic/random-checkpoint';

jest.setTimeout(180000);

const OPTS: RandomCheckpointOptions = smallLlama({ hidden: 64, intermediate: 128, vocab: 128, maxPositions: 4096, seed: 9 });
const KEY = `sk-sse-${Math.random().toString(36).slice(2, 10)}`;
const KEEPALIVE_MS = 250;
const RETRY_MS = 1500;
const TOKENS = 40;

const tmp = new TmpDirs();
let cluster: TestCluster | null = null;
let gw: Awaited<ReturnType<typeof startGateway>> | null = null;
let url = '';

// ------------------------------------------------------------------ a raw SSE client (node:http, so a test can cut the socket)

interface Ev {
  id: string | null;
  name: string;
  data: any;
}

interface SseConn {
  status: number;
  /** The JSON body of a non-200 answer. */
  json: any;
  events: Ev[];
  /** Comment lines (`: ping`). */
  comments: string[];
  /** `retry:` values, with the number of events dispatched before each. */
  retries: { ms: number; before: number }[];
  /** Resolves when the server ended the response or we dropped it; `dropped` says which. */
  closed: Promise<void>;
  dropped: boolean;
  /** Like EventSource: the last `id:` of a dispatched event. */
  lastEventId: string | null;
  drop(): void;
}

/**
 * Opens an SSE stream. `dropAfter` is called after each event; when it returns true the socket
 * is destroyed at once and anything else already received is discarded (as a cut connection).
 */
function openSse(path: string, o: { headers?: Record<string, string>; dropAfter?: (e: Ev, all: Ev[]) => boolean } = {}): Promise<SseConn> {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(path, url), { method: 'GET', agent: false, headers: { Accept: 'text/event-stream', Authorization: `Bearer ${KEY}`, ...o.headers } }, (res) => {
      let closeResolve!: () => void;
      const conn: SseConn = {
        status: res.statusCode ?? 0,
        json: undefined,
        events: [],
        comments: [],
        retries: [],
        closed: new Promise<void>((r) => (closeResolve = r)),
        dropped: false,
        lastEventId: null,
        drop: () => {
          conn.dropped = true;
          req.destroy();
          closeResolve();
        },
      };
      res.once('close', () => closeResolve());
      res.once('error', () => closeResolve());
      if (conn.status !== 200) {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            conn.json = text ? JSON.parse(text) : undefined;
          } catch {
            conn.json = text;
          }
          resolve(conn);
        });
        return;
      }
      const parser = new SseParser();
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (conn.dropped) return;
        for (const item of parser.push(chunk)) {
          if (item.kind === 'comment') conn.comments.push(item.text);
          else if (item.kind === 'retry') conn.retries.push({ ms: item.ms, before: conn.events.length });
          else {
            const e: Ev = { id: item.event.id, name: item.event.name, data: JSON.parse(item.event.data) };
            if (e.id !== null) conn.lastEventId = e.id;
            conn.events.push(e);
            if (o.dropAfter?.(e, conn.events)) {
              conn.drop();
              return;
            }
          }
        }
      });
      resolve(conn);
    });
    req.on('error', (e) => reject(e));
    req.end();
  });
}

/** Reads a whole stream (to the server's end). */
async function readAll(path: string, headers: Record<string, string> = {}): Promise<SseConn> {
  const c = await openSse(path, { headers });
  expect(c.status).toBe(200);
  await c.closed;
  return c;
}

/** Reads until `k` token events arrived, then drops the connection. */
async function readTokensThenDrop(path: string, k: number, headers: Record<string, string> = {}): Promise<SseConn> {
  const c = await openSse(path, { headers, dropAfter: (e, all) => e.name === 'token' && all.filter((x) => x.name === 'token').length >= k });
  expect(c.status).toBe(200);
  await c.closed;
  return c;
}

// ------------------------------------------------------------------ ids as documented

/** `<ms>-<seq>`, `<ms>-<seq>.<n>` or `<ms>-<seq>.end` → comparable tuple. */
function pos(id: string): [bigint, bigint, number] {
  const m = /^(\d+)-(\d+)(?:\.(\d+|end))?$/.exec(id);
  if (!m) throw new Error(`not a job event id: ${JSON.stringify(id)}`);
  return [BigInt(m[1]), BigInt(m[2]), m[3] === undefined ? 0 : m[3] === 'end' ? Infinity : Number(m[3])];
}

function cmp(a: string, b: string): number {
  const [x, y] = [pos(a), pos(b)];
  if (x[0] !== y[0]) return x[0] < y[0] ? -1 : 1;
  if (x[1] !== y[1]) return x[1] < y[1] ? -1 : 1;
  return x[2] === y[2] ? 0 : x[2] < y[2] ? -1 : 1;
}

const tokensOf = (evs: Ev[]) => evs.filter((e) => e.name === 'token').map((e) => ({ sseId: e.id, ...e.data }));

/**
 * `parts` (the events of consecutive connections, each resumed from the last id of the one
 * before) make exactly the uninterrupted stream `ref` of the same job.
 */
function expectSameStream(parts: SseConn[], ref: SseConn): void {
  const all = parts.flatMap((p) => p.events);
  // Every event has an id; ids strictly increase across the pieces (so none repeats).
  for (const e of [...all, ...ref.events]) expect(e.id).toEqual(expect.any(String));
  for (let i = 1; i < all.length; i++) expect({ i, order: cmp(all[i - 1].id!, all[i].id!) }).toEqual({ i, order: -1 });
  expect(new Set(all.map((e) => e.id)).size).toBe(all.length);
  // Each resumed piece starts strictly after the id it was resumed from.
  for (let i = 1; i < parts.length; i++) {
    if (parts[i].events.length > 0) expect(cmp(parts[i - 1].lastEventId!, parts[i].events[0].id!)).toBe(-1);
  }
  // One `job` first, one final `result` last.
  expect(all[0].name).toBe('job');
  expect(all.filter((e) => e.name === 'job')).toHaveLength(1);
  expect(all.filter((e) => e.name === 'result')).toHaveLength(1);
  const last = all[all.length - 1];
  const refLast = ref.events[ref.events.length - 1];
  expect(last.name).toBe('result');
  expect(refLast.name).toBe('result');
  expect(last.id).toBe(refLast.id); // the same event, the same id
  expect(last.data.result).toEqual(refLast.data.result);
  // Same tokens: indices, ids, text deltas and event ids.
  const tokens = tokensOf(all);
  expect(tokens.map((t) => t.index)).toEqual(Array.from({ length: TOKENS }, (_, i) => i));
  expect(tokens).toEqual(tokensOf(ref.events));
  expect(tokens.map((t) => t.id)).toEqual(last.data.result.generatedIds);
  expect(tokens.map((t) => t.text).join('')).toBe(last.data.result.text);
  // The events made from stream entries (ids without a suffix) are the same ones, with the same ids.
  const fromEntries = (evs: Ev[]) => evs.filter((e) => !e.id!.includes('.')).map((e) => ({ id: e.id, name: e.name, data: e.name === 'result' ? e.data.result : e.data }));
  expect(fromEntries(all)).toEqual(fromEntries(ref.events));
  expect(all.filter((e) => e.name === 'progress' && e.data.status === 'generating')).toHaveLength(1);
  // Every 200 stream opens with the retry hint.
  for (const p of [...parts, ref]) expect(p.retries[0]).toEqual({ ms: RETRY_MS, before: 0 });
}

// ------------------------------------------------------------------ jobs

let seed = 100;
async function submit(extra: Record<string, unknown> = {}): Promise<string> {
  const ctx = [1, ...randomTokenIds(299, OPTS.vocab, ++seed, 3)];
  const r = await request(url, 'POST', '/v1/jobs', { key: KEY, body: { contextIds: ctx, queryIds: [5, 6], blockSize: 16, hosts: 2, maxNewTokens: TOKENS, ignoreEos: true, cache: false, ...extra } });
  if (r.status !== 202) throw new Error(`POST /v1/jobs: ${r.status} ${r.text}`);
  return r.json.id;
}

async function waitStatus(id: string, want: (s: string) => boolean): Promise<any> {
  return until(`job ${id} to reach the wanted status`, async () => {
    const r = await request(url, 'GET', `/v1/jobs/${id}`, { key: KEY });
    return want(r.json?.status) ? r.json : null;
  }, 90000, 50);
}

beforeAll(async () => {
  const modelDir = writeModel(tmp.make('starq-sse-model-'), OPTS, null);
  // 1 MiB of KV per host: a 2100-token block does not fit (a job that fails in phase 1).
  cluster = await TestCluster.start({ modelDir, hosts: 2, queryActors: 1, env: { STARQ_KV_LIMIT_BYTES: String(1024 * 1024) } });
  gw = await startGateway({
    STARQ_REDIS_URL: REDIS_URL,
    STARQ_PREFIX: cluster.prefix,
    STARQ_MODEL_DIR: modelDir,
    STARQ_API_KEYS: KEY,
    STARQ_SSE_KEEPALIVE_MS: String(KEEPALIVE_MS),
    STARQ_SSE_RETRY_MS: String(RETRY_MS),
  });
  url = gw.url;
}, 240000);

afterAll(async () => {
  if (gw) await stopProcess(gw.proc, 5000);
  await cluster?.stop(); // every actor, and every key under the prefix
  tmp.cleanup();
}, 60000);

// ------------------------------------------------------------------ tests

describe('resumable job event streams', () => {
  it('dropped after k tokens and resumed with Last-Event-ID (twice, live): the pieces are one uninterrupted stream', async () => {
    const id = await submit();
    const path = `/v1/jobs/${id}/events`;
    const a = await readTokensThenDrop(path, 5);
    expect(a.dropped).toBe(true);
    expect(a.events[a.events.length - 1]).toMatchObject({ name: 'token', data: { index: 4 } });
    expect(a.lastEventId).toBe(a.events[a.events.length - 1].id);
    const b = await readTokensThenDrop(path, 12, { 'Last-Event-ID': a.lastEventId! });
    expect(b.events[0]).toMatchObject({ name: 'token', data: { index: 5 } }); // no job snapshot, nothing repeated
    const c = await readAll(path, { 'Last-Event-ID': b.lastEventId! });
    expect(c.dropped).toBe(false);
    await waitStatus(id, (s) => s === 'completed');
    const ref = await readAll(path); // a fresh reader: the whole stream, replayed
    expectSameStream([a, b, c], ref);
  });

  it('the job finishes while the client is away: the rest of the tokens and the result, then the end', async () => {
    const id = await submit();
    const path = `/v1/jobs/${id}/events`;
    const a = await readTokensThenDrop(path, 3);
    await waitStatus(id, (s) => s === 'completed');
    const b = await readAll(path, { 'Last-Event-ID': a.lastEventId! });
    expect(b.events[0]).toMatchObject({ name: 'token', data: { index: 3 } });
    expect(b.events[b.events.length - 1].name).toBe('result');
    const ref = await readAll(path);
    expectSameStream([a, b], ref);

    // Resuming after the final event: 204, nothing else (EventSource stops reconnecting).
    const done = await openSse(path, { headers: { 'Last-Event-ID': b.lastEventId! } });
    expect(done.status).toBe(204);
    expect(done.events).toEqual([]);
    // Resuming after the opening snapshot: every token and the result, no second snapshot.
    const afterJob = await readAll(path, { 'Last-Event-ID': ref.events[0].id! });
    expect(ref.events[0].name).toBe('job');
    expectSameStream([{ ...ref, events: [ref.events[0]], lastEventId: ref.events[0].id }, afterJob], ref);
  });

  it('?lastEventId= resumes the same way; the Last-Event-ID header wins over it', async () => {
    const id = await submit();
    const path = `/v1/jobs/${id}/events`;
    const a = await readTokensThenDrop(path, 7);
    const b = await readTokensThenDrop(`${path}?lastEventId=${encodeURIComponent(a.lastEventId!)}`, 10);
    expect(b.events[0]).toMatchObject({ name: 'token', data: { index: 7 } });
    // An EventSource reconnecting keeps the URL's old lastEventId and sends the newer header.
    const c = await readAll(`${path}?lastEventId=${encodeURIComponent(a.lastEventId!)}`, { 'Last-Event-ID': b.lastEventId! });
    expect(c.events[0]).toMatchObject({ name: 'token', data: { index: 17 } });
    await waitStatus(id, (s) => s === 'completed');
    expectSameStream([a, b, c], await readAll(path));
  });

  it('ring mode (phase-1 progress comes from the stream): dropped in phase 1 and in phase 2, resumed, one uninterrupted stream', async () => {
    const id = await submit({ mode: 'ring', blockSize: 64 });
    const path = `/v1/jobs/${id}/events`;
    const a = await openSse(path, { dropAfter: (e) => e.name === 'progress' && !e.id!.includes('.') });
    await a.closed;
    expect(a.dropped).toBe(true);
    const b = await readTokensThenDrop(path, 3, { 'Last-Event-ID': a.lastEventId! });
    const c = await readAll(path, { 'Last-Event-ID': b.lastEventId! });
    await waitStatus(id, (s) => s === 'completed');
    const ref = await readAll(path);
    expect(ref.events.filter((e) => e.name === 'progress' && e.data.status === 'encoding' && !e.id!.includes('.')).length).toBeGreaterThan(0);
    expectSameStream([a, b, c], ref);
  });

  it('ids that are malformed, from the future, of another job, or the end of an unfinished job: 400', async () => {
    const id = await submit({ maxNewTokens: 4 });
    const other = await submit({ maxNewTokens: 4 });
    await waitStatus(id, (s) => s === 'completed');
    await waitStatus(other, (s) => s === 'completed');
    const path = `/v1/jobs/${id}/events`;
    const ref = await readAll(path);
    const otherRef = await readAll(`/v1/jobs/${other}/events`);
    const last = ref.events[ref.events.length - 1].id!;

    for (const bad of ['abc', '12', '1-2-3', '1-2.0', '1-2.x', '01-2', `${'9'.repeat(30)}-0`]) {
      const r = await openSse(path, { headers: { 'Last-Event-ID': bad } });
      expect({ bad, status: r.status, error: r.json?.error }).toEqual({ bad, status: 400, error: expect.objectContaining({ code: 'invalid_last_event_id', param: 'Last-Event-ID', type: 'invalid_request_error' }) });
      expect(r.json.error.message).toEqual(expect.any(String));
    }
    const q = await openSse(`${path}?lastEventId=not-an-id`);
    expect(q.status).toBe(400);
    expect(q.json.error).toMatchObject({ code: 'invalid_last_event_id', param: 'lastEventId' });
    expect(q.json.error.message).toContain('not-an-id');

    const [ms] = pos(last);
    const future = await openSse(path, { headers: { 'Last-Event-ID': `${ms + 60000n}-0` } });
    expect(future.status).toBe(400);
    expect(future.json.error).toMatchObject({ code: 'unknown_last_event_id', param: 'Last-Event-ID' });
    expect(future.json.error.message).toMatch(/after the latest event/);

    // An entry id of the other job that this job's stream does not have.
    const entries = (await cluster!.redis.xrange(cluster!.keys.requestEvents(id), '-', '+')) as [string, string[]][];
    const mine = new Set(entries.map(([x]) => x));
    const otherIds = otherRef.events.map((e) => e.id!).filter((x) => !x.includes('.') && !mine.has(x));
    const foreign = otherIds.find((x) => cmp(x, last) < 0) ?? otherIds[0];
    expect(foreign).toEqual(expect.any(String));
    const cross = await openSse(path, { headers: { 'Last-Event-ID': foreign } });
    expect(cross.status).toBe(400);
    expect(cross.json.error).toMatchObject({ code: 'unknown_last_event_id', param: 'Last-Event-ID' });
    expect(cross.json.error.message).toContain(id);

    // The job still streams normally afterwards; an unknown job is still 404.
    expect((await openSse(path, { headers: { 'Last-Event-ID': last } })).status).toBe(204);
    expect((await openSse('/v1/jobs/no-such-job/events', { headers: { 'Last-Event-ID': last } })).status).toBe(404);
  });

  it('a job that fails with no stream entry (a block job failed): its final event has an `.end` id, and resumes the same way', async () => {
    const ctx = [1, ...randomTokenIds(2099, OPTS.vocab, 8, 3)];
    const r = await request(url, 'POST', '/v1/jobs', { key: KEY, body: { contextIds: ctx, queryIds: [4], blockSize: 2100, maxNewTokens: 2 } });
    expect(r.status).toBe(202);
    const path = `/v1/jobs/${r.json.id}/events`;
    const a = await readAll(path);
    const end = a.events[a.events.length - 1];
    expect(end).toMatchObject({ name: 'error', data: { error: { code: 'block_too_large' }, job: { status: 'failed' } } });
    expect(end.id).toMatch(/^\d+-\d+\.end$/);
    for (let i = 1; i < a.events.length; i++) expect(cmp(a.events[i - 1].id!, a.events[i].id!)).toBe(-1);
    // Resumed after the snapshot: the same final event, with the same id.
    const b = await readAll(path, { 'Last-Event-ID': a.events[0].id! });
    expect(b.events.some((e) => e.name === 'job')).toBe(false);
    const bEnd = b.events[b.events.length - 1];
    expect({ id: bEnd.id, name: bEnd.name, error: bEnd.data.error, status: bEnd.data.job.status }).toEqual({ id: end.id, name: end.name, error: end.data.error, status: 'failed' });
    expect(cmp(a.events[0].id!, b.events[0].id!)).toBe(-1);
    expect((await openSse(path, { headers: { 'Last-Event-ID': end.id! } })).status).toBe(204);
  });

  it('keep-alive comments flow during a long phase 1; a stream dropped in phase 1 resumes and ends with the cancellation', async () => {
    // 1000 blocks of 2 tokens: a phase 1 of several seconds with no stream entry at all.
    const ctx = [1, ...randomTokenIds(1999, OPTS.vocab, 7, 3)];
    const r = await request(url, 'POST', '/v1/jobs', { key: KEY, body: { contextIds: ctx, queryIds: [5], blockSize: 2, hosts: 2, maxNewTokens: 2, cache: false } });
    expect(r.status).toBe(202);
    const id = r.json.id;
    const path = `/v1/jobs/${id}/events`;
    try {
      const a = await openSse(path);
      expect(a.status).toBe(200);
      await until('two keep-alive comments', async () => a.comments.filter((c) => c === 'ping').length >= 2, 20000, 20);
      expect(a.events.some((e) => e.name === 'token' || e.name === 'result')).toBe(false);
      expect(a.events[0].name).toBe('job');
      for (const e of a.events) expect(e.id).toMatch(/^0-0\.\d+$/); // made by the gateway before any stream entry
      a.drop();

      // `.end` of a job that has not ended is not an id its stream sent.
      const early = await openSse(path, { headers: { 'Last-Event-ID': '0-0.end' } });
      expect(early.status).toBe(400);
      expect(early.json.error).toMatchObject({ code: 'unknown_last_event_id' });
      expect(early.json.error.message).toMatch(/has not ended/);

      const b = await openSse(path, { headers: { 'Last-Event-ID': a.lastEventId! } });
      expect(b.status).toBe(200);
      await until('a progress event on the resumed stream', async () => b.events.some((e) => e.name === 'progress'), 20000, 20);
      expect(b.events.some((e) => e.name === 'job')).toBe(false);
      expect(cmp(a.lastEventId!, b.events[0].id!)).toBe(-1);
      const del = await request(url, 'DELETE', `/v1/jobs/${id}`, { key: KEY });
      expect(del.status).toBe(200);
      await b.closed;
      const end = b.events[b.events.length - 1];
      expect(end).toMatchObject({ name: 'error', data: { error: { code: 'cancelled' }, job: { status: 'cancelled' } } });
      expect(end.id).toMatch(/^\d+-\d+$/); // the cancel's stream entry
      for (let i = 1; i < b.events.length; i++) expect(cmp(b.events[i - 1].id!, b.events[i].id!)).toBe(-1);
      expect((await openSse(path, { headers: { 'Last-Event-ID': end.id! } })).status).toBe(204);
    } finally {
      await request(url, 'DELETE', `/v1/jobs/${id}`, { key: KEY }).catch(() => undefined);
    }
  });
});
