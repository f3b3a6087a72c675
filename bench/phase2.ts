/**
 * Phase-2 latency benchmark: per-token decode latency on a cluster of processes vs in-process, and
 * where a layer step spends its time.
 *
 * Per scenario (model, context, host count) it starts an in-process `LocalCluster` and up to three
 * process clusters (host actors + query actor on the local Redis, random key prefixes; `--sides`):
 * `link` — hosts serve their direct link from the engine's worker thread (the default);
 * `link/main` — from the main thread (`STARQ_LINK_THREAD=main`: every call through it);
 * `pubsub` — `STARQ_LINK=off`. The context is encoded once on each (blocks kept). Then,
 * alternating in rounds so that machine load hits every variant alike:
 *
 * - `in-process loop` — `LocalCluster.generate` (phase 1, then the serving loop): the in-process
 *                    product path, the reference of every ratio;
 * - `in-process`   — `starStep` over the LocalCluster's hosts (worker-thread engines), timed;
 * - `client link`  — the same `starStep` run in this process over `RemoteHost`s of the link cluster,
 *                    every actor call traced (caller and host timestamps);
 * - `client link/main`, `client pubsub` — the same over the other clusters;
 * - `actor link` / `actor link/main` / `actor pubsub` — the request submitted to the cluster's
 *                    query actor (end to end, what a user gets; tok/s as the query actor measured it).
 *
 * The in-process and client variants are timed per layer step: encode q, transport to the host,
 * host receive (decode + queue), host attend, reply (encode + transport back), client decode,
 * merge, post (fused with the next layer's q) — medians over all layer steps of all decode tokens
 * ("host attend" is the host's handler: on the `link` cluster the engine thread's checks and
 * attention; elsewhere the main thread's handler, i.e. main → engine thread → main);
 * for a step with several hosts the slowest host's call is the one shown. Per-token latency p50/p99
 * and tok/s per variant; ratios to in-process are taken within each round.
 *
 * Models: stories260K (../shared/models/stories260K, a 700-character story as context, 2 and 4
 * hosts) and a random model of the bench shape (hidden=256, layers=4, heads=8, kv-heads=2) at 4K
 * and 16K contexts, 2 and 4 hosts. Every actor and engine has 1 ORT thread.
 *
 * First, the transports alone: round trips of a q-sized echo call to an actor process over the
 * direct link and over pub/sub, alternating call by call.
 *
 * Usage: npx tsx bench/phase2.ts [--quick] [--rounds R] [--only transport|stories|bench] [--contexts 4K,16K]
 *        [--sides link,link/main,pubsub] [--markdown] [--json FILE]
 * (`× in-proc`: tok/s over the reference's in the same round, median over rounds; the reference is
 * `in-process loop`, or `in-process` above 4K where the loop would re-encode the context every run.)
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { blockCacheId, planMode, starPhase1, starStep, type AttendBatch, type ContextPlacement, type Host, type Partial, type QueryModel, type StarPlan } from '@starq/attention';
import { ActorClient, ActorRegistry, createRedis, deleteKeysByPrefix, type CallTrace } from '@starq/actors';
import { ClusterRegistry, KvDirectory, RemoteHost, startProcessCluster, StarqClient, type LocalProcessCluster } from '@starq/cluster';
import { loadConfig } from '@starq/model/config';
import { decodeLoop, type GenerateOptions } from '@starq/model/generate';
import { LocalCluster } from '@starq/model/local/local-cluster';
import { ModelEngine } from '@starq/model/runtime/engine';
import { EngineQueryBackend } from '@starq/model/serving';
import { writeRandomCheckpoint } from '@starq/model/synthetic/random-checkpoint';
import { randomTokenIds } from '@starq/model/synthetic/token-ids';
import { sharedModel } from '@starq/model/shared-fixtures';
import { StarqTokenizer } from '@starq/model/tokenizer';
import type { ModelConfig } from '@starq/model/types';
import { RedisKeys, contextKey } from '@starq/protocol';
import { machineInfo, markdownTable, textTable, type Column } from '@starq/report';

const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(name);
const opt = (name: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
const quick = flag('--quick');
const rounds = Number(opt('--rounds') ?? (quick ? 2 : 5));
const only = opt('--only');
const REDIS = process.env.STARQ_REDIS_URL || 'redis://127.0.0.1:6379';
const log = (s: string) => process.stderr.write(`[phase2 ${new Date().toISOString().slice(11, 19)}] ${s}\n`);
const now = () => performance.timeOrigin + performance.now();

const STORY =
  'Once upon a time, there was a little girl named Lily. She loved to play outside with her dog, Max. ' +
  'One day, they went to the park and saw a big red ball under a tree. Lily ran to the ball and picked it up. ' +
  '"Look, Max!" she said. Max barked and wagged his tail. They played with the ball all day until the sun went down. ' +
  'When they got home, Lily was tired but happy. She gave Max a big hug and said, "Thank you for playing with me." ' +
  'Max licked her face. Lily smiled and went to bed. The next morning, Lily woke up early. She looked out of the window and saw that it was raining.';

interface Scenario {
  name: string;
  modelDir: string;
  config: ModelConfig;
  contextIds: number[];
  queryIds: number[];
  hosts: number;
  blockSize: number;
  newTokens: number;
}

/** Breakdown of one layer step (ms). Transport columns are NaN for in-process. */
interface StepSample {
  encode: number;
  toHost: number;
  hostRecv: number;
  attend: number;
  reply: number;
  decode: number;
  exchange: number;
  merge: number;
  post: number;
  step: number;
}
const PARTS: (keyof StepSample)[] = ['encode', 'toHost', 'hostRecv', 'attend', 'reply', 'decode', 'exchange', 'merge', 'post', 'step'];

interface RunResult {
  tokens: number[];
  tokPerSec: number;
  /** ms between consecutive decode tokens */
  gaps: number[];
  steps: StepSample[];
}

/** Wraps the hosts and the query model of one run, recording a StepSample per layer step. */
class StepRecorder {
  readonly steps: StepSample[] = [];
  private layerStart = 0;
  private lastAttendEnd = 0;
  private traces: CallTrace[] = [];
  private inflight = 0;
  active = false;

  hosts(placement: ContextPlacement[]): ContextPlacement[] {
    return placement.map((p) => ({ cacheIds: p.cacheIds, host: this.host(p.host) }));
  }

  private host(h: Host): Host {
    const rec = this;
    const wrapped: Host = Object.create(h);
    wrapped.attendMany = async (items: AttendBatch): Promise<Partial[]> => {
      if (rec.inflight++ === 0) rec.layerStart = now();
      const p = await h.attendMany(items);
      rec.inflight--;
      rec.lastAttendEnd = now();
      return p;
    };
    return wrapped;
  }

  onTrace = (t: CallTrace) => {
    if (this.active && t.method === 'attendMany') this.traces.push(t);
  };

  queryModel(qm: QueryModel): QueryModel {
    const rec = this;
    const close = async <T>(fn: () => Promise<T>): Promise<T> => {
      const t0 = now();
      const out = await fn();
      if (rec.active && rec.lastAttendEnd > 0) rec.finishLayer(t0, now());
      return out;
    };
    return {
      numLayers: qm.numLayers,
      embed: (ids) => qm.embed(ids),
      queryLayer: (l, x, groups) => qm.queryLayer(l, x, groups),
      post: (l, x, attn) => close(() => qm.post(l, x, attn)),
      postQueryLayer: qm.postQueryLayer ? (l, x, attn, groups) => close(() => qm.postQueryLayer!(l, x, attn, groups)) : undefined,
      head: (x) => qm.head(x),
    };
  }

  private finishLayer(postStart: number, postEnd: number): void {
    const last = this.traces.sort((a, b) => b.settled - a.settled)[0];
    const s = last?.server;
    this.steps.push({
      encode: last ? last.encoded - last.called : NaN,
      toHost: last && s ? s.received - last.sent : NaN,
      hostRecv: last && s ? s.started - s.received : NaN,
      attend: last && s ? s.finished - s.started : NaN,
      reply: last && s ? last.replied - s.finished : NaN,
      decode: last ? last.settled - last.replied : NaN,
      exchange: this.lastAttendEnd - this.layerStart,
      merge: postStart - this.lastAttendEnd,
      post: postEnd - postStart,
      step: postEnd - this.layerStart,
    });
    this.traces = [];
    this.lastAttendEnd = 0;
  }
}

/** Star phase 2 (query chunk + decode) over `placement`, timed; the query cache is fresh per run. */
async function runStar(engine: ModelEngine, placement: ContextPlacement[], s: Scenario, gen: GenerateOptions, rec: StepRecorder): Promise<RunResult> {
  const qcache = `phase2-bench-${randomBytes(4).toString('hex')}`;
  await engine.createCache(qcache, s.queryIds.length + s.newTokens);
  try {
    const qm = rec.queryModel(new EngineQueryBackend(engine));
    const context = rec.hosts(placement);
    const times: number[] = [];
    let n = 0;
    const r = await decodeLoop(
      async (ids, positions) => {
        rec.active = n++ > 0; // the query chunk (n = 0) is not a decode step
        return (await starStep(qm, [{ context, cacheId: qcache, ids, positions, logits: 'last' }]))[0]!;
      },
      s.contextIds.length,
      s.queryIds,
      { ...gen, onToken: () => times.push(now()) },
    );
    rec.active = false;
    return { tokens: r.generatedIds, tokPerSec: r.timings.decodeTokensPerSec, gaps: times.slice(1).map((t, i) => t - times[i]), steps: rec.steps.splice(0) };
  } finally {
    await engine.dropCache(qcache).catch(() => undefined);
  }
}

interface ProcessSide {
  cluster: LocalProcessCluster;
  client: StarqClient;
  actor: ActorClient;
  rec: StepRecorder;
  placement: ContextPlacement[];
  redis: Awaited<ReturnType<typeof createRedis>>;
}

/** The process clusters compared: hosts' links served by the engine thread (the default), by the main thread (STARQ_LINK_THREAD=main), or no links (STARQ_LINK=off). */
type Side = 'link' | 'link/main' | 'pubsub';
const SIDE_ENV: Record<Side, Record<string, string>> = { link: {}, 'link/main': { STARQ_LINK_THREAD: 'main' }, pubsub: { STARQ_LINK: 'off' } };

async function startSide(s: Scenario, side: Side): Promise<ProcessSide> {
  const prefix = `starq-phase2-${randomBytes(4).toString('hex')}`;
  const saved = Object.keys(SIDE_ENV[side]).map((k) => [k, process.env[k]] as const);
  Object.assign(process.env, SIDE_ENV[side]);
  let cluster: LocalProcessCluster;
  try {
    cluster = await startProcessCluster({ hosts: s.hosts, threads: 1, prefix, redisUrl: REDIS, modelDir: s.modelDir, log: (l) => (/error|exited/i.test(l) ? process.stderr.write(l) : undefined) });
  } finally {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
  const client = await StarqClient.connect(cluster.redisUrl, { prefix });
  const model = path.basename(path.resolve(s.modelDir));
  const sampling = { temperature: 0, topK: 0, topP: 1, seed: 0 };
  // phase 1 once; the blocks stay on the hosts (cache: true) for every later run
  const sub = await client.submit({ model, mode: 'star', contextIds: s.contextIds, queryIds: s.queryIds, blockSize: s.blockSize, hosts: s.hosts, maxNewTokens: 1, sampling, stopIds: [], cache: true });
  await client.wait(sub.requestId);
  const keys = new RedisKeys(prefix);
  const redis = await createRedis(cluster.redisUrl);
  const rec = new StepRecorder();
  const actor = new ActorClient(redis, { keys, registry: new ClusterRegistry(redis, { keys }), onTrace: rec.onTrace });
  const plan: StarPlan = sub.plan;
  const key = contextKey({ model, mode: 'star', blockSize: plan.blockSize, anchorSize: plan.anchorSize, contextIds: s.contextIds });
  const handles = await new KvDirectory(redis, keys).getMany(plan.blocks.map((b) => blockCacheId(key, b.index)));
  const placement: ContextPlacement[] = [];
  handles.forEach((h, k) => {
    if (!h) throw new Error(`block ${k} of the bench context is not on any host`);
    const last = placement[placement.length - 1];
    if (last && last.host.id === h.hostId) last.cacheIds.push(h.cacheId);
    else placement.push({ host: new RemoteHost(h.hostId, actor.handle(h.hostId)), cacheIds: [h.cacheId] });
  });
  return { cluster, client, actor, rec, placement, redis };
}

async function stopSide(p: ProcessSide): Promise<void> {
  await p.actor.close();
  await p.client.close();
  await p.cluster.stop();
  await deleteKeysByPrefix(p.redis, p.cluster.prefix);
  p.redis.disconnect();
}

/** The product path in one process: `LocalCluster.generate` (phase 1 again, then the serving loop). */
async function runLocal(local: LocalCluster, s: Scenario, gen: GenerateOptions): Promise<RunResult> {
  const times: number[] = [];
  const r = await local.generate({ mode: 'star', contextIds: s.contextIds, queryIds: s.queryIds, blockSize: s.blockSize, hosts: s.hosts }, { ...gen, onToken: () => times.push(now()) });
  return { tokens: r.generatedIds, tokPerSec: r.timings.decodeTokensPerSec, gaps: times.slice(1).map((t, i) => t - times[i]), steps: [] };
}

async function runActor(p: ProcessSide, s: Scenario, gen: GenerateOptions): Promise<RunResult> {
  const sub = await p.client.submit({ model: path.basename(path.resolve(s.modelDir)), mode: 'star', contextIds: s.contextIds, queryIds: s.queryIds, blockSize: s.blockSize, hosts: s.hosts, maxNewTokens: gen.maxNewTokens, sampling: gen.sampling, stopIds: gen.stopIds, ignoreEos: gen.ignoreEos, cache: true });
  const r = await p.client.wait(sub.requestId);
  return { tokens: r.generatedIds, tokPerSec: r.timings.decodeTokensPerSec, gaps: [], steps: [] };
}

const VARIANTS = ['in-process loop', 'in-process', 'client link', 'client link/main', 'client pubsub', 'actor link', 'actor link/main', 'actor pubsub'] as const;
type Variant = (typeof VARIANTS)[number];
const SIDES: Side[] = (opt('--sides') ?? 'link,link/main,pubsub').split(',').map((x) => {
  if (x !== 'link' && x !== 'link/main' && x !== 'pubsub') throw new Error(`--sides: unknown side ${x} (link, link/main, pubsub)`);
  return x;
});
/** The process cluster a variant runs on (null: in-process). */
const sideOf = (v: Variant): Side | null => (v.startsWith('client ') || v.startsWith('actor ') ? (v.slice(v.indexOf(' ') + 1) as Side) : null);

const pct = (xs: number[], p: number) => {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return v.length ? v[Math.min(v.length - 1, Math.floor(p * v.length))] : NaN;
};
const med = (xs: number[]) => pct(xs, 0.5);

async function runScenario(s: Scenario): Promise<Record<string, unknown>> {
  log(`${s.name}: starting in-process cluster and 2 process clusters (${s.hosts} hosts each)`);
  const gen: GenerateOptions = { maxNewTokens: s.newTokens, sampling: { temperature: 0, topK: 0, topP: 1, seed: 0 }, stopIds: [], ignoreEos: true };
  const local = await LocalCluster.start(s.modelDir, s.config, { hosts: s.hosts, hostThreads: 1, queryThreads: 1 });
  const localKey = `phase2-bench-${randomBytes(4).toString('hex')}`;
  const plan = planMode('star', s.contextIds.length, { blockSize: s.blockSize, hosts: s.hosts });
  const localPlacement = await starPhase1(plan, s.contextIds, local.hosts, localKey);
  const localRec = new StepRecorder();
  const queryEngine = await ModelEngine.load(s.modelDir, s.config, { threads: 1 });
  const sides = new Map<Side, ProcessSide>();
  for (const side of SIDES) sides.set(side, await startSide(s, side));
  // LocalCluster.generate encodes the context again on every run: above 4K that is most of the run's time,
  // so there the reference is the timed in-process starStep (same steps without the loop's bookkeeping).
  const variants = VARIANTS.filter((v) => (v !== 'in-process loop' || s.contextIds.length <= 4096) && (sideOf(v) === null || sides.has(sideOf(v)!)));
  const reference: Variant = variants[0];
  const results = new Map<Variant, RunResult[]>(variants.map((v) => [v, []]));
  const run = (v: Variant): Promise<RunResult> => {
    switch (v) {
      case 'in-process loop':
        return runLocal(local, s, gen);
      case 'in-process':
        return runStar(local.queryEngine, localPlacement, s, gen, localRec);
      default: {
        const side = sides.get(sideOf(v)!)!;
        return v.startsWith('client ') ? runStar(queryEngine, side.placement, s, gen, side.rec) : runActor(side, s, gen);
      }
    }
  };
  try {
    for (const v of variants) await run(v); // warm-up (links opened, engines warm)
    log(`${s.name}: client transports: ${[...sides].map(([name, side]) => `${name} cluster ${[...new Set(side.placement.map((p) => side.actor.transportTo(p.host.id)))].join(',')}`).join('; ')}`);
    for (let r = 0; r < rounds; r++) {
      for (const v of variants) {
        const out = await run(v);
        results.get(v)!.push(out);
        log(`${s.name} round ${r + 1}/${rounds} ${v}: ${out.tokPerSec.toFixed(1)} tok/s`);
      }
    }
  } finally {
    await Promise.all([...sides.values()].map(stopSide));
    await queryEngine.close();
    await Promise.all(local.hosts.map((h) => h.release(localPlacement.flatMap((p) => p.cacheIds)).catch(() => undefined)));
    await local.close();
  }
  const ref = results.get(reference)![0].tokens;
  const rows = variants.map((v) => {
    const rs = results.get(v)!;
    const ratios = rs.map((x, i) => x.tokPerSec / results.get(reference)![i].tokPerSec); // within each round
    const steps = rs.flatMap((x) => x.steps);
    const gaps = rs.flatMap((x) => x.gaps);
    const row: Record<string, number | string | boolean> = {
      variant: v,
      tokPerSec: med(rs.map((x) => x.tokPerSec)),
      ratio: med(ratios),
      p50: gaps.length ? med(gaps) : NaN,
      p99: gaps.length ? pct(gaps, 0.99) : NaN,
      sameTokens: rs.every((x) => JSON.stringify(x.tokens) === JSON.stringify(ref)),
    };
    for (const k of PARTS) row[k] = steps.length ? med(steps.map((st) => st[k])) : NaN;
    return row;
  });
  return { scenario: s.name, reference, contextTokens: s.contextIds.length, hosts: s.hosts, blockSize: s.blockSize, newTokens: s.newTokens, layers: s.config.numLayers, rounds, rows };
}

function benchShapeModel(maxPositions: number): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'starq-phase2-model-'));
  writeRandomCheckpoint(dir, { architecture: 'llama', hidden: 256, intermediate: 688, layers: 4, heads: 8, kvHeads: 2, vocab: 512, maxPositions, dtype: 'F32', tied: false, sharded: false, seed: 1 });
  return dir;
}

/** Seeded token ids in [3, vocab) (no <unk>, <s>, </s>). */
const randomIds = (n: number, vocab: number, seed: number): number[] => randomTokenIds(n, vocab, seed, 3);

/**
 * The transports alone: one echo actor in its own process (libs/actors testing fixture), called
 * with a decode step's q (H·D floats) by two clients in this process — one over the direct link,
 * one over pub/sub — alternating call by call so that machine load hits both alike.
 */
async function transportRoundTrips(calls: number): Promise<Record<string, number | string>[]> {
  const prefix = `starq-phase2-${randomBytes(4).toString('hex')}`;
  const actorId = 'echo-0';
  const fixture = path.resolve(__dirname, '../libs/actors/src/testing/link-actor-process.ts');
  const child = spawn(process.execPath, ['-e', `require('tsx/cjs/api').register(); require(${JSON.stringify(fixture)}).main()`], {
    env: { ...process.env, STARQ_REDIS_URL: REDIS, STARQ_PREFIX: prefix, STARQ_ACTOR_ID: actorId },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const redis = await createRedis(REDIS);
  const keys = new RedisKeys(prefix);
  const registry = new ActorRegistry(redis, { keys }); // the echo actor is no starq kind
  const link = new ActorClient(redis, { keys, registry });
  const pubsub = new ActorClient(redis, { keys, registry, directLinks: false });
  try {
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (b: Buffer) => {
        out += b.toString();
        if (/^ready /m.test(out)) resolve();
      });
      child.once('exit', (code) => reject(new Error(`echo actor exited with ${code}`)));
    });
    const q = new Float32Array(8 * 32).map((_, i) => Math.sin(i)); // (H=8, 1, D=32): the bench shape's q of one row
    const times: Record<'link' | 'pubsub', number[]> = { link: [], pubsub: [] };
    for (let i = 0; i < calls + 50; i++) {
      for (const [name, c] of [['link', link], ['pubsub', pubsub]] as const) {
        const t0 = performance.now();
        await c.call(actorId, 'echo', { q });
        if (i >= 50) times[name].push(performance.now() - t0);
      }
    }
    if (link.transportTo(actorId) !== 'link') throw new Error(`the link client used ${link.transportTo(actorId)}`);
    return (['link', 'pubsub'] as const).map((t) => ({ transport: t === 'link' ? 'direct link (TCP loopback)' : 'Redis pub/sub', calls, p50: pct(times[t], 0.5), p90: pct(times[t], 0.9), p99: pct(times[t], 0.99) }));
  } finally {
    await link.close();
    await pubsub.close();
    child.kill('SIGTERM');
    await deleteKeysByPrefix(redis, prefix);
    redis.disconnect();
  }
}

async function main(): Promise<void> {
  const table = flag('--markdown') ? markdownTable : textTable;
  if (only === 'transport' || !only) {
    const rows = await transportRoundTrips(quick ? 300 : 2000);
    process.stdout.write(`\nActor call round trip, ${rows[0].calls} calls per transport, alternating (ms)\n`);
    process.stdout.write(table([{ key: 'transport', title: 'transport', align: 'left' }, { key: 'p50', title: 'p50', digits: 3 }, { key: 'p90', title: 'p90', digits: 3 }, { key: 'p99', title: 'p99', digits: 3 }], rows) + '\n');
    if (only === 'transport') return;
  }
  const scenarios: Scenario[] = [];
  const temp: string[] = [];
  const { path: stories, present: haveStories } = sharedModel('stories260K');
  if (only !== 'bench') {
    if (!haveStories) log(`stories260K not found at ${stories}: skipping its scenarios`);
    else {
      const tok = StarqTokenizer.load(stories);
      const contextIds = tok.encode(STORY);
      const queryIds = tok.encode(' Lily wanted to', { addSpecialTokens: false });
      for (const hosts of [2, 4]) {
        scenarios.push({ name: `stories260K ${contextIds.length} ctx, ${hosts} hosts`, modelDir: stories, config: loadConfig(stories), contextIds, queryIds, hosts, blockSize: Math.ceil(contextIds.length / 4), newTokens: quick ? 32 : 64 });
      }
    }
  }
  if (only !== 'stories') {
    const contexts = opt('--contexts') ? opt('--contexts')!.split(',').map((c) => Number(c.replace(/[kK]$/, '')) * (/[kK]$/.test(c) ? 1024 : 1)) : quick ? [4096] : [4096, 16384];
    const dir = benchShapeModel(16384 + 1024); // one shape for every context (the same weights whatever --contexts says)
    temp.push(dir);
    const config = loadConfig(dir);
    for (const n of contexts) {
      for (const hosts of [2, 4]) {
        scenarios.push({ name: `bench shape ${n / 1024}K ctx, ${hosts} hosts`, modelDir: dir, config, contextIds: randomIds(n, config.vocabSize, n), queryIds: randomIds(16, config.vocabSize, 7), hosts, blockSize: n / 4, newTokens: quick ? 16 : 32 });
      }
    }
  }
  const json = opt('--json');
  const report: Record<string, unknown>[] = [];
  const started = new Date().toISOString();
  try {
    for (const s of scenarios) {
      const r = await runScenario(s);
      report.push(r);
      // each scenario's table as soon as it is measured (a long run shows progress and keeps what it has)
      process.stdout.write(`\n${r.scenario} (b=${r.blockSize}, ${r.layers} layers, ${r.newTokens} new tokens, ${r.rounds} rounds; × in-proc against ${r.reference}; layer-step columns: median ms)\n`);
      process.stdout.write(table(COLUMNS, (r.rows as Record<string, number | string | boolean>[]).map((row) => ({ ...row, sameTokens: row.sameTokens ? 'yes' : 'NO' }))) + '\n');
      if (json) fs.writeFileSync(json, JSON.stringify({ machine: machineInfo(), started, loadAverage: os.loadavg(), command: `npx tsx bench/phase2.ts ${argv.join(' ')}`, scenarios: report }, null, 2));
    }
  } finally {
    for (const d of temp) fs.rmSync(d, { recursive: true, force: true });
  }
}

const COLUMNS: Column[] = [
  { key: 'variant', title: 'variant', align: 'left' },
  { key: 'tokPerSec', title: 'tok/s', digits: 1 },
  { key: 'ratio', title: '× in-proc', digits: 2 },
  { key: 'p50', title: 'token p50 ms', digits: 2 },
  { key: 'p99', title: 'token p99 ms', digits: 2 },
  { key: 'encode', title: 'encode q', digits: 3 },
  { key: 'toHost', title: '→ host', digits: 3 },
  { key: 'hostRecv', title: 'host recv', digits: 3 },
  { key: 'attend', title: 'host attend', digits: 3 },
  { key: 'reply', title: 'reply', digits: 3 },
  { key: 'decode', title: 'decode', digits: 3 },
  { key: 'exchange', title: 'exchange', digits: 3 },
  { key: 'merge', title: 'merge', digits: 3 },
  { key: 'post', title: 'post+q', digits: 3 },
  { key: 'step', title: 'layer step', digits: 3 },
  { key: 'sameTokens', title: 'same tokens', align: 'left' },
];

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
