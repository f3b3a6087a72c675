/**
 * `starq bench speed`: run every cell once on a backend, measure the same-run MatMul roofline,
 * and turn timings into the result table.
 *
 * Per cell (JSON field names are part of the CLI contract):
 *   phase1Ms            wall time of context encoding (phase 1)
 *   firstTokenMs        time to first token from the request's start (phase 1 + query chunk + 1st sample)
 *   decodeTokensPerSec  tokens/s of the decode steps after the first token
 *   gflop               analytic phase-1 GFLOP (libs/model/src/perf/flops.ts), Star's anchor once per host
 *   gflopAnchorPerBlock the same count with the anchor recomputed for every block (the paper's)
 *   gflops              gflop / phase-1 seconds (achieved rate of phase 1)
 *   ratioVsGlobal       Global's phase1Ms / this cell's (phase-1 speedup over Global, same context)
 *   ratioVsRing         Ring's phase1Ms / this cell's (same context and host count)
 *   peakRssMb           peak RSS during the cell (see backends.ts)
 *   kvMb                KV the cell holds (cells.ts `cellKvBytes`: context rows, Star's anchors once
 *                       per host, the query actor's own rows)
 *   baseRssMb           RSS of the cell's processes with their engines started, before the request
 *                       (weights, ORT sessions, runtime: "weights + engines")
 *   expectedMb          kvMb + baseRssMb; peakVsExpected = peakRssMb / expectedMb
 *   predicted           true for a Global cell that was not run (--predict-global-from): its
 *                       phase1Ms is its FLOPs at the rate Global measured at `predictedFrom`
 *                       tokens in this run; its phase-2 and memory fields are null
 * plus `predictedRatioVsGlobal` (Global's FLOPs / this cell's), `predictedRatioAnchorPerBlock` (the
 * same from the anchor-per-block counts), `efficiency` (gflops / matmulGflops)
 * and the phase-2 figures. `roofline.matmulGflops` is the best plain ORT MatMul rate with the
 * run's thread count, measured before the first cell and after the last (the higher counts).
 */
import { randomTokenIds } from '@starq/model/synthetic/token-ids';
import { bestRoofline, type RooflineResult } from '@starq/model/perf/roofline';
import type { GenerateOptions } from '@starq/model/generate';
import type { SpeedCellSpec } from './cells';
import type { SpeedBackend } from './backends';

export interface SpeedCellResult {
  mode: SpeedCellSpec['mode'];
  contextTokens: number;
  blockSize: number;
  anchorSize: number;
  hosts: number;
  blockLabel: string;
  blocks: number;
  phase1Ms: number;
  firstTokenMs: number | null;
  decodeTokensPerSec: number | null;
  phase2Ms: number | null;
  gflop: number;
  gflopAnchorPerBlock: number;
  gflops: number;
  efficiency: number;
  ratioVsGlobal: number | null;
  predictedRatioVsGlobal: number | null;
  predictedRatioAnchorPerBlock: number | null;
  ratioVsRing: number | null;
  peakRssMb: number | null;
  kvMb: number;
  baseRssMb: number | null;
  expectedMb: number | null;
  peakVsExpected: number | null;
  generatedTokens: number;
  predicted: boolean;
  /** The context whose measured Global rate predicts this cell (null: measured). */
  predictedFrom: number | null;
}

export interface SpeedResult {
  /** The higher of the two measurements (before the first cell and after the last). */
  roofline: RooflineResult & { before: number; after: number };
  backend: 'in-process' | 'cluster';
  threads: number;
  queryTokens: number;
  newTokens: number;
  cells: SpeedCellResult[];
}

export interface RunSpeedOptions {
  cells: SpeedCellSpec[];
  backend: SpeedBackend;
  threads: number;
  vocabSize: number;
  /** Token ids the random context must avoid (BOS/EOS/…): drawn from [firstId, vocab). */
  firstId: number;
  queryTokens: number;
  newTokens: number;
  seed: number;
  /** Called when a cell starts and as it progresses (phase-1 units, tokens). */
  onCell?: (i: number, total: number, cell: SpeedCellSpec, etaMs: number | null) => void;
  onPhase1?: (done: number, total: number) => void;
  /** Called with each measured cell's result as soon as it is done (ratios and efficiency not yet set). */
  onCellDone?: (res: SpeedCellResult) => void;
  onToken?: (index: number, total: number) => void;
}

export async function runSpeed(o: RunSpeedOptions): Promise<SpeedResult> {
  // The MatMul rate moves with the machine's load and clock: measure it before and after the cells
  // and take the higher (the figure any cell could at best have reached).
  const before = await bestRoofline(o.threads);
  const raw: { spec: SpeedCellSpec; res: SpeedCellResult }[] = [];
  // A cluster backend runs one cluster per host count: run the cells grouped by host count (stable),
  // report them in plan order.
  const order = o.cells.map((_, i) => i).filter((i) => o.cells[i].predictedFrom === null);
  if (o.backend.name === 'cluster') order.sort((x, y) => o.cells[x].hosts - o.cells[y].hosts || x - y);
  const totalFlops = order.reduce((s, i) => s + o.cells[i].phase1Flops + o.cells[i].phase2Flops, 0);
  let doneFlops = 0;
  const t0 = performance.now();
  for (let n = 0; n < order.length; n++) {
    const i = order[n];
    const spec = o.cells[i];
    const elapsed = performance.now() - t0;
    o.onCell?.(n, order.length, spec, doneFlops > 0 ? (elapsed * (totalFlops - doneFlops)) / doneFlops : null);
    // The same context for every cell of a context length (and the same query), so only the mode differs.
    const contextIds = randomTokenIds(spec.contextTokens, o.vocabSize, o.seed * 7919 + spec.contextTokens, o.firstId);
    const queryIds = randomTokenIds(o.queryTokens, o.vocabSize, o.seed * 7919 + 1, o.firstId);
    const gen: GenerateOptions = {
      maxNewTokens: o.newTokens,
      sampling: { temperature: 0, topK: 0, topP: 1, seed: o.seed },
      stopIds: [],
      ignoreEos: true,
      onProgress: o.onPhase1,
      onToken: (_id, index) => o.onToken?.(index + 1, o.newTokens),
    };
    const run = await o.backend.run(spec, contextIds, queryIds, gen);
    const t = run.timings;
    const gflop = spec.phase1Flops / 1e9;
    const gflops = t.phase1Ms > 0 ? gflop / (t.phase1Ms / 1000) : 0;
    raw[i] = {
      spec,
      res: {
        mode: spec.mode,
        contextTokens: spec.contextTokens,
        blockSize: spec.blockSize,
        anchorSize: spec.anchorSize,
        hosts: spec.hosts,
        blockLabel: spec.blockLabel,
        blocks: spec.plan.numBlocks,
        phase1Ms: t.phase1Ms,
        firstTokenMs: t.phase1Ms + t.firstTokenMs,
        decodeTokensPerSec: t.decodeTokensPerSec,
        phase2Ms: t.phase2Ms,
        gflop,
        gflopAnchorPerBlock: spec.phase1FlopsAnchorPerBlock / 1e9,
        gflops,
        efficiency: 0, // set once the roofline is known
        ratioVsGlobal: null,
        predictedRatioVsGlobal: null,
        predictedRatioAnchorPerBlock: null,
        ratioVsRing: null,
        peakRssMb: run.peakRssBytes / 2 ** 20,
        kvMb: spec.kvBytes / 2 ** 20,
        baseRssMb: run.baseRssBytes / 2 ** 20,
        expectedMb: (spec.kvBytes + run.baseRssBytes) / 2 ** 20,
        peakVsExpected: run.peakRssBytes / (spec.kvBytes + run.baseRssBytes),
        generatedTokens: run.generatedIds.length,
        predicted: false,
        predictedFrom: null,
      },
    };
    o.onCellDone?.(raw[i].res);
    doneFlops += spec.phase1Flops + spec.phase2Flops;
  }
  const after = await bestRoofline(o.threads);
  const roofline = { ...(after.matmulGflops > before.matmulGflops ? after : before), before: before.matmulGflops, after: after.matmulGflops };
  o.cells.forEach((spec, i) => {
    if (spec.predictedFrom !== null) raw[i] = { spec, res: predictGlobal(spec, raw.find((r) => r?.spec.mode === 'global' && r.spec.predictedFrom === null && r.spec.contextTokens === spec.predictedFrom)) };
  });
  for (const { res } of raw) res.efficiency = res.gflops / roofline.matmulGflops;
  for (const { spec, res } of raw) {
    const global = raw.find((r) => r.spec.mode === 'global' && r.spec.contextTokens === spec.contextTokens);
    if (spec.predictedFrom !== null) continue; // a predicted Global cell is Global
    const ring = raw.find((r) => r.spec.mode === 'ring' && r.spec.contextTokens === spec.contextTokens && r.spec.hosts === spec.hosts);
    if (global) {
      res.ratioVsGlobal = global.res.phase1Ms / res.phase1Ms;
      res.predictedRatioVsGlobal = global.spec.phase1Flops / spec.phase1Flops;
      res.predictedRatioAnchorPerBlock = global.spec.phase1Flops / spec.phase1FlopsAnchorPerBlock;
    }
    if (ring) res.ratioVsRing = ring.res.phase1Ms / res.phase1Ms;
  }
  return { roofline, backend: o.backend.name, threads: o.threads, queryTokens: o.queryTokens, newTokens: o.newTokens, cells: raw.map((r) => r.res) };
}

/** A Global cell not run: its FLOPs at the phase-1 rate Global measured at `predictedFrom` tokens. */
function predictGlobal(spec: SpeedCellSpec, from: { spec: SpeedCellSpec; res: SpeedCellResult } | undefined): SpeedCellResult {
  if (!from) throw new Error(`no measured Global cell at ${spec.predictedFrom} tokens to predict Global at ${spec.contextTokens} from`);
  const gflops = from.res.gflops; // GFLOP/s measured at predictedFrom
  const gflop = spec.phase1Flops / 1e9;
  return {
    mode: spec.mode,
    contextTokens: spec.contextTokens,
    blockSize: spec.blockSize,
    anchorSize: spec.anchorSize,
    hosts: spec.hosts,
    blockLabel: spec.blockLabel,
    blocks: spec.plan.numBlocks,
    phase1Ms: (gflop / gflops) * 1000,
    firstTokenMs: null,
    decodeTokensPerSec: null,
    phase2Ms: null,
    gflop,
    gflopAnchorPerBlock: spec.phase1FlopsAnchorPerBlock / 1e9,
    gflops,
    efficiency: 0,
    ratioVsGlobal: null,
    predictedRatioVsGlobal: null,
    predictedRatioAnchorPerBlock: null,
    ratioVsRing: null,
    peakRssMb: null,
    kvMb: spec.kvBytes / 2 ** 20,
    baseRssMb: null,
    expectedMb: null,
    peakVsExpected: null,
    generatedTokens: 0,
    predicted: true,
    predictedFrom: spec.predictedFrom,
  };
}
