/**
 * The roofline reference: GFLOP/s of one plain ORT fp32 MatMul, (M×K)·(K×N), built as a one-node
 * ONNX graph with the project's graph builder. Two variants:
 *   - `weight`: B is an initializer (ORT pre-packs it, as for the engine's linear layers);
 *   - `inputs`: A and B are both graph inputs (as for the engine's attention MatMuls).
 * The figure is the best of `reps` timed runs after one warm-up run.
 */
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '@starq/model/onnx/graph-builder';
import { sessionOptions } from '@starq/model/runtime/session-options';
import { nowMs } from './timing';
import { lcgFloats as randomArray } from '@starq/model/perf/fill';

export interface MatmulShape {
  /** Optional leading batch dimension (both operands batched). */
  batch?: number;
  m: number;
  k: number;
  n: number;
}

export interface MatmulResult {
  variant: 'weight' | 'inputs';
  shape: MatmulShape;
  threads: number;
  spinning: boolean;
  bestMs: number;
  medianMs: number;
  gflops: number; // at bestMs
  flops: number;
}

export function buildMatmulGraph(shape: MatmulShape, variant: 'weight' | 'inputs', bData?: Float32Array): Uint8Array {
  const { m, k, n } = shape;
  const lead = shape.batch ? [shape.batch] : [];
  const g = new GraphBuilder(`matmul_${variant}`);
  const a = g.input('a', 'float32', [...lead, m, k]);
  const b = variant === 'weight' ? g.weight('b', bData ?? randomArray((shape.batch ?? 1) * k * n, 2), [...lead, k, n]) : g.input('b', 'float32', [...lead, k, n]);
  g.output('c', g.op('MatMul', [a, b]), 'float32', [...lead, m, n]);
  return g.toBytes();
}

export async function measureMatmul(
  shape: MatmulShape,
  variant: 'weight' | 'inputs',
  opts: { threads: number; reps: number; spinning?: boolean },
): Promise<MatmulResult> {
  const batch = shape.batch ?? 1;
  const lead = shape.batch ? [shape.batch] : [];
  const aData = randomArray(batch * shape.m * shape.k, 1);
  const bData = randomArray(batch * shape.k * shape.n, 2);
  const session = await ort.InferenceSession.create(buildMatmulGraph(shape, variant, bData), sessionOptions({ threads: opts.threads, spinning: opts.spinning }));
  const feeds: Record<string, ort.Tensor> = { a: new ort.Tensor('float32', aData, [...lead, shape.m, shape.k]) };
  if (variant === 'inputs') feeds.b = new ort.Tensor('float32', bData, [...lead, shape.k, shape.n]);
  await session.run(feeds); // warm-up (allocations, packing)
  const times: number[] = [];
  for (let r = 0; r < opts.reps; r++) {
    const t0 = nowMs();
    await session.run(feeds);
    times.push(nowMs() - t0);
  }
  await session.release();
  const flops = 2 * batch * shape.m * shape.k * shape.n;
  const best = Math.min(...times);
  const sorted = [...times].sort((x, y) => x - y);
  return {
    variant,
    shape,
    threads: opts.threads,
    spinning: opts.spinning ?? false,
    bestMs: best,
    medianMs: sorted[sorted.length >> 1],
    gflops: flops / (best * 1e6),
    flops,
  };
}
