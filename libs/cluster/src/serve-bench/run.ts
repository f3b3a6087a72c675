/**
 * The serving benchmark (`starq bench serve`, `bench/serve.ts`): many requests at once through Star
 * phase 2, per variant (options.ts: batched, batched with per-request attention, unbatched), in
 * the same run, alternated level by level and round by round.
 *
 * Model: a random Llama of `--random-model`'s shape (vocab 512). Each level C runs C requests at
 * once on C distinct documents of `context` tokens (Star, `hosts` hosts, b = ⌈context / hosts⌉),
 * a `queryTokens` question each, greedy tokens with EOS ignored. Every document is encoded before
 * anything is measured, so the figures are phase 2's: queueing, query chunk, decode.
 *
 * Settings:
 *   cluster     one process cluster per variant (hosts + 1 query actor, 1 ORT thread each; Redis
 *               under a random prefix, deleted at the end), all started before the first level;
 *               `newTokens` per request; latencies from the token events' sampling times (the
 *               query actor's clock); CPU = the cluster's actor processes' CPU time (/proc).
 *   in-process  one `LocalCluster` per attention path (engines in worker threads of this process,
 *               1 ORT thread each), requests submitted to its serving loop with their documents'
 *               placements; `stepTokens` per request; CPU = this process's CPU time. Its step
 *               records give the step-time table: median time of a decode step with all C
 *               requests in it (unbatched: of one request's step) against C.
 *
 * Per (setting, variant, C) row, from the reported round:
 *   aggregate tok/s    all generated tokens / (last token − first submit)
 *   decode tok/s       tokens after each request's first / (last token − first first-token)
 *   TTFT p50/p99       submit → first token
 *   per-token p50/p99  gaps between consecutive tokens of a request, over all requests
 *   CPU ms/token       CPU time of the setting's processes during the level / tokens generated
 * With `rounds` > 1 every (level, variant) runs that many times and the round with the highest
 * decode tok/s is reported (the least disturbed on a shared machine).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { createRedis, deleteKeysByPrefix } from '@starq/actors';
import type { ContextPlacement } from '@starq/attention';
import { loadConfig } from '@starq/model/config';
import { encodeContext } from '@starq/model/distributed';
import { LocalCluster } from '@starq/model/local/local-cluster';
import { processCpuMs } from '@starq/model/perf/process-cpu';
import { ServingLoop, type StepRecord } from '@starq/model/serving';
import { writeRandomCheckpoint } from '@starq/model/synthetic/random-checkpoint';
import { randomTokenIds } from '@starq/model/synthetic/token-ids';
import { RedisKeys } from '@starq/protocol';
import { StarqClient } from '../client';
import { startProcessCluster, type LocalProcessCluster } from '../launcher/process-cluster';
import type { ServeBenchOptions, ServeSetting, ServeVariant } from './options';

const VOCAB = 512;
const GREEDY = { temperature: 0, topK: 0, topP: 1, seed: 0 };

/** One (setting, variant, C) result. */
export interface ServeRow {
  setting: ServeSetting;
  variant: ServeVariant;
  concurrency: number;
  tokens: number;
  aggregateTokPerSec: number;
  decodeTokPerSec: number;
  /** decode tok/s / the same setting and variant's C = 1 decode tok/s. */
  xSingle: number | null;
  ttftP50: number;
  ttftP99: number;
  perTokenP50: number;
  perTokenP99: number;
  /** per-token p99 / the same setting and variant's C = 1 per-token p99. */
  p99xSingle: number | null;
  /** Slowest request's submit → last token, ms. */
  slowestMs: number;
  /** CPU time of the setting's processes per generated token (null without /proc). */
  cpuMsPerToken: number | null;
}

/** Step time against batch size (in-process setting). */
export interface StepRow {
  variant: ServeVariant;
  concurrency: number;
  /** Decode steps counted (all C requests in the step; unbatched: one request's step). */
  steps: number;
  medianMs: number;
  p90Ms: number;
  /** medianMs / the variant's C = 1 median. */
  xSingle: number | null;
  /** This process's CPU time per step of the level (all steps, all threads). */
  cpuMsPerStep: number | null;
}

export interface ServeBenchReport {
  options: ServeBenchOptions;
  rows: ServeRow[];
  steps: StepRow[];
  /** 1-minute load average before and after the run. */
  loadAverage: { before: number; after: number };
}

/** Columns of the rows table (`{key, title, digits, align}`, the shape @starq/report's tables take). */
export const SERVE_ROW_COLUMNS = [
  { key: 'setting', title: 'setting', align: 'left' },
  { key: 'variant', title: 'phase 2', align: 'left' },
  { key: 'concurrency', title: 'C' },
  { key: 'aggregateTokPerSec', title: 'aggregate tok/s', digits: 1 },
  { key: 'decodeTokPerSec', title: 'decode tok/s', digits: 1 },
  { key: 'xSingle', title: '× C=1 decode', digits: 2 },
  { key: 'ttftP50', title: 'TTFT p50 (ms)', digits: 0 },
  { key: 'ttftP99', title: 'TTFT p99 (ms)', digits: 0 },
  { key: 'perTokenP50', title: 'per-token p50 (ms)', digits: 1 },
  { key: 'perTokenP99', title: 'per-token p99 (ms)', digits: 1 },
  { key: 'p99xSingle', title: 'p99 × C=1', digits: 2 },
  { key: 'slowestMs', title: 'slowest request (ms)', digits: 0 },
  { key: 'cpuMsPerToken', title: 'CPU ms/token', digits: 2 },
] as const;

/** Columns of the step-time table. */
export const SERVE_STEP_COLUMNS = [
  { key: 'variant', title: 'phase 2', align: 'left' },
  { key: 'concurrency', title: 'C' },
  { key: 'steps', title: 'steps' },
  { key: 'medianMs', title: 'step p50 (ms)', digits: 2 },
  { key: 'p90Ms', title: 'step p90 (ms)', digits: 2 },
  { key: 'xSingle', title: 'p50 × C=1', digits: 2 },
  { key: 'cpuMsPerStep', title: 'CPU ms/step', digits: 2 },
] as const;

interface Doc {
  context: number[];
  query: number[];
}

/** One request's timeline (ms, one clock per setting). */
interface Trace {
  submit: number;
  tokens: number[];
}

function quantile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

function summarize(setting: ServeSetting, variant: ServeVariant, traces: Trace[], cpuMs: number | null): ServeRow {
  const first = Math.min(...traces.map((t) => t.submit));
  const last = Math.max(...traces.map((t) => t.tokens[t.tokens.length - 1]));
  const firstToken = Math.min(...traces.map((t) => t.tokens[0]));
  const tokens = traces.reduce((n, t) => n + t.tokens.length, 0);
  const gaps = traces.flatMap((t) => t.tokens.slice(1).map((x, i) => x - t.tokens[i]));
  const ttft = traces.map((t) => t.tokens[0] - t.submit);
  return {
    setting,
    variant,
    concurrency: traces.length,
    tokens,
    aggregateTokPerSec: (tokens * 1000) / Math.max(1, last - first),
    decodeTokPerSec: ((tokens - traces.length) * 1000) / Math.max(1, last - firstToken),
    xSingle: null,
    ttftP50: quantile(ttft, 0.5),
    ttftP99: quantile(ttft, 0.99),
    perTokenP50: quantile(gaps, 0.5),
    perTokenP99: quantile(gaps, 0.99),
    p99xSingle: null,
    slowestMs: Math.max(...traces.map((t) => t.tokens[t.tokens.length - 1] - t.submit)),
    cpuMsPerToken: cpuMs === null ? null : cpuMs / tokens,
  };
}

/** Ratios to each (setting, variant)'s C = 1 row. */
function withRatios<R extends { variant: ServeVariant; concurrency: number }>(rows: R[], same: (a: R, b: R) => boolean, set: (r: R, one: R | undefined) => void): R[] {
  for (const r of rows) set(r, rows.find((x) => same(x, r) && x.concurrency === 1));
  return rows;
}

/** Best round per key (highest `score`). */
class BestOf<T> {
  private readonly best = new Map<string, T>();
  constructor(private readonly score: (t: T) => number) {}
  offer(key: string, t: T): void {
    const b = this.best.get(key);
    if (!b || this.score(t) > this.score(b)) this.best.set(key, t);
  }
  get(key: string): T | undefined {
    return this.best.get(key);
  }
}

/** Per variant: the query actor's step batching, every actor's attention batching. */
const ENV: Record<ServeVariant, { batching: string; attendBatching: string }> = {
  batched: { batching: '1', attendBatching: '1' },
  'batched-attn-per-request': { batching: '1', attendBatching: '0' },
  unbatched: { batching: '0', attendBatching: '1' },
};

/** Run the benchmark; progress lines go to `log`. */
export async function runServeBench(o: ServeBenchOptions, log: (line: string) => void = () => undefined): Promise<ServeBenchReport> {
  const loadBefore = os.loadavg()[0];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'starq-bench-serve-'));
  try {
    const { hidden, layers, heads, kvHeads } = o.model;
    const maxNew = Math.max(o.newTokens, o.stepTokens);
    writeRandomCheckpoint(dir, { architecture: 'llama', hidden, layers, heads, kvHeads, intermediate: Math.round((hidden * 8) / 3 / 16) * 16, vocab: VOCAB, maxPositions: o.context + o.queryTokens + maxNew + 64, dtype: 'F32', tied: false, sharded: false, seed: 7 });
    const C = Math.max(...o.concurrency);
    const docs: Doc[] = Array.from({ length: C }, (_, i) => ({ context: [1, ...randomTokenIds(o.context - 1, VOCAB, 1000 + i, 3)], query: randomTokenIds(o.queryTokens, VOCAB, 5000 + i, 3) }));
    const rows: ServeRow[] = [];
    let steps: StepRow[] = [];
    if (o.settings.includes('cluster')) rows.push(...(await clusterRuns(o, dir, docs, log)));
    if (o.settings.includes('in-process')) {
      const r = await inProcessRuns(o, dir, docs, log);
      rows.push(...r.rows);
      steps = r.steps;
    }
    withRatios(rows, (a, b) => a.setting === b.setting && a.variant === b.variant, (r, one) => {
      r.xSingle = one ? r.decodeTokPerSec / one.decodeTokPerSec : null;
      r.p99xSingle = one ? r.perTokenP99 / one.perTokenP99 : null;
    });
    withRatios(steps, (a, b) => a.variant === b.variant, (r, one) => (r.xSingle = one ? r.medianMs / one.medianMs : null));
    return { options: o, rows, steps, loadAverage: { before: loadBefore, after: os.loadavg()[0] } };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** One process cluster per variant, every document encoded on each; levels × variants alternated per round. */
async function clusterRuns(o: ServeBenchOptions, modelDir: string, docs: Doc[], log: (line: string) => void): Promise<ServeRow[]> {
  const C = Math.max(...o.concurrency);
  const started: { variant: ServeVariant; cluster: LocalProcessCluster; client: StarqClient; prefix: string }[] = [];
  const blockSize = Math.ceil(o.context / o.hosts);
  const base = { model: path.basename(modelDir), mode: 'star' as const, hosts: o.hosts, blockSize, sampling: GREEDY, stopIds: [], ignoreEos: true, cache: true };
  try {
    for (const variant of o.variants) {
      const prefix = `bench-serve-${randomBytes(4).toString('hex')}`;
      const cluster = await startProcessCluster({
        hosts: o.hosts,
        threads: 1,
        prefix,
        redisUrl: o.redisUrl,
        modelDir,
        queryEnv: { STARQ_BATCHING: ENV[variant].batching, STARQ_MAX_RUNNING: String(C) },
        actorEnv: { STARQ_ATTEND_BATCHING: ENV[variant].attendBatching },
        log: () => undefined,
      });
      const client = await StarqClient.connect(cluster.redisUrl, { prefix }).catch(async (e: unknown) => {
        await cluster.stop();
        throw e;
      });
      started.push({ variant, cluster, client, prefix });
      log(`[serve] cluster ${variant}: encoding ${docs.length} documents of ${o.context} tokens\n`);
      for (const d of docs) {
        const sub = await client.submit({ ...base, contextIds: d.context, queryIds: d.query.slice(0, 1), maxNewTokens: 1 });
        await client.wait(sub.requestId, {}, 600000);
      }
    }
    const best = new BestOf<ServeRow>((r) => r.decodeTokPerSec);
    for (let round = 0; round < o.rounds; round++) {
      for (const c of o.concurrency) {
        for (const s of started) {
          const keys = new RedisKeys(s.prefix);
          const cpu0 = clusterCpuMs(s.cluster);
          const traces = await Promise.all(
            docs.slice(0, c).map(async (d) => {
              const submit = Date.now();
              const sub = await s.client.submit({ ...base, contextIds: d.context, queryIds: d.query, maxNewTokens: o.newTokens });
              await s.client.wait(sub.requestId, {}, 600000);
              const entries = (await s.client.redis.xrange(keys.requestEvents(sub.requestId), '-', '+')) as [string, string[]][];
              // When the query actor sampled each token (its clock), not when Redis stored the event.
              const tokens = entries.map(([, f]) => JSON.parse(f[1]) as { type: string; at?: number }).filter((e) => e.type === 'token').map((e) => e.at!);
              return { submit, tokens };
            }),
          );
          const cpu1 = clusterCpuMs(s.cluster);
          const row = summarize('cluster', s.variant, traces, cpu0 !== null && cpu1 !== null ? cpu1 - cpu0 : null);
          best.offer(`${s.variant}/${c}`, row);
          log(`[serve] round ${round + 1}/${o.rounds} cluster ${s.variant} C=${c}: ${row.decodeTokPerSec.toFixed(1)} decode tok/s, per-token p50 ${row.perTokenP50} ms p99 ${row.perTokenP99} ms, load ${os.loadavg()[0].toFixed(1)}\n`);
        }
      }
    }
    return o.variants.flatMap((v) => o.concurrency.map((c) => best.get(`${v}/${c}`)!));
  } finally {
    for (const s of started) {
      await s.client.close().catch(() => undefined);
      await s.cluster.stop().catch(() => undefined);
    }
    const r = await createRedis(o.redisUrl).catch(() => null);
    if (r) {
      for (const s of started) await deleteKeysByPrefix(r, s.prefix).catch(() => undefined);
      r.disconnect();
    }
  }
}

/** CPU time of a cluster's actor processes (null when one cannot be read). */
function clusterCpuMs(c: LocalProcessCluster): number | null {
  let sum = 0;
  for (const pid of c.actorPids) {
    const ms = processCpuMs(pid);
    if (ms === null) return null;
    sum += ms;
  }
  return sum;
}

/** The in-process setting: serving loops over pre-encoded documents, rows and the step table. */
async function inProcessRuns(o: ServeBenchOptions, modelDir: string, docs: Doc[], log: (line: string) => void): Promise<{ rows: ServeRow[]; steps: StepRow[] }> {
  const C = Math.max(...o.concurrency);
  const config = loadConfig(modelDir);
  const blockSize = Math.ceil(o.context / o.hosts);
  let current: StepRecord[] = [];
  const onStep = (s: StepRecord) => current.push(s);
  const clusters = new Map<boolean, LocalCluster>(); // by attendBatching
  const loops: { variant: ServeVariant; loop: ServingLoop; placements: ContextPlacement[][] }[] = [];
  try {
    for (const attendBatching of [...new Set(o.variants.map((v) => v !== 'batched-attn-per-request'))]) {
      const lc = await LocalCluster.start(modelDir, config, { hosts: o.hosts, hostThreads: 1, queryThreads: 1, attendBatching, serving: { maxRunning: C, onStep } });
      clusters.set(attendBatching, lc);
    }
    const placements = new Map<LocalCluster, ContextPlacement[][]>();
    for (const lc of clusters.values()) {
      log(`[serve] in-process: encoding ${docs.length} documents of ${o.context} tokens\n`);
      const ps: ContextPlacement[][] = [];
      for (const [i, d] of docs.entries()) {
        const req = { mode: 'star' as const, contextIds: d.context, queryIds: d.query, hosts: o.hosts, blockSize };
        ps.push(await encodeContext({ mode: 'star', plan: lc.plan(req), contextIds: d.context, contextKey: `bench-serve-doc-${i}` }, lc.hosts, config.numLayers));
      }
      placements.set(lc, ps);
    }
    for (const variant of o.variants) {
      const lc = clusters.get(variant !== 'batched-attn-per-request')!;
      const loop = variant === 'unbatched' ? new ServingLoop(lc.loop.backend, { batching: false, maxRunning: C, onStep }) : lc.loop;
      loops.push({ variant, loop, placements: placements.get(lc)! });
    }
    const best = new BestOf<{ row: ServeRow; step: StepRow }>((r) => r.row.decodeTokPerSec);
    let seq = 0;
    for (let round = 0; round < o.rounds; round++) {
      for (const c of o.concurrency) {
        for (const { variant, loop, placements: ps } of loops) {
          current = [];
          const cpu0 = processCpuMs();
          const traces = await Promise.all(
            docs.slice(0, c).map(async (d, i) => {
              const t: Trace = { submit: performance.now(), tokens: [] };
              await loop.submit({
                id: `bench-serve-${++seq}`,
                contextLength: d.context.length,
                queryIds: d.query,
                placement: ps[i],
                generate: { maxNewTokens: o.stepTokens, sampling: GREEDY, stopIds: [], ignoreEos: true, onToken: () => t.tokens.push(performance.now()) },
              });
              return t;
            }),
          );
          const cpu1 = processCpuMs();
          const cpu = cpu0 !== null && cpu1 !== null ? cpu1 - cpu0 : null;
          const row = summarize('in-process', variant, traces, cpu);
          const full = current.filter((s) => s.rows === s.batch && s.batch === (variant === 'unbatched' ? 1 : c)).map((s) => s.ms);
          const step: StepRow = { variant, concurrency: c, steps: full.length, medianMs: quantile(full, 0.5), p90Ms: quantile(full, 0.9), xSingle: null, cpuMsPerStep: cpu === null || current.length === 0 ? null : cpu / current.length };
          best.offer(`${variant}/${c}`, { row, step });
          log(`[serve] round ${round + 1}/${o.rounds} in-process ${variant} C=${c}: step p50 ${step.medianMs.toFixed(2)} ms, ${row.decodeTokPerSec.toFixed(1)} decode tok/s, load ${os.loadavg()[0].toFixed(1)}\n`);
        }
      }
    }
    const picked = o.variants.flatMap((v) => o.concurrency.map((c) => best.get(`${v}/${c}`)!));
    return { rows: picked.map((p) => p.row), steps: picked.map((p) => p.step) };
  } finally {
    for (const l of loops) if (l.variant === 'unbatched') await l.loop.close();
    for (const lc of clusters.values()) await lc.close();
  }
}
