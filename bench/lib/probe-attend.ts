/**
 * Probe: the engine's reference attend graph (the 'paged' path; the engine's only graph before
 * tiling) against the candidate formulations of attend-variants.ts ('softmax' ≈ the tiled path's), on
 * the random bench model's attention shape (H 8, Hkv 2, D 64), for several (query rows × keys)
 * tile sizes, masked (diagonal tile: rows are the last Tq positions of the Tk keys) and open.
 * Rounds are interleaved across variants and the best time per variant is kept, so machine noise
 * hits every variant alike. Every variant's o/lse is checked against the engine graph's.
 *
 *   npx tsx bench/lib/probe-attend.ts [--threads 2] [--rounds 3] [--tiles 1024x4096,256x4096,256x1024]
 *                                     [--head-dim 64] [--variants engine,tiled,...] [--json FILE]
 */
import * as fs from 'node:fs';
import * as ort from 'onnxruntime-node';
import type { ModelConfig } from '@starq/model';
import { buildAttendGraph, buildAttendGraphReference, MASKED_SCORE } from '@starq/model/onnx/graphs';
import { buildAttendVariant, buildTiledVariant, type AttendVariant } from './attend-variants';
import { sessionOptions } from '@starq/model/runtime/session-options';
import { textTable } from '@starq/report';
import { nowMs, progress } from './timing';
import { argStr } from './args';
import { lcgFloats as rand } from '@starq/model/perf/fill';

const SHAPE = { numHeads: 8, numKvHeads: 2, headDim: Number(argStr('--head-dim', '64')) } as ModelConfig;

export interface AttendProbeRow {
  tile: string;
  masked: boolean;
  variant: string;
  bestMs: number;
  gflops: number; // issued FLOPs (4·H·Tq·Tk·D) per second
  speedup: number; // engine bestMs / this bestMs
  maxAbsDiffO: number;
  maxAbsDiffLse: number;
}

export async function probeAttend(threads: number, rounds: number, tiles: [number, number][]): Promise<AttendProbeRow[]> {
  const { numHeads: H, numKvHeads: Hkv, headDim: D } = SHAPE;
  // Spinning variants are deliberately left out: a session whose threads spin keeps burning both
  // cores after its run and slows whatever runs next, which corrupts interleaved timing.
  // 'engine' = the reference graph (the 'paged' path); 'tiled' = the tiled path's graph (bias input).
  // 'tiled-expsum' / 'tiled-ones' / 'tiled-lse': alternatives to 'tiled' (attend-variants.ts buildTiledVariant).
  const variants = argStr('--variants', 'engine,bias,bias4d,softmax,tiled,tiled-expsum,tiled-ones').split(',') as ('engine' | 'tiled' | 'tiled-expsum' | 'tiled-ones' | 'tiled-lse' | AttendVariant)[];
  if (variants[0] !== 'engine') variants.unshift('engine');
  const rows: AttendProbeRow[] = [];
  for (const [Tq, Tk] of tiles) {
    const q = new ort.Tensor('float32', rand(H * Tq * D, 3, 4), [H, Tq, D]);
    const k = new ort.Tensor('float32', rand(Hkv * Tk * D, 4, 4), [Hkv, Tk, D]);
    const v = new ort.Tensor('float32', rand(Hkv * Tk * D, 5), [Hkv, Tk, D]);
    const qpos = new ort.Tensor('int64', BigInt64Array.from({ length: Tq }, (_, i) => BigInt(Tk - Tq + i)), [Tq]);
    const kpos = new ort.Tensor('int64', BigInt64Array.from({ length: Tk }, (_, i) => BigInt(i)), [Tk]);
    const biasData = new Float32Array(Tq * Tk); // (Tq, Tk): row i at position Tk − Tq + i sees keys ≤ it
    for (let i = 0; i < Tq; i++) biasData.fill(MASKED_SCORE, i * Tk + Tk - Tq + i + 1, (i + 1) * Tk);
    const bias = new ort.Tensor('float32', biasData, [Tq, Tk]);
    for (const masked of [true, false]) {
      const feeds: Record<string, ort.Tensor> = masked ? { q, k, v, qpos, kpos } : { q, k, v };
      const feedsOf = (va: string): Record<string, ort.Tensor> => (va.startsWith('tiled') && masked ? { q, k, v, bias } : feeds);
      const sessions = new Map<string, ort.InferenceSession>();
      for (const va of variants) {
        const bytes =
          va === 'engine'
            ? buildAttendGraphReference(SHAPE, masked)
            : va === 'tiled'
              ? buildAttendGraph(SHAPE, masked)
              : va === 'tiled-expsum' || va === 'tiled-ones' || va === 'tiled-lse'
                ? buildTiledVariant(SHAPE, masked, va.slice('tiled-'.length) as 'expsum' | 'ones' | 'lse')
                : buildAttendVariant(SHAPE, masked, va);
        sessions.set(va, await ort.InferenceSession.create(bytes, sessionOptions({ threads })));
      }
      const ref = await sessions.get('engine')!.run(feeds);
      const diffs = new Map<string, [number, number]>();
      for (const va of variants) {
        const out = await sessions.get(va)!.run(feedsOf(va)); // warm-up + correctness
        const d = (a: ort.Tensor, b: ort.Tensor) => {
          const x = a.data as Float32Array;
          const y = b.data as Float32Array;
          let m = 0;
          for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
          return m;
        };
        diffs.set(va, [d(out.o, ref.o), d(out.lse, ref.lse)]);
      }
      const best = new Map<string, number>(variants.map((va) => [va, Infinity]));
      for (let r = 0; r < rounds; r++) {
        for (const va of variants) {
          const t0 = nowMs();
          await sessions.get(va)!.run(feedsOf(va));
          best.set(va, Math.min(best.get(va)!, nowMs() - t0));
        }
      }
      for (const s of sessions.values()) await s.release();
      const issued = 4 * H * Tq * Tk * D;
      for (const va of variants) {
        rows.push({
          tile: `${Tq}x${Tk}`,
          masked,
          variant: va,
          bestMs: best.get(va)!,
          gflops: issued / (best.get(va)! * 1e6),
          speedup: best.get('engine')! / best.get(va)!,
          maxAbsDiffO: diffs.get(va)![0],
          maxAbsDiffLse: diffs.get(va)![1],
        });
      }
      progress(`tile ${Tq}x${Tk} ${masked ? 'masked' : 'open'}: ${variants.map((va) => `${va} ${best.get(va)!.toFixed(1)} ms`).join(', ')}`);
    }
  }
  return rows;
}

async function main(): Promise<void> {
  const threads = Number(argStr('--threads', '2'));
  const rounds = Number(argStr('--rounds', '3'));
  const tiles = argStr('--tiles', '1024x4096,256x4096,256x1024')
    .split(',')
    .map((t) => t.split('x').map(Number) as [number, number]);
  const rows = await probeAttend(threads, rounds, tiles);
  process.stdout.write(
    textTable(
      [
        { key: 'tile', title: 'Tq×Tk', align: 'left' },
        { key: 'kind', title: 'mask', align: 'left' },
        { key: 'variant', title: 'variant', align: 'left' },
        { key: 'ms', title: 'best ms', digits: 1 },
        { key: 'gfs', title: 'GFLOP/s', digits: 1 },
        { key: 'sp', title: 'vs engine', digits: 2 },
        { key: 'do', title: 'max|Δo|', align: 'right' },
        { key: 'dl', title: 'max|Δlse|', align: 'right' },
      ],
      rows.map((r) => ({
        tile: r.tile,
        kind: r.masked ? 'masked' : 'open',
        variant: r.variant,
        ms: r.bestMs,
        gfs: r.gflops,
        sp: r.speedup,
        do: r.maxAbsDiffO.toExponential(1),
        dl: r.maxAbsDiffLse.toExponential(1),
      })),
    ) + '\n',
  );
  const json = argStr('--json', '');
  if (json) fs.writeFileSync(json, JSON.stringify({ date: new Date().toISOString(), threads, rounds, rows }, null, 2) + '\n');
}

if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(`${(e as Error).stack ?? e}\n`);
    process.exit(1);
  });
}
