/**
 * Gateway benchmark: what the HTTP front door costs on top of the cluster.
 *
 *   (a) latency of a 1-token job (short context, maxNewTokens 1, greedy, cache off so every job
 *       encodes its blocks) along four paths, in one run and interleaved round-robin so machine
 *       noise hits them alike:
 *         in-process   LocalCluster (engines in worker threads of this process, no Redis)
 *         StarqClient  submit + wait directly on Redis (BullMQ flow, actor processes)
 *         HTTP native  POST /v1/jobs → 202, then GET /v1/jobs/:id/events (SSE) until `result`
 *         HTTP OpenAI  POST /v1/completions, non-streaming (the answer is the finished job)
 *       plus the same job on a cached context (blocks reused, no phase-1 jobs) for StarqClient
 *       and HTTP native. Median/p90/p99 over --runs runs each, the ratio to in-process, the
 *       results' own phase-1/phase-2 timings and the CPU time every process spent per job.
 *   (b) sustained throughput: autocannon keeps C connections busy on POST /v1/completions (each
 *       request is one whole 1-token job on a fresh context, so a closed loop of C jobs) for
 *       --duration seconds per concurrency level; completed jobs/s, latency percentiles, errors,
 *       CPU per job per process, and the BullMQ queue depths sampled every 0.5 s.
 *
 * The cluster is real processes started with `starq cluster up`'s machinery (startProcessCluster):
 * host actor(s), a query actor and the gateway, on Redis at 127.0.0.1:6379 (STARQ_REDIS_URL) under
 * a random prefix that is deleted at the end. Model: ../shared/models/stories260K, else a random
 * checkpoint of the same shape.
 *
 * Usage: npx tsx bench/gateway.ts [--quick] [--runs N] [--duration S] [--concurrency 1,4,16]
 *          [--hosts N] [--context N] [--block-size B] [--json FILE] [--markdown]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { createRedis, deleteKeysByPrefix } from '@starq/actors';
import { startProcessCluster, StarqClient, type LocalProcessCluster } from '@starq/cluster';
import { jsonData, sseEvents } from '@starq/sse';
import { loadConfig } from '@starq/model/config';
import { randomTokenIds } from '@starq/model/synthetic/token-ids';
import { sharedModel } from '@starq/model/shared-fixtures';
import { LocalCluster } from '@starq/model/local/local-cluster';
import { writeRandomCheckpoint } from '@starq/model/synthetic/random-checkpoint';
import { machineInfo, markdownTable, textTable, type Column } from '@starq/report';

// ---------- options ----------

const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(name);
const opt = (name: string): string | undefined => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
const intOpt = (name: string, def: number): number => {
  const v = opt(name);
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer (got ${v})`);
  return n;
};
const quick = flag('--quick');
const RUNS = intOpt('--runs', quick ? 12 : 60);
const WARMUP = quick ? 2 : 5;
const DURATION_S = intOpt('--duration', quick ? 8 : 40);
const LEVELS = (opt('--concurrency') ?? (quick ? '1,4' : '1,4,16')).split(',').map((s) => {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--concurrency takes positive integers (got ${s})`);
  return n;
});
const HOSTS = intOpt('--hosts', 1);
const CONTEXT = intOpt('--context', 64);
const BLOCK = intOpt('--block-size', 32);
const QUERY = 2;
const jsonFile = opt('--json') ?? null;
const md = flag('--markdown');
const REDIS = process.env.STARQ_REDIS_URL || 'redis://127.0.0.1:6379';
const log = (s: string) => process.stderr.write(s + '\n');
const table = (cols: Column[], rows: Record<string, string | number | null>[]) => (md ? markdownTable(cols, rows) : textTable(cols, rows));

// ---------- helpers ----------

function benchModel(): { dir: string; cleanup: () => void } {
  const shared = sharedModel('stories260K');
  if (shared.present) return { dir: shared.path, cleanup: () => undefined };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'starq-bench-gateway-'));
  writeRandomCheckpoint(dir, { architecture: 'llama', hidden: 64, intermediate: 172, layers: 5, heads: 8, kvHeads: 4, vocab: 512, maxPositions: 512, dtype: 'F32', tied: true, sharded: false, seed: 0 });
  log(`stories260K not found: using a random checkpoint of its shape in ${dir}`);
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Seeded token ids in [3, vocab) (no <unk>, <s>, </s>), one sequence per seed. */
const ids = (n: number, vocab: number, seed: number): number[] => randomTokenIds(n, vocab, seed, 3);

interface Summary {
  n: number;
  median: number;
  p90: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

/** Nearest-rank percentiles. */
function summarize(xs: number[]): Summary {
  const s = [...xs].sort((a, b) => a - b);
  const at = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
  return { n: s.length, median: at(0.5), p90: at(0.9), p99: at(0.99), mean: s.reduce((a, b) => a + b, 0) / Math.max(1, s.length), min: s[0], max: s[s.length - 1] };
}

/** CPU time (user + system) of a process in ms, from /proc (NaN when unreadable). */
function cpuMs(pid: number): number {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) * 10; // USER_HZ = 100
  } catch {
    return NaN;
  }
}

function redisPid(): number | null {
  try {
    const info = execFileSync('redis-cli', ['-u', REDIS, 'info', 'server'], { encoding: 'utf8', timeout: 5000 });
    const m = /process_id:(\d+)/.exec(info);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------- the cluster ----------

interface Procs {
  /** name → pid, for CPU accounting. */
  pids: Record<string, number>;
}

async function procsOf(gatewayUrl: string, key: string): Promise<Procs> {
  const r = await fetch(`${gatewayUrl}/admin/overview?jobs=1`, { headers: { Authorization: `Bearer ${key}` } });
  if (r.status !== 200) throw new Error(`/admin/overview: ${r.status} ${await r.text()}`);
  const o = (await r.json()) as { gateway: { pid: number }; actors: { type: string; pid: number }[] };
  const pids: Record<string, number> = { gateway: o.gateway.pid };
  o.actors.filter((a) => a.type === 'query').forEach((a, i) => (pids[i === 0 ? 'query actor' : `query actor ${i}`] = a.pid));
  o.actors.filter((a) => a.type === 'host').forEach((a, i) => (pids[HOSTS === 1 ? 'host actor' : `host actor ${i}`] = a.pid));
  const rp = redisPid();
  if (rp) pids.redis = rp;
  pids['bench (client, in-process engines)'] = process.pid;
  return { pids };
}

function cpuSnapshot(p: Procs): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, pid] of Object.entries(p.pids)) out[name] = cpuMs(pid);
  return out;
}

function cpuDelta(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of Object.keys(a)) out[k] = b[k] - a[k];
  return out;
}

// ---------- (a) one job along each path ----------

interface PathResult {
  totalMs: number;
  phase1Ms: number | null;
  phase2Ms: number | null;
  submitMs: number | null;
}

type Runner = (seed: number) => Promise<PathResult>;

const SAMPLING = { temperature: 0, topK: 0, topP: 1, seed: 0 };

/** Reads an SSE response until `result` or `error`; returns that event with its data parsed. */
async function sseUntilEnd(res: Response): Promise<{ name: string; data: any }> {
  if (!res.body) throw new Error('SSE: no body');
  const body = res.body as unknown as AsyncIterable<Uint8Array>;
  try {
    for await (const e of sseEvents(body)) if (e.name === 'result' || e.name === 'error') return { name: e.name, data: jsonData(e) };
    throw new Error('SSE ended without a result');
  } finally {
    await res.body.cancel().catch(() => undefined);
  }
}

function runners(o: { gatewayUrl: string; key: string; client: StarqClient; local: LocalCluster; model: string; vocab: number }): { name: string; run: Runner }[] {
  const ctx = (seed: number) => [1, ...ids(CONTEXT - 1, o.vocab, seed)];
  const q = (seed: number) => ids(QUERY, o.vocab, seed + 1_000_000);
  const auth = { Authorization: `Bearer ${o.key}`, 'Content-Type': 'application/json' };
  const CACHED = 424242; // one context for the cached variants (encoded once, then reused)
  const client = (cache: boolean): Runner => async (seed) => {
    const s = cache ? CACHED : seed;
    const t0 = performance.now();
    const sub = await o.client.submit({ model: o.model, mode: 'star', blockSize: BLOCK, hosts: HOSTS, contextIds: ctx(s), queryIds: q(seed), maxNewTokens: 1, sampling: SAMPLING, stopIds: [], ignoreEos: true, cache });
    const r = await o.client.wait(sub.requestId);
    return { totalMs: performance.now() - t0, phase1Ms: r.timings.phase1Ms, phase2Ms: r.timings.phase2Ms, submitMs: null };
  };
  const native = (cache: boolean): Runner => async (seed) => {
    const s = cache ? CACHED : seed;
    const body = JSON.stringify({ contextIds: ctx(s), queryIds: q(seed), mode: 'star', blockSize: BLOCK, hosts: HOSTS, maxNewTokens: 1, ignoreEos: true, cache });
    const t0 = performance.now();
    const sub = await fetch(`${o.gatewayUrl}/v1/jobs`, { method: 'POST', headers: auth, body });
    const job = (await sub.json()) as { id: string };
    if (sub.status !== 202) throw new Error(`POST /v1/jobs: ${sub.status} ${JSON.stringify(job)}`);
    const submitMs = performance.now() - t0;
    const ev = await fetch(`${o.gatewayUrl}/v1/jobs/${job.id}/events`, { headers: { ...auth, Accept: 'text/event-stream' } });
    const end = await sseUntilEnd(ev);
    const totalMs = performance.now() - t0;
    if (end.name !== 'result') throw new Error(`job ${job.id}: ${JSON.stringify(end.data.error)}`);
    return { totalMs, phase1Ms: end.data.result.timings.phase1Ms, phase2Ms: end.data.result.timings.phase2Ms, submitMs };
  };
  const openai: Runner = async (seed) => {
    const body = JSON.stringify({ model: o.model, prompt: ctx(seed), query: q(seed), max_tokens: 1, temperature: 0, ignore_eos: true, star: { mode: 'star', block_size: BLOCK, hosts: HOSTS, cache: false } });
    const t0 = performance.now();
    const r = await fetch(`${o.gatewayUrl}/v1/completions`, { method: 'POST', headers: auth, body });
    const j = (await r.json()) as any;
    const totalMs = performance.now() - t0;
    if (r.status !== 200) throw new Error(`POST /v1/completions: ${r.status} ${JSON.stringify(j)}`);
    return { totalMs, phase1Ms: j.star?.timings?.phase1Ms ?? null, phase2Ms: j.star?.timings?.phase2Ms ?? null, submitMs: null };
  };
  const inProcess: Runner = async (seed) => {
    const t0 = performance.now();
    const r = await o.local.generate({ mode: 'star', contextIds: ctx(seed), queryIds: q(seed), blockSize: BLOCK, hosts: HOSTS }, { maxNewTokens: 1, sampling: SAMPLING, stopIds: [], ignoreEos: true });
    return { totalMs: performance.now() - t0, phase1Ms: r.timings.phase1Ms, phase2Ms: r.timings.phase2Ms, submitMs: null };
  };
  return [
    { name: 'in-process (LocalCluster)', run: inProcess },
    { name: 'StarqClient on Redis', run: client(false) },
    { name: 'HTTP native (POST + SSE)', run: native(false) },
    { name: 'HTTP OpenAI /v1/completions', run: openai },
    { name: 'StarqClient, cached context', run: client(true) },
    { name: 'HTTP native, cached context', run: native(true) },
  ];
}

interface LatencyRow {
  path: string;
  runs: number;
  errors: number;
  total: Summary;
  submit: Summary | null;
  phase1Median: number | null;
  phase2Median: number | null;
  ratioMedian: number;
  ratioP90: number;
  /** CPU ms per job, per process. */
  cpuPerJob: Record<string, number>;
  raw: number[];
}

async function latencyBench(paths: { name: string; run: Runner }[], procs: Procs): Promise<LatencyRow[]> {
  const acc = paths.map(() => ({ res: [] as PathResult[], errors: 0, cpu: {} as Record<string, number>, lastError: '' }));
  let seed = 1;
  for (let round = 0; round < WARMUP + RUNS; round++) {
    const measured = round >= WARMUP;
    for (let k = 0; k < paths.length; k++) {
      const i = (k + round) % paths.length; // rotate the order every round
      const before = cpuSnapshot(procs);
      try {
        const r = await paths[i].run(seed++);
        if (measured) {
          acc[i].res.push(r);
          const d = cpuDelta(before, cpuSnapshot(procs));
          for (const [p, ms] of Object.entries(d)) acc[i].cpu[p] = (acc[i].cpu[p] ?? 0) + ms;
        }
      } catch (e) {
        acc[i].errors++;
        acc[i].lastError = (e as Error).message;
        if (acc[i].errors > Math.max(3, RUNS / 10)) throw new Error(`${paths[i].name}: too many errors; last: ${acc[i].lastError}`);
      }
    }
    if (measured && (round - WARMUP + 1) % 10 === 0) log(`latency: ${round - WARMUP + 1}/${RUNS} rounds`);
  }
  const base = summarize(acc[0].res.map((r) => r.totalMs));
  return paths.map((p, i) => {
    const a = acc[i];
    const total = summarize(a.res.map((r) => r.totalMs));
    const subs = a.res.map((r) => r.submitMs).filter((x): x is number => x !== null);
    const p1 = a.res.map((r) => r.phase1Ms).filter((x): x is number => x !== null);
    const p2 = a.res.map((r) => r.phase2Ms).filter((x): x is number => x !== null);
    const cpuPerJob: Record<string, number> = {};
    for (const [k, v] of Object.entries(a.cpu)) cpuPerJob[k] = v / Math.max(1, a.res.length);
    return {
      path: p.name,
      runs: a.res.length,
      errors: a.errors,
      total,
      submit: subs.length ? summarize(subs) : null,
      phase1Median: p1.length ? summarize(p1).median : null,
      phase2Median: p2.length ? summarize(p2).median : null,
      ratioMedian: total.median / base.median,
      ratioP90: total.p90 / base.p90,
      cpuPerJob,
      raw: a.res.map((r) => Math.round(r.totalMs * 1000) / 1000),
    };
  });
}

// ---------- (b) sustained throughput ----------

interface AutocannonResult {
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  latency: { p50: number; p90: number; p99: number; average: number; max: number };
  statusCodeStats: Record<string, { count: number }>;
}
interface AutocannonInstance {
  on(ev: 'response', fn: (client: unknown, status: number, bytes: number, ms: number) => void): void;
  on(ev: 'done', fn: (r: AutocannonResult) => void): void;
  stop(): void;
}
// autocannon ships no types: the part used here.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const autocannon = require('autocannon') as (opts: Record<string, unknown>, cb?: (err: Error | null, r: AutocannonResult) => void) => AutocannonInstance;

interface Sample {
  t: number;
  requests: Record<string, number>;
  blocks: Record<string, number>;
  /** Jobs completed (2xx) since the previous sample. */
  completed: number;
  failed: number;
}

interface SlowJob {
  jobId: string | null;
  status: number;
  clientMs: number;
  elapsedMs: number | null;
  phase1Ms: number | null;
  firstTokenMs: number | null;
  phase2Ms: number | null;
}

interface ThroughputRow {
  concurrency: number;
  durationS: number;
  completed: number;
  jobsPerSec: number;
  p50: number;
  p90: number;
  p99: number;
  errors: number;
  statusCodes: Record<string, number>;
  depthMean: number;
  depthMax: number;
  cpuPerJob: Record<string, number>;
  /** Latency of every 2xx request as timed here (ms, not autocannon's integer histogram). */
  own: Summary;
  slowest: SlowJob[];
  series: Sample[];
}

const depthOf = (q: Record<string, number>) => (q.waiting ?? 0) + (q.active ?? 0) + (q['waiting-children'] ?? 0) + (q.delayed ?? 0) + (q.prioritized ?? 0);

async function waitDrained(client: StarqClient): Promise<void> {
  const deadline = Date.now() + 120000;
  for (;;) {
    const c = await client.queueCounts();
    if (depthOf(c.requests) === 0 && (c.blocks.waiting ?? 0) + (c.blocks.active ?? 0) === 0) return;
    if (Date.now() > deadline) throw new Error(`queues did not drain: ${JSON.stringify(c)}`);
    await sleep(200);
  }
}

async function throughputLevel(o: { gatewayUrl: string; key: string; client: StarqClient; model: string; vocab: number; procs: Procs }, C: number, seedBase: number): Promise<ThroughputRow> {
  let seq = seedBase;
  const body = () => {
    const s = seq++;
    return JSON.stringify({ model: o.model, prompt: [1, ...ids(CONTEXT - 1, o.vocab, s)], query: ids(QUERY, o.vocab, s + 1_000_000), max_tokens: 1, temperature: 0, ignore_eos: true, star: { mode: 'star', block_size: BLOCK, hosts: HOSTS, cache: false } });
  };
  const series: Sample[] = [];
  const perRequest: { ms: number; status: number; jobId: string | null }[] = [];
  let completed = 0;
  let failed = 0;
  let lastCompleted = 0;
  let lastFailed = 0;
  const t0 = performance.now();
  const cpu0 = cpuSnapshot(o.procs);
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const c = await o.client.queueCounts().catch(() => null);
      if (c) {
        series.push({ t: (performance.now() - t0) / 1000, requests: c.requests, blocks: c.blocks, completed: completed - lastCompleted, failed: failed - lastFailed });
        lastCompleted = completed;
        lastFailed = failed;
      }
      await sleep(500);
    }
  })();
  const result = await new Promise<AutocannonResult>((resolve, reject) => {
    const inst = autocannon(
      {
        url: `${o.gatewayUrl}/v1/completions`,
        connections: C,
        pipelining: 1,
        duration: DURATION_S,
        timeout: 120,
        method: 'POST',
        headers: { Authorization: `Bearer ${o.key}`, 'Content-Type': 'application/json' },
        requests: [
          {
            method: 'POST',
            // One connection has one request in flight (pipelining 1): its context times it.
            setupRequest: (req: Record<string, unknown>, context: { t0?: number }) => {
              context.t0 = performance.now();
              return { ...req, body: body() };
            },
            onResponse: (status: number, resBody: string, context: { t0?: number }) => {
              let jobId: string | null = null;
              try {
                jobId = (JSON.parse(resBody) as { star?: { job_id?: string } }).star?.job_id ?? null;
              } catch {
                /* not JSON */
              }
              perRequest.push({ ms: performance.now() - (context.t0 ?? t0), status, jobId });
            },
          },
        ],
      },
      (err, r) => (err ? reject(err) : resolve(r)),
    );
    inst.on('response', (_c, status) => {
      if (status >= 200 && status < 300) completed++;
      else failed++;
    });
  });
  const cpu1 = cpuSnapshot(o.procs);
  sampling = false;
  await sampler;
  const d = cpuDelta(cpu0, cpu1);
  const cpuPerJob: Record<string, number> = {};
  for (const [k, v] of Object.entries(d)) cpuPerJob[k] = v / Math.max(1, completed);
  // Where the slowest requests spent their time: the job's own record (created after the gateway
  // submitted it; elapsed = until its last event) against what the client saw.
  const slowest: SlowJob[] = [];
  for (const r of [...perRequest].sort((a, b) => b.ms - a.ms).slice(0, 5)) {
    if (!r.jobId) {
      slowest.push({ jobId: null, status: r.status, clientMs: r.ms, elapsedMs: null, phase1Ms: null, firstTokenMs: null, phase2Ms: null });
      continue;
    }
    const j = (await (await fetch(`${o.gatewayUrl}/v1/jobs/${r.jobId}`, { headers: { Authorization: `Bearer ${o.key}` } })).json()) as { timings?: { elapsedMs: number; phase1Ms: number | null; firstTokenMs: number | null; phase2Ms: number | null } };
    slowest.push({ jobId: r.jobId, status: r.status, clientMs: r.ms, elapsedMs: j.timings?.elapsedMs ?? null, phase1Ms: j.timings?.phase1Ms ?? null, firstTokenMs: j.timings?.firstTokenMs ?? null, phase2Ms: j.timings?.phase2Ms ?? null });
  }
  const own = summarize(perRequest.filter((r) => r.status >= 200 && r.status < 300).map((r) => r.ms));
  const depths = series.map((s) => depthOf(s.requests));
  const statusCodes: Record<string, number> = {};
  for (const [code, v] of Object.entries(result.statusCodeStats ?? {})) statusCodes[code] = Number(v.count);
  return {
    concurrency: C,
    durationS: result.duration,
    completed,
    jobsPerSec: completed / result.duration,
    p50: result.latency.p50,
    p90: result.latency.p90,
    p99: result.latency.p99,
    errors: result.errors + result.non2xx,
    statusCodes,
    depthMean: depths.reduce((a, b) => a + b, 0) / Math.max(1, depths.length),
    depthMax: Math.max(0, ...depths),
    cpuPerJob,
    own,
    slowest,
    series,
  };
}

const SPARK = '▁▂▃▄▅▆▇█';
function sparkline(xs: number[]): string {
  const max = Math.max(1, ...xs);
  return xs.map((x) => SPARK[Math.min(SPARK.length - 1, Math.round((x / max) * (SPARK.length - 1)))]).join('');
}

// ---------- main ----------

async function main(): Promise<void> {
  const { dir, cleanup } = benchModel();
  const config = loadConfig(dir);
  const model = path.basename(path.resolve(dir));
  const prefix = `starq-bench-gw-${process.pid}-${randomBytes(3).toString('hex')}`;
  const key = `bench-${randomBytes(12).toString('hex')}`;
  const adminKey = `bench-admin-${randomBytes(12).toString('hex')}`;
  const started = new Date();
  const load0 = os.loadavg();
  const clusterLog: string[] = [];
  process.env.STARQ_ADMIN_KEY = adminKey; // the gateway inherits it (used to find process ids)
  log(`starting cluster: ${HOSTS} host(s), 1 query actor, gateway; model ${model}; prefix ${prefix}`);
  let cluster: LocalProcessCluster | null = null;
  let client: StarqClient | null = null;
  let local: LocalCluster | null = null;
  let stopping = false;
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    await local?.close().catch(() => undefined);
    await client?.close().catch(() => undefined);
    await cluster?.stop().catch(() => undefined);
    const r = await createRedis(REDIS).catch(() => null);
    if (r) {
      await deleteKeysByPrefix(r, prefix).catch(() => undefined);
      r.disconnect();
    }
    cleanup();
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void shutdown().finally(() => process.exit(130)));
  try {
    cluster = await startProcessCluster({ hosts: HOSTS, threads: 1, prefix, redisUrl: REDIS, modelDir: dir, gateway: { port: 0, apiKeys: [key] }, log: (l) => void clusterLog.push(l) });
    const gatewayUrl = cluster.gatewayUrl!;
    client = await StarqClient.connect(REDIS, { prefix });
    local = await LocalCluster.start(dir, config, { hosts: HOSTS, hostThreads: 1, queryThreads: 1 });
    const procs = await procsOf(gatewayUrl, adminKey);
    log(`cluster up: gateway ${gatewayUrl}; processes ${JSON.stringify(procs.pids)}`);

    // (a)
    log(`latency: ${RUNS} runs (+${WARMUP} warm-up) of each path, interleaved`);
    const paths = runners({ gatewayUrl, key, client, local, model, vocab: config.vocabSize });
    const latency = await latencyBench(paths, procs);
    await local.close();
    local = null;

    // (b)
    const throughput: ThroughputRow[] = [];
    for (const [i, C] of LEVELS.entries()) {
      await waitDrained(client);
      log(`throughput: concurrency ${C} for ${DURATION_S} s`);
      const row = await throughputLevel({ gatewayUrl, key, client, model, vocab: config.vocabSize, procs }, C, 10_000_000 * (i + 1));
      log(`  ${row.completed} jobs, ${row.jobsPerSec.toFixed(1)} jobs/s, p50 ${row.p50} ms, errors ${row.errors}`);
      throughput.push(row);
    }
    const load1 = os.loadavg();

    // ---------- report ----------
    const out = (s: string) => process.stdout.write(s + '\n');
    out(`\n# Gateway benchmark — ${started.toISOString()}`);
    out(`model ${model} (${config.numLayers} layers, hidden ${config.hiddenSize}); job: ${CONTEXT}-token context in blocks of ${BLOCK} (Star), ${QUERY}-token query, 1 new token, greedy; ${HOSTS} host actor(s), 1 query actor, 1 ORT thread each; load average before ${load0.map((x) => x.toFixed(2)).join(' ')}, after ${load1.map((x) => x.toFixed(2)).join(' ')}`);
    out(`\n## (a) Latency of one 1-token job (${RUNS} runs per path, interleaved; ms)\n`);
    const latCols: Column[] = [
      { key: 'path', title: 'path', align: 'left' },
      { key: 'median', title: 'median', digits: 2 },
      { key: 'p90', title: 'p90', digits: 2 },
      { key: 'p99', title: 'p99', digits: 2 },
      { key: 'ratio', title: '× in-process (median)', digits: 2 },
      { key: 'ratio90', title: '× in-process (p90)', digits: 2 },
      { key: 'submit', title: 'submit → 202 (median)', digits: 2 },
      { key: 'p1', title: 'phase 1 (median)', digits: 0 },
      { key: 'p2', title: 'phase 2 (median)', digits: 0 },
      { key: 'errors', title: 'errors' },
    ];
    out(
      table(
        latCols,
        latency.map((r) => ({ path: r.path, median: r.total.median, p90: r.total.p90, p99: r.total.p99, ratio: r.ratioMedian, ratio90: r.ratioP90, submit: r.submit?.median ?? null, p1: r.phase1Median, p2: r.phase2Median, errors: r.errors })),
      ),
    );
    const procNames = Object.keys(procs.pids);
    const short = (n: string) => n.replace(' (client, in-process engines)', '');
    const cpuCols: Column[] = [{ key: 'path', title: 'CPU ms per job', align: 'left' }, ...procNames.map((n) => ({ key: n, title: short(n), digits: 1 })), { key: 'sum', title: 'total', digits: 1 }];
    const cpuRow = (label: string, c: Record<string, number>) => ({ path: label, ...c, sum: Object.values(c).reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0) });
    out('');
    out(table(cpuCols, latency.map((r) => cpuRow(r.path, r.cpuPerJob))));

    out(`\n## (b) Sustained throughput: autocannon, POST /v1/completions (one whole 1-token job per request, fresh context each), ${DURATION_S} s per level\n`);
    const tpCols: Column[] = [
      { key: 'concurrency', title: 'concurrency' },
      { key: 'completed', title: 'jobs' },
      { key: 'jobsPerSec', title: 'jobs/s', digits: 1 },
      { key: 'p50', title: 'p50 ms', digits: 0 },
      { key: 'p90', title: 'p90 ms', digits: 0 },
      { key: 'p99', title: 'p99 ms', digits: 0 },
      { key: 'errors', title: 'errors' },
      { key: 'depthMean', title: 'queue depth mean', digits: 1 },
      { key: 'depthMax', title: 'queue depth max' },
    ];
    out(table(tpCols, throughput.map((r) => ({ concurrency: r.concurrency, completed: r.completed, jobsPerSec: r.jobsPerSec, p50: r.p50, p90: r.p90, p99: r.p99, errors: r.errors, depthMean: r.depthMean, depthMax: r.depthMax }))));
    out('');
    out(table([{ key: 'path', title: 'CPU ms per job', align: 'left' }, ...procNames.map((n) => ({ key: n, title: short(n), digits: 1 })), { key: 'sum', title: 'total', digits: 1 }], throughput.map((r) => cpuRow(`concurrency ${r.concurrency}`, r.cpuPerJob))));
    out(`\nQueue depth over time (unfinished requests: waiting + active + waiting-children + delayed; one sample per 0.5 s):`);
    for (const r of throughput) out(`  C=${String(r.concurrency).padEnd(3)} ${sparkline(r.series.map((s) => depthOf(s.requests)))}  (max ${r.depthMax})`);
    for (const r of throughput) {
      out(`\nTime series, concurrency ${r.concurrency} (2-s buckets; queue values are means of the 0.5-s samples):\n`);
      const buckets: Record<string, number | string>[] = [];
      for (let t = 0; t < r.durationS + 1; t += 2) {
        const ss = r.series.filter((s) => s.t >= t && s.t < t + 2);
        if (ss.length === 0) continue;
        const mean = (f: (s: Sample) => number) => ss.reduce((a, s) => a + f(s), 0) / ss.length;
        const spanS = Math.max(0.5, ss[ss.length - 1].t - (ss[0].t - 0.5));
        buckets.push({
          t: `${t}–${t + 2}`,
          done: ss.reduce((a, s) => a + s.completed, 0) / spanS,
          rw: mean((s) => s.requests.waiting ?? 0),
          rc: mean((s) => s.requests['waiting-children'] ?? 0),
          ra: mean((s) => s.requests.active ?? 0),
          bw: mean((s) => s.blocks.waiting ?? 0),
          ba: mean((s) => s.blocks.active ?? 0),
        });
      }
      out(
        table(
          [
            { key: 't', title: 't (s)', align: 'left' },
            { key: 'done', title: 'jobs/s', digits: 1 },
            { key: 'rc', title: 'requests waiting-children', digits: 1 },
            { key: 'rw', title: 'requests waiting', digits: 1 },
            { key: 'ra', title: 'requests active', digits: 1 },
            { key: 'bw', title: 'blocks waiting', digits: 1 },
            { key: 'ba', title: 'blocks active', digits: 1 },
          ],
          buckets,
        ),
      );
    }
    out(`\nSlowest requests per level (client = as timed by the load generator; elapsed = the job's record, from its submission by the gateway to its last event; ms):\n`);
    out(
      table(
        [
          { key: 'c', title: 'concurrency' },
          { key: 'job', title: 'job', align: 'left' },
          { key: 'client', title: 'client', digits: 0 },
          { key: 'elapsed', title: 'elapsed', digits: 0 },
          { key: 'p1', title: 'phase 1', digits: 0 },
          { key: 'ft', title: 'first token', digits: 0 },
          { key: 'p2', title: 'phase 2', digits: 0 },
        ],
        throughput.flatMap((r) => r.slowest.slice(0, 3).map((j) => ({ c: r.concurrency, job: j.jobId ? j.jobId.slice(0, 8) : `HTTP ${j.status}`, client: j.clientMs, elapsed: j.elapsedMs, p1: j.phase1Ms, ft: j.firstTokenMs, p2: j.phase2Ms }))),
      ),
    );
    if (jsonFile) {
      const report = {
        started: started.toISOString(),
        machine: machineInfo(),
        loadAverage: { before: load0, after: load1 },
        model,
        job: { contextTokens: CONTEXT, blockSize: BLOCK, queryTokens: QUERY, maxNewTokens: 1, hosts: HOSTS, mode: 'star' },
        runs: RUNS,
        warmup: WARMUP,
        processes: procs.pids,
        latency,
        throughput,
      };
      fs.mkdirSync(path.dirname(path.resolve(jsonFile)), { recursive: true });
      fs.writeFileSync(jsonFile, JSON.stringify(report, null, 2));
      log(`wrote ${jsonFile}`);
    }
  } catch (e) {
    if (clusterLog.length) log(`--- cluster output (tail) ---\n${clusterLog.slice(-40).join('')}`);
    throw e;
  } finally {
    await shutdown();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
