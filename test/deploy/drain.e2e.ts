/**
 * Draining a host actor (real processes on the local Redis): the `drain` command (what the admin
 * dashboard's "drain host" sends) and SIGTERM (what Kubernetes sends) take the same path — the
 * host marks itself draining, stops taking block jobs, re-encodes its blocks on the other hosts,
 * moves their handles, then stops and exits 0. A 200-token generation running meanwhile completes
 * with the tokens of an undisturbed run. Also: the actors' /health, /ready and /metrics, and the
 * execution provider in the registry and `starq cluster status`.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { blockCacheId, planMode } from '@starq/attention';
import { ActorClient } from '@starq/actors';
import { HOST_METHODS, type RequestResult } from '@starq/cluster';
import { writeRandomCheckpoint } from '@starq/model/synthetic/random-checkpoint';
import { contextKey } from '@starq/protocol';
import { randomTokenIds, TmpDirs } from '@starq/testing';
import { REDIS_URL, ROOT, TestCluster, until, waitExit } from '../helpers/cluster';

const GREEDY = { temperature: 0, topK: 0, topP: 1, seed: 0 };
const N_CTX = 512;
const N_NEW = 200;

const tmp = new TmpDirs();
let cluster: TestCluster;
let modelDir: string;

beforeAll(async () => {
  modelDir = tmp.make('starq-drain-e2e-');
  writeRandomCheckpoint(modelDir, { architecture: 'llama', hidden: 64, intermediate: 128, layers: 4, heads: 4, kvHeads: 2, vocab: 128, maxPositions: 2048, dtype: 'F32', tied: false, sharded: false, seed: 5 });
  cluster = await TestCluster.start({ modelDir, hosts: 2, env: { STARQ_DRAIN_TIMEOUT_MS: '60000' } });
}, 180000);

afterAll(async () => {
  await cluster?.stop();
  tmp.cleanup();
});

const ctx = randomTokenIds(N_CTX, 128, 17);
const query = randomTokenIds(4, 128, 18);
const request = () => ({ model: cluster.model, mode: 'star' as const, hosts: 2, contextIds: ctx, queryIds: query, maxNewTokens: N_NEW, sampling: GREEDY, stopIds: [], ignoreEos: true });

/** Runs the request; `during` is called once after `afterTokens` tokens arrived. */
async function generate(afterTokens = -1, during: () => Promise<void> = async () => undefined): Promise<{ result: RequestResult; tokensBefore: number }> {
  const sub = await cluster.client.submit(request());
  let tokens = 0;
  let fired: Promise<void> | null = null;
  let tokensBefore = -1;
  const result = await cluster.client.wait(
    sub.requestId,
    {
      token: () => {
        tokens++;
        if (tokens === afterTokens && !fired) {
          tokensBefore = tokens;
          fired = during();
        }
      },
    },
    120000,
  );
  if (fired) await fired;
  return { result, tokensBefore };
}

function blockOwners(): Promise<(string | undefined)[]> {
  const plan = planMode('star', N_CTX, { hosts: 2 });
  const key = contextKey({ model: cluster.model, mode: 'star', blockSize: plan.blockSize, anchorSize: plan.anchorSize, contextIds: ctx });
  return cluster.client.directory.getMany(plan.blocks.map((b) => blockCacheId(key, b.index))).then((hs) => hs.map((h) => h?.hostId));
}

describe('host drain', () => {
  let want: number[];

  it('every actor serves /health, /ready and /metrics and reports its execution provider', async () => {
    const undisturbed = await generate();
    want = undisturbed.result.generatedIds;
    expect(want).toHaveLength(N_NEW);
    for (const a of cluster.actors) {
      const url = /health (http:\/\/\S+)/.exec(a.output())?.[1];
      expect(url).toBeDefined();
      expect((await fetch(`${url}/health`)).status).toBe(200);
      const ready = await fetch(`${url}/ready`);
      expect({ id: a.id, status: ready.status }).toEqual({ id: a.id, status: 200 });
      const metrics = await (await fetch(`${url}/metrics`)).text();
      if (a.kind === 'host') {
        expect(metrics).toMatch(/^starq_host_kv_bytes\{[^}]*actor="[^"]+"[^}]*\} [1-9]/m);
        expect(metrics).toMatch(/^starq_host_kv_blocks\{[^}]*\} [1-9]/m);
        expect(metrics).toMatch(/^starq_host_encoded_tokens_total\{[^}]*\} [1-9]/m);
        expect(metrics).toMatch(/^starq_host_attend_seconds_count\{[^}]*result="ok"[^}]*\} [1-9]/m);
        expect(metrics).toMatch(/^starq_host_jobs_in_flight\{[^}]*kind="attend_call"[^}]*\} 0/m);
      } else {
        expect(metrics).toMatch(/^starq_query_generated_tokens_total\{[^}]*\} 200/m);
        expect(metrics).toMatch(/^starq_query_step_seconds_count\{[^}]*\} 20[0-9]/m);
        expect(metrics).toMatch(/^starq_query_jobs_in_flight\{[^}]*\} 0/m);
      }
    }
    for (const r of await cluster.registry.list()) expect(r.capacity.executionProvider).toBe('cpu');
    const status = JSON.parse(execFileSync(process.execPath, [path.join(ROOT, 'bin/starq'), 'cluster', 'status', '--redis', REDIS_URL, '--prefix', cluster.prefix, '--json'], { encoding: 'utf8' })) as { actors: { executionProvider: string; draining: boolean }[] };
    expect(status.actors).toHaveLength(3);
    for (const a of status.actors) expect(a).toMatchObject({ executionProvider: 'cpu', draining: false });
  }, 180000);

  it('the drain command during a 200-token generation: blocks handed to the other host, same tokens, exit 0', async () => {
    const owners = await blockOwners();
    const victim = owners[0]!;
    expect(new Set(owners).size).toBe(2); // both hosts hold blocks
    const proc = cluster.actor(victim).proc;
    const client = new ActorClient(cluster.redis, { keys: cluster.keys, registry: cluster.registry });
    let drainedAt = 0;
    try {
      const { result, tokensBefore } = await generate(20, async () => {
        expect(await client.handle(victim).call(HOST_METHODS.drain, undefined, { timeoutMs: 5000 })).toEqual({ draining: true });
        expect(await waitExit(proc, 60000)).toBe(true);
        drainedAt = Date.now();
      });
      expect(tokensBefore).toBe(20);
      expect(result.generatedIds).toEqual(want);
      expect(result.blocksRecovered).toBe(0); // handed over, not lost: nothing re-encoded by the query actor
    } finally {
      await client.close();
    }
    expect(drainedAt).toBeGreaterThan(0);
    expect(proc.exitCode).toBe(0);
    expect(cluster.actor(victim).output()).toMatch(/drain: started by drain command/);
    expect(cluster.actor(victim).output()).toMatch(/drain handed [1-9]\d* block\(s\) to other hosts/);
    expect(await cluster.registry.get(victim)).toBeNull();
    const now = await blockOwners();
    expect(now.every((h) => h !== undefined && h !== victim)).toBe(true);
    expect(await cluster.redis.scard(cluster.keys.hostKvIndex(victim))).toBe(0);
  }, 240000);

  it('SIGTERM takes the same path; a restarted host joins and the next drain hands blocks to it', async () => {
    const [fresh] = await cluster.addHosts(1);
    const survivor = (await blockOwners())[0]!;
    const proc = cluster.actor(survivor).proc;
    const { result } = await generate(20, async () => {
      proc.kill('SIGTERM');
      expect(await waitExit(proc, 60000)).toBe(true);
    });
    expect(result.generatedIds).toEqual(want);
    expect(proc.exitCode).toBe(0);
    expect(cluster.actor(survivor).output()).toMatch(/drain: started by SIGTERM/);
    const now = await blockOwners();
    expect(now.every((h) => h === fresh.id)).toBe(true);
    await until('the drained host to leave the registry', async () => (await cluster.registry.get(survivor)) === null, 10000);
  }, 240000);
});

describe('query actor drain past its timeout', () => {
  let qc: TestCluster;
  const qtmp = new TmpDirs();

  beforeAll(async () => {
    const dir = qtmp.make('starq-drain-q-');
    writeRandomCheckpoint(dir, { architecture: 'llama', hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 2, vocab: 128, maxPositions: 2048, dtype: 'F32', tied: true, sharded: false, seed: 6 });
    // Paced generation (100 ms per step: 60 tokens ≥ 6 s) and a 4 s drain: the request cannot finish in time.
    qc = await TestCluster.start({ modelDir: dir, hosts: 1, queryActors: 2, env: { STARQ_DRAIN_TIMEOUT_MS: '4000', STARQ_TEST_STEP_DELAY_MS: '100' } });
  }, 180000);

  afterAll(async () => {
    await qc?.stop();
    qtmp.cleanup();
  });

  it('hands the running request back to the queue: another query actor reruns it to the same tokens', async () => {
    const req = { model: qc.model, mode: 'star' as const, hosts: 1, contextIds: randomTokenIds(96, 128, 3), queryIds: randomTokenIds(3, 128, 4), maxNewTokens: 60, sampling: GREEDY, stopIds: [], ignoreEos: true };
    const sub = await qc.client.submit(req);
    const starts: string[] = [];
    const indices: number[] = [];
    const delivered: number[] = [];
    let draining: Promise<boolean> | null = null;
    const result = await qc.client.wait(
      sub.requestId,
      {
        token: (id) => delivered.push(id),
        event: (e) => {
          if (e.type === 'started') starts.push(e.queryActor);
          if (e.type === 'token') {
            indices.push(e.index);
            if (e.index === 2 && !draining) {
              const first = qc.actor(starts[0]).proc;
              first.kill('SIGTERM');
              draining = waitExit(first, 15000);
            }
          }
        },
      },
      120000,
    );
    expect(await draining).toBe(true);
    const first = qc.actor(starts[0]);
    expect(first.proc.exitCode).toBe(0);
    expect(first.output()).toMatch(/drain: timed out|drain: done/);
    expect(starts).toHaveLength(2); // started on one query actor, rerun on the other
    expect(starts[1]).not.toBe(starts[0]);
    expect(indices.indexOf(0, 1)).toBeGreaterThan(0); // the rerun streams from index 0 again (the gateway forwards each index once)
    expect(delivered).toEqual(result.generatedIds); // the client's token callback saw each index once
    // The same request undisturbed, on the remaining query actor: the same tokens.
    const again = await qc.client.wait((await qc.client.submit(req)).requestId, {}, 120000);
    expect(result.generatedIds).toEqual(again.generatedIds);
    expect(result.generatedIds).toHaveLength(60);
    const job = await qc.client.requests.getJob(sub.requestId);
    expect(await job!.getState()).toBe('completed');
    expect(job!.attemptsMade).toBeLessThanOrEqual(1);
  }, 240000);
});
