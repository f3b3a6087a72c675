/**
 * Probe: per-op ORT profile of the engine's own graphs (libs/model/src/onnx/graphs.ts, used as
 * they are) on the random bench model, at the shapes a long prefill runs them:
 *   qkv(layer 0) and post(layer 0) over T rows;
 *   attend (masked and open) over one query chunk × one KV page, the chunk sizes the engine picks
 *   with its default options (rows = scoreBudget / (2·4·H·page), page = 4096).
 *
 *   npx tsx bench/lib/probe-ops.ts [--threads 2] [--rows 16384] [--q-rows 1024] [--keys 4096] [--runs 3]
 *                                  [--only qkv,post,attend] [--compare-threads 1]
 *
 * Prints, per graph, the mean wall time per run, ORT's model_run time, and time per op type and
 * per node (top entries). With --compare-threads K, the attend graphs are also profiled with K
 * intra-op threads and the per-op-type times are printed side by side (ops whose time does not
 * drop with more threads run single-threaded).
 */
import * as ort from 'onnxruntime-node';
import { buildAttendGraphReference, buildPostGraph, buildQkvGraph } from '@starq/model/onnx/graphs';
import { ropeCosSin, ropeInvFreq } from '@starq/model/rope';
import { loadModelDir } from '@starq/model/weights';
import { writeRandomBenchModel } from './models';
import { profileSession, type OpProfile } from './ort-profile';
import { textTable } from '@starq/report';
import { progress } from './timing';
import { arg } from './args';
import { lcgFloats as rand } from '@starq/model/perf/fill';

export function printProfile(title: string, p: OpProfile, usefulFlops: number, topNodes = 12): void {
  const gf = usefulFlops > 0 ? ` — useful ${(usefulFlops / 1e9).toFixed(2)} GFLOP → ${(usefulFlops / (p.wallMs * 1e6)).toFixed(1)} GFLOP/s` : '';
  process.stdout.write(`\n## ${title}: wall ${p.wallMs.toFixed(1)} ms/run, ORT model_run ${p.modelRunMs.toFixed(1)} ms, kernels ${p.kernelMs.toFixed(1)} ms${gf}\n`);
  process.stdout.write(
    textTable(
      [
        { key: 'op', title: 'op type', align: 'left' },
        { key: 'ms', title: 'ms/run', digits: 1 },
        { key: 'pct', title: '% kernels', digits: 1 },
        { key: 'calls', title: 'nodes' },
      ],
      p.byOpType.map((o) => ({ op: o.opType, ms: o.ms, pct: (100 * o.ms) / p.kernelMs, calls: Math.round(o.calls) })),
    ) + '\n',
  );
  process.stdout.write(
    `top nodes:\n` +
      textTable(
        [
          { key: 'node', title: 'node', align: 'left' },
          { key: 'op', title: 'op', align: 'left' },
          { key: 'ms', title: 'ms/run', digits: 1 },
          { key: 'shape', title: 'output', align: 'left' },
        ],
        p.byNode.slice(0, topNodes).map((o) => ({ node: o.name, op: o.opType, ms: o.ms, shape: (o.outputShape ?? '').slice(0, 60) })),
      ) +
      '\n',
  );
}

async function main(): Promise<void> {
  const threads = arg('--threads', 2);
  const T = arg('--rows', 16384);
  const Tq = arg('--q-rows', 1024);
  const Tk = arg('--keys', 4096);
  const runs = arg('--runs', 3);
  const onlyIdx = process.argv.indexOf('--only');
  const only = new Set((onlyIdx >= 0 ? process.argv[onlyIdx + 1] : 'qkv,post,attend').split(','));
  const cmpThreads = arg('--compare-threads', 0);
  const { dir, cleanup } = writeRandomBenchModel(Math.max(16448, T + 64));
  try {
    const { config: cfg, weights } = loadModelDir(dir);
    const { hiddenSize: hid, numHeads: H, numKvHeads: Hkv, headDim: D, intermediateSize: I } = cfg;
    const positions = Int32Array.from({ length: T }, (_, i) => i);
    const { cos, sin } = ropeCosSin(ropeInvFreq(cfg), positions);
    const x = new ort.Tensor('float32', rand(T * hid, 1), [T, hid]);

    if (only.has('qkv')) {
    progress(`qkv T=${T}`);
    const qkv = await profileSession(
      buildQkvGraph(cfg, weights.layers[0], 0),
      { x, cos: new ort.Tensor('float32', cos, [T, D / 2]), sin: new ort.Tensor('float32', sin, [T, D / 2]) },
      { threads, runs },
    );
    printProfile(`qkv, T=${T}`, qkv, 2 * T * hid * (H + 2 * Hkv) * D);
    }
    if (only.has('post')) {

    progress(`post T=${T}`);
    const post = await profileSession(buildPostGraph(cfg, weights.layers[0], 0), { x, attn: new ort.Tensor('float32', rand(H * T * D, 2), [H, T, D]) }, { threads, runs });
    printProfile(`post, T=${T}`, post, 2 * T * (H * D * hid + 3 * hid * I));
    }
    if (!only.has('attend')) return;

    // One attention chunk: Tq query rows at the end of a Tk-key page (diagonal chunk: masked) and
    // the same rows against an earlier, fully visible page (open).
    const q = new ort.Tensor('float32', rand(H * Tq * D, 3, 2), [H, Tq, D]);
    const k = new ort.Tensor('float32', rand(Hkv * Tk * D, 4, 2), [Hkv, Tk, D]);
    const v = new ort.Tensor('float32', rand(Hkv * Tk * D, 5), [Hkv, Tk, D]);
    const qpos = new ort.Tensor('int64', BigInt64Array.from({ length: Tq }, (_, i) => BigInt(Tk - Tq + i)), [Tq]);
    const kpos = new ort.Tensor('int64', BigInt64Array.from({ length: Tk }, (_, i) => BigInt(i)), [Tk]);
    const issued = 4 * H * Tq * Tk * D;
    progress(`attend masked Tq=${Tq} Tk=${Tk}`);
    const am = await profileSession(buildAttendGraphReference(cfg, true), { q, k, v, qpos, kpos }, { threads, runs });
    printProfile(`attend masked, Tq=${Tq}, Tk=${Tk} (issued FLOPs counted)`, am, issued);
    progress(`attend open Tq=${Tq} Tk=${Tk}`);
    const ao = await profileSession(buildAttendGraphReference(cfg, false), { q, k, v }, { threads, runs });
    printProfile(`attend open, Tq=${Tq}, Tk=${Tk}`, ao, issued);
    if (cmpThreads > 0) {
      const am1 = await profileSession(buildAttendGraphReference(cfg, true), { q, k, v, qpos, kpos }, { threads: cmpThreads, runs });
      const ao1 = await profileSession(buildAttendGraphReference(cfg, false), { q, k, v }, { threads: cmpThreads, runs });
      for (const [name, a, b] of [['masked', am, am1], ['open', ao, ao1]] as const) {
        process.stdout.write(`\n## attend ${name}: ms/run per op type, ${threads} vs ${cmpThreads} threads\n`);
        process.stdout.write(
          textTable(
            [
              { key: 'op', title: 'op type', align: 'left' },
              { key: 'a', title: `${threads} threads`, digits: 1 },
              { key: 'b', title: `${cmpThreads} threads`, digits: 1 },
              { key: 'sp', title: 'speed-up', digits: 2 },
            ],
            a.byOpType.map((o) => {
              const ob = b.byOpType.find((x) => x.opType === o.opType);
              return { op: o.opType, a: o.ms, b: ob?.ms ?? null, sp: ob ? ob.ms / o.ms : null };
            }),
          ) + '\n',
        );
      }
    }
  } finally {
    cleanup();
  }
}

if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(`${(e as Error).stack ?? e}\n`);
    process.exit(1);
  });
}
