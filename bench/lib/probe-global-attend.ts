/**
 * Probe: one layer of a Global prefill's attention — q (H, N, D) at positions 0..N−1 over the N
 * keys before-or-at each row (causal), on KV pages as the executor builds them — through the tiled
 * attention backend (`TiledAttention`, the executor's own code) under several settings. The settings
 * alternate in rounds (best per setting); wall time and process CPU time (user + system, all
 * threads) of one attend call; GFLOP/s counts the causally useful (row, key) pairs
 * (4·H·D each); "% MatMul" is against the best plain ORT MatMul measured in the run (one per
 * round, bench/lib/roofline.ts). max|Δo| is against the first setting.
 *
 *   npx tsx bench/lib/probe-global-attend.ts [--threads 2] [--n 16384] [--rounds 3] [--head-dim 32]
 *        [--block B]             # a Star block of B rows (positions N−B..N−1) over an anchor of B keys and itself
 *        [--configs keyTile=1024/rowTile=128/tilesPerCall=4,keyTile=256/rowTile=128/tilesPerCall=16]
 */
import * as ort from 'onnxruntime-node';
import type { ModelConfig } from '@starq/model';
import { EXECUTOR_DEFAULTS } from '@starq/model/runtime/executor';
import { transientPages } from '@starq/model/runtime/kv-cache';
import { sessionOptions } from '@starq/model/runtime/session-options';
import { TiledAttention, type TiledAttentionSettings } from '@starq/model/runtime/tiled-attention';
import { lcgFloats as rand } from '@starq/model/perf/fill';
import { textTable } from '@starq/report';
import { measureMatmul } from './roofline';
import { nowMs, progress } from './timing';
import { arg, argStr } from './args';

function parseConfig(text: string): TiledAttentionSettings {
  const s: Record<string, number | string | boolean> = {
    rowTile: EXECUTOR_DEFAULTS.rowTile,
    keyTile: EXECUTOR_DEFAULTS.keyTile,
    tilesPerCall: EXECUTOR_DEFAULTS.tilesPerCall,
    scoreBudgetBytes: EXECUTOR_DEFAULTS.scoreBudgetBytes,
    flash: EXECUTOR_DEFAULTS.flash,
    flashRows: EXECUTOR_DEFAULTS.flashRows,
  };
  for (const pair of text.split('/')) {
    const [name, value] = pair.split('=');
    if (!name || value === undefined) throw new Error(`config ${text}: expected name=value pairs separated by '/'`);
    s[name] = /^\d+$/.test(value) ? Number(value) : value === 'true' ? true : value === 'false' ? false : value;
  }
  return s as unknown as TiledAttentionSettings;
}

async function main(): Promise<void> {
  const threads = arg('--threads', 2);
  const N = arg('--n', 16384);
  const rounds = arg('--rounds', 3);
  const D = arg('--head-dim', 32);
  const configs = argStr('--configs', 'keyTile=1024/rowTile=128/tilesPerCall=4').split(',');
  const cfg = { numHeads: 8, numKvHeads: 2, headDim: D } as ModelConfig;
  const { numHeads: H, numKvHeads: Hkv } = cfg;
  const so = sessionOptions({ threads });
  // --block B: a Star block instead — B rows at positions N−B..N−1 over an anchor of B keys at
  // 0..B−1 and the block's own keys (causal), as a host encodes its last block.
  const B = arg('--block', 0);
  const rowsN = B > 0 ? B : N;
  const keysN = B > 0 ? 2 * B : N;
  const q = rand(H * rowsN * D, 1, 4); // (H, rows, D)
  const k = rand(Hkv * keysN * D, 2, 4); // (Hkv, keys, D)
  const v = rand(Hkv * keysN * D, 3); // (Hkv, keys, D)
  const pos = Int32Array.from({ length: rowsN }, (_, i) => (B > 0 ? N - B + i : i));
  const kpos = B > 0 ? Int32Array.from({ length: keysN }, (_, i) => (i < B ? i : N - 2 * B + i)) : pos;
  const pages = transientPages(k, v, kpos, 0, keysN, Hkv, D, EXECUTOR_DEFAULTS.pageSize);
  const flops = 4 * H * D * (B > 0 ? B * B + (B * (B + 1)) / 2 : (N * (N + 1)) / 2);
  const rows = configs.map((text) => ({ text, wall: Infinity, cpu: Infinity, calls: 0, d: 0 }));
  const backends: TiledAttention[] = [];
  for (const text of configs) {
    const counters = { attendCalls: 0, attendFlops: 0 };
    const settings = parseConfig(text) as TiledAttentionSettings & { spinning?: number; threads?: number };
    const spinning = settings.spinning === 1;
    const t = settings.threads ?? threads;
    delete settings.spinning;
    delete settings.threads;
    backends.push(await TiledAttention.create(cfg, settings, spinning || t !== threads ? sessionOptions({ threads: t, spinning }) : so, counters));
  }
  let ref: Float32Array | null = null;
  let bestMatmul = 0;
  for (let r = 0; r < rounds; r++) {
    bestMatmul = Math.max(bestMatmul, (await measureMatmul({ m: 2048, k: 512, n: 2048 }, 'inputs', { threads, reps: 3 })).gflops);
    for (let c = 0; c < configs.length; c++) {
      const counters = (backends[c] as unknown as { counters: { attendCalls: number } }).counters;
      const calls0 = counters.attendCalls;
      const cpu0 = process.cpuUsage();
      const t0 = nowMs();
      const res = await backends[c].attend(q, pos, pages);
      const wall = nowMs() - t0;
      const cpu = process.cpuUsage(cpu0);
      const row = rows[c];
      row.wall = Math.min(row.wall, wall);
      row.cpu = Math.min(row.cpu, (cpu.user + cpu.system) / 1000);
      row.calls = counters.attendCalls - calls0;
      const o = res.o;
      if (!ref) ref = o.slice();
      let d = 0;
      for (let i = 0; i < o.length; i++) d = Math.max(d, Math.abs(o[i] - ref[i]));
      row.d = Math.max(row.d, d);
      progress(`round ${r + 1} ${row.text}: ${wall.toFixed(0)} ms`);
    }
  }
  process.stdout.write(`\n${B > 0 ? `Star block of ${B} rows after an anchor of ${B}, context` : 'Global attention, one layer,'} N=${N}, H ${H}, Hkv ${Hkv}, D ${D}, ${threads} threads; best MatMul ${bestMatmul.toFixed(1)} GFLOP/s\n`);
  const cols = [
    { key: 'text', title: 'settings' },
    { key: 'wall', title: 'best ms' },
    { key: 'cpu', title: 'best CPU ms' },
    { key: 'gf', title: 'GFLOP/s', digits: 1 },
    { key: 'pct', title: '% MatMul', digits: 1 },
    { key: 'gfcpu', title: 'GFLOP per CPU s', digits: 1 },
    { key: 'calls', title: 'calls' },
    { key: 'd', title: 'max|Δo|' },
  ];
  process.stdout.write(
    `${textTable(
      cols,
      rows.map((x) => ({ text: x.text, wall: x.wall, cpu: x.cpu, gf: flops / x.wall / 1e6, pct: (100 * flops) / x.wall / 1e6 / bestMatmul, gfcpu: flops / x.cpu / 1e6, calls: x.calls, d: x.d.toExponential(1) })),
    )}\n`,
  );
  void ort;
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
