/**
 * The roofline of a speed benchmark: GFLOP/s of one plain ORT fp32 MatMul (M×K)·(K×N), a one-node
 * ONNX graph built with the project's graph builder, run with the engine's session options
 * (`sessionOptions`: intra-op threads, spinning off). B is an initializer (pre-packed, as for the engine's
 * linear layers). The figure is the best of `reps` timed runs after a warm-up run — the rate the
 * engine could reach if it did nothing but large matmuls.
 */
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../onnx/graph-builder';
import { sessionOptions } from '../runtime/session-options';
import { lcgFloats as filler } from './fill';

export interface RooflineOptions {
  threads: number;
  /** @defaultValue 2048 */
  m?: number;
  /** @defaultValue 1024 */
  k?: number;
  /** @defaultValue 1024 */
  n?: number;
  /** @defaultValue 7 */
  reps?: number;
}

export interface RooflineResult {
  matmulGflops: number;
  shape: { m: number; k: number; n: number };
  threads: number;
  bestMs: number;
  medianMs: number;
}

export async function measureRoofline(opts: RooflineOptions): Promise<RooflineResult> {
  const m = opts.m ?? 2048;
  const k = opts.k ?? 1024;
  const n = opts.n ?? 1024;
  const reps = Math.max(1, opts.reps ?? 7);
  const g = new GraphBuilder('roofline_matmul');
  const a = g.input('a', 'float32', [m, k]); // (M, K)
  const b = g.weight('b', filler(k * n, 2), [k, n]); // (K, N)
  g.output('c', g.op('MatMul', [a, b]), 'float32', [m, n]); // (M, N)
  const session = await ort.InferenceSession.create(g.toBytes(), sessionOptions({ threads: opts.threads }));
  try {
    const feeds = { a: new ort.Tensor('float32', filler(m * k, 1), [m, k]) };
    await session.run(feeds); // warm-up: allocations, packing
    const times: number[] = [];
    for (let r = 0; r < reps; r++) {
      const t0 = performance.now();
      await session.run(feeds);
      times.push(performance.now() - t0);
    }
    const sorted = [...times].sort((x, y) => x - y);
    const flops = 2 * m * k * n;
    return { matmulGflops: flops / (sorted[0] * 1e6), shape: { m, k, n }, threads: opts.threads, bestMs: sorted[0], medianMs: sorted[sorted.length >> 1] };
  } finally {
    await session.release();
  }
}

/** Shapes `bestRoofline` tries: a square-ish one and the wide one of bench/engine.ts. */
export const ROOFLINE_SHAPES: ReadonlyArray<{ m: number; k: number; n: number }> = [
  { m: 2048, k: 1024, n: 1024 },
  { m: 2048, k: 512, n: 2048 },
];

/** The best rate over `ROOFLINE_SHAPES` (one timed series each). */
export async function bestRoofline(threads: number, reps = 7): Promise<RooflineResult> {
  let best: RooflineResult | null = null;
  for (const shape of ROOFLINE_SHAPES) {
    const r = await measureRoofline({ threads, reps, ...shape });
    if (!best || r.matmulGflops > best.matmulGflops) best = r;
  }
  return best!;
}
