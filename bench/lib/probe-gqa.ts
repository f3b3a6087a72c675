/**
 * Probe: one causal row tile of a Global prefill — `rows` query rows at positions past..past+rows−1
 * over every key before them — three ways:
 *   'chain' — the engine's tiled path for that row tile: chain calls of ≤ 4 key tiles of 1024
 *             (buildAttendChainGraph; the last tile masked), partials merged in JS (float64);
 *   'gqa'   — ORT's contrib GroupQueryAttention (com.microsoft, CPU kernel: per head a GEMM, the
 *             causal softmax in place, a GEMM; no LSE output), past K/V passed as (1, Hkv, past, D);
 *   'gqa-o' — the same without the copy of past K/V into present (output `present_*` still made by ORT).
 * Interleaved rounds, best per variant; GFLOP/s counts only the visible (row, key) pairs.
 *
 *   npx tsx bench/lib/probe-gqa.ts [--threads 2] [--rounds 5] [--head-dim 32] [--rows 128] [--past 4096]
 */
import * as ort from 'onnxruntime-node';
import { onnx } from 'onnx-proto';
import { emptyPartial64, mergeInto } from '@starq/attention';
import type { ModelConfig } from '@starq/model';
import { buildAttendChainGraph, buildAttendGraph, MASKED_SCORE } from '@starq/model/onnx/graphs';
import { sessionOptions } from '@starq/model/runtime/session-options';
import { lcgFloats as rand } from '@starq/model/perf/fill';
import { nowMs } from './timing';
import { arg } from './args';

const DT = onnx.TensorProto.DataType;

function vi(name: string, elem: number, dims: (number | string)[]): onnx.IValueInfoProto {
  return { name, type: { tensorType: { elemType: elem, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } } };
}

/** One GroupQueryAttention node: query (1, S, H·D), key/value (1, S, Hkv·D), past (1, Hkv, P, D). */
function gqaGraph(H: number, Hkv: number, D: number): Uint8Array {
  const node: onnx.INodeProto = {
    opType: 'GroupQueryAttention',
    domain: 'com.microsoft',
    input: ['query', 'key', 'value', 'past_key', 'past_value', 'seqlens_k', 'total_sequence_length'],
    output: ['output', 'present_key', 'present_value'],
    name: 'gqa',
    attribute: [
      { name: 'num_heads', type: onnx.AttributeProto.AttributeType.INT, i: H },
      { name: 'kv_num_heads', type: onnx.AttributeProto.AttributeType.INT, i: Hkv },
    ],
  };
  const model: onnx.IModelProto = {
    irVersion: 8,
    producerName: 'starq-probe',
    opsetImport: [{ domain: '', version: 18 }, { domain: 'com.microsoft', version: 1 }],
    graph: {
      name: 'gqa',
      node: [node],
      input: [
        vi('query', DT.FLOAT, [1, 'S', H * D]),
        vi('key', DT.FLOAT, [1, 'S', Hkv * D]),
        vi('value', DT.FLOAT, [1, 'S', Hkv * D]),
        vi('past_key', DT.FLOAT, [1, Hkv, 'P', D]),
        vi('past_value', DT.FLOAT, [1, Hkv, 'P', D]),
        vi('seqlens_k', DT.INT32, [1]),
        vi('total_sequence_length', DT.INT32, []),
      ],
      output: [vi('output', DT.FLOAT, [1, 'S', H * D]), vi('present_key', DT.FLOAT, [1, Hkv, 'T', D]), vi('present_value', DT.FLOAT, [1, Hkv, 'T', D])],
    },
  };
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
}

async function main(): Promise<void> {
  const threads = arg('--threads', 2);
  const rounds = arg('--rounds', 5);
  const D = arg('--head-dim', 32);
  const n = arg('--rows', 128);
  const past = arg('--past', 4096);
  const cfg = { numHeads: 8, numKvHeads: 2, headDim: D } as ModelConfig;
  const { numHeads: H, numKvHeads: Hkv } = cfg;
  const T = past + n;
  const so = sessionOptions({ threads });
  // Data: q (H, n, D) head-major as the engine has it; K/V of all T keys (Hkv, T, D).
  const q = rand(H * n * D, 1, 4);
  const k = rand(Hkv * T * D, 2, 4);
  const v = rand(Hkv * T * D, 3);

  // --- the engine's chain path: key tiles of 1024 cut from [0, T), last tile masked (causal diagonal)
  const single = { open: await ort.InferenceSession.create(buildAttendGraph(cfg, false), so), masked: await ort.InferenceSession.create(buildAttendGraph(cfg, true), so) };
  const chains = new Map<string, ort.InferenceSession>();
  const chain = async (masked: boolean[]) => {
    const key = masked.map((m) => (m ? 'm' : 'o')).join('');
    let s = chains.get(key);
    if (!s) chains.set(key, (s = await ort.InferenceSession.create(buildAttendChainGraph(cfg, masked), so)));
    return s;
  };
  const slice = (x: Float32Array, c0: number, c1: number) => {
    const w = c1 - c0;
    const out = new Float32Array(Hkv * w * D);
    for (let h = 0; h < Hkv; h++) out.set(x.subarray((h * T + c0) * D, (h * T + c1) * D), h * w * D);
    return out;
  };
  const tiles: { c0: number; c1: number; masked: boolean }[] = [];
  for (let c0 = 0; c0 < T; c0 += 1024) tiles.push({ c0, c1: Math.min(T, c0 + 1024), masked: Math.min(T, c0 + 1024) > past });
  const kvTiles = tiles.map((t) => ({ k: new ort.Tensor('float32', slice(k, t.c0, t.c1), [Hkv, t.c1 - t.c0, D]), v: new ort.Tensor('float32', slice(v, t.c0, t.c1), [Hkv, t.c1 - t.c0, D]) }));
  const qT = new ort.Tensor('float32', q, [H, n, D]);
  const runChain = async () => {
    const acc = emptyPartial64(H, n, D);
    for (let i = 0; i < tiles.length; i += 4) {
      const group = tiles.slice(i, i + 4);
      const feeds: Record<string, ort.Tensor> = { q: qT };
      group.forEach((t, gi) => {
        feeds[`k${gi}`] = kvTiles[i + gi].k;
        feeds[`v${gi}`] = kvTiles[i + gi].v;
        if (t.masked) {
          const w = t.c1 - t.c0;
          const bias = new Float32Array(n * w);
          for (let r = 0; r < n; r++) for (let j = 0; j < w; j++) if (t.c0 + j > past + r) bias[r * w + j] = MASKED_SCORE;
          feeds[`bias${gi}`] = new ort.Tensor('float32', bias, [n, w]);
        }
      });
      if (group.length === 1) for (const name of ['k', 'v', 'bias']) if (feeds[`${name}0`]) [feeds[name], feeds[`${name}0`]] = [feeds[`${name}0`], undefined as never];
      for (const key of Object.keys(feeds)) if (feeds[key] === undefined) delete feeds[key];
      const res = group.length === 1 ? await single[group[0].masked ? 'masked' : 'open'].run(feeds) : await (await chain(group.map((t) => t.masked))).run(feeds);
      mergeInto(acc, { o: res.o.data as Float32Array, lse: res.lse.data as Float32Array, heads: H, rows: n, headDim: D });
    }
    return acc.o;
  };

  // --- GQA: query (1, n, H·D) token-major; new k/v (1, n, Hkv·D); past (1, Hkv, past, D)
  const gqa = await ort.InferenceSession.create(gqaGraph(H, Hkv, D), so);
  const toTokenMajor = (x: Float32Array, heads: number, rows: number, r0: number, total: number) => {
    const out = new Float32Array(rows * heads * D); // (rows, heads·D)
    for (let h = 0; h < heads; h++) for (let r = 0; r < rows; r++) out.set(x.subarray((h * total + r0 + r) * D, (h * total + r0 + r + 1) * D), (r * heads + h) * D);
    return out;
  };
  const pastK = new ort.Tensor('float32', slice(k, 0, past), [1, Hkv, past, D]);
  const pastV = new ort.Tensor('float32', slice(v, 0, past), [1, Hkv, past, D]);
  const runGqa = async () => {
    const res = await gqa.run({
      query: new ort.Tensor('float32', toTokenMajor(q, H, n, 0, n), [1, n, H * D]),
      key: new ort.Tensor('float32', toTokenMajor(k, Hkv, n, past, T), [1, n, Hkv * D]),
      value: new ort.Tensor('float32', toTokenMajor(v, Hkv, n, past, T), [1, n, Hkv * D]),
      past_key: pastK,
      past_value: pastV,
      seqlens_k: new ort.Tensor('int32', Int32Array.of(T - 1), [1]),
      total_sequence_length: new ort.Tensor('int32', Int32Array.of(T), []),
    });
    const out = res.output.data as Float32Array; // (n, H·D)
    const o = new Float32Array(H * n * D);
    for (let r = 0; r < n; r++) for (let h = 0; h < H; h++) o.set(out.subarray((r * H + h) * D, (r * H + h + 1) * D), (h * n + r) * D);
    return o;
  };
  const a = await runChain();
  const b = await runGqa();
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  const best = { chain: Infinity, gqa: Infinity };
  for (let r = 0; r < rounds; r++) {
    let t0 = nowMs();
    await runChain();
    best.chain = Math.min(best.chain, nowMs() - t0);
    t0 = nowMs();
    await runGqa();
    best.gqa = Math.min(best.gqa, nowMs() - t0);
  }
  const pairs = n * past + (n * (n + 1)) / 2;
  const flops = 4 * H * D * pairs;
  const rate = (ms: number) => (flops / ms / 1e6).toFixed(1);
  process.stdout.write(`row tile ${n} rows after ${past} keys, D ${D}: chain ${best.chain.toFixed(2)} ms (${rate(best.chain)} GFLOP/s, ${Math.ceil(tiles.length / 4)} calls), GQA ${best.gqa.toFixed(2)} ms (${rate(best.gqa)} GFLOP/s, 1 call); max|Δo| ${d.toExponential(1)}\n`);
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
