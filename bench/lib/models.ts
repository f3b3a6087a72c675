/** The benchmark models: the random Llama of the engine benchmark, written to a temp directory. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeRandomCheckpoint, type RandomCheckpointOptions } from '@starq/model/synthetic/random-checkpoint';

/** hidden 512, 8 layers, 8 heads (head_dim 64), 2 KV heads, intermediate 1376, vocab 512. */
export function randomBenchModelOptions(maxPositions: number): RandomCheckpointOptions {
  return {
    architecture: 'llama',
    hidden: 512,
    intermediate: 1376,
    layers: 8,
    heads: 8,
    kvHeads: 2,
    vocab: 512,
    maxPositions,
    dtype: 'F32',
    tied: false,
    sharded: false,
    seed: 7,
  };
}

export const RANDOM_BENCH_MODEL_NAME = 'random-512x8';

/** Write the random bench model to a fresh temp dir; returns the dir and a cleanup function. */
export function writeRandomBenchModel(maxPositions: number): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'starq-bench-'));
  writeRandomCheckpoint(dir, randomBenchModelOptions(maxPositions));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}
