/**
 * Single-process engine benchmark (docs/BENCHMARKS.md, "Engine (single process)").
 *
 * In one run (ratios within a run are what matter on a noisy machine) it measures:
 *   1. the roofline — GFLOP/s of a plain ORT fp32 MatMul (2048×512)·(512×2048), weight as
 *      initializer and both operands as inputs, same intra-op threads and session options as the
 *      engine, best of 7; the same MatMul is re-measured just before and after every prefill
 *      (100% = the best rate seen in the run; "% adj." = the two measured around that prefill);
 *   2. for stories260K (256 / 480 tokens) and a random Llama (hidden 512, 8 layers, 8 heads,
 *      2 KV heads, intermediate 1376, vocab 512) at 1K / 4K / 16K tokens: prefill (one forward,
 *      logits 'last'), decode (single-token forwards after the prefill), analytic FLOPs,
 *      achieved GFLOP/s and % of the MatMul rate, and the engine's issued attention FLOPs
 *      against the causally useful ones, process CPU time / page faults / RSS around the prefill;
 *   3. the time per piece (qkv / append / attend / post / embed+head) inside every prefill's
 *      `forward`, from the executor's own clock (`ExecutorStats.forwardMs`);
 *   4. a per-piece breakdown of the largest random-model prefill and of a few decode steps after
 *      it, driven through the engine's piece API from the main thread (its prefill pieces include
 *      copying 16K-row arguments into the worker; the decode pieces are representative).
 *
 * Probes that explain the numbers (per-op ORT profiles, attend-graph variants, chunking sweeps,
 * a what-if prefill harness) live in bench/lib/; docs/BENCHMARKS.md lists their commands.
 *
 *   npx tsx bench/engine.ts [--threads 2] [--contexts 1024,4096,16384] [--json FILE] [--quick]
 *                           [--reps 2] [--decode 32] [--no-breakdown] [--markdown]
 *                           [--page-size N] [--score-budget-mib N] [--key-tile N] [--row-tile N]
 *                           [--attention tiled|paged] [--max-rows-per-call N] [--tiles-per-call N] [--flash on|off]
 *                           [--no-stories] [--no-random] [--model-dir DIR] [--model-contexts LIST]
 *
 * --model-dir adds a checkpoint directory (e.g. /work/shared/models/bench-256), named after its
 * basename, prefilled at --model-contexts (default 16384,65536); decode steps are capped so that
 * N + steps stays within the model's max_position_embeddings.
 *
 * Progress goes to stderr; the tables go to stdout; --json writes every number.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfig, ModelEngine, type ExecutorOptions, type ExecutorStats, type ModelConfig } from '@starq/model';
import { randomTokenIds } from '@starq/model/synthetic/token-ids';
import { sharedModel } from '@starq/model/shared-fixtures';
import { attentionFlopsPerPairPerLayer, causalPairs, forwardFlops, linearFlopsPerToken } from './lib/flops';
import { machineInfo, markdownTable, textTable, type Column, type MachineInfo } from '@starq/report';
import { RANDOM_BENCH_MODEL_NAME, writeRandomBenchModel } from './lib/models';
import { diffCounters, procCounters, type ProcCounters } from './lib/procstat';
import { measureMatmul, type MatmulResult } from './lib/roofline';
import { nowMs, progress } from './lib/timing';

// ------------------------------------------------------------------ CLI

interface Args {
  threads: number;
  contexts: number[];
  storiesContexts: number[];
  json: string | null;
  quick: boolean;
  reps: number;
  decode: number;
  breakdown: boolean;
  markdown: boolean;
  pageSize: number | null;
  scoreBudgetMiB: number | null;
  keyTile: number | null;
  rowTile: number | null;
  attention: 'tiled' | 'paged' | null;
  maxRowsPerCall: number | null;
  tilesPerCall: number | null;
  flash: boolean | null;
  modelDirs: string[];
  modelContexts: number[];
  stories: boolean;
  random: boolean;
  storiesDir: string;
}

const USAGE = `usage: npx tsx bench/engine.ts [--threads N] [--contexts 1024,4096,16384] [--json FILE] [--quick]
       [--reps N] [--decode N] [--no-breakdown] [--markdown] [--page-size N] [--score-budget-mib N]
       [--key-tile N] [--row-tile N] [--attention tiled|paged] [--max-rows-per-call N] [--tiles-per-call N] [--flash on|off]
       [--no-stories] [--no-random] [--stories-dir DIR] [--model-dir DIR] [--model-contexts LIST]`;

function parseArgs(argv: string[]): Args {
  const a: Args = {
    threads: 2,
    contexts: [1024, 4096, 16384],
    storiesContexts: [256, 480],
    json: null,
    quick: false,
    reps: 2,
    decode: 32,
    breakdown: true,
    markdown: false,
    pageSize: null,
    scoreBudgetMiB: null,
    keyTile: null,
    rowTile: null,
    attention: null,
    maxRowsPerCall: null,
    tilesPerCall: null,
    flash: null,
    modelDirs: [],
    modelContexts: [16384, 65536],
    stories: true,
    random: true,
    storiesDir: sharedModel('stories260K').path,
  };
  let contextsGiven = false;
  let repsGiven = false;
  let decodeGiven = false;
  const int = (flag: string, v: string | undefined, min = 1): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) fail(`${flag} needs an integer ≥ ${min}, got ${v}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i];
    switch (f) {
      case '--threads':
        a.threads = int(f, argv[++i]);
        break;
      case '--contexts':
        a.contexts = (argv[++i] ?? '').split(',').map((s) => int(f, s.trim()));
        contextsGiven = true;
        break;
      case '--json':
        a.json = argv[++i] ?? fail('--json needs a file');
        break;
      case '--quick':
        a.quick = true;
        break;
      case '--reps':
        a.reps = int(f, argv[++i]);
        repsGiven = true;
        break;
      case '--decode':
        a.decode = int(f, argv[++i], 0);
        decodeGiven = true;
        break;
      case '--no-breakdown':
        a.breakdown = false;
        break;
      case '--markdown':
        a.markdown = true;
        break;
      case '--page-size':
        a.pageSize = int(f, argv[++i]);
        break;
      case '--score-budget-mib':
        a.scoreBudgetMiB = int(f, argv[++i]);
        break;
      case '--key-tile':
        a.keyTile = int(f, argv[++i]);
        break;
      case '--row-tile':
        a.rowTile = int(f, argv[++i]);
        break;
      case '--max-rows-per-call':
        a.maxRowsPerCall = int(f, argv[++i]);
        break;
      case '--tiles-per-call':
        a.tilesPerCall = int(f, argv[++i]);
        break;
      case '--flash': {
        const v = argv[++i];
        if (v !== 'on' && v !== 'off') throw new Error(`--flash must be on or off, got ${v}`);
        a.flash = v === 'on';
        break;
      }
      case '--attention': {
        const v = argv[++i];
        if (v !== 'tiled' && v !== 'paged') fail(`--attention needs tiled or paged, got ${v}`);
        a.attention = v;
        break;
      }
      case '--model-dir':
        a.modelDirs.push(path.resolve(argv[++i] ?? fail('--model-dir needs a directory')));
        break;
      case '--model-contexts':
        a.modelContexts = (argv[++i] ?? '').split(',').map((s) => int(f, s.trim()));
        break;
      case '--no-stories':
        a.stories = false;
        break;
      case '--no-random':
        a.random = false;
        break;
      case '--stories-dir':
        a.storiesDir = path.resolve(argv[++i] ?? fail('--stories-dir needs a directory'));
        break;
      case '-h':
      case '--help':
        process.stdout.write(USAGE + '\n');
        process.exit(0);
      // falls through (exit)
      default:
        fail(`unknown argument ${f}\n${USAGE}`);
    }
  }
  if (a.quick) {
    if (!contextsGiven) a.contexts = [256, 512];
    a.storiesContexts = [64, 128];
    if (!repsGiven) a.reps = 1;
    if (!decodeGiven) a.decode = 4;
  }
  return a;
}

function fail(msg: string): never {
  process.stderr.write(`bench/engine: ${msg}\n`);
  process.exit(2);
}

// ------------------------------------------------------------------ helpers

function statsDelta(a: ExecutorStats, b: ExecutorStats): ExecutorStats {
  const ms = { ...b.forwardMs };
  for (const k of Object.keys(ms) as (keyof ExecutorStats['forwardMs'])[]) ms[k] -= a.forwardMs?.[k] ?? 0;
  return { attendCalls: b.attendCalls - a.attendCalls, attendFlops: b.attendFlops - a.attendFlops, linearFlops: b.linearFlops - a.linearFlops, forwardMs: ms };
}

/** Seeded ids in [3, vocab) (no <unk>, <s>, </s>). */
function randomIds(n: number, vocab: number, seed: number): Int32Array {
  return Int32Array.from(randomTokenIds(n, vocab, seed, 3));
}

function range(from: number, n: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => from + i);
}

// ------------------------------------------------------------------ measurements

interface RunResult {
  model: string;
  context: number;
  prefillMs: number; // best of reps
  prefillMsAll: number[];
  prefillTokPerSec: number;
  prefillFlops: { linear: number; attention: number; lmHead: number; total: number };
  prefillGflops: number;
  pctOfMatmul: number; // of the run's best MatMul rate
  adjacentMatmulGflops: number[]; // measured before each rep and after the last
  localMatmulGflops: number; // max of the two measured around the best rep
  pctOfLocalMatmul: number;
  loadavg1: number; // 1-minute load average after the prefill
  rssGiB: number; // process RSS after the prefill reps (worker threads share the process)
  /** Process CPU time and minor page faults during the best prefill rep (robust to time-slicing). */
  prefillCounters: ProcCounters;
  /** (user + sys CPU) / wall of the best rep: mean number of busy cores. */
  prefillCoresBusy: number;
  engine: ExecutorStats; // issued during the best prefill rep (incl. executor-side piece times)
  attendUsefulFlops: number; // causal-useful attention FLOPs (all layers)
  attendWastePct: number; // issued beyond useful, as % of useful
  decodeSteps: number;
  decodeMs: number;
  decodeTokPerSec: number;
  decodeMsPerTok: number;
  decodeFlops: number;
  decodeGflops: number;
  decodeEngine: ExecutorStats;
}

/** MatMul reference measured next to each prefill (3 reps, initializer variant): load drifts. */
async function adjacentMatmul(threads: number): Promise<number> {
  return (await measureMatmul({ m: 2048, k: 512, n: 2048 }, 'weight', { threads, reps: 3 })).gflops;
}

async function runContext(engine: ModelEngine, cfg: ModelConfig, model: string, N: number, args: Args): Promise<RunResult> {
  const decode = Math.min(args.decode, cfg.maxPositionEmbeddings - N); // decode positions must fit the model
  const ids = randomIds(N + decode, cfg.vocabSize, 12345 + N);
  const positions = range(0, N);
  const prefillIds = ids.subarray(0, N);
  const times: number[] = [];
  let engineStats: ExecutorStats | null = null;
  const cacheId = `bench-${model}-${N}`;
  const adjacent: number[] = [];
  let bestRep = 0;
  const counters: ProcCounters[] = [];
  for (let r = 0; r < args.reps; r++) {
    if (r > 0) await engine.dropCache(cacheId);
    adjacent.push(await adjacentMatmul(args.threads));
    const s0 = await engine.stats();
    const c0 = procCounters();
    const t0 = nowMs();
    await engine.forward({ cacheId, ids: prefillIds, positions, logits: 'last', reserve: N + decode });
    const dt = nowMs() - t0;
    counters.push(diffCounters(c0, procCounters()));
    const s1 = await engine.stats();
    times.push(dt);
    if (dt <= times[bestRep]) {
      bestRep = r;
      engineStats = statsDelta(s0, s1); // of the best rep (calls and FLOPs are the same in every rep)
    }
    progress(`${model} N=${N} prefill rep ${r + 1}/${args.reps}: ${(dt / 1000).toFixed(2)} s (${(N / (dt / 1000)).toFixed(0)} tok/s)`);
  }
  adjacent.push(await adjacentMatmul(args.threads));
  const prefillMs = times[bestRep];
  // the MatMul rate measured just before and just after the best prefill rep
  const localRate = Math.max(adjacent[bestRep], adjacent[bestRep + 1]);
  const loadavg = os.loadavg()[0];
  const rssGiB = process.memoryUsage().rss / 2 ** 30;
  const fl = forwardFlops(cfg, 0, N, 1);
  const useful = causalPairs(0, N) * attentionFlopsPerPairPerLayer(cfg) * cfg.numLayers;

  // Decode: single-token forwards after the prefill, logits of that token each time.
  const d0 = await engine.stats();
  let decodeFlops = 0;
  const td = nowMs();
  for (let i = 0; i < decode; i++) {
    await engine.forward({ cacheId, ids: ids.subarray(N + i, N + i + 1), positions: Int32Array.of(N + i), logits: 'last' });
    decodeFlops += forwardFlops(cfg, N + i, 1, 1).total;
  }
  const decodeMs = nowMs() - td;
  const d1 = await engine.stats();
  await engine.dropCache(cacheId);
  if (decode > 0) progress(`${model} N=${N} decode ${decode} tokens: ${(decodeMs / decode).toFixed(2)} ms/token`);

  const gflops = fl.total / (prefillMs * 1e6);
  return {
    model,
    context: N,
    prefillMs,
    prefillMsAll: times,
    prefillTokPerSec: N / (prefillMs / 1000),
    prefillFlops: fl,
    prefillGflops: gflops,
    pctOfMatmul: NaN, // filled in once the run's best MatMul rate is known
    adjacentMatmulGflops: adjacent,
    localMatmulGflops: localRate,
    pctOfLocalMatmul: (100 * gflops) / localRate,
    loadavg1: loadavg,
    rssGiB,
    prefillCounters: counters[bestRep],
    prefillCoresBusy: (counters[bestRep].userMs + counters[bestRep].sysMs) / prefillMs,
    engine: engineStats!,
    attendUsefulFlops: useful,
    attendWastePct: (100 * (engineStats!.attendFlops - useful)) / useful,
    decodeSteps: decode,
    decodeMs,
    decodeTokPerSec: decode > 0 ? decode / (decodeMs / 1000) : NaN,
    decodeMsPerTok: decode > 0 ? decodeMs / decode : NaN,
    decodeFlops,
    decodeGflops: decode > 0 ? decodeFlops / (decodeMs * 1e6) : NaN,
    decodeEngine: statsDelta(d0, d1),
  };
}

interface PieceTiming {
  piece: string;
  ms: number;
  flops: number; // analytic useful FLOPs of the piece (all layers)
  issuedFlops: number; // what the engine counted
}

interface Breakdown {
  model: string;
  context: number;
  totalMs: number;
  forwardMs: number; // the same prefill through engine.forward, for comparison
  pieces: PieceTiming[];
  perLayerAttendMs: number[];
  /** Single-token steps after that prefill, piece by piece: ms per token per piece. */
  decodeSteps: number;
  decodePieces: { piece: string; msPerToken: number; callsPerToken: number }[];
  decodeMsPerToken: number;
  /** Mean main-thread ↔ worker round trip of a no-op call (engine.hasCache). */
  roundTripMs: number;
}

/**
 * Re-runs one prefill piece by piece through the engine API (the same work `forward` does:
 * qkv → append K/V → attend over the cache → post, per layer; then head on the last row), timing
 * each call from the main thread (includes the worker message round trip and the argument copy).
 */
async function breakdown(engine: ModelEngine, cfg: ModelConfig, model: string, N: number, forwardMs: number, decodeSteps: number): Promise<Breakdown> {
  const { numLayers: L, hiddenSize: hid, numHeads: H, numKvHeads: Hkv, headDim: D, intermediateSize: I } = cfg;
  const ids = randomIds(N, cfg.vocabSize, 12345 + N);
  const positions = range(0, N);
  const cacheId = `bench-breakdown-${N}`;
  await engine.createCache(cacheId, N + decodeSteps);
  const ms: Record<string, number> = { embed: 0, qkv: 0, append: 0, attend: 0, post: 0, head: 0 };
  const issued: Record<string, number> = { embed: 0, qkv: 0, append: 0, attend: 0, post: 0, head: 0 };
  const perLayerAttendMs: number[] = [];
  const timed = async <T>(piece: string, fn: () => Promise<T>): Promise<T> => {
    const s0 = await engine.stats();
    const t0 = nowMs();
    const r = await fn();
    const dt = nowMs() - t0;
    ms[piece] += dt;
    const d = statsDelta(s0, await engine.stats());
    issued[piece] += d.attendFlops + d.linearFlops;
    if (piece === 'attend') perLayerAttendMs.push(dt);
    return r;
  };
  const t0 = nowMs();
  let x = await timed('embed', () => engine.embed(ids));
  for (let l = 0; l < L; l++) {
    const { q, k, v } = await timed('qkv', () => engine.qkv(l, x, positions));
    await timed('append', () => engine.appendKv(cacheId, l, k, v, positions));
    const part = await timed('attend', () => engine.attendCache(cacheId, l, q, positions));
    const xl = x;
    x = await timed('post', () => engine.post(l, xl, part.o));
  }
  const xLast = x.slice((N - 1) * hid);
  await timed('head', () => engine.head(xLast));
  const totalMs = nowMs() - t0;

  // decode steps, piece by piece (no stats calls inside: they would add round trips to the timing)
  const dms: Record<string, number> = { embed: 0, qkv: 0, append: 0, attend: 0, post: 0, head: 0 };
  const dcalls: Record<string, number> = { embed: 0, qkv: 0, append: 0, attend: 0, post: 0, head: 0 };
  const dt = async <T>(piece: string, fn: () => Promise<T>): Promise<T> => {
    const t = nowMs();
    const r = await fn();
    dms[piece] += nowMs() - t;
    dcalls[piece]++;
    return r;
  };
  const decIds = randomIds(decodeSteps, cfg.vocabSize, 999);
  const td = nowMs();
  for (let i = 0; i < decodeSteps; i++) {
    const pos = Int32Array.of(N + i);
    let xd = await dt('embed', () => engine.embed(decIds.subarray(i, i + 1)));
    for (let l = 0; l < L; l++) {
      const xin = xd;
      const { q, k, v } = await dt('qkv', () => engine.qkv(l, xin, pos));
      await dt('append', () => engine.appendKv(cacheId, l, k, v, pos));
      const part = await dt('attend', () => engine.attendCache(cacheId, l, q, pos));
      xd = await dt('post', () => engine.post(l, xin, part.o));
    }
    const xh = xd;
    await dt('head', () => engine.head(xh));
  }
  const decodeMsPerToken = decodeSteps > 0 ? (nowMs() - td) / decodeSteps : NaN;
  await engine.dropCache(cacheId);
  const trips = 50;
  const tr = nowMs();
  for (let i = 0; i < trips; i++) await engine.hasCache('none');
  const roundTripMs = (nowMs() - tr) / trips;
  const decodePieces = Object.keys(dms).map((p) => ({ piece: p, msPerToken: dms[p] / Math.max(1, decodeSteps), callsPerToken: dcalls[p] / Math.max(1, decodeSteps) }));

  const useful: Record<string, number> = {
    embed: 0,
    qkv: L * 2 * N * hid * (H + 2 * Hkv) * D,
    append: 0,
    attend: causalPairs(0, N) * attentionFlopsPerPairPerLayer(cfg) * L,
    post: L * 2 * N * (H * D * hid + 3 * hid * I),
    head: 2 * hid * cfg.vocabSize,
  };
  const pieces = Object.keys(ms).map((p) => ({ piece: p, ms: ms[p], flops: useful[p], issuedFlops: issued[p] }));
  return { model, context: N, totalMs, forwardMs, pieces, perLayerAttendMs, decodeSteps, decodePieces, decodeMsPerToken, roundTripMs };
}

// ------------------------------------------------------------------ output

function fmtG(flops: number): number {
  return flops / 1e9;
}

function printAll(out: (s: string) => void, md: boolean, roof: MatmulResult[], rate: number, runs: RunResult[], bds: Breakdown[]): void {
  const table = (cols: Column[], rows: Record<string, string | number | null>[]) => (md ? markdownTable(cols, rows) : textTable(cols, rows));

  out(`Roofline: plain ORT fp32 MatMul (best of reps)\n`);
  out(
    table(
      [
        { key: 'shape', title: 'shape', align: 'left' },
        { key: 'variant', title: 'B operand', align: 'left' },
        { key: 'ms', title: 'best ms', digits: 2 },
        { key: 'gflops', title: 'GFLOP/s', digits: 1 },
      ],
      roof.map((r) => ({
        shape: `${r.shape.batch ? `${r.shape.batch}×` : ''}(${r.shape.m}×${r.shape.k})·(${r.shape.k}×${r.shape.n})`,
        variant: r.variant === 'weight' ? 'initializer' : 'input',
        ms: r.bestMs,
        gflops: r.gflops,
      })),
    ),
  );
  out(`\nMatMul rate used as 100%: ${rate.toFixed(1)} GFLOP/s = best (2048×512)·(512×2048) MatMul seen in this run (the two above and the\n`);
  out(`initializer-variant MatMuls measured just before and after every prefill; "% adj. MatMul" uses only those two).\n`);

  out(`\nPrefill (one forward over N tokens, logits of the last row) and decode (single-token forwards after it)\n`);
  out(
    table(
      [
        { key: 'model', title: 'model', align: 'left' },
        { key: 'N', title: 'N' },
        { key: 'pms', title: 'prefill ms', digits: 0 },
        { key: 'ptok', title: 'prefill tok/s', digits: 0 },
        { key: 'gflop', title: 'GFLOP', digits: 2 },
        { key: 'attnShare', title: 'attn % of FLOP', digits: 0 },
        { key: 'gfs', title: 'GFLOP/s', digits: 1 },
        { key: 'pct', title: '% MatMul', digits: 1 },
        { key: 'lpct', title: '% adj. MatMul', digits: 1 },
        { key: 'waste', title: 'attn issued/useful', digits: 2 },
        { key: 'calls', title: 'attend calls' },
        { key: 'cpu', title: 'CPU s (sys)', align: 'right' },
        { key: 'busy', title: 'cores busy', digits: 2 },
        { key: 'rss', title: 'RSS GiB', digits: 2 },
        { key: 'dtok', title: 'decode tok/s', digits: 1 },
        { key: 'dms', title: 'decode ms/tok', digits: 2 },
      ],
      runs.map((r) => ({
        model: r.model,
        N: r.context,
        pms: r.prefillMs,
        ptok: r.prefillTokPerSec,
        gflop: fmtG(r.prefillFlops.total),
        attnShare: (100 * r.prefillFlops.attention) / r.prefillFlops.total,
        gfs: r.prefillGflops,
        pct: r.pctOfMatmul,
        lpct: r.pctOfLocalMatmul,
        waste: r.engine.attendFlops / r.attendUsefulFlops,
        calls: r.engine.attendCalls,
        cpu: `${((r.prefillCounters.userMs + r.prefillCounters.sysMs) / 1000).toFixed(1)} (${(r.prefillCounters.sysMs / 1000).toFixed(1)})`,
        busy: r.prefillCoresBusy,
        rss: r.rssGiB,
        dtok: r.decodeTokPerSec,
        dms: r.decodeMsPerTok,
      })),
    ),
  );
  out('\n');
  out(`\nInside forward: executor-side wall time per piece of the best prefill rep (no worker round trips; useful FLOPs)\n`);
  out(
    table(
      [
        { key: 'model', title: 'model', align: 'left' },
        { key: 'N', title: 'N' },
        { key: 'qkv', title: 'qkv ms', digits: 0 },
        { key: 'append', title: 'append ms', digits: 0 },
        { key: 'attend', title: 'attend ms', digits: 0 },
        { key: 'post', title: 'post ms', digits: 0 },
        { key: 'other', title: 'embed+head ms', digits: 0 },
        { key: 'share', title: 'attend % time', digits: 1 },
        { key: 'agfs', title: 'attend GFLOP/s', digits: 1 },
        { key: 'apct', title: 'attend % MatMul', digits: 1 },
        { key: 'lgfs', title: 'qkv+post GFLOP/s', digits: 1 },
        { key: 'lpct', title: 'qkv+post % MatMul', digits: 1 },
      ],
      runs
        .filter((r) => r.engine.forwardMs?.attend !== undefined) // engines before forwardMs existed report none
        .map((r) => {
          const f = r.engine.forwardMs;
          const total = f.embed + f.qkv + f.append + f.attend + f.post + f.head;
          const attnG = r.prefillFlops.attention / (f.attend * 1e6);
          const linG = r.prefillFlops.linear / ((f.qkv + f.post) * 1e6);
          return { model: r.model, N: r.context, qkv: f.qkv, append: f.append, attend: f.attend, post: f.post, other: f.embed + f.head, share: (100 * f.attend) / total, agfs: attnG, apct: (100 * attnG) / rate, lgfs: linG, lpct: (100 * linG) / rate };
        }),
    ),
  );
  out('\n');
  for (const b of bds) {
    out(`\nPrefill piece by piece: ${b.model}, N=${b.context} (sum ${b.totalMs.toFixed(0)} ms; engine.forward ${b.forwardMs.toFixed(0)} ms)\n`);
    out(
      table(
        [
          { key: 'piece', title: 'piece', align: 'left' },
          { key: 'ms', title: 'ms', digits: 0 },
          { key: 'share', title: '% time', digits: 1 },
          { key: 'gflop', title: 'useful GFLOP', digits: 1 },
          { key: 'issued', title: 'issued GFLOP', digits: 1 },
          { key: 'gfs', title: 'useful GFLOP/s', digits: 1 },
          { key: 'pct', title: '% MatMul', digits: 1 },
        ],
        b.pieces.map((p) => ({
          piece: p.piece,
          ms: p.ms,
          share: (100 * p.ms) / b.totalMs,
          gflop: fmtG(p.flops),
          issued: fmtG(p.issuedFlops),
          gfs: p.flops > 0 ? p.flops / (p.ms * 1e6) : null,
          pct: p.flops > 0 ? (100 * p.flops) / (p.ms * 1e6) / rate : null,
        })),
      ),
    );
    out('\n');
    if (b.decodeSteps > 0) {
      out(`\nDecode piece by piece after that prefill: ${b.decodeSteps} single-token steps, ${b.decodeMsPerToken.toFixed(2)} ms/token; no-op worker round trip ${b.roundTripMs.toFixed(3)} ms\n`);
      out(
        table(
          [
            { key: 'piece', title: 'piece', align: 'left' },
            { key: 'ms', title: 'ms/token', digits: 2 },
            { key: 'calls', title: 'calls/token' },
            { key: 'per', title: 'ms/call', digits: 3 },
          ],
          b.decodePieces.map((p) => ({ piece: p.piece, ms: p.msPerToken, calls: p.callsPerToken, per: p.callsPerToken > 0 ? p.msPerToken / p.callsPerToken : null })),
        ),
      );
      out('\n');
    }
  }
}

// ------------------------------------------------------------------ main

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const machine: MachineInfo = machineInfo();
  const loadStart = os.loadavg();
  progress(`${machine.cpuModel} ×${machine.logicalCpus} [${machine.simd.join(' ')}], node ${machine.node}, onnxruntime-node ${machine.ortVersion}, threads ${args.threads}`);

  // 1. roofline
  const rReps = args.quick ? 3 : 7;
  const roof: MatmulResult[] = [];
  const main2k = { m: 2048, k: 512, n: 2048 };
  for (const v of ['weight', 'inputs'] as const) {
    const r = await measureMatmul(main2k, v, { threads: args.threads, reps: rReps });
    roof.push(r);
    progress(`MatMul (2048×512)·(512×2048) B=${v}: best ${r.bestMs.toFixed(1)} ms → ${r.gflops.toFixed(1)} GFLOP/s`);
  }
  const rate0 = Math.max(roof[0].gflops, roof[1].gflops);
  const engineOpts: ExecutorOptions = { threads: args.threads };
  if (args.pageSize !== null) engineOpts.pageSize = args.pageSize;
  if (args.scoreBudgetMiB !== null) engineOpts.scoreBudgetBytes = args.scoreBudgetMiB * 2 ** 20;
  if (args.keyTile !== null) engineOpts.keyTile = args.keyTile;
  if (args.rowTile !== null) engineOpts.rowTile = args.rowTile;
  if (args.attention !== null) engineOpts.attention = args.attention;
  if (args.maxRowsPerCall !== null) engineOpts.maxRowsPerCall = args.maxRowsPerCall;
  if (args.tilesPerCall !== null) engineOpts.tilesPerCall = args.tilesPerCall;
  if (args.flash !== null) engineOpts.flash = args.flash;

  const runs: RunResult[] = [];
  const bds: Breakdown[] = [];
  const models: { name: string; dir: string; contexts: number[]; cleanup?: () => void }[] = [];
  if (args.stories) {
    if (!fs.existsSync(path.join(args.storiesDir, 'config.json'))) fail(`stories260K not found at ${args.storiesDir} (use --stories-dir or --no-stories)`);
    models.push({ name: 'stories260K', dir: args.storiesDir, contexts: args.storiesContexts });
  }
  if (args.random) {
    const maxPos = Math.max(16384 + 64, Math.max(...args.contexts) + args.decode);
    progress(`writing random checkpoint (hidden 512, 8 layers, 8 heads, 2 KV heads, I 1376, vocab 512, ${maxPos} positions)`);
    const { dir, cleanup } = writeRandomBenchModel(maxPos);
    models.push({ name: RANDOM_BENCH_MODEL_NAME, dir, contexts: args.contexts, cleanup });
  }
  for (const dir of args.modelDirs) {
    if (!fs.existsSync(path.join(dir, 'config.json'))) fail(`--model-dir ${dir}: no config.json`);
    models.push({ name: path.basename(dir), dir, contexts: args.modelContexts });
  }

  const modelInfo: Record<string, { config: ModelConfig; linearFlopsPerToken: number }> = {};
  try {
    for (const m of models) {
      const cfg = loadConfig(m.dir);
      modelInfo[m.name] = { config: cfg, linearFlopsPerToken: linearFlopsPerToken(cfg) };
      for (const N of m.contexts) {
        if (N > cfg.maxPositionEmbeddings) fail(`${m.name}: a ${N}-token prefill exceeds max_position_embeddings ${cfg.maxPositionEmbeddings}`);
      }
      progress(`loading ${m.name} (${m.dir})`);
      const engine = await ModelEngine.load(m.dir, cfg, engineOpts);
      try {
        // Warm-up: first runs of each session pay one-time costs.
        await engine.forward({ cacheId: 'warmup', ids: randomIds(16, cfg.vocabSize, 1), positions: range(0, 16), logits: 'last' });
        await engine.dropCache('warmup');
        for (const N of m.contexts) runs.push(await runContext(engine, cfg, m.name, N, args));
        if (args.breakdown && m.name.startsWith('random')) {
          const N = Math.max(...m.contexts);
          progress(`${m.name} N=${N}: piece-by-piece prefill`);
          const fwd = runs.find((r) => r.model === m.name && r.context === N)!.prefillMs;
          bds.push(await breakdown(engine, cfg, m.name, N, fwd, Math.min(args.decode, 8)));
        }
      } finally {
        await engine.close();
      }
    }
  } finally {
    for (const m of models) m.cleanup?.();
  }

  // 100% = the best MatMul rate seen anywhere in this run (the conservative choice).
  const rate = Math.max(rate0, ...runs.flatMap((r) => r.adjacentMatmulGflops));
  for (const r of runs) r.pctOfMatmul = (100 * r.prefillGflops) / rate;
  const loadEnd = os.loadavg();
  printAll((s) => process.stdout.write(s), args.markdown, roof, rate, runs, bds);
  process.stdout.write(`\nLoad average (1/5/15 min) at start ${loadStart.map((x) => x.toFixed(2)).join(' ')}, at end ${loadEnd.map((x) => x.toFixed(2)).join(' ')} on ${machine.logicalCpus} CPUs\n`);

  if (args.json) {
    const report = {
      date: new Date().toISOString(),
      command: `npx tsx bench/engine.ts ${process.argv.slice(2).join(' ')}`.trim(),
      machine,
      threads: args.threads,
      engineOptions: engineOpts,
      loadavg: { start: loadStart, end: loadEnd },
      roofline: { results: roof, matmulRateGflops: rate, note: 'best of the start-of-run MatMuls and every adjacent MatMul measured next to a prefill' },
      models: modelInfo,
      runs,
      breakdown: bds,
    };
    fs.writeFileSync(args.json, JSON.stringify(report, null, 2) + '\n');
    progress(`wrote ${args.json}`);
  }
}

main().catch((e) => {
  process.stderr.write(`bench/engine: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
