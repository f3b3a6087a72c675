/**
 * Probe: a host's phase-2 attention work per decode step — `attendMany` of B requests' decode rows
 * (one item per request, each over its own block of `--keys` keys, every layer) on one executor in
 * this thread — with batched attention (`attendBatching`, one ORT call per layer) and with the
 * per-request path (one call per item per layer), alternated round by round. Reports wall and
 * CPU time (this process, user + system) per step: on a shared machine the CPU column is the one
 * to compare. 16 distinct blocks per executor, so B ≤ 16 items never reuse a block within a step.
 *
 *   npx tsx bench/lib/probe-attend-many.ts [--keys 2048] [--rounds 30] [--batches 1,2,4,8,16]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadModelDir } from '@starq/model/weights';
import { ModelExecutor } from '@starq/model/runtime/executor';
import { writeRandomCheckpoint } from '@starq/model/synthetic/random-checkpoint';
import { lcgFloats as rand } from '@starq/model/perf/fill';
import { textTable } from '@starq/report';
import { median } from './timing';
import { arg, argStr } from './args';

const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

async function main(): Promise<void> {
  const K = arg('--keys', 2048);
  const rounds = arg('--rounds', 30);
  const batches = argStr('--batches', '1,2,4,8,16').split(',').map(Number);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'probe-attend-many-'));
  try {
    writeRandomCheckpoint(dir, { architecture: 'llama', hidden: 256, layers: 4, heads: 8, kvHeads: 2, intermediate: 688, vocab: 512, maxPositions: K + 64, dtype: 'F32', tied: false, sharded: false, seed: 7 });
    const { config, weights } = loadModelDir(dir);
    const { numHeads: H, numKvHeads: Hkv, headDim: D, numLayers: L } = config;
    const paths = { batched: await ModelExecutor.create(config, weights, { threads: 1 }), 'per-request': await ModelExecutor.create(config, weights, { threads: 1, attendBatching: false }) };
    const kpos = Int32Array.from({ length: K }, (_, j) => j);
    for (const ex of Object.values(paths)) {
      for (let i = 0; i < 16; i++) {
        ex.createCache(`c${i}`, K);
        for (let l = 0; l < L; l++) ex.appendKv(`c${i}`, l, rand(Hkv * K * D, i * 10 + l), rand(Hkv * K * D, i * 10 + l + 5), kpos); // (Hkv, K, D) ×2
      }
    }
    const rows: Record<string, unknown>[] = [];
    for (const B of batches) {
      const items = (l: number) => Array.from({ length: B }, (_, i) => ({ cacheIds: [`c${i}`], layer: l, q: rand(H * D, 100 + i) /* (H, 1, D) */, qpos: Int32Array.of(K) }));
      const t: Record<string, { wall: number[]; cpu: number[]; calls: number }> = { batched: { wall: [], cpu: [], calls: 0 }, 'per-request': { wall: [], cpu: [], calls: 0 } };
      for (let r = 0; r < rounds; r++) {
        for (const [name, ex] of Object.entries(paths)) {
          const calls0 = ex.stats.attendCalls;
          const c0 = cpuMs();
          const w0 = performance.now();
          for (let l = 0; l < L; l++) await ex.attendMany(items(l));
          t[name].wall.push(performance.now() - w0);
          t[name].cpu.push(cpuMs() - c0);
          t[name].calls = ex.stats.attendCalls - calls0;
        }
      }
      for (const name of Object.keys(paths)) rows.push({ path: name, B, calls: t[name].calls, wall: median(t[name].wall), cpu: median(t[name].cpu), cpuPerItem: median(t[name].cpu) / B });
    }
    process.stdout.write(`attendMany of B decode rows, each over its own ${K}-key block, ${L} layers per step (${H} heads, ${Hkv} KV heads, D ${D}); medians of ${rounds} alternated rounds; load average ${os.loadavg()[0].toFixed(1)}\n`);
    process.stdout.write(
      textTable(
        [
          { key: 'path', title: 'attention', align: 'left' },
          { key: 'B', title: 'B' },
          { key: 'calls', title: 'ORT calls/step' },
          { key: 'wall', title: 'wall ms/step', digits: 3 },
          { key: 'cpu', title: 'CPU ms/step', digits: 3 },
          { key: 'cpuPerItem', title: 'CPU ms/step/request', digits: 3 },
        ],
        rows as never,
      ) + '\n',
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
