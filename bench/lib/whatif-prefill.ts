/**
 * What-if harness: a causal prefill of the random bench model run directly on ORT sessions in this
 * thread, with the engine's own qkv/post/head graphs (libs/model/src/onnx/graphs.ts) and the same
 * chunked attention + exact LSE merge as the engine's `attendPages`, but with the attention tile
 * shape and the attend graph formulation as parameters, to predict what a tile shape or a graph
 * formulation gains before the engine adopts it; "engine graphs" below are the graphs of the
 * engine's 'paged' attention path (`buildAttendGraphReference`):
 *
 *   engine-like   rows 1024 × keys 4096 tiles, engine attend graphs (= the engine's defaults)
 *   tiles         rows 512 × keys 1024 tiles, engine attend graphs
 *   tiles+bias    rows 512 × keys 1024, masked graph with an additive (Tq, Tk) bias (attend-variants.ts 'bias4d')
 *   tiles+softmax rows 512 × keys 1024, 'softmax' variant for masked and open tiles
 *
 * Variants run in interleaved rounds (best per variant); logits of the last row are compared with
 * the first variant's. One engine.forward with default options is timed in every round too, so
 * the harness can be checked against the real engine.
 *
 *   npx tsx bench/lib/whatif-prefill.ts [--threads 2] [--n 16384] [--rounds 2] [--variants a,b,...]
 *                                       [--no-engine] [--json FILE]
 */
import * as fs from 'node:fs';
import * as ort from 'onnxruntime-node';
import { mergeInto, type Partial } from '@starq/attention';
import { loadConfig, ModelEngine, type ModelConfig, type ModelWeights } from '@starq/model';
import { buildAttendGraphReference, buildHeadGraph, buildPostGraph, buildQkvGraph } from '@starq/model/onnx/graphs';
import { ropeCosSin, ropeInvFreq } from '@starq/model/rope';
import { loadModelDir } from '@starq/model/weights';
import { buildAttendVariant } from './attend-variants';
import { forwardFlops } from './flops';
import { writeRandomBenchModel } from './models';
import { sessionOptions } from '@starq/model/runtime/session-options';
import { diffCounters, procCounters, type ProcCounters } from './procstat';
import { measureMatmul } from './roofline';
import { textTable } from '@starq/report';
import { nowMs, progress } from './timing';
import { argStr } from './args';

interface VariantSpec {
  name: string;
  rows: number;
  keys: number;
  masked: 'engine' | 'bias4d' | 'softmax';
  open: 'engine' | 'softmax';
}

const VARIANTS: Record<string, VariantSpec> = {
  'engine-like': { name: 'engine-like (1024×4096 tiles)', rows: 1024, keys: 4096, masked: 'engine', open: 'engine' },
  tiles: { name: '512×1024 tiles', rows: 512, keys: 1024, masked: 'engine', open: 'engine' },
  'tiles+bias': { name: '512×1024 tiles + bias mask', rows: 512, keys: 1024, masked: 'bias4d', open: 'engine' },
  'tiles+softmax': { name: '512×1024 tiles + bias mask + Softmax', rows: 512, keys: 1024, masked: 'softmax', open: 'softmax' },
};

class Harness {
  private qkvS: ort.InferenceSession[] = [];
  private postS: ort.InferenceSession[] = [];
  private headS!: ort.InferenceSession;
  private attend = new Map<string, ort.InferenceSession>();
  private readonly invFreq: Float64Array;

  constructor(
    readonly cfg: ModelConfig,
    private readonly weights: ModelWeights,
    private readonly threads: number,
  ) {
    this.invFreq = ropeInvFreq(cfg);
  }

  async init(): Promise<void> {
    const so = sessionOptions({ threads: this.threads });
    for (let l = 0; l < this.cfg.numLayers; l++) {
      this.qkvS.push(await ort.InferenceSession.create(buildQkvGraph(this.cfg, this.weights.layers[l], l), so));
      this.postS.push(await ort.InferenceSession.create(buildPostGraph(this.cfg, this.weights.layers[l], l), so));
    }
    this.headS = await ort.InferenceSession.create(buildHeadGraph(this.cfg, this.weights), so);
    this.attend.set('masked:engine', await ort.InferenceSession.create(buildAttendGraphReference(this.cfg, true), so));
    this.attend.set('open:engine', await ort.InferenceSession.create(buildAttendGraphReference(this.cfg, false), so));
    this.attend.set('masked:bias4d', await ort.InferenceSession.create(buildAttendVariant(this.cfg, true, 'bias4d'), so));
    this.attend.set('masked:softmax', await ort.InferenceSession.create(buildAttendVariant(this.cfg, true, 'softmax'), so));
    this.attend.set('open:softmax', await ort.InferenceSession.create(buildAttendVariant(this.cfg, false, 'softmax'), so));
  }

  /** Prefill positions 0..N−1; returns the last row's logits and time per piece. */
  async prefill(ids: Int32Array, v: VariantSpec): Promise<{ logits: Float32Array; pieceMs: Record<string, number>; attendCalls: number }> {
    const { hiddenSize: hid, numHeads: H, numKvHeads: Hkv, headDim: D, numLayers: L } = this.cfg;
    const N = ids.length;
    const pieceMs: Record<string, number> = { qkv: 0, kvchunks: 0, attend: 0, post: 0, head: 0 };
    let calls = 0;
    const positions = Int32Array.from({ length: N }, (_, i) => i);
    const { cos, sin } = ropeCosSin(this.invFreq, positions);
    let x: Float32Array = new Float32Array(N * hid);
    ids.forEach((id, t) => x.set(this.weights.embed.subarray(id * hid, (id + 1) * hid), t * hid));
    for (let l = 0; l < L; l++) {
      let t0 = nowMs();
      const out = await this.qkvS[l].run({
        x: new ort.Tensor('float32', x, [N, hid]),
        cos: new ort.Tensor('float32', cos, [N, D / 2]),
        sin: new ort.Tensor('float32', sin, [N, D / 2]),
      });
      const q = out.q.data as Float32Array;
      const k = out.k.data as Float32Array;
      const vv = out.v.data as Float32Array;
      pieceMs.qkv += nowMs() - t0;

      // K/V in key chunks (Hkv, C, D), as the engine's pages hold them
      t0 = nowMs();
      const C = v.keys;
      const chunks: { k: ort.Tensor; v: ort.Tensor; kpos: ort.Tensor; min: number; max: number }[] = [];
      for (let c0 = 0; c0 < N; c0 += C) {
        const n = Math.min(C, N - c0);
        const kc = new Float32Array(Hkv * n * D);
        const vc = new Float32Array(Hkv * n * D);
        for (let h = 0; h < Hkv; h++) {
          kc.set(k.subarray((h * N + c0) * D, (h * N + c0 + n) * D), h * n * D);
          vc.set(vv.subarray((h * N + c0) * D, (h * N + c0 + n) * D), h * n * D);
        }
        chunks.push({
          k: new ort.Tensor('float32', kc, [Hkv, n, D]),
          v: new ort.Tensor('float32', vc, [Hkv, n, D]),
          kpos: new ort.Tensor('int64', BigInt64Array.from({ length: n }, (_, i) => BigInt(c0 + i)), [n]),
          min: c0,
          max: c0 + n - 1,
        });
      }
      pieceMs.kvchunks += nowMs() - t0;

      t0 = nowMs();
      const o = new Float32Array(H * N * D);
      for (let r0 = 0; r0 < N; r0 += v.rows) {
        const r1 = Math.min(N, r0 + v.rows);
        const n = r1 - r0;
        const qc = new Float32Array(H * n * D);
        for (let h = 0; h < H; h++) qc.set(q.subarray((h * N + r0) * D, (h * N + r1) * D), h * n * D);
        const qT = new ort.Tensor('float32', qc, [H, n, D]);
        const qposT = new ort.Tensor('int64', BigInt64Array.from({ length: n }, (_, i) => BigInt(r0 + i)), [n]);
        let acc: Partial | null = null;
        for (const ch of chunks) {
          if (ch.min > r1 - 1) continue; // every key after every row
          const open = ch.max <= r0;
          const sess = this.attend.get(open ? `open:${v.open}` : `masked:${v.masked}`)!;
          const feeds: Record<string, ort.Tensor> = { q: qT, k: ch.k, v: ch.v };
          if (!open) {
            feeds.qpos = qposT;
            feeds.kpos = ch.kpos;
          }
          const res = await sess.run(feeds);
          calls++;
          const part: Partial = { o: res.o.data as Float32Array, lse: res.lse.data as Float32Array, heads: H, rows: n, headDim: D };
          if (acc === null) acc = part;
          else mergeInto(acc, part);
        }
        for (let h = 0; h < H; h++) o.set(acc!.o.subarray(h * n * D, (h + 1) * n * D), (h * N + r0) * D);
      }
      pieceMs.attend += nowMs() - t0;

      t0 = nowMs();
      const y = await this.postS[l].run({ x: new ort.Tensor('float32', x, [N, hid]), attn: new ort.Tensor('float32', o, [H, N, D]) });
      x = y.y.data as Float32Array;
      pieceMs.post += nowMs() - t0;
    }
    const t0 = nowMs();
    const lg = await this.headS.run({ x: new ort.Tensor('float32', x.slice((N - 1) * hid), [1, hid]) });
    pieceMs.head += nowMs() - t0;
    return { logits: lg.logits.data as Float32Array, pieceMs, attendCalls: calls };
  }

  async release(): Promise<void> {
    for (const s of [...this.qkvS, ...this.postS, this.headS, ...this.attend.values()]) await s.release();
  }
}

interface Row {
  variant: string;
  times: number[];
  bestMs: number;
  gflops: number;
  speedup: number;
  maxAbsLogitDiff: number;
  pieceMs: Record<string, number>;
  attendCalls: number;
  counters: ProcCounters;
}

async function main(): Promise<void> {
  const threads = Number(argStr('--threads', '2'));
  const N = Number(argStr('--n', '16384'));
  const rounds = Number(argStr('--rounds', '2'));
  const names = argStr('--variants', 'engine-like,tiles,tiles+bias,tiles+softmax').split(',');
  const withEngine = !process.argv.includes('--no-engine');
  for (const n of names) if (!VARIANTS[n]) throw new Error(`unknown variant ${n}; known: ${Object.keys(VARIANTS).join(', ')}`);
  const { dir, cleanup } = writeRandomBenchModel(Math.max(16448, N + 64));
  try {
    const { config: cfg, weights } = loadModelDir(dir);
    const ids = Int32Array.from({ length: N }, (_, i) => 3 + ((i * 7919) % (cfg.vocabSize - 3)));
    const harness = new Harness(cfg, weights, threads);
    await harness.init();
    await harness.prefill(ids.subarray(0, 64), VARIANTS[names[0]]); // warm-up
    const keys = [...names, ...(withEngine ? ['engine.forward'] : [])];
    const times = new Map<string, number[]>(keys.map((k) => [k, []]));
    const logits = new Map<string, Float32Array>();
    const pieces = new Map<string, Record<string, number>>();
    const calls = new Map<string, number>();
    const counters = new Map<string, ProcCounters[]>(keys.map((k) => [k, []]));
    const mm: number[] = [];
    for (let r = 0; r < rounds; r++) {
      mm.push((await measureMatmul({ m: 2048, k: 512, n: 2048 }, 'weight', { threads, reps: 3 })).gflops);
      for (const key of keys) {
        const c0 = procCounters();
        const t0 = nowMs();
        if (key === 'engine.forward') {
          const engine = await ModelEngine.load(dir, loadConfig(dir), { threads });
          try {
            const t1 = nowMs();
            const c1 = procCounters();
            const out = await engine.forward({ cacheId: 'c', ids, positions: Int32Array.from({ length: N }, (_, i) => i), logits: 'last', reserve: N });
            const dt = nowMs() - t1;
            times.get(key)!.push(dt);
            counters.get(key)!.push(diffCounters(c1, procCounters()));
            logits.set(key, out!);
            progress(`round ${r + 1}: ${key}: ${(dt / 1000).toFixed(2)} s`);
          } finally {
            await engine.close();
          }
          continue;
        }
        const res = await harness.prefill(ids, VARIANTS[key]);
        const dt = nowMs() - t0;
        times.get(key)!.push(dt);
        counters.get(key)!.push(diffCounters(c0, procCounters()));
        logits.set(key, res.logits);
        if (dt <= Math.min(...times.get(key)!)) pieces.set(key, res.pieceMs);
        calls.set(key, res.attendCalls);
        const cc = counters.get(key)![counters.get(key)!.length - 1];
        progress(`round ${r + 1}: ${key}: ${(dt / 1000).toFixed(2)} s, ${cc.minorFaults} minor faults, sys ${(cc.sysMs / 1000).toFixed(1)} s (${Object.entries(res.pieceMs).map(([p, ms]) => `${p} ${(ms / 1000).toFixed(1)}`).join(', ')})`);
      }
    }
    await harness.release();
    const flops = forwardFlops(cfg, 0, N, 1).total;
    const ref = logits.get(keys[0])!;
    const base = Math.min(...times.get(keys[0])!);
    const rows: Row[] = keys.map((k) => {
      const t = times.get(k)!;
      const best = Math.min(...t);
      const lg = logits.get(k)!;
      let d = 0;
      for (let i = 0; i < ref.length; i++) d = Math.max(d, Math.abs(lg[i] - ref[i]));
      return {
        variant: k === 'engine.forward' ? 'engine.forward (defaults)' : VARIANTS[k].name,
        times: t,
        bestMs: best,
        gflops: flops / (best * 1e6),
        speedup: base / best,
        maxAbsLogitDiff: d,
        pieceMs: pieces.get(k) ?? {},
        attendCalls: calls.get(k) ?? NaN,
        counters: counters.get(k)![t.indexOf(best)],
      };
    });
    const rate = Math.max(...mm);
    process.stdout.write(`N=${N}, threads ${threads}; MatMul reference per round ${mm.map((x) => x.toFixed(1)).join(', ')} GFLOP/s (best ${rate.toFixed(1)})\n`);
    process.stdout.write(
      textTable(
        [
          { key: 'v', title: 'variant', align: 'left' },
          { key: 'ms', title: 'best ms', digits: 0 },
          { key: 'gfs', title: 'GFLOP/s', digits: 1 },
          { key: 'pct', title: '% MatMul', digits: 1 },
          { key: 'sp', title: 'speed-up', digits: 2 },
          { key: 'att', title: 'attend s', digits: 1 },
          { key: 'calls', title: 'attend calls' },
          { key: 'cpu', title: 'CPU s', digits: 1 },
          { key: 'dl', title: 'max|Δlogit|', align: 'right' },
        ],
        rows.map((r) => ({
          v: r.variant,
          ms: r.bestMs,
          gfs: r.gflops,
          pct: (100 * r.gflops) / rate,
          sp: r.speedup,
          att: r.pieceMs.attend !== undefined ? r.pieceMs.attend / 1000 : null,
          calls: Number.isNaN(r.attendCalls) ? null : r.attendCalls,
          cpu: (r.counters.userMs + r.counters.sysMs) / 1000,
          dl: r.maxAbsLogitDiff.toExponential(1),
        })),
      ) + '\n',
    );
    const json = argStr('--json', '');
    if (json) fs.writeFileSync(json, JSON.stringify({ date: new Date().toISOString(), threads, n: N, rounds, matmulGflops: mm, rows }, null, 2) + '\n');
  } finally {
    cleanup();
  }
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
