/**
 * End-to-end tests of a real starq cluster (docs/DESIGN.md §9): `node bin/starq-actor host-actor` ×N and
 * `node bin/starq-actor query-actor` processes on the Redis at 127.0.0.1:6379, each test cluster
 * under a random key prefix (deleted afterwards), driven through StarqClient.
 *
 * - Exactness: global, star and ring jobs on clusters of 1, 2 and 3 host processes generate the
 *   same greedy token ids as the in-process LocalCluster (stories260K from ../shared when present,
 *   and always a generated random checkpoint on which Star's output differs from Global's, so the
 *   comparison really checks Star semantics).
 * - Reuse: a second query on the same context runs no phase-1 job.
 * - Batching: requests in flight together share the query actor's steps and keep their ids.
 * - Faults: a SIGKILLed host's blocks are re-encoded elsewhere mid-generation; malformed jobs fail
 *   with a clear reason without harming the actors or other requests.
 * - Responsiveness: a host's heartbeats keep coming while it encodes a long block.
 * - `starq cluster up` + `starq generate --redis` end to end.
 *
 * A cluster is reused across the tests of a describe block: it starts with one host and grows to
 * three; the fault test (which kills a host) runs last.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Queue } from 'bullmq';
import { blockCacheId, planMode, type Mode } from '../libs/attention/src';
import { ActorClient, createQueue, createRedis, jobFailure, RemoteCallError } from '@starq/actors';
import { ClusterRegistry, HOST_METHODS, type RequestEvent, type RequestResult, type SubmitRequest } from '@starq/cluster';
import { contextKey, RedisKeys } from '../libs/protocol/src';
import { loadConfig } from '../libs/model/src/config';
import { LocalCluster } from '../libs/model/src/local/local-cluster';
import { writeRandomCheckpoint, type RandomCheckpointOptions } from '@starq/model/synthetic/random-checkpoint';
import { deletePrefix, randomPrefix, REDIS_URL, sleep, spawnTracked, stopProcess, TestCluster, until, waitExit } from './helpers/cluster';
import { randomTokenIds, TmpDirs, smallLlama } from '@starq/testing';
import { sharedModel } from '@starq/model/shared-fixtures';

const { path: STORIES, present: haveStories } = sharedModel('stories260K', 'reference_long.json');

/** Untied random Llama on which Star (default b, a) and Global generate different ids. */
const RANDOM_OPTS: RandomCheckpointOptions = smallLlama({ hidden: 64, intermediate: 128, layers: 4, vocab: 128, maxPositions: 2048, seed: 9 });

const GREEDY = { temperature: 0, topK: 0, topP: 1, seed: 0 };
const MODES: Mode[] = ['global', 'star', 'ring'];
const N_CTX = 300;
const N_QUERY = 4;
const N_NEW = 16;
const N_NEW_LONG = 200;

const tmp = new TmpDirs();
afterAll(() => tmp.cleanup());

interface Prompt {
  ctx: number[];
  query: number[];
}

interface ModelCase {
  title: string;
  available: boolean;
  /** Model directory (created on first use for generated checkpoints). */
  dir: () => string;
  /** Prompt number `i` (distinct contexts for distinct tests). */
  prompt: (i: number) => Prompt;
  /** Star ≠ Global on this model (a precondition that makes the exactness test discriminating). */
  starDiffersFromGlobal: boolean;
}

let randomDir = '';
const randomCase: ModelCase = {
  title: 'generated random checkpoint',
  available: true,
  dir: () => {
    if (!randomDir) {
      randomDir = tmp.make('starq-cluster-e2e-');
      writeRandomCheckpoint(randomDir, RANDOM_OPTS);
    }
    return randomDir;
  },
  prompt: (i) => ({ ctx: randomTokenIds(N_CTX, RANDOM_OPTS.vocab, 11 + 2 * i, 3), query: randomTokenIds(N_QUERY, RANDOM_OPTS.vocab, 12 + 2 * i, 3) }),
  starDiffersFromGlobal: true,
};

let storiesIds: number[] | null = null;
const storiesCase: ModelCase = {
  title: 'stories260K (requires ../shared)',
  available: haveStories,
  dir: () => STORIES,
  prompt: (i) => {
    storiesIds ??= (JSON.parse(fs.readFileSync(path.join(STORIES, 'reference_long.json'), 'utf8')) as { token_ids: number[] }).token_ids;
    // 480 ids; windows of N_CTX + N_QUERY at different offsets (ctx + query + 200 new ≤ 512 positions).
    const off = [0, 100, 50, 150][i];
    return { ctx: storiesIds.slice(off, off + N_CTX), query: storiesIds.slice(off + N_CTX, off + N_CTX + N_QUERY) };
  },
  starDiffersFromGlobal: false, // a 260K-parameter model attends locally: Star = Global here
};

/** What one request asks for; `hosts` is the host count of the cluster (and of the local plan). */
interface Ask {
  mode: Mode;
  hosts: number;
  prompt: Prompt;
  maxNewTokens?: number;
}

function submitRequest(model: string, a: Ask, extra: Partial<SubmitRequest> = {}): SubmitRequest {
  return {
    model,
    mode: a.mode,
    hosts: a.mode === 'global' ? null : a.hosts,
    contextIds: a.prompt.ctx,
    queryIds: a.prompt.query,
    maxNewTokens: a.maxNewTokens ?? N_NEW,
    sampling: GREEDY,
    stopIds: [],
    ignoreEos: true,
    ...extra,
  };
}

/** Resolves when the request's BullMQ job is in state `want` (its `finally` cleanup then ran). */
async function jobState(cluster: TestCluster, requestId: string, want: string): Promise<void> {
  const deadline = Date.now() + 15000;
  for (;;) {
    const job = await cluster.client.requests.getJob(requestId);
    const state = job ? await job.getState() : 'missing';
    if (state === want) return;
    if (Date.now() > deadline) throw new Error(`request ${requestId}: job state ${state}, expected ${want} (failedReason: ${job?.failedReason})`);
    await sleep(50);
  }
}

function describeModel(mc: ModelCase): void {
  (mc.available ? describe : describe.skip)(`cluster on ${mc.title}`, () => {
    let cluster: TestCluster;
    let local: LocalCluster;
    const refs = new Map<string, number[]>();
    const placements: string[] = [];

    /** Greedy ids of the in-process implementation (same mode, plan and host count). */
    async function reference(a: Ask): Promise<number[]> {
      const key = JSON.stringify(a);
      let ids = refs.get(key);
      if (!ids) {
        const r = await local.generate(
          { mode: a.mode, contextIds: a.prompt.ctx, queryIds: a.prompt.query, hosts: a.mode === 'global' ? undefined : a.hosts },
          { maxNewTokens: a.maxNewTokens ?? N_NEW, sampling: GREEDY, stopIds: [], ignoreEos: true },
        );
        ids = r.generatedIds;
        refs.set(key, ids);
      }
      return ids;
    }

    /** Submit, wait for the result and for the job to complete. */
    async function run(a: Ask, extra: Partial<SubmitRequest> = {}, on: Parameters<TestCluster['client']['wait']>[1] = {}) {
      const sub = await cluster.client.submit(submitRequest(cluster.model, a, extra));
      let res: RequestResult;
      try {
        res = await cluster.client.wait(sub.requestId, on, 90000);
      } catch (e) {
        throw new Error(`request failed: ${(e as Error).message}\n${cluster.logs()}`);
      }
      await jobState(cluster, sub.requestId, 'completed');
      return { sub, res };
    }

    beforeAll(async () => {
      const dir = mc.dir();
      // The actors run ORT with 1 thread; so does the reference (same float reduction order).
      [cluster, local] = await Promise.all([TestCluster.start({ modelDir: dir, hosts: 1 }), LocalCluster.start(dir, loadConfig(dir), { hosts: 3, hostThreads: 1, queryThreads: 1 })]);
    }, 120000);

    afterAll(async () => {
      if (placements.length) console.log(`${mc.title}: host processes used per request: ${placements.join(', ')}`);
      await local?.close();
      await cluster?.stop();
    }, 60000);

    /** Grows the cluster to `n` live host processes (tests also pass when run alone with -t). */
    async function ensureHosts(n: number): Promise<void> {
      const have = cluster.hosts().length;
      if (have < n) await cluster.addHosts(n - have);
      expect(await cluster.client.actors('host')).toHaveLength(n);
    }

    describe.each([1, 2, 3])('%i host process(es): same token ids as the in-process LocalCluster', (n) => {
      beforeAll(() => ensureHosts(n), 120000);

      it.each(MODES)('%s mode', async (mode) => {
        const a: Ask = { mode, hosts: n, prompt: mc.prompt(0) };
        const want = await reference(a);
        const plan = planMode(mode, N_CTX, { hosts: mode === 'global' ? null : n });
        // cache: false → the blocks are released after the request, so every run really encodes.
        const { sub, res } = await run(a, { cache: false });
        expect(sub.blocksToEncode).toBe(mode === 'ring' ? 0 : plan.numBlocks); // ring: phase 1 runs in the query actor
        expect(res.generatedIds).toEqual(want);
        expect(res).toMatchObject({ mode, contextTokens: N_CTX, queryTokens: N_QUERY, finishReason: 'length', blockSize: plan.blockSize, anchorSize: plan.anchorSize });
        expect(res.blocksEncoded).toBe(plan.numBlocks);
        expect(res.blocksReused).toBe(0);
        expect(res.blocksRecovered).toBe(0);
        placements.push(`${mode}@${n}→${res.hosts}`);
        if (mode === 'global') expect(res.hosts).toBe(1);
        else if (mode === 'ring') expect(res.hosts).toBe(Math.min(n, plan.numBlocks)); // the ring spans the requested hosts
        else {
          expect(res.hosts).toBeGreaterThanOrEqual(1); // star: any free host takes a block job
          expect(res.hosts).toBeLessThanOrEqual(n);
        }
      }, 90000);
    });

    if (mc.starDiffersFromGlobal) {
      it('precondition: on this model Star generates other ids than Global (the comparison above is not vacuous)', async () => {
        const p = mc.prompt(0);
        expect(await reference({ mode: 'star', hosts: 3, prompt: p })).not.toEqual(await reference({ mode: 'global', hosts: 3, prompt: p }));
      }, 60000);
    }

    it.each(['star', 'global'] as const)('%s: a second query on the same context reuses the KV handles (no phase-1 job)', async (mode) => {
      await ensureHosts(3);
      const first = mc.prompt(1);
      const second: Prompt = { ctx: first.ctx, query: mc.prompt(2).query };
      const plan = planMode(mode, N_CTX, { hosts: mode === 'global' ? null : 3 });
      const r1 = await run({ mode, hosts: 3, prompt: first });
      expect(r1.sub.blocksToEncode).toBe(plan.numBlocks);
      expect(r1.res.blocksEncoded).toBe(plan.numBlocks);
      expect(r1.res.generatedIds).toEqual(await reference({ mode, hosts: 3, prompt: first }));

      const before = await cluster.client.queueCounts();
      const r2 = await run({ mode, hosts: 3, prompt: second });
      const after = await cluster.client.queueCounts();
      expect(r2.sub).toMatchObject({ blocksToEncode: 0, blocksReused: plan.numBlocks });
      expect(r2.res.blocksReused).toBe(plan.numBlocks);
      expect(r2.res.blocksEncoded).toBe(0);
      expect(r2.res.blocksRecovered).toBe(0);
      // No block job was added or run: every count of the blocks queue is unchanged.
      expect(after.blocks).toEqual(before.blocks);
      expect(after.requests.completed).toBe(before.requests.completed + 1);
      expect(r2.res.generatedIds).toEqual(await reference({ mode, hosts: 3, prompt: second }));
    }, 90000);

    it('requests in flight together are batched by the query actor, each with the ids it gets alone in-process', async () => {
      await ensureHosts(3);
      const asks: Ask[] = [
        { mode: 'star', hosts: 3, prompt: mc.prompt(3), maxNewTokens: 96 },
        { mode: 'global', hosts: 3, prompt: mc.prompt(2), maxNewTokens: 24 },
        { mode: 'ring', hosts: 3, prompt: mc.prompt(0), maxNewTokens: 16 },
        { mode: 'star', hosts: 3, prompt: mc.prompt(1), maxNewTokens: 16 },
      ];
      const want = await Promise.all(asks.map((a) => reference(a)));
      const admitted: number[] = [];
      const on = { event: (e: RequestEvent) => void (e.type === 'admitted' && admitted.push(e.running)) };
      let firstToken!: () => void;
      const started = new Promise<void>((r) => (firstToken = r));
      const long = run(asks[0], { cache: false }, { ...on, token: (_id, i) => i === 0 && firstToken() });
      await started; // the others join while the long one decodes
      const rest = await Promise.all(asks.slice(1).map((a) => run(a, { cache: false }, on)));
      const all = [await long, ...rest];
      all.forEach((r, i) => expect(r.res.generatedIds).toEqual(want[i]));
      expect(Math.max(...admitted)).toBeGreaterThanOrEqual(2);
      const [q] = await cluster.client.actors('query');
      expect(q.status.serving?.steps).toBeGreaterThan(0);
    }, 120000);

    it('malformed request and block jobs fail with a clear reason; actors and other requests are unaffected', async () => {
      await ensureHosts(3);
      const bull = await createRedis(REDIS_URL, { forBullmq: true, connectionName: 'starq-e2e-bad-jobs' });
      const queues: Queue[] = [];
      try {
        const keys = new RedisKeys(cluster.prefix);
        const requests = createQueue(keys.queues.requests, { connection: bull, prefix: keys.bullPrefix });
        const blocks = createQueue(keys.queues.blocks, { connection: bull, prefix: keys.bullPrefix });
        queues.push(requests, blocks);
        const actorsBefore = (await cluster.client.actors()).map((r) => `${r.id}/${r.incarnation}`);

        const good: Ask = { mode: 'star', hosts: 3, prompt: mc.prompt(0) };
        const want = await reference(good);
        // A normal request in flight while the malformed jobs are processed.
        const concurrent = run(good, { cache: false });
        const badRequest = await requests.add('request', { requestId: 42, queryIds: 'not a list' } as never, { jobId: 'bad-request' });
        const badBlock = await blocks.add('block', { requestId: 'bad', model: cluster.model } as never, { jobId: 'bad-block' });

        const failed = async (q: Queue, id: string) =>
          until(
            `job ${id} to fail`,
            async () => {
              const j = await q.getJob(id);
              // read the job again once failed: `j` may predate the failure (no failedReason yet)
              return j && (await j.getState()) === 'failed' ? q.getJob(id) : null;
            },
            30000,
            100,
          );
        const [jr, jb] = await Promise.all([failed(requests, badRequest.id!), failed(blocks, badBlock.id!)]);
        // The reasons are error records: code, message, and the field at fault.
        expect(jobFailure(jr!.failedReason)).toMatchObject({
          code: 'malformed_job',
          message: expect.stringMatching(/^request job bad-request is malformed: request\.requestId must be a non-empty string .*\(got number\)/),
          param: 'request.requestId',
        });
        expect(jobFailure(jb!.failedReason)).toMatchObject({ code: 'malformed_job', message: 'malformed block job bad-block: block.cacheId is missing', param: 'block.cacheId' });
        // Neither is retried (UnrecoverableError): one attempt each, although the queue's default is 3.
        expect(jr!.attemptsMade).toBe(1);
        expect(jb!.attemptsMade).toBe(1);
        // A client following the bad request (by its job id) gets the coded error.
        await expect(cluster.client.wait('bad-request', {}, 10000)).rejects.toMatchObject({ code: 'malformed_job', message: expect.stringMatching(/is malformed/) });

        // Malformed attend calls get a typed error from the host (checked against the wire, then the model).
        const calls = new ActorClient(cluster.redis, { keys, defaultTimeoutMs: 10000 });
        try {
          const host = calls.handle(cluster.hosts()[0].id);
          const bad = (args: unknown) => host.call(HOST_METHODS.attend, args).catch((e: unknown) => e);
          const wire = await bad({ cacheIds: ['x'], layer: 0, q: [1, 2], qpos: new Int32Array(1) });
          expect(wire).toBeInstanceOf(RemoteCallError);
          expect(wire).toMatchObject({ code: 'protocol_error', param: 'attend.q' });
          const shape = await bad({ cacheIds: ['x'], layer: 0, q: new Float32Array(3), qpos: new Int32Array(1) });
          expect(shape).toMatchObject({ code: 'protocol_error', param: 'attend.q', message: expect.stringMatching(/heads\*rows\*headDim/) });
          expect(await bad({ cacheIds: ['x'], layer: 999, q: new Float32Array(0), qpos: new Int32Array(0) })).toMatchObject({ code: 'protocol_error', param: 'attend.layer' });
        } finally {
          await calls.close();
        }

        const { res: during } = await concurrent;
        expect(during.generatedIds).toEqual(want);

        // Every actor is still the same live process (same incarnation, no restart).
        expect((await cluster.client.actors()).map((r) => `${r.id}/${r.incarnation}`)).toEqual(actorsBefore);
        for (const a of cluster.actors) expect({ id: a.id, exit: a.proc.exitCode ?? a.proc.signalCode }).toEqual({ id: a.id, exit: null });

        // A request submitted afterwards completes correctly.
        const { res: afterwards } = await run({ mode: 'global', hosts: 3, prompt: mc.prompt(0) }, { cache: false });
        expect(afterwards.generatedIds).toEqual(await reference({ mode: 'global', hosts: 3, prompt: mc.prompt(0) }));
      } finally {
        await Promise.allSettled(queues.map((q) => q.close()));
        bull.disconnect();
      }
    }, 90000);

    it('a host SIGKILLed during generation: its blocks are re-encoded on another host, same tokens', async () => {
      await ensureHosts(3);
      const a: Ask = { mode: 'star', hosts: 3, prompt: mc.prompt(3), maxNewTokens: N_NEW_LONG };
      const want = await reference(a);
      const plan = planMode('star', N_CTX, { hosts: 3 });
      const key = contextKey({ model: cluster.model, mode: 'star', blockSize: plan.blockSize, anchorSize: plan.anchorSize, contextIds: a.prompt.ctx });
      const cacheIds = plan.blocks.map((b) => blockCacheId(key, b.index));

      const sub = await cluster.client.submit(submitRequest(cluster.model, a));
      expect(sub.blocksToEncode).toBe(plan.numBlocks);
      let firstToken!: () => void;
      const gotToken = new Promise<void>((r) => (firstToken = r));
      const tokens: number[] = [];
      const events: RequestEvent[] = [];
      let recoveredAt = 0;
      const result = cluster.client.wait(
        sub.requestId,
        {
          token: (id) => {
            tokens.push(id);
            firstToken();
          },
          event: (e) => {
            events.push(e);
            if (e.type === 'recovered') recoveredAt = Date.now();
          },
        },
        90000,
      );
      result.catch(() => undefined);
      await Promise.race([gotToken, result]);
      const handles = await cluster.client.directory.getMany(cacheIds);
      expect(handles.every((h) => h !== null)).toBe(true);
      const victim = handles[0]!.hostId;
      const lost = handles.filter((h) => h!.hostId === victim).length;
      // The query actor calls the hosts over their direct links: the kill breaks a link mid-call.
      expect((await cluster.client.actors('host')).map((h) => h.link)).toEqual(expect.arrayContaining([expect.stringMatching(/^tcp:\/\/127\.0\.0\.1:\d+$/)]));
      await cluster.kill(victim);
      const killedAt = Date.now();
      const tokensAtKill = tokens.length;

      let res: RequestResult;
      try {
        res = await result;
      } catch (e) {
        throw new Error(`request failed after killing ${victim}: ${(e as Error).message}\n${cluster.logs()}`);
      }
      console.log(`killed ${victim} after ${tokensAtKill} tokens; recovered after ${recoveredAt - killedAt} ms; done after ${Date.now() - killedAt} ms`);
      expect(tokensAtKill).toBeLessThan(N_NEW_LONG); // the kill happened while generating
      expect(res.generatedIds).toEqual(want);
      expect(res.generatedIds).toHaveLength(N_NEW_LONG);
      expect(res.blocksRecovered).toBeGreaterThan(0);
      expect(res.blocksRecovered).toBeGreaterThanOrEqual(lost);
      const recovered = events.filter((e): e is Extract<RequestEvent, { type: 'recovered' }> => e.type === 'recovered');
      expect(recovered.length).toBeGreaterThan(0);
      expect(recovered[0].fromHost).toBe(victim);
      // The lost blocks now live on surviving hosts.
      const now = await cluster.client.directory.getMany(cacheIds);
      for (const h of now) expect(h?.hostId).not.toBe(victim);
      await jobState(cluster, sub.requestId, 'completed');
      // The dead host leaves the registry after its TTL; the survivors stay.
      await until('the killed host to leave the registry', async () => !(await cluster.client.actors('host')).some((h) => h.id === victim), 10000);
      expect(await cluster.client.actors('host')).toHaveLength(2);
    }, 120000);
  });
}

describeModel(storiesCase);
describeModel(randomCase);

describe('host event loop while encoding (generated random checkpoint)', () => {
  /**
   * The host's engine blocks its worker thread for ENCODE_DELAY_MS before the encode
   * (STARQ_TEST_ENCODE_DELAY_MS, a test hook), so phase 1 lasts seconds on any machine. Heartbeats
   * run on the actor's main thread: they must keep the record alive throughout.
   */
  const ENCODE_DELAY_MS = 3000;
  const HEARTBEAT_MS = 300;
  const TTL_MS = 1500;
  const N = 256;
  let cluster: TestCluster;

  beforeAll(async () => {
    const dir = tmp.make('starq-cluster-e2e-slow-');
    writeRandomCheckpoint(dir, { ...RANDOM_OPTS, seed: 3 });
    cluster = await TestCluster.start({ modelDir: dir, hosts: 1, heartbeatMs: HEARTBEAT_MS, ttlMs: TTL_MS, env: { STARQ_TEST_ENCODE_DELAY_MS: String(ENCODE_DELAY_MS) } });
  }, 120000);

  afterAll(async () => {
    await cluster?.stop();
  }, 60000);

  it(`heartbeats keep the host's record alive during a ${ENCODE_DELAY_MS} ms phase-1 encode`, async () => {
    const host = cluster.hosts()[0].id;
    const sub = await cluster.client.submit({
      model: cluster.model,
      mode: 'global',
      contextIds: randomTokenIds(N, RANDOM_OPTS.vocab, 21, 3),
      queryIds: [5, 6, 7, 8],
      maxNewTokens: 1,
      sampling: GREEDY,
      stopIds: [],
      cache: false,
    });
    let phase1 = true;
    let missing = 0;
    const beats: number[] = [];
    const sampler = (async () => {
      while (phase1) {
        const r = await cluster.registry.get(host);
        if (!phase1) break;
        if (r) beats.push(r.heartbeatAt);
        else missing++;
        await sleep(200);
      }
    })();
    const res = await cluster.client.wait(sub.requestId, { event: (e) => void (e.type === 'started' && (phase1 = false)) }, 120000).finally(() => (phase1 = false));
    await sampler;
    const distinct = [...new Set(beats)].sort((x, y) => x - y);
    const gaps = distinct.slice(1).map((x, i) => x - distinct[i]);
    // The encode lasted the hook's delay at least (the test hook is in force) …
    expect(res.blocksEncoded).toBe(1);
    expect(res.timings.phase1Ms).toBeGreaterThanOrEqual(ENCODE_DELAY_MS);
    // … and the host's record never expired: it was refreshed, never left alone as long as its TTL.
    expect(missing).toBe(0);
    expect(distinct.length).toBeGreaterThanOrEqual(Math.floor(ENCODE_DELAY_MS / TTL_MS) + 1);
    expect(Math.max(...gaps)).toBeLessThan(TTL_MS);
  }, 120000);
});

describe('starq cluster up + starq generate --redis', () => {
  it('prints ready {...}, serves `generate --redis --prefix --json` like in-process, and stops every actor on SIGINT (exit 0)', async () => {
    const modelDir = haveStories ? STORIES : randomCase.dir();
    const prefix = randomPrefix('up');
    const prompt = haveStories ? storiesCase.prompt(0) : randomCase.prompt(0);
    const genArgs = ['bin/starq', 'generate', '--model', modelDir, '--context-ids', prompt.ctx.join(','), '--query-ids', prompt.query.join(','), '--mode', 'star', '--hosts', '1', '--max-new-tokens', String(N_NEW), '--json'];
    // The cluster's prefix travels as --prefix on both sides (no STARQ_PREFIX in the environment).
    const { STARQ_PREFIX: _unset, ...env } = process.env;
    const redis = await createRedis(REDIS_URL, { connectionName: 'starq-e2e-up' });
    // Actors only (no HTTP gateway: it has its own tests and would need a port).
    const up = spawnTracked(['bin/starq', 'cluster', 'up', '--hosts', '1', '--prefix', prefix, '--model', modelDir, '--no-gateway'], env);
    // The in-process run, concurrently with the cluster's start-up.
    const inproc = spawnTracked([...genArgs, '--threads', '1'], env);
    let remote: ReturnType<typeof spawnTracked> | null = null;
    try {
      const readyLine = await until(
        '`ready {...}` from starq cluster up',
        async () => {
          if (up.proc.exitCode !== null) throw new Error(`starq cluster up exited (${up.proc.exitCode}):\n${up.out()}`);
          return up.stdout().split('\n').find((l) => l.startsWith('ready ')) ?? null;
        },
        120000,
        100,
      );
      const ready = JSON.parse(readyLine.slice('ready '.length)) as { redis: string; prefix: string; hosts: string[]; queryActors: string[] };
      expect(ready).toMatchObject({ redis: REDIS_URL, prefix });
      expect(ready.hosts).toHaveLength(1);
      expect(ready.queryActors).toHaveLength(1);

      const keys = new RedisKeys(prefix);
      const registry = new ClusterRegistry(redis, { keys });
      const records = await registry.list();
      expect(records.map((r) => r.id)).toEqual(expect.arrayContaining([...ready.hosts, ...ready.queryActors]));
      const pids = records.map((r) => r.pid);
      for (const pid of pids) expect(isAlive(pid)).toBe(true);

      remote = spawnTracked([...genArgs, '--redis', ready.redis, '--prefix', prefix], env);
      expect(await waitExit(remote.proc, 90000)).toBe(true);
      expect(await waitExit(inproc.proc, 90000)).toBe(true);
      expect({ code: remote.proc.exitCode, out: remote.out().slice(-2000) }).toMatchObject({ code: 0 });
      expect({ code: inproc.proc.exitCode, out: inproc.out().slice(-2000) }).toMatchObject({ code: 0 });
      const lines = (s: string) => s.split('\n').filter((l) => l.trim() !== '');
      expect(lines(remote.stdout())).toHaveLength(1);
      const got = JSON.parse(lines(remote.stdout())[0]);
      const want = JSON.parse(lines(inproc.stdout())[0]);
      expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
      expect(Object.keys(got.timings).sort()).toEqual(Object.keys(want.timings).sort());
      const { timings: _t1, ...gotRest } = got;
      const { timings: _t2, ...wantRest } = want;
      expect(gotRest).toEqual(wantRest); // same mode, sizes, hosts, ids, text, finish reason

      // SIGINT to `cluster up` alone: it must stop its actors itself.
      process.kill(up.proc.pid!, 'SIGINT');
      expect(await waitExit(up.proc, 30000)).toBe(true);
      expect(up.proc.exitCode).toBe(0);
      await until('every actor process to exit', async () => pids.every((p) => !isAlive(p)), 5000);
      expect(await registry.list()).toEqual([]);
      expect(await redis.scard(keys.actors())).toBe(0);
    } finally {
      await Promise.all([stopProcess(up.proc, 10000, 'SIGINT'), stopProcess(inproc.proc, 1000), ...(remote ? [stopProcess(remote.proc, 1000)] : [])]);
      await deletePrefix(redis, prefix).catch(() => undefined);
      redis.disconnect();
    }
  }, 180000);
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
