/**
 * starq vs llama.cpp on identical weights: `bench-256` (safetensors, starq's engine) and its GGUF
 * twin `bench-256.gguf` (llama.cpp through `node-llama-cpp`, prebuilt CPU binary, installed on
 * demand into its own folder — see peer-install.ts; never a dependency of the project).
 *
 * Measured in one process, the two engines alternating (order swapped every round), the same
 * thread count for both:
 *   - Global prefill of N random token ids (default 4K and 16K): wall time of one forward over the
 *     N tokens (starq: `ModelEngine.forward`, logits of the last row; llama.cpp:
 *     `evaluateWithoutGeneratingNewTokens`, batches of `--batch-size`);
 *   - decode after a prefill of `--decode-after` tokens: greedy tokens/s over `--decode-tokens`
 *     single-token steps (the first step, which reads the prefill's logits, excluded);
 *   - starq's achieved GFLOP/s (analytic FLOPs, libs/model/src/perf/flops.ts) against the best
 *     plain ORT fp32 MatMul with the same threads, measured before and after the rounds.
 * Speed ratios are starq's speed over llama.cpp's (llama.cpp time / starq time) in the same round.
 *
 *   npx tsx bench/peers/llama-cpp.ts [--threads 2] [--prefill 4096,16384] [--decode-after 4096]
 *     [--decode-tokens 64] [--rounds 2] [--flash-attention off|on|both] [--batch-size 512] [--kv-type F16|F32]
 *     [--model-dir ../shared/models/bench-256] [--gguf <model-dir>/bench-256.gguf] [--json FILE] [--markdown]
 *     [--starq-flash off|on]   # starq's ExecutorOptions.flash (default off, the engine's default)
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfig, ModelEngine, type ModelConfig } from '@starq/model';
import { causalPairs, attentionFlopsPerPair, linearFlopsPerToken, lmHeadFlopsPerRow } from '@starq/model/perf/flops';
import { bestRoofline } from '@starq/model/perf/roofline';
import { sharedModel } from '@starq/model/shared-fixtures';
import { randomTokenIds } from '@starq/model/synthetic/token-ids';
import { machineInfo, markdownTable, textTable, type Column } from '@starq/report';
import { arg, argStr } from '../lib/args';
import { ensurePeer, importPeer } from './peer-install';

const NODE_LLAMA_CPP = { name: 'llama-cpp', packages: ['node-llama-cpp@3.22.1', '@node-llama-cpp/linux-x64@3.22.1'], entry: 'node_modules/node-llama-cpp/dist/index.js' };

/** The part of node-llama-cpp's API this benchmark uses. */
interface LlamaSequence {
  evaluateWithoutGeneratingNewTokens(tokens: number[]): Promise<void>;
  evaluate(tokens: number[], opts?: { temperature?: number }): AsyncGenerator<number, void, void>;
  clearHistory(): Promise<void>;
}
interface LlamaContext {
  getSequence(): LlamaSequence;
  dispose(): Promise<void>;
  readonly contextSize: number;
  readonly batchSize: number;
  readonly flashAttention: boolean;
}
interface LlamaModel {
  createContext(opts: {
    contextSize: number;
    batchSize: number;
    threads: { ideal: number; min: number };
    flashAttention: boolean;
    sequences: number;
    experimentalKvCacheKeyType: string;
    experimentalKvCacheValueType: string;
  }): Promise<LlamaContext>;
  dispose(): Promise<void>;
}
interface Llama {
  loadModel(opts: { modelPath: string; gpuLayers: number }): Promise<LlamaModel>;
  readonly gpu: string | false;
  readonly buildType: string;
  readonly cpuMathCores?: number;
  dispose(): Promise<void>;
}
interface NodeLlamaCpp {
  getLlama(opts: Record<string, unknown>): Promise<Llama>;
  LlamaLogLevel: Record<string, string>;
}

/** Seeded ids in [3, vocab): the same for both engines. */
const randomIds = (n: number, vocab: number, seed: number): number[] => randomTokenIds(n, vocab, seed, 3);

function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

function prefillFlops(c: ModelConfig, n: number): number {
  return n * linearFlopsPerToken(c) + causalPairs(0, n) * attentionFlopsPerPair(c) + lmHeadFlopsPerRow(c);
}

class Starq {
  private seq = 0;
  constructor(readonly engine: ModelEngine) {}

  async prefill(ids: number[]): Promise<number> {
    const id = `peer-bench-${++this.seq}`;
    const t0 = performance.now();
    await this.engine.forward({ cacheId: id, ids: Int32Array.from(ids), positions: Int32Array.from(ids, (_, i) => i), logits: 'last', reserve: ids.length });
    const ms = performance.now() - t0;
    await this.engine.dropCache(id);
    return ms;
  }

  /** Greedy decode after a prefill; ms per step over steps 2..n and the generated ids. */
  async decode(ids: number[], n: number): Promise<{ msPerToken: number; tokens: number[] }> {
    const id = `peer-bench-${++this.seq}`;
    const N = ids.length;
    let logits = (await this.engine.forward({ cacheId: id, ids: Int32Array.from(ids), positions: Int32Array.from(ids, (_, i) => i), logits: 'last', reserve: N + n }))!;
    const tokens = [argmax(logits)];
    let t0 = 0;
    for (let i = 1; i < n; i++) {
      if (i === 1) t0 = performance.now();
      logits = (await this.engine.forward({ cacheId: id, ids: Int32Array.of(tokens[i - 1]), positions: Int32Array.of(N + i - 1), logits: 'last' }))!;
      tokens.push(argmax(logits));
    }
    const ms = performance.now() - t0;
    await this.engine.dropCache(id);
    return { msPerToken: ms / (n - 1), tokens };
  }
}

class LlamaCpp {
  constructor(readonly ctx: LlamaContext) {}

  async prefill(ids: number[]): Promise<number> {
    const seq = this.ctx.getSequence();
    try {
      const t0 = performance.now();
      await seq.evaluateWithoutGeneratingNewTokens(ids);
      return performance.now() - t0;
    } finally {
      await seq.clearHistory();
      (seq as unknown as { dispose(): void }).dispose();
    }
  }

  async decode(ids: number[], n: number): Promise<{ msPerToken: number; tokens: number[] }> {
    const seq = this.ctx.getSequence();
    try {
      const tokens: number[] = [];
      let t0 = 0;
      for await (const t of seq.evaluate(ids, { temperature: 0 })) {
        tokens.push(t);
        if (tokens.length === 1) t0 = performance.now(); // the prefill produced the first token
        if (tokens.length === n) break;
      }
      return { msPerToken: (performance.now() - t0) / (n - 1), tokens };
    } finally {
      await seq.clearHistory();
      (seq as unknown as { dispose(): void }).dispose();
    }
  }
}

interface Row {
  what: string;
  round: number;
  starq: number;
  llama: number;
  llamaFa: number | null;
  ratio: number;
  ratioFa: number | null;
  starqGflops: number | null;
  starqPctMatmul: number | null;
}

async function main(): Promise<void> {
  const threads = arg('--threads', 2);
  const prefills = argStr('--prefill', '4096,16384').split(',').map(Number);
  const decodeAfter = arg('--decode-after', 4096);
  const decodeTokens = arg('--decode-tokens', 64);
  const rounds = arg('--rounds', 2);
  const fa = argStr('--flash-attention', 'both');
  const batchSize = arg('--batch-size', 512);
  const kvType = argStr('--kv-type', 'F16'); // llama.cpp's default K/V cache type
  if (!['F16', 'F32'].includes(kvType)) throw new Error(`--kv-type must be F16 or F32 (got ${kvType})`);
  const modelDir = path.resolve(argStr('--model-dir', sharedModel('bench-256').path));
  const gguf = path.resolve(argStr('--gguf', path.join(modelDir, 'bench-256.gguf')));
  const jsonOut = argStr('--json', '');
  const markdown = process.argv.includes('--markdown');
  const starqFlash = argStr('--starq-flash', 'off'); // ExecutorOptions.flash of starq's engine
  if (!['off', 'on'].includes(starqFlash)) throw new Error(`--starq-flash must be off or on (got ${starqFlash})`);
  if (!['off', 'on', 'both'].includes(fa)) throw new Error(`--flash-attention must be off, on or both (got ${fa})`);
  for (const f of [path.join(modelDir, 'model.safetensors'), gguf]) if (!fs.existsSync(f)) throw new Error(`missing ${f} (--model-dir / --gguf)`);
  const log = (s: string) => process.stderr.write(`${s}\n`);

  const dir = ensurePeer(NODE_LLAMA_CPP, log);
  const nlc = await importPeer<NodeLlamaCpp>(dir, NODE_LLAMA_CPP.entry);
  // build: 'never' + skipDownload: only the prebuilt binary from the registry package may load.
  const llama = await nlc.getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, skipDownload: true, progressLogs: false, logLevel: nlc.LlamaLogLevel.error, maxThreads: threads });
  log(`[peers] llama.cpp: ${llama.buildType} binary, gpu ${String(llama.gpu)}`);
  const model = await llama.loadModel({ modelPath: gguf, gpuLayers: 0 });
  const config = loadConfig(modelDir);
  const maxN = Math.max(...prefills, decodeAfter + decodeTokens);
  const ctxOf = (flash: boolean) => model.createContext({ contextSize: maxN + 256, batchSize, threads: { ideal: threads, min: threads }, flashAttention: flash, sequences: 1, experimentalKvCacheKeyType: kvType, experimentalKvCacheValueType: kvType });
  const variants: { flash: boolean; ctx: LlamaCpp }[] = [];
  if (fa !== 'on') variants.push({ flash: false, ctx: new LlamaCpp(await ctxOf(false)) });
  if (fa !== 'off') variants.push({ flash: true, ctx: new LlamaCpp(await ctxOf(true)) });
  const engine = await ModelEngine.load(modelDir, config, { threads, flash: starqFlash === 'on' });
  const starq = new Starq(engine);

  log(`[peers] MatMul roofline (${threads} threads)…`);
  const loadBefore = os.loadavg()[0];
  const before = await bestRoofline(threads);
  // Warm-up: first calls allocate arenas / compute buffers.
  const warm = randomIds(512, config.vocabSize, 99);
  await starq.prefill(warm);
  for (const v of variants) await v.ctx.prefill(warm);

  const rows: Row[] = [];
  const agreement: string[] = [];
  for (let r = 0; r < rounds; r++) {
    const starqFirst = r % 2 === 0;
    for (const N of prefills) {
      const ids = randomIds(N, config.vocabSize, 1000 + N);
      const t: Record<string, number> = {};
      const runStarq = async () => (t.starq = await starq.prefill(ids));
      const runLlama = async () => {
        for (const v of variants) t[v.flash ? 'fa' : 'nofa'] = await v.ctx.prefill(ids);
      };
      if (starqFirst) await runStarq().then(runLlama);
      else await runLlama().then(runStarq);
      const gflops = prefillFlops(config, N) / 1e9 / (t.starq / 1000);
      rows.push(row(`prefill ${N}`, r + 1, t.starq / 1000, t, (x) => x / 1000, gflops));
      log(`[peers] round ${r + 1} prefill ${N}: starq ${(t.starq / 1000).toFixed(2)} s; llama.cpp ${variants.map((v) => `${v.flash ? 'FA' : 'no FA'} ${(t[v.flash ? 'fa' : 'nofa'] / 1000).toFixed(2)} s`).join(', ')}`);
    }
    const ids = randomIds(decodeAfter, config.vocabSize, 7);
    const tps: Record<string, number> = {};
    const decodes: Record<string, number[]> = {};
    const runStarq = async () => {
      const d = await starq.decode(ids, decodeTokens);
      tps.starq = 1000 / d.msPerToken;
      decodes.starq = d.tokens;
    };
    const runLlama = async () => {
      for (const v of variants) {
        const d = await v.ctx.decode(ids, decodeTokens);
        tps[v.flash ? 'fa' : 'nofa'] = 1000 / d.msPerToken;
        decodes[v.flash ? 'fa' : 'nofa'] = d.tokens;
      }
    };
    if (starqFirst) await runStarq().then(runLlama);
    else await runLlama().then(runStarq);
    rows.push(row(`decode tok/s after ${decodeAfter}`, r + 1, tps.starq, tps, (x) => x, null, true));
    for (const k of Object.keys(decodes).filter((k) => k !== 'starq')) {
      const same = decodes[k].findIndex((t, i) => t !== decodes.starq[i]);
      agreement.push(`round ${r + 1}, llama.cpp ${k === 'fa' ? 'FA' : 'no FA'}: greedy ids ${same < 0 ? `identical for all ${decodeTokens}` : `identical for the first ${same} of ${decodeTokens}`}`);
    }
    log(`[peers] round ${r + 1} decode after ${decodeAfter}: starq ${tps.starq.toFixed(1)} tok/s; llama.cpp ${variants.map((v) => `${v.flash ? 'FA' : 'no FA'} ${tps[v.flash ? 'fa' : 'nofa'].toFixed(1)}`).join(', ')} tok/s`);
  }
  const after = await bestRoofline(threads);
  const loadAfter = os.loadavg()[0];
  const roof = Math.max(before.matmulGflops, after.matmulGflops);
  for (const x of rows) if (x.starqGflops !== null) x.starqPctMatmul = (100 * x.starqGflops) / roof;

  const hasNoFa = variants.some((v) => !v.flash);
  const hasFa = variants.some((v) => v.flash);
  const columns: Column[] = [
    { key: 'what', title: 'measure', align: 'left' },
    { key: 'round', title: 'round' },
    { key: 'starq', title: 'starq (s or tok/s)', digits: 2 },
    ...(hasNoFa ? [{ key: 'llama', title: 'llama.cpp', digits: 2 }, { key: 'ratio', title: 'starq speed ÷ llama.cpp', digits: 2 }] : []),
    ...(hasFa ? [{ key: 'llamaFa', title: 'llama.cpp FA', digits: 2 }, { key: 'ratioFa', title: 'starq speed ÷ llama.cpp FA', digits: 2 }] : []),
    { key: 'starqGflops', title: 'starq GFLOP/s', digits: 1 },
    { key: 'starqPctMatmul', title: 'starq % MatMul', digits: 0 },
  ];
  const head = `starq vs llama.cpp (node-llama-cpp 3.22.1, ${llama.buildType} CPU binary, batch ${batchSize}, KV cache ${kvType}) on bench-256, ${threads} threads each; MatMul roofline ${roof.toFixed(1)} GFLOP/s (before ${before.matmulGflops.toFixed(1)} / after ${after.matmulGflops.toFixed(1)}); 1-min load average ${loadBefore.toFixed(1)} before, ${loadAfter.toFixed(1)} after (${os.cpus().length} CPUs)`;
  const table = markdown ? markdownTable(columns, rows as unknown as Record<string, number | string | null>[]) : textTable(columns, rows as unknown as Record<string, number | string | null>[]);
  process.stdout.write(`${head}\n\n${table}\n${agreement.join('\n')}\n`);
  if (jsonOut) {
    fs.writeFileSync(jsonOut, JSON.stringify({ command: `npx tsx bench/peers/llama-cpp.ts ${process.argv.slice(2).join(' ')}`, machine: machineInfo(), threads, starqFlash, batchSize, kvType, loadAverage: { before: loadBefore, after: loadAfter }, roofline: { before: before.matmulGflops, after: after.matmulGflops }, rows, agreement }, null, 2));
  }
  await engine.close();
  for (const v of variants) await v.ctx.ctx.dispose();
  await model.dispose();
  await llama.dispose();
}

/** A table row; `higherIsBetter` for rates (tok/s), else times (ratio = llama time / starq time). */
function row(what: string, round: number, starq: number, t: Record<string, number>, unit: (x: number) => number, gflops: number | null, higherIsBetter = false): Row {
  const llama = t.nofa !== undefined ? unit(t.nofa) : NaN;
  const llamaFa = t.fa !== undefined ? unit(t.fa) : null;
  const ratio = (x: number) => (higherIsBetter ? starq / x : x / starq);
  return { what, round, starq, llama, llamaFa, ratio: ratio(llama), ratioFa: llamaFa !== null ? ratio(llamaFa) : null, starqGflops: gflops, starqPctMatmul: null };
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
