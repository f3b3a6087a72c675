/**
 * Failover in seconds and honest job states, on a real cluster (2 host processes, 2 query-actor
 * processes, a gateway; Redis at 127.0.0.1:6379 under a random prefix; registry TTL 1.5 s):
 *
 * - a host SIGKILLed while it holds a block job: the job is requeued (a `requeued` event) within
 *   seconds — the registry's liveness, not BullMQ's 30 s lock — and the request completes with the
 *   tokens of an undisturbed run;
 * - `cache: false` on a cached context: `blocks.reused` counts the cached blocks (never negative)
 *   and they stay cached;
 * - a host SIGKILLed under a Ring request (whose K/V cannot be re-encoded block by block): the job
 *   fails with the documented `host_lost`, naming the host;
 * - a query actor SIGKILLed mid-generation: the request is requeued onto the other query actor
 *   within seconds, with the same tokens;
 * - both query actors of one request die: BullMQ fails the job, and GET /v1/jobs/:id says
 *   `failed` with code `actor_lost` (no negative firstTokenMs), DELETE answers 409;
 * - no query actor at all: GET says `waiting for a query actor`, SSE sends a `waiting` event, and
 *   after STARQ_ACTOR_WAIT_MS the job fails with `query_actor_unavailable`.
 *
 * Time bounds here are generous deadlines (a loaded machine passes them); the numbers they guard
 * against are BullMQ's 30 s lock and "forever".
 */
import * as path from 'node:path';
import { blockCacheId, planMode } from '../libs/attention/src';
import type { RequestEvent } from '@starq/cluster';
import { contextKey } from '../libs/protocol/src';
import { writeRandomCheckpoint, type RandomCheckpointOptions } from '@starq/model/synthetic/random-checkpoint';
import { killGroup, sleep, stopProcess, TestCluster, until, waitExit } from './helpers/cluster';
import { readSse, request, startGateway, type SseEvent } from './helpers/gateway';
import { randomTokenIds, TmpDirs } from '@starq/testing';

jest.setTimeout(240000);

const OPTS: RandomCheckpointOptions = { architecture: 'llama', hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 2, vocab: 128, maxPositions: 8192, dtype: 'F32', tied: false, sharded: false, seed: 21 };
const REQUEUE_DEADLINE_MS = 15000; // nominal: TTL 1.5 s + a 1 s sweep + a 1 s stalled check

const tmp = new TmpDirs();
let cluster: TestCluster;
let gw: Awaited<ReturnType<typeof startGateway>>;
let modelId = '';

beforeAll(async () => {
  const modelDir = tmp.make('starq-failover-model-');
  writeRandomCheckpoint(modelDir, OPTS);
  modelId = path.basename(modelDir);
  cluster = await TestCluster.start({ modelDir, hosts: 2, queryActors: 2 });
  gw = await startGateway({ STARQ_REDIS_URL: process.env.STARQ_TEST_REDIS_URL || 'redis://127.0.0.1:6379', STARQ_PREFIX: cluster.prefix, STARQ_MODEL_DIR: modelDir, STARQ_ACTOR_WAIT_MS: '5000' });
}, 180000);

afterAll(async () => {
  if (gw) await stopProcess(gw.proc, 5000);
  await cluster?.stop();
  tmp.cleanup();
});

async function submit(body: Record<string, unknown>): Promise<string> {
  const r = await request(gw.url, 'POST', '/v1/jobs', { body });
  if (r.status !== 202) throw new Error(`POST /v1/jobs: ${r.status} ${r.text}`);
  return r.json.id;
}

const getJob = async (id: string) => (await request(gw.url, 'GET', `/v1/jobs/${id}`)).json;
const TERMINAL = new Set(['completed', 'failed', 'cancelled']);
const waitJob = (id: string, ms = 120000) => until(`job ${id} to end`, async () => ((j) => (TERMINAL.has(j.status) ? j : null))(await getJob(id)), ms, 200);

/** Follows a request's raw event stream, calling `on` for each event; returns a stop function. */
function watch(id: string, on: (e: RequestEvent, at: number) => void): () => void {
  let stopped = false;
  const reader = cluster.redis.duplicate();
  void (async () => {
    let last = '0';
    while (!stopped) {
      const res = (await reader.xread('COUNT', 100, 'BLOCK', 200, 'STREAMS', cluster.keys.requestEvents(id), last).catch(() => null)) as [string, [string, string[]][]][] | null;
      for (const [, entries] of res ?? []) {
        for (const [eid, fields] of entries) {
          last = eid;
          on(JSON.parse(fields[1]) as RequestEvent, Date.now());
        }
      }
    }
    reader.disconnect();
  })();
  return () => (stopped = true);
}

describe('failover in seconds', () => {
  const ctx = [1, ...randomTokenIds(2047, OPTS.vocab, 5, 3)];
  let reference: number[] = [];

  it('a host SIGKILLed holding a block job: requeued within seconds, same tokens', async () => {
    // 32 blocks of 64 tokens: both hosts stay busy encoding for a while.
    const body = { contextIds: ctx, queryIds: [7, 8], blockSize: 64, maxNewTokens: 24, ignoreEos: true };
    const id = await submit(body);
    const victim = cluster.hosts()[0];
    // Wait until the victim holds one of this request's block jobs (BullMQ's processedBy says so).
    const held = await until(
      'the victim host to hold a block job',
      async () => {
        const active = await cluster.redis.lrange(`${cluster.keys.bullPrefix}:blocks:active`, 0, -1);
        for (const jobId of active.filter((j) => j.startsWith(id))) {
          const pb = await cluster.redis.hget(`${cluster.keys.bullPrefix}:blocks:${jobId}`, 'pb');
          if (pb === victim.id) return jobId;
        }
        return null;
      },
      60000,
      20,
    );
    let requeuedAt = 0;
    const stop = watch(id, (e, at) => {
      if (e.type === 'requeued' && e.actor === victim.id && !requeuedAt) requeuedAt = at;
    });
    const killedAt = Date.now();
    await cluster.kill(victim.id);
    const job = await waitJob(id);
    stop();
    expect(job.status).toBe('completed');
    expect(requeuedAt).toBeGreaterThan(0);
    expect(requeuedAt - killedAt).toBeLessThan(REQUEUE_DEADLINE_MS);
    expect(held).toMatch(new RegExp(`^${id}-b\\d+$`));
    // An undisturbed run of the same request on the remaining host gives the same tokens.
    const again = await waitJob(await submit({ ...body, cache: false }));
    expect(again.result.generatedIds).toEqual(job.result.generatedIds);
    reference = job.result.generatedIds;
    await cluster.addHosts(1);
  });

  it('cache: false on a cached context reuses every block (never a negative count) and leaves them cached', async () => {
    const body = { contextIds: ctx, queryIds: [7, 8], blockSize: 64, maxNewTokens: 24, ignoreEos: true };
    const warm = await waitJob(await submit(body));
    expect(warm.status).toBe('completed');
    const plan = planMode('star', ctx.length, { blockSize: 64 });
    const key = contextKey({ model: modelId, mode: 'star', blockSize: plan.blockSize, anchorSize: plan.anchorSize, contextIds: ctx });
    const cacheIds = plan.blocks.map((b) => blockCacheId(key, b.index));
    const held = async () => (await cluster.client.directory.getMany(cacheIds)).filter((h) => h !== null).length;
    expect(await held()).toBe(plan.numBlocks);
    const uncached = await waitJob(await submit({ ...body, cache: false }));
    expect(uncached.result.generatedIds).toEqual(reference);
    expect(uncached.blocks).toEqual({ encoded: 0, reused: plan.numBlocks, recovered: 0 });
    expect(await held()).toBe(plan.numBlocks);
    // The next cached request finds every block: no phase-1 job.
    const next = await request(gw.url, 'POST', '/v1/jobs', { body });
    expect(next.json.progress.blocks).toMatchObject({ reused: plan.numBlocks, total: plan.numBlocks });
    await waitJob(next.json.id);
  });

  it('a host lost by a Ring request (not re-encodable block by block): failed with host_lost naming the host', async () => {
    const j = await longJob(30, { mode: 'ring', anchorSize: 0 });
    await j.started;
    const victim = cluster.hosts()[0];
    await cluster.kill(victim.id);
    const job = await waitJob(j.id, 60000);
    j.stop();
    expect(job.status).toBe('failed');
    expect(job.error.code).toBe('host_lost');
    expect(job.error.message).toContain(`host ${victim.id}`);
    expect(job.error.message).toMatch(/Ring/);
    await cluster.addHosts(1);
  });

  /** Submits a long generation and resolves with its id once a query actor started it. */
  async function longJob(seed: number, extra: Record<string, unknown> = {}): Promise<{ id: string; started: Promise<string>; events: RequestEvent[]; stop: () => void }> {
    const c = [1, ...randomTokenIds(255, OPTS.vocab, seed, 3)];
    const id = await submit({ contextIds: c, queryIds: [3], blockSize: 128, maxNewTokens: 6000, ignoreEos: true, ...extra });
    const events: RequestEvent[] = [];
    let onStart!: (qa: string) => void;
    const started = new Promise<string>((r) => (onStart = r));
    const stop = watch(id, (e) => {
      events.push(e);
      if (e.type === 'token' && e.index === 2) onStart([...events].reverse().find((x): x is Extract<RequestEvent, { type: 'started' }> => x.type === 'started')!.queryActor);
    });
    return { id, started, events, stop };
  }

  it('a query actor SIGKILLed mid-generation: the request is requeued onto the other within seconds', async () => {
    const j = await longJob(31);
    const first = await j.started;
    const killedAt = Date.now();
    await cluster.kill(first);
    const restartedOn = await until(
      'the request to start again on another query actor',
      async () => {
        const starts = j.events.filter((e): e is Extract<RequestEvent, { type: 'started' }> => e.type === 'started');
        return starts.length >= 2 ? starts[starts.length - 1].queryActor : null;
      },
      REQUEUE_DEADLINE_MS + 10000,
      50,
    );
    const tookMs = Date.now() - killedAt;
    expect(restartedOn).not.toBe(first);
    expect(tookMs).toBeLessThan(REQUEUE_DEADLINE_MS);
    expect(j.events.some((e) => e.type === 'requeued' && e.job === 'request' && e.actor === first)).toBe(true);
    await request(gw.url, 'DELETE', `/v1/jobs/${j.id}`);
    j.stop();
    await cluster.addQueryActors(1);
  });

  it('both query actors of a request die: failed with query_actor_lost naming them, DELETE 409, no negative firstTokenMs', async () => {
    const j = await longJob(32);
    const first = await j.started;
    await cluster.kill(first);
    const second = await until(
      'the rerun on the other query actor',
      async () => {
        const s = j.events.filter((e): e is Extract<RequestEvent, { type: 'started' }> => e.type === 'started');
        const tokensAfter = s.length >= 2 ? j.events.slice(j.events.lastIndexOf(s[s.length - 1])).filter((e) => e.type === 'token').length : 0;
        return tokensAfter >= 2 ? s[s.length - 1].queryActor : null;
      },
      60000,
      20,
    );
    expect(second).not.toBe(first);
    const [fresh] = await cluster.addQueryActors(1); // alive when the second dies: takes the job, and BullMQ fails it (stalled twice)
    await cluster.kill(second);
    const job = await waitJob(j.id, 60000);
    j.stop();
    expect(job.status).toBe('failed');
    expect(job.error.code).toBe('query_actor_lost');
    expect(job.error.message).not.toMatch(/allowable limit/);
    expect(job.error.message).toContain(first);
    expect(job.error.message).toContain(second);
    expect(job.timings.firstTokenMs === null || job.timings.firstTokenMs >= 0).toBe(true);
    const del = await request(gw.url, 'DELETE', `/v1/jobs/${j.id}`);
    expect(del.status).toBe(409);
    expect(del.json.error.code).toBe('job_finished');
    expect((await getJob(j.id)).status).toBe('failed');
    expect(fresh.proc.exitCode).toBeNull();
  });

  it('no query actor: the job says it waits for one (GET and SSE), then fails with query_actor_unavailable', async () => {
    // Submitted while a query actor lives (else 503 cluster_unavailable); it dies during phase 1.
    const id = await submit({ contextIds: [1, ...randomTokenIds(2047, OPTS.vocab, 33, 3)], queryIds: [3], blockSize: 64, maxNewTokens: 4 });
    for (const q of cluster.queryActors()) {
      killGroup(q.proc, 'SIGKILL');
      await waitExit(q.proc, 5000);
    }
    const waiting = await until('GET to say what the job waits for', async () => ((j) => (j.waitingFor ? j : null))(await getJob(id)), 30000, 200);
    expect(waiting.waitingFor).toBe('waiting for a query actor');
    expect(waiting.status).toBe('encoding');
    const events: SseEvent[] = await readSse(gw.url, `/v1/jobs/${id}/events`, null, { timeoutMs: 60000 });
    expect(events.some((e) => e.name === 'waitingFor' && e.data.waitingFor === 'waiting for a query actor')).toBe(true);
    const last = events[events.length - 1];
    expect(last.name).toBe('error');
    expect(last.data.error.code).toBe('query_actor_unavailable');
    expect(last.data.error.message).toMatch(/STARQ_ACTOR_WAIT_MS/);
    const job = await getJob(id);
    expect(job).toMatchObject({ status: 'failed', waitingFor: null, error: { code: 'query_actor_unavailable' } });
    // A query actor that comes later does not run it.
    await cluster.addQueryActors(1);
    await sleep(2000);
    expect((await getJob(id)).error.code).toBe('query_actor_unavailable');
  });
});
