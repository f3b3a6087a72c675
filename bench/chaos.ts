/**
 * Chaos run: N concurrent jobs through the gateway of a supervised local cluster (`starq cluster
 * up`'s machinery, restart policy `always`) on its own redis-server (loopback, free port, AOF
 * `everysec`), while faults are injected: SIGKILL and SIGTERM of random host and query actors,
 * one Redis restart (SIGKILL, then started again on the same port and AOF file), and one host
 * paused with SIGSTOP (its heartbeats stop: it looks dead) and resumed with SIGCONT.
 *
 * First the same jobs run undisturbed (the reference tokens and latencies), then again under the
 * faults. At the end every job must be either completed with the reference tokens or failed with
 * a documented error code: none lost (404 / unknown), none duplicated (one result per job, tokens
 * equal to the reference), none stuck (not finished by the deadline).
 *
 * Prints a table and JSON: jobs, faults, completed / failed by code / lost / stuck / wrong, and
 * per fault kind the extra latency of the jobs in flight when it struck (p50 / p99, against the
 * same job's undisturbed latency).
 *
 * Usage: npx tsx bench/chaos.ts [--jobs 40] [--hosts 3] [--query-actors 2] [--new-tokens 48]
 *          [--fault-every-ms 4000] [--deadline-s 300] [--seed 1] [--json FILE]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startProcessCluster, type LocalProcessCluster } from '@starq/cluster';
import { mulberry32, writeRandomCheckpoint } from '@starq/model/synthetic/random-checkpoint';
import { randomTokenIds } from '@starq/model/synthetic/token-ids';
import { markdownTable, textTable } from '@starq/report';
import { arg, argStr } from './lib/args';

const JOBS = arg('--jobs', 40);
const HOSTS = arg('--hosts', 3);
const QUERY_ACTORS = arg('--query-actors', 2);
const NEW_TOKENS = arg('--new-tokens', 48);
const FAULT_EVERY_MS = arg('--fault-every-ms', 4000);
const DEADLINE_S = arg('--deadline-s', 300);
const SEED = arg('--seed', 1);
const JSON_FILE = argStr('--json', '');
const log = (s: string) => process.stderr.write(`[chaos ${new Date().toISOString().slice(11, 19)}] ${s}\n`);

/** Error codes a job may end with under these faults (docs/API.md). */
const DOCUMENTED = new Set(['redis_unavailable', 'actor_lost', 'query_actor_unavailable', 'host_unavailable', 'cluster_unavailable']);

type FaultKind = 'SIGKILL host' | 'SIGTERM host' | 'SIGKILL query actor' | 'SIGTERM query actor' | 'Redis restart' | 'SIGSTOP host (8 s)';

interface Fault {
  kind: FaultKind;
  at: number;
  target: string;
  /** Jobs in flight when it struck. */
  inFlight: string[];
}

interface JobRun {
  id: string;
  submittedAt: number;
  endedAt: number | null;
  status: string;
  code: string | null;
  tokens: number[] | null;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
    s.on('error', reject);
  });
}

async function waitPort(port: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.end();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`redis-server did not listen on ${port} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function startRedis(port: number, dir: string): ChildProcess {
  return spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', '', '--maxmemory-policy', 'noeviction'], { stdio: 'ignore' });
}

async function http(base: string, method: string, p: string, body?: unknown): Promise<{ status: number; json: any }> {
  for (let attempt = 0; ; attempt++) {
    try {
      const r = await fetch(new URL(p, base), { method, headers: body ? { 'Content-Type': 'application/json' } : {}, body: body ? JSON.stringify(body) : undefined });
      const text = await r.text();
      let json: any = null;
      try {
        json = JSON.parse(text);
      } catch {
        json = null;
      }
      return { status: r.status, json };
    } catch (e) {
      if (attempt >= 20) throw e; // the gateway restarting: retry for a while
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
};

/** Submits every job (retrying 503s: a restarting Redis or no query actor for a moment) and follows them to the end. */
async function runJobs(base: string, bodies: Record<string, unknown>[], deadline: number, onSubmitted: (r: JobRun) => void = () => undefined): Promise<JobRun[]> {
  const runs: JobRun[] = [];
  await Promise.all(
    bodies.map(async (body, i) => {
      await new Promise((r) => setTimeout(r, i * 50));
      let sub = await http(base, 'POST', '/v1/jobs', body);
      while (sub.status === 503 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 500));
        sub = await http(base, 'POST', '/v1/jobs', body);
      }
      if (sub.status !== 202) throw new Error(`submit: ${sub.status} ${JSON.stringify(sub.json)}`);
      const run: JobRun = { id: sub.json.id, submittedAt: Date.now(), endedAt: null, status: sub.json.status, code: null, tokens: null };
      runs[i] = run;
      onSubmitted(run);
      while (Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 250));
        const g = await http(base, 'GET', `/v1/jobs/${run.id}`).catch(() => ({ status: 0, json: null }));
        if (g.status === 503) continue; // Redis down: ask again
        if (g.status === 404) {
          run.status = 'lost';
          run.endedAt = Date.now();
          return;
        }
        if (g.status !== 200) continue;
        run.status = g.json.status;
        if (['completed', 'failed', 'cancelled'].includes(run.status)) {
          run.endedAt = Date.now();
          run.code = g.json.error?.code ?? null;
          run.tokens = g.json.result?.generatedIds ?? null;
          return;
        }
      }
      run.status = `stuck (${run.status})`;
    }),
  );
  return runs;
}

async function main(): Promise<void> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'starq-chaos-'));
  const modelDir = path.join(tmp, 'model');
  fs.mkdirSync(modelDir);
  writeRandomCheckpoint(modelDir, { architecture: 'llama', hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 2, vocab: 128, maxPositions: 4096, dtype: 'F32', tied: false, sharded: false, seed: 5 });
  const port = await freePort();
  const redisDir = path.join(tmp, 'redis');
  fs.mkdirSync(redisDir);
  let redis = startRedis(port, redisDir);
  await waitPort(port, 10000);
  const redisUrl = `redis://127.0.0.1:${port}`;
  // Fast failure detection for the run (the defaults are 1 s / 5 s).
  process.env.STARQ_HEARTBEAT_MS = '300';
  process.env.STARQ_TTL_MS = '1500';
  process.env.STARQ_ATTEND_TIMEOUT_MS = '5000';
  let cluster: LocalProcessCluster | null = null;
  try {
    cluster = await startProcessCluster({ hosts: HOSTS, queryActors: QUERY_ACTORS, threads: 1, prefix: 'chaos', redisUrl, modelDir, gateway: { port: 0 }, restart: { policy: 'always', maxRestarts: 20, windowMs: 60000, backoffMs: 500 }, log: (l) => void (/exited|restarting|giving up|listens again/.test(l) && log(l.trim())) });
    const sup = cluster.supervisor;
    const base = cluster.gatewayUrl!;
    const rand = mulberry32(SEED);
    const bodies = Array.from({ length: JOBS }, (_, i) => ({
      contextIds: [1, ...randomTokenIds(255 + Math.floor(rand() * 256), 128, SEED * 1000 + i, 3)],
      queryIds: randomTokenIds(2, 128, SEED * 1000 + 500 + i, 3),
      blockSize: 64,
      maxNewTokens: NEW_TOKENS,
      ignoreEos: true,
      cache: false,
    }));

    log(`undisturbed run: ${JOBS} jobs`);
    const refDeadline = Date.now() + DEADLINE_S * 1000;
    const ref = await runJobs(base, bodies, refDeadline);
    const refBad = ref.filter((r) => r.status !== 'completed');
    if (refBad.length > 0) throw new Error(`the undisturbed run did not complete every job: ${refBad.map((r) => `${r.id} ${r.status} ${r.code}`).join(', ')}`);
    const refLatency = ref.map((r) => r.endedAt! - r.submittedAt);

    log(`chaos run: ${JOBS} jobs, a fault every ${FAULT_EVERY_MS} ms`);
    const deadline = Date.now() + DEADLINE_S * 1000;
    const running = new Map<string, JobRun>();
    const faults: Fault[] = [];
    const plan: FaultKind[] = ['SIGKILL host', 'SIGKILL query actor', 'SIGSTOP host (8 s)', 'SIGTERM host', 'Redis restart', 'SIGTERM query actor', 'SIGKILL host', 'SIGKILL query actor'];
    let stopFaults = false;
    const inject = (async () => {
      for (const kind of plan) {
        await new Promise((r) => setTimeout(r, FAULT_EVERY_MS));
        if (stopFaults) return;
        const inFlight = [...running.values()].filter((r) => r.endedAt === null).map((r) => r.id);
        const states = sup.states();
        const pick = (k: 'host' | 'query') => {
          const live = states.filter((p) => p.kind === k && p.pid !== null && p.state === 'running');
          return live.length ? live[Math.floor(rand() * live.length)] : null;
        };
        let target = '-';
        if (kind === 'Redis restart') {
          process.kill(redis.pid!, 'SIGKILL');
          await new Promise((r) => redis.once('exit', r));
          await new Promise((r) => setTimeout(r, 2000));
          redis = startRedis(port, redisDir);
          await waitPort(port, 10000);
          target = `redis-server :${port}`;
        } else {
          const p = pick(kind.includes('host') ? 'host' : 'query');
          if (!p) {
            log(`${kind}: no running target, skipped`);
            continue;
          }
          target = p.actorId;
          if (kind === 'SIGSTOP host (8 s)') {
            process.kill(p.pid!, 'SIGSTOP');
            setTimeout(() => {
              try {
                process.kill(p.pid!, 'SIGCONT');
              } catch {
                /* gone */
              }
            }, 8000);
          } else process.kill(p.pid!, kind.startsWith('SIGKILL') ? 'SIGKILL' : 'SIGTERM');
        }
        faults.push({ kind, at: Date.now(), target, inFlight });
        log(`fault: ${kind} → ${target} (${inFlight.length} jobs in flight)`);
      }
    })();
    const runs = await runJobs(base, bodies, deadline, (r) => running.set(r.id, r));
    stopFaults = true;
    await inject;

    // Outcome per job.
    const outcome = runs.map((r, i) => {
      if (r.status === 'completed') return JSON.stringify(r.tokens) === JSON.stringify(ref[i].tokens) ? 'completed (same tokens)' : 'completed with OTHER tokens';
      if (r.status === 'failed' || r.status === 'cancelled') return DOCUMENTED.has(r.code ?? '') ? `failed: ${r.code}` : `failed, undocumented: ${r.code}`;
      return r.status; // lost, stuck (...)
    });
    const counts = new Map<string, number>();
    for (const o of outcome) counts.set(o, (counts.get(o) ?? 0) + 1);
    const ids = new Set(runs.map((r) => r.id));

    // Cost of each fault kind: extra latency of the jobs in flight when it struck.
    const byId = new Map(runs.map((r, i) => [r.id, { r, ref: refLatency[i] }]));
    const kinds = [...new Set(faults.map((f) => f.kind))];
    const cost = kinds.map((k) => {
      const extra: number[] = [];
      for (const f of faults.filter((x) => x.kind === k)) {
        for (const id of f.inFlight) {
          const j = byId.get(id);
          if (j && j.r.status === 'completed' && j.r.endedAt) extra.push(j.r.endedAt - j.r.submittedAt - j.ref);
        }
      }
      return { kind: k, injected: faults.filter((x) => x.kind === k).length, jobsHit: extra.length, p50ExtraMs: Math.round(pct(extra, 0.5)), p99ExtraMs: Math.round(pct(extra, 0.99)) };
    });
    const summary = {
      jobs: JOBS,
      distinctJobIds: ids.size,
      faults: faults.map((f) => ({ kind: f.kind, target: f.target, inFlight: f.inFlight.length })),
      outcomes: Object.fromEntries(counts),
      undisturbedLatencyMs: { p50: Math.round(pct(refLatency, 0.5)), p99: Math.round(pct(refLatency, 0.99)) },
      chaosLatencyMs: { p50: Math.round(pct(runs.filter((r) => r.endedAt).map((r) => r.endedAt! - r.submittedAt), 0.5)), p99: Math.round(pct(runs.filter((r) => r.endedAt).map((r) => r.endedAt! - r.submittedAt), 0.99)) },
      costByFault: cost,
      restarts: sup.states().map((p) => ({ name: p.name, restarts: p.restarts, state: p.state })),
    };
    const outCols = [{ key: 'outcome', title: 'outcome' }, { key: 'jobs', title: 'jobs' }];
    const outRows = [...counts].map(([o, n]) => ({ outcome: o, jobs: n }));
    const costCols = [
      { key: 'kind', title: 'fault' },
      { key: 'injected', title: 'injected' },
      { key: 'jobsHit', title: 'completed jobs in flight' },
      { key: 'p50ExtraMs', title: 'extra latency p50 ms' },
      { key: 'p99ExtraMs', title: 'p99 ms' },
    ];
    const costRows = cost.map((c) => ({ ...c }));
    process.stdout.write(`\n${textTable(outCols, outRows)}\n\n${textTable(costCols, costRows)}\n`);
    process.stdout.write(`\n${markdownTable(outCols, outRows)}\n\n${markdownTable(costCols, costRows)}\n`);
    process.stdout.write(JSON.stringify(summary) + '\n');
    if (JSON_FILE) fs.writeFileSync(JSON_FILE, JSON.stringify(summary, null, 2));
    const bad = outcome.filter((o) => !o.startsWith('completed (same') && !(o.startsWith('failed: ') && !o.includes('undocumented'))).length;
    if (bad > 0 || ids.size !== JOBS) {
      log(`FAIL: ${bad} job(s) lost, stuck, wrong or failed with an undocumented code`);
      process.exitCode = 1;
    }
  } finally {
    await cluster?.stop().catch(() => undefined);
    if (redis.exitCode === null) redis.kill('SIGTERM');
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => {
  log(`error: ${(e as Error).stack ?? e}`);
  process.exit(1);
});
