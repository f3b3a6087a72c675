/**
 * Probe: decode-shaped attention (a few query rows over a long cache) through the engine's
 * `attendCache`, per attention path — isolates the attend calls of a decode step from qkv/post.
 * The cache is filled with random K/V via `appendKv` (no prefill), pages of the engine's page size.
 *
 *   npx tsx bench/lib/probe-decode-attend.ts [--threads 2] [--n 16384] [--rows 1] [--steps 200]
 *        [--configs attention=tiled,attention=paged]   # '/'-separated name=value ExecutorOptions
 */
import { loadConfig, ModelEngine, type ExecutorOptions } from '@starq/model';
import { writeRandomBenchModel } from './models';
import { textTable } from '@starq/report';
import { nowMs, progress } from './timing';
import { argStr } from './args';
import { lcgFloats as rand } from '@starq/model/perf/fill';

async function main(): Promise<void> {
  const threads = Number(argStr('--threads', '2'));
  const N = Number(argStr('--n', '16384'));
  const rows = Number(argStr('--rows', '1'));
  const steps = Number(argStr('--steps', '200'));
  const configs = argStr('--configs', 'attention=tiled,attention=paged').split(',').map((text) => {
    const opts: Record<string, number | string> = {};
    for (const pair of text.split('/')) {
      const [k, v] = pair.split('=');
      opts[k] = /^\d+$/.test(v) ? Number(v) : v;
    }
    return { key: text, opts: opts as ExecutorOptions };
  });
  const { dir, cleanup } = writeRandomBenchModel(Math.max(16448, N + rows + 64));
  try {
    const cfg = loadConfig(dir);
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = cfg;
    const k = rand(Hkv * N * D, 1); // (Hkv, N, D)
    const v = rand(Hkv * N * D, 2); // (Hkv, N, D)
    const q = rand(H * rows * D, 3); // (H, rows, D)
    const kpos = Int32Array.from({ length: N }, (_, i) => i);
    const qpos = Int32Array.from({ length: rows }, (_, i) => N + i);
    const out: { config: string; msPerCall: number; callsPerAttend: number }[] = [];
    for (const c of configs) {
      const engine = await ModelEngine.load(dir, cfg, { threads, ...c.opts });
      try {
        await engine.createCache('c', N);
        await engine.appendKv('c', 0, k, v, kpos);
        for (let i = 0; i < 10; i++) await engine.attendCache('c', 0, q, qpos); // warm-up (and lazy sessions)
        const s0 = await engine.stats();
        const t0 = nowMs();
        for (let i = 0; i < steps; i++) await engine.attendCache('c', 0, q, qpos);
        const ms = (nowMs() - t0) / steps;
        const s1 = await engine.stats();
        out.push({ config: c.key, msPerCall: ms, callsPerAttend: (s1.attendCalls - s0.attendCalls) / steps });
        progress(`${c.key}: ${ms.toFixed(3)} ms per attendCache`);
      } finally {
        await engine.close();
      }
    }
    process.stdout.write(`attendCache of ${rows} row(s) over ${N} cached keys (one layer), ${steps} calls each, threads ${threads}\n`);
    process.stdout.write(
      textTable(
        [
          { key: 'config', title: 'config', align: 'left' },
          { key: 'ms', title: 'ms / attendCache', digits: 3 },
          { key: 'calls', title: 'ORT attend calls each', digits: 1 },
        ],
        out.map((r) => ({ config: r.config, ms: r.msPerCall, calls: r.callsPerAttend })),
      ) + '\n',
    );
  } finally {
    cleanup();
  }
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
