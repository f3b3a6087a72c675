/**
 * Probe: the engine's `post` graph against the split-free variant (post-variants.ts), layer 0 of
 * the random bench model, T rows; interleaved rounds, best per variant; outputs compared. Also
 * times the engine graph with ORT's memory-pattern planner off (session option), to separate
 * the cost of page faults on freshly mapped buffers.
 *
 *   npx tsx bench/lib/probe-post.ts [--threads 2] [--rows 4096] [--rounds 5]
 */
import * as ort from 'onnxruntime-node';
import { buildPostGraph } from '@starq/model/onnx/graphs';
import { loadModelDir } from '@starq/model/weights';
import { writeRandomBenchModel } from './models';
import { sessionOptions } from '@starq/model/runtime/session-options';
import { buildPostSplitFree } from './post-variants';
import { textTable } from '@starq/report';
import { nowMs, progress } from './timing';
import { arg } from './args';
import { lcgFloats as rand } from '@starq/model/perf/fill';

async function main(): Promise<void> {
  const threads = arg('--threads', 2);
  const T = arg('--rows', 4096);
  const rounds = arg('--rounds', 5);
  const { dir, cleanup } = writeRandomBenchModel(16448);
  try {
    const { config: cfg, weights } = loadModelDir(dir);
    const { hiddenSize: hid, numHeads: H, headDim: D, intermediateSize: I } = cfg;
    const feeds = { x: new ort.Tensor('float32', rand(T * hid, 1), [T, hid]), attn: new ort.Tensor('float32', rand(H * T * D, 2), [H, T, D]) };
    const so = sessionOptions({ threads });
    const variants: [string, Uint8Array, ort.InferenceSession.SessionOptions][] = [
      ['engine', buildPostGraph(cfg, weights.layers[0], 0), so],
      ['engine, memPattern off', buildPostGraph(cfg, weights.layers[0], 0), { ...so, enableMemPattern: false }],
      ['split-free', buildPostSplitFree(cfg, weights.layers[0], 0), so],
    ];
    const sessions = await Promise.all(variants.map(([, b, o]) => ort.InferenceSession.create(b, o)));
    const ref = (await sessions[0].run(feeds)).y.data as Float32Array;
    const diff: number[] = [];
    for (const s of sessions) {
      const y = (await s.run(feeds)).y.data as Float32Array;
      let m = 0;
      for (let i = 0; i < y.length; i++) m = Math.max(m, Math.abs(y[i] - ref[i]));
      diff.push(m);
    }
    const best = variants.map(() => Infinity);
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < sessions.length; i++) {
        const t0 = nowMs();
        await sessions[i].run(feeds);
        best[i] = Math.min(best[i], nowMs() - t0);
      }
      progress(`round ${r + 1}: ${best.map((b) => b.toFixed(1)).join(' / ')} ms`);
    }
    const flops = 2 * T * (H * D * hid + 3 * hid * I);
    process.stdout.write(
      `post graph, T=${T} (useful ${(flops / 1e9).toFixed(2)} GFLOP)\n` +
        textTable(
          [
            { key: 'v', title: 'variant', align: 'left' },
            { key: 'ms', title: 'best ms', digits: 1 },
            { key: 'gfs', title: 'GFLOP/s', digits: 1 },
            { key: 'sp', title: 'vs engine', digits: 2 },
            { key: 'd', title: 'max|Δy|', align: 'right' },
          ],
          variants.map(([name], i) => ({ v: name, ms: best[i], gfs: flops / (best[i] * 1e6), sp: best[0] / best[i], d: diff[i].toExponential(1) })),
        ) +
        '\n',
    );
    for (const s of sessions) await s.release();
  } finally {
    cleanup();
  }
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
