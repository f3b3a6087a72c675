/**
 * Probe: ORT's CPU flash attention (com.microsoft MultiHeadAttention without mask/past: MLAS
 * FlashAttention, score blocks sized to L2) for the open part of a Global row tile, against the
 * engine's chain path over the same keys.
 *   npx tsx bench/lib/probe-mha.ts [--rows 128] [--past 16384] [--rounds 5] [--dp 33]
 */
import * as ort from 'onnxruntime-node';
import { onnx } from 'onnx-proto';
import { emptyPartial64, mergeInto } from '@starq/attention';
import type { ModelConfig } from '@starq/model';
import { buildAttendChainGraph, buildAttendGraph } from '@starq/model/onnx/graphs';
import { sessionOptions } from '@starq/model/runtime/session-options';
import { lcgFloats as rand } from '@starq/model/perf/fill';
import { nowMs } from './timing';
import { arg } from './args';

const DT = onnx.TensorProto.DataType;
function vi(name: string, dims: (number | string)[]): onnx.IValueInfoProto {
  return { name, type: { tensorType: { elemType: DT.FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } } };
}
function mhaGraph(heads: number, Dp: number, scale: number): Uint8Array {
  const nodes: onnx.INodeProto[] = [];
  const inputs: onnx.IValueInfoProto[] = [];
  const outputs: onnx.IValueInfoProto[] = [];
  for (let h = 0; h < heads; h++) {
    nodes.push({
      opType: 'MultiHeadAttention', domain: 'com.microsoft', name: `mha${h}`,
      input: [`q${h}`, `k${h}`, `v${h}`], output: [`o${h}`],
      attribute: [
        { name: 'num_heads', type: onnx.AttributeProto.AttributeType.INT, i: 1 },
        { name: 'scale', type: onnx.AttributeProto.AttributeType.FLOAT, f: scale },
      ],
    });
    inputs.push(vi(`q${h}`, [1, 'S', Dp]), vi(`k${h}`, [1, 'L', Dp]), vi(`v${h}`, [1, 'L', Dp]));
    outputs.push(vi(`o${h}`, [1, 'S', Dp]));
  }
  const model: onnx.IModelProto = { irVersion: 8, producerName: 'probe', opsetImport: [{ domain: '', version: 18 }, { domain: 'com.microsoft', version: 1 }], graph: { name: 'mha', node: nodes, input: inputs, output: outputs } };
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
}

async function main(): Promise<void> {
  const n = arg('--rows', 128);
  const past = arg('--past', 16384);
  const rounds = arg('--rounds', 5);
  const threads = arg('--threads', 2);
  const D = 32, H = 8, Hkv = 2, G = 4;
  const cfg = { numHeads: H, numKvHeads: Hkv, headDim: D } as ModelConfig;
  const so = sessionOptions({ threads });
  const q = rand(H * n * D, 1, 4);
  const k = rand(Hkv * past * D, 2, 4);
  const v = rand(Hkv * past * D, 3);
  const scale = 1 / Math.sqrt(D);
  // chain path over open tiles of 1024
  const chains = new Map<number, ort.InferenceSession>();
  const open1 = await ort.InferenceSession.create(buildAttendGraph(cfg, false), so);
  const tiles: { k: ort.Tensor; v: ort.Tensor }[] = [];
  for (let c0 = 0; c0 < past; c0 += 1024) {
    const w = Math.min(1024, past - c0);
    const kt = new Float32Array(Hkv * w * D), vt = new Float32Array(Hkv * w * D);
    for (let h = 0; h < Hkv; h++) { kt.set(k.subarray((h * past + c0) * D, (h * past + c0 + w) * D), h * w * D); vt.set(v.subarray((h * past + c0) * D, (h * past + c0 + w) * D), h * w * D); }
    tiles.push({ k: new ort.Tensor('float32', kt, [Hkv, w, D]), v: new ort.Tensor('float32', vt, [Hkv, w, D]) });
  }
  const qT = new ort.Tensor('float32', q, [H, n, D]);
  const runChain = async () => {
    const acc = emptyPartial64(H, n, D);
    for (let i = 0; i < tiles.length; i += 4) {
      const grp = tiles.slice(i, i + 4);
      let res;
      if (grp.length === 1) res = await open1.run({ q: qT, k: grp[0].k, v: grp[0].v });
      else {
        let s = chains.get(grp.length);
        if (!s) chains.set(grp.length, (s = await ort.InferenceSession.create(buildAttendChainGraph(cfg, Array(grp.length).fill(false)), so)));
        const feeds: Record<string, ort.Tensor> = { q: qT };
        grp.forEach((t, j) => { feeds[`k${j}`] = t.k; feeds[`v${j}`] = t.v; });
        res = await s.run(feeds);
      }
      mergeInto(acc, { o: res.o.data as Float32Array, lse: res.lse.data as Float32Array, heads: H, rows: n, headDim: D });
    }
    return acc;
  };
  // MHA flash with sink column: per kv head K' (1+past, 33) = [sink; k|0], V' = [e_D; v|0]
  const Dp = arg('--dp', D + 1);
  const mha = await ort.InferenceSession.create(mhaGraph(Hkv, Dp, scale), so);
  const kp: ort.Tensor[] = [], vp: ort.Tensor[] = [];
  const kbar: Float64Array[] = [];
  for (let h = 0; h < Hkv; h++) {
    const K = new Float32Array((past + 1) * Dp), V = new Float32Array((past + 1) * Dp);
    K[D] = 1; V[D] = 1;
    const mean = new Float64Array(D);
    for (let j = 0; j < past; j++) for (let d = 0; d < D; d++) { const x = k[(h * past + j) * D + d]; K[(j + 1) * Dp + d] = x; mean[d] += x / past; V[(j + 1) * Dp + d] = v[(h * past + j) * D + d]; }
    kp.push(new ort.Tensor('float32', K, [1, past + 1, Dp]));
    vp.push(new ort.Tensor('float32', V, [1, past + 1, Dp]));
    kbar.push(mean);
  }
  const runMha = async () => {
    const feeds: Record<string, ort.Tensor> = {};
    const sink: Float32Array[] = [];
    for (let h = 0; h < Hkv; h++) {
      const Q = new Float32Array(G * n * Dp);
      const sk = new Float32Array(G * n);
      for (let r = 0; r < G * n; r++) {
        let dot = 0;
        for (let d = 0; d < D; d++) { const x = q[(h * G * n + r) * D + d]; Q[r * Dp + d] = x; dot += x * kbar[h][d]; }
        const s = dot * scale + Math.log(past); // Jensen: ≤ lse
        sk[r] = s;
        Q[r * Dp + D] = s / scale;
      }
      sink.push(sk);
      feeds[`q${h}`] = new ort.Tensor('float32', Q, [1, G * n, Dp]);
      feeds[`k${h}`] = kp[h];
      feeds[`v${h}`] = vp[h];
    }
    const res = await mha.run(feeds);
    const o = new Float32Array(H * n * D), lse = new Float32Array(H * n);
    for (let h = 0; h < Hkv; h++) {
      const out = res[`o${h}`].data as Float32Array;
      for (let r = 0; r < G * n; r++) {
        const rr = out[r * Dp + D];
        const inv = 1 / (1 - rr);
        for (let d = 0; d < D; d++) o[(h * G * n + r) * D + d] = out[r * Dp + d] * inv;
        lse[h * G * n + r] = sink[h][r] + Math.log((1 - rr) / rr);
      }
    }
    return { o, lse };
  };
  const a = await runChain();
  const b = await runMha();
  let dO = 0, dL = 0;
  for (let i = 0; i < b.o.length; i++) dO = Math.max(dO, Math.abs(a.o[i] - b.o[i]));
  for (let i = 0; i < b.lse.length; i++) dL = Math.max(dL, Math.abs(a.lse[i] - b.lse[i]));
  const best = { chain: Infinity, mha: Infinity, chainCpu: Infinity, mhaCpu: Infinity };
  for (let r = 0; r < rounds; r++) {
    let c0 = process.cpuUsage(); let t0 = nowMs(); await runChain(); best.chain = Math.min(best.chain, nowMs() - t0);
    let c = process.cpuUsage(c0); best.chainCpu = Math.min(best.chainCpu, (c.user + c.system) / 1000);
    c0 = process.cpuUsage(); t0 = nowMs(); await runMha(); best.mha = Math.min(best.mha, nowMs() - t0);
    c = process.cpuUsage(c0); best.mhaCpu = Math.min(best.mhaCpu, (c.user + c.system) / 1000);
  }
  const flops = 4 * H * D * n * past;
  const gf = (ms: number) => (flops / ms / 1e6).toFixed(1);
  process.stdout.write(`${n} rows × ${past} open keys: chain ${best.chain.toFixed(2)} ms (${gf(best.chain)} GFLOP/s, cpu ${best.chainCpu.toFixed(1)}), MHA-flash+sink ${best.mha.toFixed(2)} ms (${gf(best.mha)} GFLOP/s, cpu ${best.mhaCpu.toFixed(1)}); max|Δo| ${dO.toExponential(1)} max|Δlse| ${dL.toExponential(1)}\n`);
}
main().catch((e) => { process.stderr.write(`${(e as Error).stack}\n`); process.exit(1); });
