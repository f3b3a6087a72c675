/**
 * Runs the RULER grid in process: for every task and length, S samples are generated once (see
 * tasks.ts) and answered by every mode cell (global; Star per block/anchor pair), so Star and Global
 * see the same prompts and retention is a paired comparison. Greedy decoding, stop at the
 * tokenizer's EOS ids or after max-new-tokens; the prediction is the decoded answer without special
 * tokens, scored with RULER's string_match_all (scoring.ts).
 *
 * One `LocalCluster` (as many hosts as the largest Star cell needs) serves the whole run.
 */
import type { ModelConfig } from '@starq/model/types';
import type { GenerateOptions } from '@starq/model/generate';
import { LocalCluster } from '@starq/model/local/local-cluster';
import type { StarqTokenizer } from '@starq/model/tokenizer';
import type { Haystack } from './haystack';
import { type ModeCell, clusterHosts, maxNewTokensFor } from './options';
import { PromptFormat } from './prompt';
import { matchAll } from './scoring';
import { type RulerSample, type TaskName, generateSample } from './tasks';

export interface RulerRunOptions {
  modelDir: string;
  config: ModelConfig;
  tokenizer: StarqTokenizer;
  haystack: Haystack;
  tasks: TaskName[];
  lengths: number[];
  /** Mode cells per length (same order as `lengths`), from `modeCells`. */
  cells: ModeCell[][];
  samples: number;
  seed: number;
  /** Requested hosts per Star request. @defaultValue min(4, blocks) */
  hosts?: number;
  /** ORT threads per engine. @defaultValue the LocalCluster defaults */
  threads?: number;
  /** Overrides every task's default. */
  maxNewTokens?: number;
  /** A cell starts: its position among all cells and its description. */
  onCell?: (info: CellInfo) => void;
  /** Samples generated / answered within the current (task, length) or cell. */
  onProgress?: (done: number, total: number) => void;
}

export interface CellInfo {
  task: TaskName;
  length: number;
  cell: ModeCell | null; // null: generating the samples of (task, length)
  index: number; // 0-based cell index over the run
  total: number; // cells in the run
  elapsedMs: number;
  /** Estimated remaining run time (from the speed of the finished cells, weighted by length), or null before the first cell ends. */
  etaMs: number | null;
}

export interface CellResult {
  task: TaskName;
  length: number;
  mode: 'global' | 'star';
  /** Mean string_match_all score in [0, 1]. */
  accuracy: number;
  samples: number;
  blockSize?: number;
  anchorSize?: number;
  block?: string;
  anchor?: string;
  /** Star: accuracy / global accuracy at the same (task, length); null without global or when it is 0. */
  retention?: number | null;
  /** Samples scored 1 (every reference found). */
  exact: number;
  meanLatencyMs: number;
  meanGeneratedTokens: number;
  maxNewTokens: number;
}

export interface LengthStats {
  task: TaskName;
  length: number;
  /** Mean / min / max of context + query tokens over the samples. */
  meanTokens: number;
  minTokens: number;
  maxTokens: number;
}

export interface RulerResult {
  results: CellResult[];
  lengths: LengthStats[];
  hosts: number;
  prompt: 'plain' | 'chat';
  elapsedMs: number;
}

/** Retention = star / global accuracy per (task, length); null when global is absent or 0. */
export function addRetention(results: CellResult[]): void {
  for (const r of results) {
    if (r.mode !== 'star') continue;
    const g = results.find((x) => x.mode === 'global' && x.task === r.task && x.length === r.length);
    r.retention = g && g.accuracy > 0 ? r.accuracy / g.accuracy : null;
  }
}

/** The samples of one (task, length). */
export function generateSamples(o: Pick<RulerRunOptions, 'seed' | 'samples'>, task: TaskName, length: number, format: PromptFormat, haystack: Haystack, onProgress?: (done: number, total: number) => void): RulerSample[] {
  const out: RulerSample[] = [];
  for (let i = 0; i < o.samples; i++) {
    out.push(generateSample({ task, length, index: i, samples: o.samples, seed: o.seed }, { format, haystack }));
    onProgress?.(i + 1, o.samples);
  }
  return out;
}

export async function runRuler(o: RulerRunOptions): Promise<RulerResult> {
  const t0 = performance.now();
  const hosts = clusterHosts(o.cells, o.lengths, o.hosts); // validates every plan before any engine starts
  const format = new PromptFormat(o.tokenizer);
  const totalCells = o.tasks.length * o.cells.reduce((s, c) => s + c.length, 0);
  const totalWork = o.tasks.length * o.cells.reduce((s, c, i) => s + c.length * o.lengths[i], 0);
  let doneWork = 0;
  let workMs = 0;
  let cellIndex = 0;
  const results: CellResult[] = [];
  const lengthStats: LengthStats[] = [];
  const cluster = await LocalCluster.start(o.modelDir, o.config, { hosts, hostThreads: o.threads, queryThreads: o.threads });
  try {
    for (const task of o.tasks) {
      const maxNewTokens = maxNewTokensFor(task, o.maxNewTokens);
      for (let li = 0; li < o.lengths.length; li++) {
        const length = o.lengths[li];
        const info = (cell: ModeCell | null): CellInfo => ({
          task,
          length,
          cell,
          index: cellIndex,
          total: totalCells,
          elapsedMs: performance.now() - t0,
          etaMs: doneWork > 0 ? (workMs / doneWork) * (totalWork - doneWork) : null,
        });
        o.onCell?.(info(null));
        const samples = generateSamples(o, task, length, format, o.haystack, o.onProgress);
        const tokens = samples.map((s) => s.contextIds.length + s.queryIds.length);
        lengthStats.push({ task, length, meanTokens: tokens.reduce((a, b) => a + b, 0) / tokens.length, minTokens: Math.min(...tokens), maxTokens: Math.max(...tokens) });
        for (const cell of o.cells[li]) {
          o.onCell?.(info(cell));
          const tCell = performance.now();
          let score = 0;
          let exact = 0;
          let latency = 0;
          let generated = 0;
          o.onProgress?.(0, samples.length);
          for (let i = 0; i < samples.length; i++) {
            const s = samples[i];
            const gen: GenerateOptions = { maxNewTokens, sampling: { temperature: 0, topK: 0, topP: 1, seed: 0 }, stopIds: o.tokenizer.eosTokenIds };
            const req =
              cell.mode === 'global'
                ? { mode: 'global' as const, contextIds: s.contextIds, queryIds: s.queryIds }
                : { mode: 'star' as const, contextIds: s.contextIds, queryIds: s.queryIds, blockSize: cell.blockSize, anchorSize: cell.anchorSize, hosts: o.hosts };
            const t = performance.now();
            const r = await cluster.generate(req, gen);
            latency += performance.now() - t;
            generated += r.generatedIds.length;
            const pred = o.tokenizer.decode(r.generatedIds, { skipSpecialTokens: true });
            const sc = matchAll(pred, s.references);
            score += sc;
            if (sc === 1) exact++;
            o.onProgress?.(i + 1, samples.length);
          }
          results.push({
            task,
            length,
            mode: cell.mode,
            accuracy: score / samples.length,
            samples: samples.length,
            ...(cell.mode === 'star' ? { blockSize: cell.blockSize, anchorSize: cell.anchorSize, block: cell.block, anchor: cell.anchor } : {}),
            exact,
            meanLatencyMs: latency / samples.length,
            meanGeneratedTokens: generated / samples.length,
            maxNewTokens,
          });
          workMs += performance.now() - tCell;
          doneWork += length;
          cellIndex++;
        }
      }
    }
  } finally {
    await cluster.close();
  }
  addRetention(results);
  return { results, lengths: lengthStats, hosts, prompt: format.kind, elapsedMs: performance.now() - t0 };
}
