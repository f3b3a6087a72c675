/**
 * Chaos run: faults injected into a supervised local cluster (`starq cluster up`'s machinery:
 * hosts, query actors and the gateway restarted by the supervisor, policy `always`) on its own
 * redis-server (loopback, free port, AOF `everysec`), with jobs through the gateway. Two parts:
 *
 * 1. Mixed faults. `--concurrency` jobs in flight all the time (each slot submits its next job
 *    when one ends, bodies taken in turn from `--bodies` fixed requests) while a plan of faults is
 *    played: SIGKILL and SIGTERM of hosts and query actors, one Redis restart (SIGKILL, started
 *    again on the same port and AOF file after 1 s), one host paused with SIGSTOP for `--stop-s`
 *    (its heartbeats stop: it looks dead) then SIGCONT. The plan keeps the cluster survivable: a
 *    fault is injected only when the cluster is whole again (every supervised process running
 *    and registered, none draining) and at least `--gap-s` after the previous one, and only while
 *    jobs are in flight. Every job must end completed with the tokens of the same request run
 *    undisturbed (at the start) or failed with a documented job error code (docs/API.md "Job
 *    errors"); none lost (404), stuck (not ended within `--job-deadline-s`) or duplicated.
 *
 * 2. Cost per fault kind. One fault at a time: per round and kind, `--batch` requests run
 *    undisturbed twice (a warm-up pass, then the measured one), then the same requests again with
 *    the fault injected once all of them have
 *    generated 2 tokens (phase 2), aimed at them (the query actor running the first one; the host
 *    holding most of their blocks). The cost to an affected request is how much longer its rest
 *    (from its 2nd token to its end, the stretch the fault struck in) took than the same stretch
 *    of its undisturbed run just before; p50 / p99 per kind. Phase 1 is left out of the
 *    comparison: its queueing varies by seconds between runs on a loaded machine.
 *
 * Prints tables (text and Markdown) and one JSON object; exits 1 when a job was lost, stuck,
 * wrong or failed with an undocumented code.
 *
 * Usage: npx tsx bench/chaos.ts [--concurrency 8] [--bodies 12] [--hosts 3] [--query-actors 2]
 *          [--new-tokens 48] [--gap-s 3] [--stop-s 5] [--rounds 4] [--batch 2]
 *          [--job-deadline-s 180] [--seed 1] [--skip-mixed] [--skip-cost] [--json FILE]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { blockCacheId, privateBlockKey } from '@starq/attention';
import { JOB_ERRORS, RedisServer, startProcessCluster, StarqClient, type LocalProcessCluster, type RequestEvent, type SupervisedProcess } from '@starq/cluster';
import { mulberry32, writeRandomCheckpoint } from '@starq/model/synthetic/random-checkpoint';
import { randomTokenIds } from '@starq/model/synthetic/token-ids';
import { markdownTable, textTable } from '@starq/report';
import { arg, argStr } from './lib/args';

const CONCURRENCY = arg('--concurrency', 8);
const BODIES = arg('--bodies', 12);
const HOSTS = arg('--hosts', 3);
const QUERY_ACTORS = arg('--query-actors', 2);
const NEW_TOKENS = arg('--new-tokens', 48);
const GAP_S = arg('--gap-s', 3);
const STOP_S = arg('--stop-s', 5);
const ROUNDS = arg('--rounds', 4);
const BATCH = arg('--batch', 2);
const JOB_DEADLINE_S = arg('--job-deadline-s', 180);
const SEED = arg('--seed', 1);
const JSON_FILE = argStr('--json', '');
const SKIP_MIXED = process.argv.includes('--skip-mixed');
const SKIP_COST = process.argv.includes('--skip-cost');
const PREFIX = 'chaos';
const POLL_MS = 50;
const t0 = Date.now();
const log = (s: string) => process.stderr.write(`[chaos ${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const KINDS = ['SIGKILL host', 'SIGTERM host', 'SIGSTOP host', 'SIGKILL query actor', 'SIGTERM query actor', 'Redis restart'] as const;
type FaultKind = (typeof KINDS)[number];

/** The mixed plan: every kind, host and query-actor kills twice. */
const MIXED_PLAN: FaultKind[] = ['SIGKILL host', 'SIGKILL query actor', 'SIGSTOP host', 'SIGTERM host', 'Redis restart', 'SIGTERM query actor', 'SIGKILL host', 'SIGKILL query actor'];

interface JobRun {
  body: number;
  id: string;
  submittedAt: number;
  endedAt: number | null;
  status: string;
  code: string | null;
  message: string | null;
  tokens: number[] | null;
  /** When the job was first seen generating with ≥ 2 tokens (phase 2 under way). */
  t2At: number | null;
}

interface Fault {
  kind: FaultKind;
  at: number;
  target: string;
  inFlight: number;
}

async function http(base: string, method: string, p: string, body?: unknown): Promise<{ status: number; json: any }> {
  for (let attempt = 0; ; attempt++) {
    try {
      const r = await fetch(new URL(p, base), { method, headers: body ? { 'Content-Type': 'application/json' } : {}, body: body ? JSON.stringify(body) : undefined, signal: AbortSignal.timeout(5000) });
      const text = await r.text();
      let json: any = null;
      try {
        json = JSON.parse(text);
      } catch {
        json = null;
      }
      return { status: r.status, json };
    } catch (e) {
      if (attempt >= 40) throw e; // the gateway restarting: retry for a while
      await sleep(250);
    }
  }
}

const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)];
};
const round = (x: number) => (Number.isFinite(x) ? Math.round(x) : null);

class Chaos {
  readonly bodies: Record<string, unknown>[];
  ref: JobRun[] = [];
  readonly inFlight = new Set<JobRun>();

  constructor(
    readonly cluster: LocalProcessCluster,
    readonly client: StarqClient,
    readonly redis: RedisServer,
    rand: () => number,
  ) {
    this.bodies = Array.from({ length: BODIES }, (_, i) => ({
      contextIds: [1, ...randomTokenIds(255 + Math.floor(rand() * 256), 128, SEED * 1000 + i, 3)],
      queryIds: randomTokenIds(2, 128, SEED * 1000 + 500 + i, 3),
      blockSize: 64,
      maxNewTokens: NEW_TOKENS,
      ignoreEos: true,
      cache: false,
    }));
  }

  get base(): string {
    return this.cluster.gatewayUrl!;
  }

  /** Submits body `i` (retrying 503 / 429 while the cluster restarts) and follows it to its end. */
  async runJob(i: number, onView: (run: JobRun, view: any) => void = () => undefined): Promise<JobRun> {
    const deadline = Date.now() + JOB_DEADLINE_S * 1000;
    let sub = await http(this.base, 'POST', '/v1/jobs', this.bodies[i]);
    while ((sub.status === 503 || sub.status === 429) && Date.now() < deadline) {
      await sleep(250);
      sub = await http(this.base, 'POST', '/v1/jobs', this.bodies[i]);
    }
    if (sub.status !== 202) throw new Error(`submit: ${sub.status} ${JSON.stringify(sub.json)}`);
    const run: JobRun = { body: i, id: sub.json.id, submittedAt: Date.now(), endedAt: null, status: sub.json.status, code: null, message: null, tokens: null, t2At: null };
    this.inFlight.add(run);
    try {
      while (Date.now() < deadline) {
        await sleep(POLL_MS);
        const g = await http(this.base, 'GET', `/v1/jobs/${run.id}`).catch(() => ({ status: 0, json: null }));
        if (g.status === 404) {
          run.status = 'lost';
          run.endedAt = Date.now();
          return run;
        }
        if (g.status !== 200) continue; // 503 while Redis restarts: ask again
        run.status = g.json.status;
        if (run.t2At === null && (g.json.progress?.tokens ?? 0) >= 2) run.t2At = Date.now();
        onView(run, g.json);
        if (['completed', 'failed', 'cancelled'].includes(run.status)) {
          run.endedAt = Date.now();
          run.code = g.json.error?.code ?? null;
          run.message = g.json.error?.message ?? null;
          run.tokens = g.json.result?.generatedIds ?? null;
          return run;
        }
      }
      run.status = `stuck (${run.status})`;
      return run;
    } finally {
      this.inFlight.delete(run);
    }
  }

  /** completed (same tokens) | completed with OTHER tokens | failed: <code> | failed, undocumented: <code> | lost | stuck (...) */
  outcome(r: JobRun): string {
    if (r.status === 'completed') return JSON.stringify(r.tokens) === JSON.stringify(this.ref[r.body].tokens) ? 'completed (same tokens)' : 'completed with OTHER tokens';
    if (r.status === 'failed' || r.status === 'cancelled') return r.code && r.code in JOB_ERRORS ? `failed: ${r.code}` : `failed, undocumented: ${r.code}`;
    return r.status;
  }

  states(): SupervisedProcess[] {
    return this.cluster.supervisor.states().filter((p) => p.kind !== 'gateway');
  }

  /** Waits until every supervised actor runs, is registered under its current id and is not draining (and Redis is up). */
  async whole(timeoutMs = 90000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const states = this.states();
      const live = await this.client.actors().catch(() => null);
      if (live && this.redis.pid !== null && states.every((p) => p.state === 'running' && live.some((a) => a.id === p.actorId && !a.status.draining))) return;
      if (Date.now() > deadline) {
        log(`cluster not whole after ${timeoutMs} ms: ${states.map((p) => `${p.name} ${p.state}`).join(', ')}`);
        return;
      }
      await sleep(100);
    }
  }

  private pid(actorId: string): number | null {
    return this.states().find((p) => p.actorId === actorId)?.pid ?? null;
  }

  /** A running actor of `kind`, chosen by `pick` among the running ones (random when it returns null). */
  randomActor(kind: 'host' | 'query', rand: () => number): string | null {
    const live = this.states().filter((p) => p.kind === kind && p.pid !== null && p.state === 'running');
    return live.length ? live[Math.floor(rand() * live.length)].actorId : null;
  }

  /** Hosts holding each job's blocks (from the gateway's job record and the KV directory). */
  async blockHosts(jobIds: string[]): Promise<Map<string, Set<string>>> {
    const out = new Map<string, Set<string>>();
    for (const id of jobIds) {
      const raw = await this.client.redis.get(`${PREFIX}:gw:job:${id}`);
      const meta = raw ? (JSON.parse(raw) as { contextKey?: string; blocksTotal: number }) : null;
      const hosts = new Set<string>();
      // Shared blocks it reused and its private ones (cache: false: privateBlockKey).
      const keys = meta?.contextKey ? [meta.contextKey, privateBlockKey(meta.contextKey, id)] : [];
      for (const h of await this.client.directory.getMany(keys.flatMap((key) => Array.from({ length: meta!.blocksTotal }, (_, k) => blockCacheId(key, k))))) if (h) hosts.add(h.hostId);
      out.set(id, hosts);
    }
    return out;
  }

  /** The query actor that started a job last (its `started` event). */
  async queryActorOf(jobId: string): Promise<string | null> {
    const entries = (await this.client.redis.xrange(this.client.keys.requestEvents(jobId), '-', '+')) as [string, string[]][];
    const starts = entries.map(([, f]) => JSON.parse(f[1]) as RequestEvent).filter((e): e is Extract<RequestEvent, { type: 'started' }> => e.type === 'started');
    return starts.length ? starts[starts.length - 1].queryActor : null;
  }

  /**
   * Injects one fault on `target` (an actor id; ignored for Redis). Resolves once it is injected;
   * `over` resolves once it is over (SIGSTOP: after SIGCONT; Redis: restarted).
   */
  async inject(kind: FaultKind, target: string | null): Promise<{ target: string; over: Promise<void> }> {
    if (kind === 'Redis restart') {
      await this.redis.kill('SIGKILL');
      const over = sleep(1000).then(() => this.redis.restart());
      return { target: `redis-server :${this.redis.port}`, over };
    }
    const pid = target ? this.pid(target) : null;
    if (!target || pid === null) return { target: '-', over: Promise.resolve() };
    if (kind === 'SIGSTOP host') {
      process.kill(pid, 'SIGSTOP');
      const over = sleep(STOP_S * 1000).then(() => {
        try {
          process.kill(pid, 'SIGCONT');
        } catch {
          /* gone */
        }
      });
      return { target, over };
    }
    process.kill(pid, kind.startsWith('SIGKILL') ? 'SIGKILL' : 'SIGTERM');
    // Over once the supervisor saw it exit (a SIGTERMed actor drains first).
    const over = (async () => {
      const deadline = Date.now() + 120000;
      while (this.pid(target) === pid && Date.now() < deadline) await sleep(50);
    })();
    return { target, over };
  }
}

async function mixed(c: Chaos, rand: () => number) {
  log(`mixed faults: ${CONCURRENCY} jobs in flight, plan: ${MIXED_PLAN.join(', ')}`);
  const runs: JobRun[] = [];
  const faults: Fault[] = [];
  let planDone = false;
  let next = 0;
  const busy = new Set<number>();
  const slots = Array.from({ length: CONCURRENCY }, async (_, s) => {
    await sleep(s * 100);
    while (!planDone) {
      // The next body no other job in flight uses: concurrent `cache: false` jobs on one context
      // release each other's blocks (see docs/BENCHMARKS.md), which is not the fault under test.
      let i = next++ % BODIES;
      while ([...c.inFlight].some((r) => r.body === i) || busy.has(i)) i = next++ % BODIES;
      busy.add(i);
      runs.push(await c.runJob(i).catch((e: Error) => ({ body: i, id: `unsubmitted-${next}`, submittedAt: Date.now(), endedAt: Date.now(), status: `submit failed (${e.message})`, code: null, message: null, tokens: null, t2At: null })));
      busy.delete(i);
    }
  });
  let stage = 'starting';
  const watch = setInterval(() => log(`  (plan: ${stage}; jobs in flight ${c.inFlight.size}; ended ${runs.length})`), 10000);
  const plan = (async () => {
    try {
      for (const kind of MIXED_PLAN) {
        stage = `${kind}: waiting for the cluster to be whole`;
        await c.whole();
        stage = `${kind}: gap`;
        await sleep(GAP_S * 1000);
        stage = `${kind}: waiting for a job in flight`;
        while (c.inFlight.size === 0) await sleep(50);
        stage = `${kind}: injecting`;
        const target = kind === 'Redis restart' ? null : c.randomActor(kind.includes('host') ? 'host' : 'query', rand);
        const inFlight = c.inFlight.size;
        const f = await c.inject(kind, target);
        faults.push({ kind, at: Date.now() - t0, target: f.target, inFlight });
        log(`fault: ${kind} → ${f.target} (${inFlight} jobs in flight)`);
        stage = `${kind}: waiting for it to be over`;
        await f.over;
      }
      stage = 'done: waiting for the cluster to be whole';
      await c.whole();
    } finally {
      planDone = true;
      stage = 'done: waiting for the last jobs';
    }
  })();
  await plan;
  await Promise.all(slots);
  clearInterval(watch);
  const counts = new Map<string, number>();
  for (const r of runs) counts.set(c.outcome(r), (counts.get(c.outcome(r)) ?? 0) + 1);
  const messages = runs.filter((r) => r.status === 'failed').map((r) => `${r.code}: ${r.message}`);
  return { jobs: runs.length, distinctIds: new Set(runs.map((r) => r.id)).size, faults, outcomes: Object.fromEntries(counts), failures: messages, runs };
}

interface Trial {
  kind: FaultKind;
  round: number;
  target: string;
  jobs: { body: number; affected: boolean; undisturbedMs: number; faultedMs: number | null; extraMs: number | null; outcome: string; code: string | null; message: string | null }[];
}

async function costs(c: Chaos, rand: () => number): Promise<Trial[]> {
  const trials: Trial[] = [];
  let b = 0;
  for (let r = 0; r < ROUNDS; r++) {
    for (const kind of KINDS) {
      const bodies = Array.from({ length: BATCH }, () => b++ % BODIES);
      await c.whole();
      // A warm-up pass (not measured): the actors restarted after the previous fault run their
      // first requests slower (first engine runs), which would flatter the faulted pass.
      await Promise.all(bodies.map((i) => c.runJob(i)));
      const base = await Promise.all(bodies.map((i) => c.runJob(i)));
      await c.whole();
      let injected: Promise<{ target: string; over: Promise<void>; affected: Set<string> }> | null = null;
      const ids: string[] = [];
      const live: JobRun[] = [];
      const faulted = await Promise.all(
        bodies.map((i, k) =>
          c.runJob(i, (run) => {
            ids[k] = run.id;
            live[k] = run;
            // Injected once every request of the batch is in phase 2 (≥ 2 tokens) and none has ended.
            if (injected || live.filter((x) => x && x.t2At !== null && x.endedAt === null).length < BATCH) return;
            injected = (async () => {
              let target: string | null = null;
              const affected = new Set<string>();
              if (kind === 'Redis restart') for (const id of ids) affected.add(id);
              else if (kind.includes('query')) {
                target = await c.queryActorOf(run.id);
                for (const id of ids) if ((await c.queryActorOf(id)) === target) affected.add(id);
              } else {
                const held = await c.blockHosts(ids);
                const votes = new Map<string, number>();
                for (const hs of held.values()) for (const h of hs) votes.set(h, (votes.get(h) ?? 0) + 1);
                target = [...votes].sort((x, y) => y[1] - x[1])[0]?.[0] ?? c.randomActor('host', rand);
                for (const [id, hs] of held) if (target && hs.has(target)) affected.add(id);
              }
              const f = await c.inject(kind, target);
              return { ...f, affected };
            })();
          }),
        ),
      );
      const f = injected ? await (injected as Promise<{ target: string; over: Promise<void>; affected: Set<string> }>) : null;
      await f?.over;
      const trial: Trial = {
        kind,
        round: r,
        target: f?.target ?? 'not injected (the jobs ended first)',
        // The cost of the fault: how much longer the rest of the request took after its 2nd token
        // (the fault struck in that stretch) than the same stretch of its undisturbed run.
        jobs: faulted.map((run, k) => {
          const u = base[k];
          const undisturbedMs = u.endedAt! - (u.t2At ?? u.submittedAt);
          const faultedMs = run.endedAt && run.t2At ? run.endedAt - run.t2At : null;
          const ok = run.status === 'completed';
          return { body: bodies[k], affected: !!f?.affected.has(run.id), undisturbedMs, faultedMs, extraMs: ok && faultedMs !== null ? faultedMs - undisturbedMs : null, outcome: c.outcome(run), code: run.code, message: run.message };
        }),
      };
      trials.push(trial);
      log(`cost: ${kind} round ${r + 1} → ${trial.target}: ${trial.jobs.map((j) => `${j.affected ? 'hit' : 'missed'} ${j.outcome} ${j.extraMs === null ? '' : `${j.extraMs >= 0 ? '+' : ''}${j.extraMs} ms`}`).join('; ')}`);
    }
  }
  return trials;
}

async function main(): Promise<void> {
  if (!(BODIES > CONCURRENCY)) throw new Error(`--bodies (${BODIES}) must exceed --concurrency (${CONCURRENCY}): jobs in flight use distinct contexts`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'starq-chaos-'));
  const modelDir = path.join(tmp, 'model');
  fs.mkdirSync(modelDir);
  writeRandomCheckpoint(modelDir, { architecture: 'llama', hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 2, vocab: 128, maxPositions: 4096, dtype: 'F32', tied: false, sharded: false, seed: 5 });
  const aofDir = path.join(tmp, 'redis');
  fs.mkdirSync(aofDir);
  const redis = await RedisServer.start({ aofDir });
  // Fast failure detection for the run (the defaults are 1 s / 5 s / 15 s).
  process.env.STARQ_HEARTBEAT_MS = '300';
  process.env.STARQ_TTL_MS = '1500';
  process.env.STARQ_ATTEND_TIMEOUT_MS = '5000';
  let cluster: LocalProcessCluster | null = null;
  let client: StarqClient | null = null;
  const load = () => os.loadavg()[0].toFixed(2);
  const loadBefore = load();
  try {
    cluster = await startProcessCluster({
      hosts: HOSTS,
      queryActors: QUERY_ACTORS,
      threads: 1,
      prefix: PREFIX,
      redisUrl: redis.url,
      modelDir,
      gateway: { port: 0 },
      restart: { policy: 'always', maxRestarts: 50, windowMs: 60000, backoffMs: 500 },
      log: (l) => void (/exited|giving up/.test(l) && log(l.trim())),
    });
    client = await StarqClient.connect(redis.url, { prefix: PREFIX });
    const rand = mulberry32(SEED);
    const c = new Chaos(cluster, client, redis, rand);

    log(`undisturbed reference: ${BODIES} requests`);
    c.ref = await Promise.all(c.bodies.map((_, i) => c.runJob(i)));
    const refBad = c.ref.filter((r) => r.status !== 'completed');
    if (refBad.length > 0) throw new Error(`the undisturbed run did not complete every job: ${refBad.map((r) => `${r.id} ${r.status} ${r.code}`).join(', ')}`);

    const m = SKIP_MIXED ? null : await mixed(c, rand);
    const trials = SKIP_COST ? [] : await costs(c, rand);

    // Tables.
    let bad = 0;
    const out: string[] = [];
    const summary: Record<string, unknown> = {
      config: { concurrency: CONCURRENCY, bodies: BODIES, hosts: HOSTS, queryActors: QUERY_ACTORS, newTokens: NEW_TOKENS, gapS: GAP_S, stopS: STOP_S, rounds: ROUNDS, batch: BATCH, seed: SEED },
      loadAverage1m: { before: loadBefore },
    };
    if (m) {
      const cols = [{ key: 'outcome', title: 'outcome' }, { key: 'jobs', title: 'jobs' }];
      const rows = Object.entries(m.outcomes).map(([outcome, jobs]) => ({ outcome, jobs }));
      rows.push({ outcome: 'distinct job ids / jobs submitted', jobs: `${m.distinctIds} / ${m.jobs}` as unknown as number });
      const fcols = [{ key: 'n', title: '#' }, { key: 'kind', title: 'fault' }, { key: 'target', title: 'target' }, { key: 'at', title: 'at (s)' }, { key: 'inFlight', title: 'jobs in flight' }];
      const frows = m.faults.map((f, i) => ({ n: i + 1, kind: f.kind, target: f.target, at: (f.at / 1000).toFixed(1), inFlight: f.inFlight }));
      out.push(textTable(cols, rows), textTable(fcols, frows), markdownTable(cols, rows), markdownTable(fcols, frows));
      bad += m.runs.filter((r) => !c.outcome(r).startsWith('completed (same') && !(c.outcome(r).startsWith('failed: '))).length + (m.distinctIds !== m.jobs ? 1 : 0);
      const { runs: _runs, ...rest } = m;
      summary.mixed = rest;
    }
    if (trials.length) {
      const cost = KINDS.map((kind) => {
        const ts = trials.filter((t) => t.kind === kind);
        const hit = ts.flatMap((t) => t.jobs.filter((j) => j.affected));
        const extra = hit.filter((j) => j.extraMs !== null).map((j) => j.extraMs!);
        const failed = hit.filter((j) => !j.outcome.startsWith('completed'));
        const codes = [...new Set(failed.map((j) => j.code))].join(', ');
        return {
          kind,
          trials: ts.length,
          injected: ts.filter((t) => !t.target.startsWith('not injected')).length,
          affected: hit.length,
          completed: hit.filter((j) => j.outcome === 'completed (same tokens)').length,
          failed: failed.length ? `${failed.length} (${codes})` : '0',
          undisturbedP50: round(pct(hit.map((j) => j.undisturbedMs), 0.5)),
          p50: round(pct(extra, 0.5)),
          p99: round(pct(extra, 0.99)),
        };
      });
      const cols = [
        { key: 'kind', title: 'fault (one at a time, in phase 2)' },
        { key: 'injected', title: 'injected' },
        { key: 'affected', title: 'requests hit' },
        { key: 'completed', title: 'completed, same tokens' },
        { key: 'failed', title: 'failed (code)' },
        { key: 'undisturbedP50', title: 'undisturbed phase 2 after token 2, p50 ms' },
        { key: 'p50', title: 'extra latency p50 ms' },
        { key: 'p99', title: 'extra p99 ms' },
      ];
      out.push(textTable(cols, cost), markdownTable(cols, cost));
      bad += trials.flatMap((t) => t.jobs).filter((j) => !j.outcome.startsWith('completed (same') && !j.outcome.startsWith('failed: ')).length;
      summary.costByFault = cost;
      summary.trials = trials;
    }
    (summary.loadAverage1m as Record<string, string>).after = load();
    summary.restarts = cluster.supervisor.states().map((p) => ({ name: p.name, restarts: p.restarts, state: p.state }));
    summary.durationS = Math.round((Date.now() - t0) / 1000);
    process.stdout.write(`\n${out.join('\n\n')}\n\n${JSON.stringify(summary)}\n`);
    if (JSON_FILE) fs.writeFileSync(JSON_FILE, JSON.stringify(summary, null, 2));
    if (bad > 0) {
      log(`FAIL: ${bad} job(s) lost, stuck, wrong or failed with an undocumented code`);
      process.exitCode = 1;
    }
  } finally {
    await client?.close().catch(() => undefined);
    await cluster?.stop().catch(() => undefined);
    await redis.stop().catch(() => undefined);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => {
  log(`error: ${(e as Error).stack ?? e}`);
  process.exit(1);
});
