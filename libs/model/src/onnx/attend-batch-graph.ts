/**
 * Many independent attention tiles in one ORT call — the graph behind batched phase-2 attention
 * (runtime/batched-attention.ts): a decode step of C requests attends C query rows, each over its
 * own request's keys, and one call for all of them replaces C calls.
 *
 *   inputs, per tile i:  q{i} (H, Tq_i, D), k{i} / v{i} (Hkv, Tk_i, D), and bias{i} (Tq_i, Tk_i)
 *                        when `masked[i]` (0 visible, −1e30 hidden, as in `buildAttendGraph`)
 *   outputs, per tile i: o{i} (H, Tq_i, D), lse{i} (H, Tq_i)
 *
 * Every tile has its own symbolic sizes and its own ops (`attendTile`, the ops of
 * `buildAttendGraph`): nothing is padded, no tile's keys are copied into a common tensor, and tile
 * i's outputs are what `buildAttendGraph` gives for tile i alone — whatever the other tiles are.
 */
import type { ModelConfig } from '../types';
import { GraphBuilder } from './graph-builder';
import { attendTile } from './graphs';

/** Most tiles one `buildAttendBatchGraph` call takes. */
export const MAX_BATCH_TILES = 32;

export function buildAttendBatchGraph(cfg: ModelConfig, masked: readonly boolean[]): Uint8Array {
  const n = masked.length;
  if (n < 1 || n > MAX_BATCH_TILES) throw new Error(`buildAttendBatchGraph: ${n} tiles, expected 1..${MAX_BATCH_TILES}`);
  const { numHeads: H, numKvHeads: Hkv, headDim: D } = cfg;
  const g = new GraphBuilder(`attend_batch_${masked.map((m) => (m ? 'm' : 'o')).join('')}`);
  masked.forEach((isMasked, i) => {
    const q = g.input(`q${i}`, 'float32', [H, `Tq${i}`, D]); // (H, Tq_i, D)
    const k = g.input(`k${i}`, 'float32', [Hkv, `Tk${i}`, D]); // (Hkv, Tk_i, D)
    const v = g.input(`v${i}`, 'float32', [Hkv, `Tk${i}`, D]); // (Hkv, Tk_i, D)
    const bias = isMasked ? g.input(`bias${i}`, 'float32', [`Tq${i}`, `Tk${i}`]) : null; // (Tq_i, Tk_i)
    const { o, lse } = attendTile(g, cfg, q, k, v, bias);
    g.output(`o${i}`, o, 'float32', [H, `Tq${i}`, D]);
    g.output(`lse${i}`, lse, 'float32', [H, `Tq${i}`]);
  });
  return g.toBytes();
}
