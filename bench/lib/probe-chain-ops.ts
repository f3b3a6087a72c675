/**
 * Probe: where an attend call of the engine's Global prefill spends its time — ORT's per-op profile
 * of the engine's own chain graph (`buildAttendChainGraph`, the graph that carries almost all of a
 * long prefill's attention) at the shape the tiled path runs it: one row tile of `rows` rows over
 * `tiles` open key tiles of `keys` keys. Kernel time per op type (MatMul = the useful GEMMs; the rest
 * = softmax and LSE passes over the score tiles, the in-graph merge), and the gap between ORT's
 * model_run and the JS wall time of `session.run` (per-call cost outside the kernels).
 *
 *   npx tsx bench/lib/probe-chain-ops.ts [--threads 2] [--runs 20] [--head-dim 32] [--rows 128] [--keys 1024] [--tiles 4]
 */
import type { ModelConfig } from '@starq/model';
import * as ort from 'onnxruntime-node';
import { buildAttendChainGraph } from '@starq/model/onnx/graphs';
import { lcgFloats as rand } from '@starq/model/perf/fill';
import { profileSession } from './ort-profile';
import { printProfile } from './probe-ops';
import { arg } from './args';

async function main(): Promise<void> {
  const threads = arg('--threads', 2);
  const runs = arg('--runs', 20);
  const D = arg('--head-dim', 32);
  const n = arg('--rows', 128);
  const w = arg('--keys', 1024);
  const P = arg('--tiles', 4);
  const cfg = { numHeads: 8, numKvHeads: 2, headDim: D } as ModelConfig;
  const { numHeads: H, numKvHeads: Hkv } = cfg;
  const feeds: Record<string, ort.Tensor> = { q: new ort.Tensor('float32', rand(H * n * D, 1, 4), [H, n, D]) };
  for (let i = 0; i < P; i++) {
    feeds[`k${i}`] = new ort.Tensor('float32', rand(Hkv * w * D, 10 + i, 4), [Hkv, w, D]);
    feeds[`v${i}`] = new ort.Tensor('float32', rand(Hkv * w * D, 20 + i), [Hkv, w, D]);
  }
  const p = await profileSession(buildAttendChainGraph(cfg, Array(P).fill(false)), feeds, { threads, runs });
  printProfile(`chain attend, ${P} open tiles of ${n}×${w}, D ${D}, ${threads} threads`, p, 4 * H * n * w * D * P);
  const mm = p.byOpType.find((o) => o.opType === 'MatMul')?.ms ?? 0;
  process.stdout.write(
    `MatMul ${((100 * mm) / p.wallMs).toFixed(1)}% of wall; other kernels ${((100 * (p.kernelMs - mm)) / p.wallMs).toFixed(1)}%; ` +
      `outside kernels (ORT scheduling + JS binding) ${((100 * (p.wallMs - p.kernelMs)) / p.wallMs).toFixed(1)}% (${(p.wallMs - p.kernelMs).toFixed(2)} ms/call)\n`,
  );
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
