/**
 * The serving loop (continuous batching of Star phase 2) on a random Llama checkpoint, in-process:
 *   - the engine's row independence that exactness rests on (stacked rows give bit-identical rows);
 *   - every request's greedy tokens equal running it alone, with requests of different context and
 *     query lengths, modes, block sizes and host counts in one batch, joining and leaving
 *     mid-stream, one cancelled, one failing on its own — with the attention of a step's items
 *     batched into shared ORT calls (the default), and the same tokens on the per-request path;
 *   - lost-host recovery: a host's engine stops mid-generation, its blocks are re-encoded on the
 *     others, the tokens do not change; without recoveries left the request fails with host_lost;
 *   - admission: running-set maximum and KV budget queue requests with the reason visible; a request
 *     larger than the budget is refused;
 *   - fairness: a long query is chunked and shares steps with a decoding request.
 */
import { type ContextPlacement } from '@starq/attention';
import { encodeContext } from '../distributed';
import type { GenerateOptions } from '../generate';
import { LocalCluster, type LocalRequest } from '../local/local-cluster';
import { ModelEngine } from '../runtime/engine';
import { writeRandomCheckpoint } from '../synthetic/random-checkpoint';
import type { ModelConfig } from '../types';
import { loadModelDir } from '../weights';
import { EngineQueryBackend } from './query-backend';
import { HostLostError } from './host-lost-error';
import { ServingLoop, type ServingEvent } from './serving-loop';
import { TmpDirs, randomTokenIds } from '@starq/testing';

const GREEDY = { temperature: 0, topK: 0, topP: 1, seed: 0 };
const gen = (maxNewTokens: number, extra: Partial<GenerateOptions> = {}): GenerateOptions => ({ maxNewTokens, sampling: GREEDY, stopIds: [], ...extra });

const tmp = new TmpDirs();
let dir: string;
let config: ModelConfig;

beforeAll(() => {
  dir = tmp.make('starq-serving-spec-');
  writeRandomCheckpoint(dir, { architecture: 'llama', hidden: 64, intermediate: 160, layers: 3, heads: 4, kvHeads: 2, vocab: 128, maxPositions: 2048, dtype: 'F32', tied: false, sharded: false, seed: 1313 });
  config = loadModelDir(dir).config;
});
afterAll(() => tmp.cleanup());

/** A mixed set: context/query lengths, modes, block sizes, host counts. */
function mixedRequests(): (LocalRequest & { name: string; maxNew: number })[] {
  const V = config.vocabSize;
  const ctx = (n: number, seed: number) => [1, ...randomTokenIds(n - 1, V, seed, 3)];
  return [
    { name: 'star-b64-3h', mode: 'star', contextIds: ctx(300, 11), queryIds: randomTokenIds(9, V, 12, 3), blockSize: 64, anchorSize: 32, hosts: 3, maxNew: 14 },
    { name: 'star-b100-2h', mode: 'star', contextIds: ctx(200, 21), queryIds: randomTokenIds(3, V, 22, 3), blockSize: 100, anchorSize: 100, hosts: 2, maxNew: 20 },
    { name: 'global', mode: 'global', contextIds: ctx(150, 31), queryIds: randomTokenIds(17, V, 32, 3), maxNew: 8 },
    { name: 'ring-b50-3h', mode: 'ring', contextIds: ctx(180, 41), queryIds: randomTokenIds(5, V, 42, 3), blockSize: 50, hosts: 3, maxNew: 12 },
    { name: 'star-long-query', mode: 'star', contextIds: ctx(120, 51), queryIds: randomTokenIds(40, V, 52, 3), blockSize: 40, anchorSize: 20, hosts: 3, maxNew: 10 },
  ];
}

describe('engine row independence (the property batching rests on)', () => {
  let engine: ModelEngine;
  beforeAll(async () => {
    engine = await ModelEngine.load(dir, config, { threads: 2 });
  });
  afterAll(async () => {
    await engine?.close();
  });

  it('queryLayer / postQueryLayer / head over stacked groups equal each group alone, bit for bit', async () => {
    const { hiddenSize: hid, numHeads: H, headDim: D, vocabSize: V } = config;
    const lens = [1, 7, 1, 33, 2];
    const T = lens.reduce((a, b) => a + b, 0);
    const starts = lens.map((_, g) => lens.slice(0, g).reduce((a, b) => a + b, 0));
    const positions = lens.map((n, g) => Int32Array.from({ length: n }, (_, i) => 50 * g + i));
    const batched = lens.map((_, g) => ({ cacheId: `b${g}`, positions: positions[g] }));
    for (let g = 0; g < lens.length; g++) for (const id of [`b${g}`, `a${g}`]) await engine.createCache(id, 64);
    const x = await engine.embed(Int32Array.from(randomTokenIds(T, V, 99, 3))); // (T, hidden)
    // batched: layer 0, then post(0) + layer 1 over the stacked own partials, then head
    const b0 = await engine.queryLayer(0, x, batched);
    const attn = new Float32Array(H * T * D); // (H, T, D) stacked from per-group (H, n, D)
    b0.own.forEach((p, g) => {
      for (let h = 0; h < H; h++) attn.set(p.o.subarray(h * lens[g] * D, (h + 1) * lens[g] * D), (h * T + starts[g]) * D);
    });
    const b1 = await engine.postQueryLayer(0, x, attn, batched);
    const bHead = await engine.head(b1.x); // (T, vocab)
    for (let g = 0; g < lens.length; g++) {
      const alone = [{ cacheId: `a${g}`, positions: positions[g] }];
      const xs = x.slice(starts[g] * hid, (starts[g] + lens[g]) * hid);
      const a0 = await engine.queryLayer(0, xs, alone);
      expect(Array.from(b0.q[g])).toEqual(Array.from(a0.q[0]));
      expect(Array.from(b0.own[g].o)).toEqual(Array.from(a0.own[0].o));
      expect(Array.from(b0.own[g].lse)).toEqual(Array.from(a0.own[0].lse));
      const a1 = await engine.postQueryLayer(0, xs, a0.own[0].o, alone);
      expect(Array.from(b1.x.subarray(starts[g] * hid, (starts[g] + lens[g]) * hid))).toEqual(Array.from(a1.x));
      expect(Array.from(b1.q[g])).toEqual(Array.from(a1.q[0]));
      expect(Array.from(b1.own[g].o)).toEqual(Array.from(a1.own[0].o));
      expect(Array.from(bHead.subarray(starts[g] * V, (starts[g] + lens[g]) * V))).toEqual(Array.from(await engine.head(a1.x)));
    }
  });

  it('a cache named by two groups of one call is refused', async () => {
    const x = await engine.embed(Int32Array.of(5, 6));
    await engine.createCache('dup', 4);
    await expect(engine.queryLayer(0, x, [{ cacheId: 'dup', positions: Int32Array.of(0) }, { cacheId: 'dup', positions: Int32Array.of(1) }])).rejects.toThrow(/two row groups/);
  });
});

describe('ServingLoop through LocalCluster: batched requests give the tokens they give alone', () => {
  let cluster: LocalCluster;
  const alone = new Map<string, number[]>();
  beforeAll(async () => {
    cluster = await LocalCluster.start(dir, config, { hosts: 3, hostThreads: 1, queryThreads: 1, serving: { maxQueryRowsPerStep: 16 } });
    for (const r of mixedRequests()) alone.set(r.name, (await cluster.generate(r, gen(r.maxNew))).generatedIds);
  });
  afterAll(async () => {
    await cluster?.close();
  });

  it('all at once, joining mid-stream, one cancelled: identical tokens; batches really formed; caches freed', async () => {
    const reqs = mixedRequests();
    const batches: number[] = [];
    const stepLog = (cluster.loop as unknown as { opts: { onStep?: (s: { batch: number }) => void } }).opts;
    stepLog.onStep = (s) => batches.push(s.batch);
    const cancel = new AbortController();
    const events: ServingEvent[] = [];
    let startLate!: () => void;
    const late = new Promise<void>((r) => (startLate = r));
    const run = (r: (typeof reqs)[number], extra: Partial<GenerateOptions> = {}, signal?: AbortSignal) => cluster.generate(r, gen(r.maxNew, extra), { signal, onEvent: (e) => events.push(e) });
    const [first, second, third, fourth, fifth] = reqs;
    const results = Promise.all([
      run(first, { onToken: (_id, i) => i === 2 && startLate() }),
      run(second),
      late.then(() => run(third)), // joins while the others decode
      late.then(() => run(fifth)), // a query of 40 rows in 16-row chunks alongside decode rows
      run(fourth, { onToken: (_id, i) => i === 4 && cancel.abort() }, cancel.signal),
    ].map((p) => p.then((r) => r.generatedIds, (e: unknown) => e)));
    const [a, b, c, e, d] = await results;
    stepLog.onStep = undefined;
    expect(a).toEqual(alone.get(first.name));
    expect(b).toEqual(alone.get(second.name));
    expect(c).toEqual(alone.get(third.name));
    expect(e).toEqual(alone.get(fifth.name));
    expect((d as { code?: string }).code).toBe('cancelled');
    expect(Math.max(...batches)).toBeGreaterThanOrEqual(3);
    expect(events.filter((x) => x.type === 'admitted')).toHaveLength(5);
    expect((await cluster.queryEngine.listCaches()).filter((x) => x.id.endsWith('/query'))).toEqual([]);
    expect(cluster.loop.snapshot()).toMatchObject({ running: 0, waiting: 0 });
  });

  it('a request that fails on its own (a block its placement names is missing) fails alone; the rest of its batch is unaffected', async () => {
    const reqs = mixedRequests();
    const backend = cluster.loop.backend;
    const loop = new ServingLoop(backend, {});
    const place = async (r: (typeof reqs)[number], key: string): Promise<ContextPlacement[]> => {
      const plan = cluster.plan(r);
      return encodeContext({ mode: r.mode, plan, contextIds: r.contextIds, contextKey: key }, cluster.hosts, config.numLayers);
    };
    const [p0, p1] = await Promise.all([place(reqs[0], 'iso-0'), place(reqs[1], 'iso-1')]);
    const broken = p1.map((p) => ({ host: p.host, cacheIds: [...p.cacheIds, 'iso-missing/b9'] }));
    const out = await Promise.all([
      loop.submit({ id: 'iso-0', contextLength: reqs[0].contextIds.length, queryIds: reqs[0].queryIds, placement: p0, generate: gen(reqs[0].maxNew) }),
      loop.submit({ id: 'iso-1', contextLength: reqs[1].contextIds.length, queryIds: reqs[1].queryIds, placement: broken, generate: gen(reqs[1].maxNew) }).then(
        () => null,
        (e: Error) => e,
      ),
    ]);
    expect(out[0]).not.toBeNull();
    expect((out[0] as { generatedIds: number[] }).generatedIds).toEqual(alone.get(reqs[0].name));
    expect((out[1] as Error).message).toMatch(/iso-missing/);
    await Promise.all(cluster.hosts.map((h) => h.release([...p0, ...p1].flatMap((p) => p.cacheIds))));
  });

  it('admission: a running-set maximum and a KV budget queue requests with the reason; too large is refused', async () => {
    const reqs = mixedRequests().slice(0, 3);
    const perToken = cluster.loop.backend.kvBytesPerToken;
    const placements = await Promise.all(reqs.map((r, i) => encodeContext({ mode: r.mode, plan: cluster.plan(r), contextIds: r.contextIds, contextKey: `adm-${i}` }, cluster.hosts, config.numLayers)));
    const submitAll = async (loop: ServingLoop, tag: string) => {
      const events: [string, ServingEvent][] = [];
      const out = await Promise.all(
        reqs.map((r, i) =>
          loop
            .submit({ id: `${tag}-${i}`, contextLength: r.contextIds.length, queryIds: r.queryIds, placement: placements[i], generate: gen(r.maxNew), onEvent: (e) => events.push([r.name, e]) })
            .then((x) => x.generatedIds),
        ),
      );
      return { out, events };
    };
    // at most 2 running
    const byCount = await submitAll(new ServingLoop(cluster.loop.backend, { maxRunning: 2 }), 'count');
    reqs.forEach((r, i) => expect(byCount.out[i]).toEqual(alone.get(r.name)));
    expect(byCount.events).toContainEqual([reqs[2].name, { type: 'queued', reason: 'running_set_full', position: 0 }]);
    // a budget that holds the largest request but not two at once
    const bytes = reqs.map((r) => (r.queryIds.length + r.maxNew) * perToken);
    const byKv = await submitAll(new ServingLoop(cluster.loop.backend, { kvBudgetBytes: Math.max(...bytes) + Math.min(...bytes) - 1 }), 'kv');
    reqs.forEach((r, i) => expect(byKv.out[i]).toEqual(alone.get(r.name)));
    expect(byKv.events.some(([, e]) => e.type === 'queued' && e.reason === 'kv_memory')).toBe(true);
    // larger than the whole budget: refused with a code
    await expect(new ServingLoop(cluster.loop.backend, { kvBudgetBytes: bytes[0] - 1 }).submit({ id: 'big', contextLength: reqs[0].contextIds.length, queryIds: reqs[0].queryIds, placement: placements[0], generate: gen(reqs[0].maxNew) })).rejects.toMatchObject({ code: 'query_kv_too_large' });
    await Promise.all(cluster.hosts.map((h) => h.release(placements.flatMap((p) => p.flatMap((x) => x.cacheIds)))));
  });

  it('a long query is cut into chunks that share steps with decoding requests (no step waits for the whole query)', async () => {
    const [a, , , , long] = mixedRequests(); // long: a 40-row query
    const placements = await Promise.all([a, long].map((r, i) => encodeContext({ mode: r.mode, plan: cluster.plan(r), contextIds: r.contextIds, contextKey: `fair-${i}` }, cluster.hosts, config.numLayers)));
    const steps: { batch: number; rows: number }[] = [];
    const loop = new ServingLoop(cluster.loop.backend, { maxQueryRowsPerStep: 8, onStep: (s) => steps.push({ batch: s.batch, rows: s.rows }) });
    const log: string[] = [];
    let joined!: () => void;
    const join = new Promise<void>((r) => (joined = r));
    const first = loop.submit({ id: 'fair-a', contextLength: a.contextIds.length, queryIds: a.queryIds, placement: placements[0], generate: gen(a.maxNew, { onToken: (_id, i) => (log.push('a'), i === 1 && joined()) }) });
    await join;
    const second = loop.submit({ id: 'fair-long', contextLength: long.contextIds.length, queryIds: long.queryIds, placement: placements[1], generate: gen(long.maxNew, { onToken: () => log.push('long') }) });
    const [ra, rl] = await Promise.all([first, second]);
    expect(ra.generatedIds).toEqual(alone.get(a.name)); // chunking a neighbour's query changes no token
    expect(rl.generatedIds).toEqual(alone.get(long.name)); // its own query in 8-row chunks (16 above): float rounding only, same greedy ids here
    expect(Math.max(...steps.map((s) => s.rows))).toBeLessThanOrEqual(8 + 1); // one chunk + one decode row
    // While the 40-row query ran in 5 chunks, the decoding request got a token at every step.
    const beforeLong = log.indexOf('long');
    expect(log.slice(0, beforeLong).filter((x) => x === 'a').length).toBeGreaterThanOrEqual(2 + 5);
    await Promise.all(cluster.hosts.map((h) => h.release(placements.flatMap((p) => p.flatMap((x) => x.cacheIds)))));
  });

  it('the per-request attention path (attendBatching: false) gives the same greedy tokens, with more attend calls', async () => {
    const reqs = mixedRequests();
    const attendCalls = async (c: LocalCluster) => (await Promise.all([...c.hosts.map((h) => h.engine), c.queryEngine].map((e) => e.stats()))).reduce((n, s) => n + s.attendCalls, 0);
    const per = await LocalCluster.start(dir, config, { hosts: 3, hostThreads: 1, queryThreads: 1, attendBatching: false, serving: { maxQueryRowsPerStep: 16 } });
    try {
      const before = [await attendCalls(cluster), await attendCalls(per)];
      const [batchedIds, perIds] = await Promise.all([cluster, per].map((c) => Promise.all(reqs.map((r) => c.generate(r, gen(r.maxNew)).then((x) => x.generatedIds)))));
      reqs.forEach((r, i) => {
        expect([r.name, batchedIds[i]]).toEqual([r.name, alone.get(r.name)]);
        expect([r.name, perIds[i]]).toEqual([r.name, alone.get(r.name)]); // float32 rounding apart, the same partials (batched-attention.spec.ts)
      });
      // Phase 1 is the same on both; phase 2 sends every step's items of a host (and own partials) in shared calls.
      expect((await attendCalls(cluster)) - before[0]).toBeLessThan((await attendCalls(per)) - before[1]);
    } finally {
      await per.close();
    }
  });

  it('unbatched mode (each request its own steps) gives the same tokens', async () => {
    const reqs = mixedRequests().slice(0, 3);
    const placements = await Promise.all(reqs.map((r, i) => encodeContext({ mode: r.mode, plan: cluster.plan(r), contextIds: r.contextIds, contextKey: `unb-${i}` }, cluster.hosts, config.numLayers)));
    const batches: number[] = [];
    const loop = new ServingLoop(cluster.loop.backend, { batching: false, onStep: (s) => batches.push(s.batch) });
    const out = await Promise.all(reqs.map((r, i) => loop.submit({ id: `unb-${i}`, contextLength: r.contextIds.length, queryIds: r.queryIds, placement: placements[i], generate: gen(r.maxNew) })));
    reqs.forEach((r, i) => expect(out[i].generatedIds).toEqual(alone.get(r.name)));
    expect(batches.length).toBeGreaterThan(0);
    expect(batches.every((b) => b === 1)).toBe(true);
    await Promise.all(cluster.hosts.map((h) => h.release(placements.flatMap((p) => p.flatMap((x) => x.cacheIds)))));
  });
});

describe('lost-host recovery in the serving loop (in-process)', () => {
  it("a host's engine stops mid-generation: its blocks are re-encoded on the other hosts and every request's tokens are unchanged", async () => {
    const reqs = mixedRequests().filter((r) => r.mode === 'star');
    const ref = await LocalCluster.start(dir, config, { hosts: 3, hostThreads: 1, queryThreads: 1 });
    const expected: number[][] = [];
    try {
      for (const r of reqs) expected.push((await ref.generate(r, gen(r.maxNew))).generatedIds);
    } finally {
      await ref.close();
    }
    const cluster = await LocalCluster.start(dir, config, { hosts: 3, hostThreads: 1, queryThreads: 1 });
    try {
      const events: ServingEvent[] = [];
      let stopped: Promise<void> | null = null;
      const out = await Promise.all(
        reqs.map((r, i) =>
          cluster.generate(r, gen(r.maxNew, i === 0 ? { onToken: (_id, k) => k === 3 && (stopped = cluster.stopHost(1)) } : {}), { onEvent: (e) => events.push(e) }),
        ),
      );
      await stopped;
      out.forEach((o, i) => expect(o.generatedIds).toEqual(expected[i]));
      expect(out[0].recoveredBlocks).toBeGreaterThan(0);
      expect(events.some((e) => e.type === 'recovered' && e.fromHost === 'local-host-1')).toBe(true);
      expect(cluster.hosts[1].engine.alive).toBe(false);
    } finally {
      await cluster.close();
    }
  });

  it('a request that cannot recover (no recoveries left) fails with host_lost naming the host and the recoveries', async () => {
    const [r] = mixedRequests().filter((x) => x.name === 'star-b64-3h');
    const cluster = await LocalCluster.start(dir, config, { hosts: 3, hostThreads: 1, queryThreads: 1, serving: { maxRecoveries: 0 } });
    try {
      let stopped: Promise<void> | null = null;
      const err = await cluster.generate(r, gen(r.maxNew, { onToken: (_id, k) => k === 2 && (stopped = cluster.stopHost(1)) })).then(
        () => null,
        (e: unknown) => e,
      );
      await stopped;
      expect(err).toBeInstanceOf(HostLostError);
      expect(err).toMatchObject({ code: 'host_lost', hostId: 'local-host-1', recoveries: 0, lostHosts: ['local-host-1'] });
      expect((err as Error).message).toMatch(/already used its 0 recoveries/);
    } finally {
      await cluster.close();
    }
  });
});
