import type { RandomCheckpointOptions } from '@starq/model/synthetic/random-checkpoint';

/**
 * Options of a small random Llama for tests: F32, untied, one safetensors file, 2 layers of 4 heads
 * (2 KV heads), hidden 32, intermediate 64, vocabulary 100, 256 positions. A test names what it
 * depends on (the seed always, and any size it needs) and takes the rest from here.
 */
export function smallLlama(o: Partial<RandomCheckpointOptions> & Pick<RandomCheckpointOptions, 'seed'>): RandomCheckpointOptions {
  return { architecture: 'llama', hidden: 32, intermediate: 64, layers: 2, heads: 4, kvHeads: 2, vocab: 100, maxPositions: 256, dtype: 'F32', tied: false, sharded: false, ...o };
}
