/**
 * Probe: P open key tiles of one row tile — P single `attend` calls + JS `mergeInto` (float64
 * accumulator, as the engine's tiled path) against one 'chain' call that merges in the graph
 * (attend-variants.ts buildChainGraph). Interleaved rounds, best per variant.
 *
 *   npx tsx bench/lib/probe-chain.ts [--threads 2] [--rounds 5] [--head-dim 64] [--rows 256]
 *        [--keys 1024] [--tiles 4]
 */
import * as ort from 'onnxruntime-node';
import { emptyPartial64, mergeInto } from '@starq/attention';
import type { ModelConfig } from '@starq/model';
import { buildAttendGraph } from '@starq/model/onnx/graphs';
import { buildChainGraph } from './attend-variants';
import { sessionOptions } from '@starq/model/runtime/session-options';
import { nowMs } from './timing';
import { arg } from './args';
import { lcgFloats as rand } from '@starq/model/perf/fill';

async function main(): Promise<void> {
  const threads = arg('--threads', 2);
  const rounds = arg('--rounds', 5);
  const D = arg('--head-dim', 64);
  const n = arg('--rows', 256);
  const w = arg('--keys', 1024);
  const P = arg('--tiles', 4);
  const cfg = { numHeads: 8, numKvHeads: 2, headDim: D } as ModelConfig;
  const { numHeads: H, numKvHeads: Hkv } = cfg;
  const so = sessionOptions({ threads });
  const single = await ort.InferenceSession.create(buildAttendGraph(cfg, false), so);
  const chain = await ort.InferenceSession.create(buildChainGraph(cfg, P), so);
  const q = new ort.Tensor('float32', rand(H * n * D, 1, 4), [H, n, D]);
  const ks = Array.from({ length: P }, (_, i) => new ort.Tensor('float32', rand(Hkv * w * D, 10 + i, 4), [Hkv, w, D]));
  const vs = Array.from({ length: P }, (_, i) => new ort.Tensor('float32', rand(Hkv * w * D, 20 + i), [Hkv, w, D]));
  const feeds: Record<string, ort.Tensor> = { q };
  ks.forEach((k, i) => (feeds[`k${i}`] = k));
  vs.forEach((v, i) => (feeds[`v${i}`] = v));
  const runSingles = async () => {
    const acc = emptyPartial64(H, n, D);
    for (let i = 0; i < P; i++) {
      const r = await single.run({ q, k: ks[i], v: vs[i] });
      mergeInto(acc, { o: r.o.data as Float32Array, lse: r.lse.data as Float32Array, heads: H, rows: n, headDim: D });
    }
    return acc;
  };
  const a = await runSingles();
  const c = await chain.run(feeds);
  let dO = 0;
  const co = c.o.data as Float32Array;
  for (let i = 0; i < co.length; i++) dO = Math.max(dO, Math.abs(co[i] - a.o[i]));
  let best = [Infinity, Infinity];
  for (let r = 0; r < rounds; r++) {
    let t0 = nowMs();
    await runSingles();
    best[0] = Math.min(best[0], nowMs() - t0);
    t0 = nowMs();
    await chain.run(feeds);
    best[1] = Math.min(best[1], nowMs() - t0);
  }
  const flops = 4 * H * n * w * D * P;
  process.stdout.write(`${P} open tiles of ${n}×${w}, D ${D}: singles + JS merge ${best[0].toFixed(2)} ms (${(flops / best[0] / 1e6).toFixed(1)} GFLOP/s), chain ${best[1].toFixed(2)} ms (${(flops / best[1] / 1e6).toFixed(1)} GFLOP/s); max|Δo| ${dO.toExponential(1)}\n`);
  best = [0, 0];
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
