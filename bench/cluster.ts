/**
 * Cluster benchmark: real host/query actor processes on Redis.
 *
 *   1. per-layer exchange round trip (q → every host → one partial back), median and p99, for
 *      1..4 host processes — measured from a client with the same RemoteHost calls the query
 *      actor makes, a 1-row q over a 4K-token context split in 4 blocks;
 *   2. decode tokens/s at a 4K context, Star on 2 hosts: cluster vs in-process (LocalCluster);
 *   3. phase-1 wall time at a 16K context (Star, b = 4K) with 1 vs 2 host processes.
 *
 * Model: ../shared/models/bench-256 (or a random model of the same shape when absent).
 * Usage: npx tsx bench/cluster.ts [--quick] [--json FILE]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { planMode } from '@starq/attention';
import { ActorClient, createRedis, deleteKeysByPrefix } from '@starq/actors';
import { ClusterRegistry, KvDirectory, RemoteHost, startProcessCluster, StarqClient, type LocalProcessCluster } from '@starq/cluster';
import { loadConfig } from '@starq/model/config';
import { randomTokenIds } from '@starq/model/synthetic/token-ids';
import { sharedModel } from '@starq/model/shared-fixtures';
import { LocalCluster } from '@starq/model/local/local-cluster';
import { writeRandomCheckpoint } from '@starq/model/synthetic/random-checkpoint';
import { RedisKeys } from '@starq/protocol';
import { markdownTable, textTable } from '@starq/report';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const jsonFile = args.includes('--json') ? args[args.indexOf('--json') + 1] : null;
const REDIS = process.env.STARQ_REDIS_URL || 'redis://127.0.0.1:6379';
const log = (s: string) => process.stderr.write(s + '\n');

function benchModel(): { dir: string; cleanup: () => void } {
  const shared = sharedModel('bench-256');
  if (shared.present) return { dir: shared.path, cleanup: () => undefined };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'starq-bench-cluster-'));
  writeRandomCheckpoint(dir, { architecture: 'llama', hidden: 256, intermediate: 688, layers: 4, heads: 8, kvHeads: 2, vocab: 512, maxPositions: 65536, dtype: 'F32', tied: false, sharded: false, seed: 0 });
  log(`bench-256 not found: using a random model of the same shape in ${dir}`);
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Seeded token ids in [3, vocab) (no <unk>, <s>, </s>), one sequence per seed. */
const ids = (n: number, vocab: number, seed: number): number[] => randomTokenIds(n, vocab, seed, 3);

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
};

async function withCluster<T>(hosts: number, dir: string, fn: (c: LocalProcessCluster, client: StarqClient) => Promise<T>): Promise<T> {
  const prefix = `starq-bench-${process.pid}-${hosts}`;
  const c = await startProcessCluster({ hosts, threads: 1, prefix, redisUrl: REDIS, modelDir: dir, log: () => undefined });
  const client = await StarqClient.connect(c.redisUrl, { prefix });
  try {
    return await fn(c, client);
  } finally {
    await client.close();
    const r = await createRedis(c.redisUrl);
    await deleteKeysByPrefix(r, prefix);
    r.disconnect();
    await c.stop();
  }
}

async function main(): Promise<void> {
  const { dir, cleanup } = benchModel();
  const config = loadConfig(dir);
  const model = path.basename(path.resolve(dir));
  const sampling = { temperature: 0, topK: 0, topP: 1, seed: 0 };
  const ctx4k = ids(quick ? 1024 : 4096, config.vocabSize, 1);
  const q = ids(4, config.vocabSize, 2);
  const newTokens = quick ? 16 : 64;
  const report: Record<string, unknown> = { model, machine: { cpus: os.cpus().length, node: process.version } };

  // 1 + 2: exchange round trip for 1..4 hosts, decode tok/s on 2 hosts
  const exchange: Record<string, number | string>[] = [];
  let clusterDecode = 0;
  await withCluster(4, dir, async (c, client) => {
    const sub = await client.submit({ model, mode: 'star', contextIds: ctx4k, queryIds: q, blockSize: ctx4k.length / 4, hosts: 4, maxNewTokens: 1, sampling, stopIds: [] });
    await client.wait(sub.requestId);
    const keys = new RedisKeys(c.prefix);
    const redis = await createRedis(c.redisUrl);
    const actor = new ActorClient(redis, { keys, registry: new ClusterRegistry(redis, { keys }) });
    const plan = planMode('star', ctx4k.length, { blockSize: ctx4k.length / 4, hosts: 4 });
    const dirKv = new KvDirectory(redis, keys);
    // find the request's blocks through the hosts' KV indexes
    const byHost = new Map<string, string[]>();
    for (const h of c.hostIds) byHost.set(h, await dirKv.hostBlocks(h));
    const blocks = [...byHost.values()].flat();
    if (blocks.length !== plan.numBlocks) throw new Error(`expected ${plan.numBlocks} blocks on hosts, found ${blocks.length}`);
    const { numHeads: H, headDim: D } = config;
    const qv = new Float32Array(H * D).map((_, i) => Math.sin(i));
    const qpos = Int32Array.of(ctx4k.length);
    for (let n = 1; n <= 4; n++) {
      // n hosts answer; the 4 blocks are re-grouped onto the first n holders by asking each holder for its own blocks
      const holders = [...byHost.entries()].filter(([, b]) => b.length > 0).slice(0, n);
      if (holders.length < n) continue;
      const hosts = holders.map(([id, b]) => ({ host: new RemoteHost(id, actor.handle(id)), cacheIds: b }));
      const times: number[] = [];
      const reps = quick ? 100 : 400;
      for (let i = 0; i < reps + 20; i++) {
        const t0 = performance.now();
        await Promise.all(hosts.map((h) => h.host.attend({ cacheIds: h.cacheIds, layer: i % config.numLayers, q: qv, qpos })));
        if (i >= 20) times.push(performance.now() - t0);
      }
      exchange.push({ hosts: n, blocks: hosts.reduce((s, h) => s + h.cacheIds.length, 0), median: pct(times, 0.5), p99: pct(times, 0.99) });
      log(`exchange ${n} hosts: median ${pct(times, 0.5).toFixed(3)} ms`);
    }
    await actor.close();
    redis.disconnect();
  });

  await withCluster(2, dir, async (_c, client) => {
    const sub = await client.submit({ model, mode: 'star', contextIds: ctx4k, queryIds: q, blockSize: ctx4k.length / 4, hosts: 2, maxNewTokens: newTokens, sampling, stopIds: [], ignoreEos: true, cache: false });
    const r = await client.wait(sub.requestId);
    clusterDecode = r.timings.decodeTokensPerSec;
  });
  const local = await LocalCluster.start(dir, config, { hosts: 2, hostThreads: 1, queryThreads: 1 });
  let localDecode = 0;
  try {
    const r = await local.generate({ mode: 'star', contextIds: ctx4k, queryIds: q, blockSize: ctx4k.length / 4, hosts: 2 }, { maxNewTokens: newTokens, sampling, stopIds: [], ignoreEos: true });
    localDecode = r.timings.decodeTokensPerSec;
  } finally {
    await local.close();
  }
  log(`decode: cluster ${clusterDecode.toFixed(1)} tok/s, in-process ${localDecode.toFixed(1)} tok/s`);

  // 3: phase 1 at 16K with 1 vs 2 host processes
  const ctx16k = ids(quick ? 4096 : 16384, config.vocabSize, 3);
  const b = ctx16k.length / 4;
  const phase1: Record<string, number>[] = [];
  for (const hosts of [1, 2]) {
    await withCluster(hosts, dir, async (_c, client) => {
      const sub = await client.submit({ model, mode: 'star', contextIds: ctx16k, queryIds: q, blockSize: b, hosts, maxNewTokens: 1, sampling, stopIds: [], cache: false });
      const r = await client.wait(sub.requestId);
      phase1.push({ hosts, phase1Ms: r.timings.phase1Ms });
      log(`phase 1 at ${ctx16k.length}: ${hosts} host(s) ${r.timings.phase1Ms} ms`);
    });
  }
  cleanup();

  const decodeRows = [{ setting: `star, ${ctx4k.length} ctx, b=${ctx4k.length / 4}, 2 hosts`, cluster: clusterDecode, inProcess: localDecode, ratio: clusterDecode / localDecode }];
  const p1Rows = [{ context: ctx16k.length, b, one: phase1[0].phase1Ms, two: phase1[1].phase1Ms, speedup: phase1[0].phase1Ms / phase1[1].phase1Ms }];
  const exCols = [
    { key: 'hosts', title: 'hosts' },
    { key: 'blocks', title: 'blocks' },
    { key: 'median', title: 'round trip median (ms)', digits: 3 },
    { key: 'p99', title: 'p99 (ms)', digits: 3 },
  ];
  const decCols = [
    { key: 'setting', title: 'setting', align: 'left' as const },
    { key: 'cluster', title: 'cluster tok/s', digits: 1 },
    { key: 'inProcess', title: 'in-process tok/s', digits: 1 },
    { key: 'ratio', title: 'cluster / in-process', digits: 2 },
  ];
  const p1Cols = [
    { key: 'context', title: 'context' },
    { key: 'b', title: 'block' },
    { key: 'one', title: '1 host (ms)' },
    { key: 'two', title: '2 hosts (ms)' },
    { key: 'speedup', title: 'speedup', digits: 2 },
  ];
  const md = process.argv.includes('--markdown');
  const table = md ? markdownTable : textTable;
  process.stdout.write(`\nPer-layer exchange (q of 1 row → hosts → partials), ${ctx4k.length}-token context in 4 blocks\n${table(exCols, exchange)}\n`);
  process.stdout.write(`\nDecode\n${table(decCols, decodeRows)}\n`);
  process.stdout.write(`\nPhase 1 (Star, 4 blocks)\n${table(p1Cols, p1Rows)}\n`);
  Object.assign(report, { exchange, decode: decodeRows, phase1: p1Rows });
  if (jsonFile) fs.writeFileSync(jsonFile, JSON.stringify(report, null, 2));
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
