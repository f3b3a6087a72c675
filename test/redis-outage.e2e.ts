/**
 * The Redis outage contract, on a private `redis-server` (free loopback port, no persistence)
 * that this test starts, SIGKILLs and starts again by pid, with 2 host processes, a query actor
 * and a gateway on it:
 *
 * - during the outage `/ready` is 503, new jobs and job reads get 503 `redis_unavailable` at once
 *   (no request hangs on a reconnecting connection), `/health` still answers;
 * - a job generating when Redis died ends `failed` with `redis_unavailable` — on its event stream
 *   and in GET /v1/jobs/:id (not 404, not driver text) — since Redis without persistence lost it;
 * - after the restart the actors re-register by themselves and new jobs complete; every block a
 *   host still holds is either re-announced in the KV directory (pointing at that host) or freed;
 * - no process logs an unhandled ioredis error event, and no actor crashed.
 */
import { HOST_METHODS, RedisServer } from '@starq/cluster';
import { ActorClient } from '@starq/actors';
import { writeRandomCheckpoint } from '@starq/model/synthetic/random-checkpoint';
import { randomTokenIds, TmpDirs } from '@starq/testing';
import { sleep, stopProcess, TestCluster, until } from './helpers/cluster';
import { readSse, request, startGateway, type SseEvent } from './helpers/gateway';

jest.setTimeout(240000);

const tmp = new TmpDirs();
let redis: RedisServer | null = null;
let cluster: TestCluster;
let gw: Awaited<ReturnType<typeof startGateway>>;

const url = () => redis!.url;

beforeAll(async () => {
  redis = await RedisServer.start(); // no persistence
  const modelDir = tmp.make('starq-outage-model-');
  writeRandomCheckpoint(modelDir, { architecture: 'llama', hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 2, vocab: 128, maxPositions: 8192, dtype: 'F32', tied: false, sharded: false, seed: 8 });
  cluster = await TestCluster.start({ modelDir, hosts: 2, redisUrl: url() });
  gw = await startGateway({ STARQ_REDIS_URL: url(), STARQ_PREFIX: cluster.prefix, STARQ_MODEL_DIR: modelDir });
}, 180000);

afterAll(async () => {
  if (gw) await stopProcess(gw.proc, 5000);
  if (redis && redis.pid === null) await redis.restart().catch(() => undefined); // let the actors deregister cleanly
  await cluster?.stop();
  await redis?.stop();
  tmp.cleanup();
});

const submit = (body: Record<string, unknown>) => request(gw.url, 'POST', '/v1/jobs', { body });

describe('Redis outage', () => {
  it('503 redis_unavailable during the outage; the running job fails with redis_unavailable; the cluster recovers by itself', async () => {
    // A few cached blocks on the hosts, then a long generation.
    const warm = await submit({ contextIds: [1, ...randomTokenIds(511, 128, 3, 3)], queryIds: [5], blockSize: 64, maxNewTokens: 2 });
    expect(warm.status).toBe(202);
    await until('the warm-up job', async () => (await request(gw.url, 'GET', `/v1/jobs/${warm.json.id}`)).json.status === 'completed', 60000, 200);
    const long = await submit({ contextIds: [1, ...randomTokenIds(255, 128, 4, 3)], queryIds: [5], blockSize: 64, maxNewTokens: 6000, ignoreEos: true });
    expect(long.status).toBe(202);
    const id = long.json.id as string;
    await until('tokens to flow', async () => (await request(gw.url, 'GET', `/v1/jobs/${id}`)).json.progress.tokens > 3, 60000, 100);
    const heldBefore = (await cluster.registry.list('host')).reduce((n, h) => n + h.status.blocks, 0);
    expect(heldBefore).toBeGreaterThan(0); // the reconcile check below is about real blocks
    const sse: Promise<SseEvent[]> = readSse(gw.url, `/v1/jobs/${id}/events`, null, { timeoutMs: 120000 });
    await sleep(300);

    await redis!.kill(); // SIGKILL by pid
    // Outage: fast, coded answers.
    const ready = await until('/ready to say Redis is down', async () => ((r) => (r.status === 503 ? r : null))(await request(gw.url, 'GET', '/ready')), 15000, 200);
    expect(ready.json).toMatchObject({ status: 'not_ready', redis: false });
    expect((await request(gw.url, 'GET', '/health')).status).toBe(200);
    const t0 = Date.now();
    const refused = await until('POST to be refused with redis_unavailable', async () => ((r) => (r.json?.error?.code === 'redis_unavailable' ? r : null))(await submit({ contextIds: [1, 2, 3], queryIds: [4], maxNewTokens: 2 })), 15000, 200);
    expect(refused.status).toBe(503);
    expect(Date.now() - t0).toBeLessThan(15000);
    const read = await request(gw.url, 'GET', `/v1/jobs/${id}`);
    expect(read.status).toBe(503);
    expect(read.json.error.code).toBe('redis_unavailable');
    await sleep(2000);

    await redis!.restart(); // same port, empty: no persistence
    // The running job ends failed with redis_unavailable, on its stream and in GET.
    const events = await sse;
    const last = events[events.length - 1];
    expect(last.name).toBe('error');
    expect({ code: last.data.error.code, tail: last.data.error.code === 'redis_unavailable' ? [] : events.slice(-4) }).toEqual({ code: 'redis_unavailable', tail: [] });
    expect(last.data.error.message).not.toMatch(/max retries|ECONNREFUSED|Connection is closed/i);
    const job = await until('GET to report the lost job', async () => ((r) => (r.status === 200 ? r.json : null))(await request(gw.url, 'GET', `/v1/jobs/${id}`)), 30000, 300);
    expect(job).toMatchObject({ status: 'failed', error: { code: 'redis_unavailable' } });

    // The actors come back by themselves (heartbeats re-create their records) and serve new jobs.
    await until('/ready again', async () => (await request(gw.url, 'GET', '/ready')).status === 200, 60000, 300);
    const after = await submit({ contextIds: [1, ...randomTokenIds(255, 128, 6, 3)], queryIds: [5], blockSize: 64, maxNewTokens: 4 });
    expect(after.status).toBe(202);
    const done = await until('a job after the restart', async () => ((j) => (j.status === 'completed' || j.status === 'failed' ? j : null))((await request(gw.url, 'GET', `/v1/jobs/${after.json.id}`)).json), 90000, 300);
    expect(done.status).toBe('completed');

    // Hosts reconcile: whatever a host still holds is in the directory under its id.
    const actors = new ActorClient(cluster.redis, { keys: cluster.keys });
    await actors.start();
    try {
      await until(
        'every held block to be announced or freed',
        async () => {
          for (const h of cluster.hosts()) {
            const s = await actors.handle(h.id).call<{ cacheIds: string[] }>(HOST_METHODS.stats, undefined, { timeoutMs: 5000 });
            const handles = await cluster.client.directory.getMany(s.cacheIds);
            if (handles.some((x) => !x || x.hostId !== h.id)) return false;
          }
          return true;
        },
        60000,
        1000,
      );
    } finally {
      await actors.close();
    }

    for (const a of cluster.actors) {
      const exit = a.proc.exitCode ?? a.proc.signalCode;
      expect({ actor: a.id, exit, output: exit === null ? '' : a.output().slice(-3000) }).toEqual({ actor: a.id, exit: null, output: '' });
      expect(a.output()).not.toMatch(/Unhandled error event/);
    }
    expect(gw.out()).not.toMatch(/Unhandled error event/);
  });
});
