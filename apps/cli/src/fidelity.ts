/**
 * `starq eval fidelity`: how far Star Attention's next-token distributions are from Global's on
 * real text, teacher-forced (docs/DESIGN.md §5.3; the paper's accuracy-vs-block-size ablation).
 *
 * Windows. The text file is encoded once without special tokens (ids `t`). S windows are cut at
 * evenly spaced, deterministic starts `s_j = ⌊j·(T − L)/(S − 1)⌋` (j = 0..S−1; s_0 = 0 when S = 1),
 * T = |t|. Each window is a sequence `w` of N + M + 1 tokens:
 *   - when the tokenizer adds BOS: `w = [BOS] ++ t[s, s + N + M)` (L = N + M text tokens), so the
 *     context is BOS + N − 1 text tokens, exactly like `--context TEXT` in `starq generate`;
 *   - otherwise `w = t[s, s + N + M + 1)` (L = N + M + 1).
 * Context = `w[0, N)`, query = `w[N, N + M)`, and the target of query row i is `w[N + i + 1]` (the
 * last target is the extra token). The whole window must fit the model's position limit.
 *
 * Metrics per (b, a) cell, over all query rows of all windows (float64 log-softmax with max shift
 * of the float32 logits):
 *   kl            mean KL(global ‖ star) = Σ_v p_g(v)·(log p_g(v) − log p_s(v)), each row clamped
 *                 at ≥ 0 (negative values are float rounding of identical rows);
 *   top1Agreement fraction of rows whose argmax (first on ties) is the same;
 *   nll           mean −log p_s(target);
 * plus `globalNll`, the mean −log p_g(target), once.
 *
 * Global logits come from a plain causal forward on one engine (context in chunks with no logits,
 * then the query with logits of all rows), Star logits from `LocalCluster.queryLogits` (phase 1 per
 * block with the anchor, phase 2 merged across hosts). One cluster serves every cell.
 */
import { planMode } from '@starq/attention';
import { InvalidInputError, CapacityError } from '@starq/protocol/errors';
import { LocalCluster } from '@starq/model/local/local-cluster';
import { positionLimit, positionLimitSource } from '@starq/model/positions';
import type { ModelEngine } from '@starq/model/runtime/engine';
import type { ModelConfig } from '@starq/model/types';

// ---------------------------------------------------------------------------------------------
// flags

/** An anchor size as given on the command line: a number, or `'b'` = the cell's block size. */
export type AnchorSpec = number | 'b';

/** Default `--anchor-size` list: no anchor, and anchor = block (the paper's default). */
export const DEFAULT_ANCHORS = '0,b';

/** Default `--samples`. */
export const DEFAULT_SAMPLES = 6;

function splitList(value: string, flag: string): string[] {
  const parts = value.split(',').map((s) => s.trim());
  if (value.trim() === '' || parts.some((p) => p === '')) {
    throw new InvalidInputError('invalid_flag', `--${flag} must be a comma-separated list, got "${value}"`, flag);
  }
  return parts;
}

/** `--block-size 64,112,224` → [64, 112, 224] (integers ≥ 1, duplicates dropped, order kept). */
export function parseBlockSizes(value: string, flag = 'block-size'): number[] {
  const out: number[] = [];
  for (const p of splitList(value, flag)) {
    const n = Number(p);
    if (!/^\d+$/.test(p) || !Number.isSafeInteger(n) || n < 1) {
      throw new InvalidInputError('invalid_block_size', `--${flag} must be integers ≥ 1 (comma-separated), got "${p}"`, flag);
    }
    if (!out.includes(n)) out.push(n);
  }
  return out;
}

/** `--anchor-size 0,32,b` → [0, 32, 'b'] (integers ≥ 0 or the literal `b`; duplicates dropped). */
export function parseAnchorSizes(value: string, flag = 'anchor-size'): AnchorSpec[] {
  const out: AnchorSpec[] = [];
  for (const p of splitList(value, flag)) {
    let a: AnchorSpec;
    if (p === 'b' || p === 'B') a = 'b';
    else {
      const n = Number(p);
      if (!/^\d+$/.test(p) || !Number.isSafeInteger(n)) {
        throw new InvalidInputError('invalid_anchor_size', `--${flag} must be integers ≥ 0 or "b" (= the block size), comma-separated, got "${p}"`, flag);
      }
      a = n;
    }
    if (!out.includes(a)) out.push(a);
  }
  return out;
}

export interface Cell {
  blockSize: number;
  anchorSize: number;
}

/**
 * The ablation grid: every block size × every anchor, `b` resolved, duplicates dropped (e.g. a = 32
 * and a = b for b = 32), in flag order (block-major). An anchor larger than a block is rejected.
 */
export function fidelityCells(blockSizes: number[], anchors: AnchorSpec[]): Cell[] {
  const cells: Cell[] = [];
  for (const b of blockSizes) {
    for (const spec of anchors) {
      const a = spec === 'b' ? b : spec;
      if (a > b) {
        throw new InvalidInputError(
          'invalid_anchor_size',
          `--anchor-size ${a} is larger than --block-size ${b}: anchors must satisfy 0 ≤ a ≤ b (use "b" for an anchor equal to each block size)`,
          'anchor-size',
        );
      }
      if (!cells.some((c) => c.blockSize === b && c.anchorSize === a)) cells.push({ blockSize: b, anchorSize: a });
    }
  }
  return cells;
}

/** A window of N + M + 1 tokens must fit the model: N ≥ 1, M ≥ 1, N + M + 1 ≤ position limit. */
export function checkWindowFits(config: ModelConfig, contextTokens: number, queryTokens: number): void {
  const limit = positionLimit(config);
  const need = contextTokens + queryTokens + 1;
  if (need > limit) {
    throw new CapacityError(
      'context_too_long',
      `a window of --context-tokens ${contextTokens} + --query-tokens ${queryTokens} + 1 target = ${need} tokens exceeds the model's ${positionLimitSource(config)}: lower --context-tokens or --query-tokens`,
      'context-tokens',
    );
  }
}

// ---------------------------------------------------------------------------------------------
// text → ids

export interface TextEncoder {
  encode(text: string, opts?: { addSpecialTokens?: boolean; splitSpecialTokens?: boolean }): number[];
}

/**
 * The text's token ids. Default: the whole file encoded once, without special tokens (special-token
 * strings in it stay plain text). With `docSeparator`: the text is split on that string, each
 * non-empty trimmed document encoded alone and preceded by `bosId` (when not null) — the
 * `[BOS] doc [BOS] doc …` layout models like stories260K were trained on.
 */
export function encodeText(tokenizer: TextEncoder, text: string, bosId: number | null, docSeparator?: string): number[] {
  const enc = (t: string) => tokenizer.encode(t, { addSpecialTokens: false, splitSpecialTokens: true });
  if (docSeparator === undefined) return enc(text);
  const ids: number[] = [];
  for (const doc of text.split(docSeparator)) {
    const d = doc.trim();
    if (d === '') continue;
    if (bosId !== null) ids.push(bosId);
    for (const id of enc(d)) ids.push(id);
  }
  return ids;
}

// ---------------------------------------------------------------------------------------------
// windows

export interface WindowOptions {
  contextTokens: number; // N
  queryTokens: number; // M
  samples: number; // S
  /** BOS id to put first in every window, or null when the tokenizer adds none. */
  bosId: number | null;
}

export interface Window {
  /** Index in the text ids of the window's first text token. */
  start: number;
  /** The N + M + 1 window tokens: context `[0, N)`, query `[N, N + M)`, final target `N + M`. */
  ids: number[];
}

/** Text tokens one window takes: N + M with a BOS first, else N + M + 1. */
export function windowTextLength(o: Pick<WindowOptions, 'contextTokens' | 'queryTokens' | 'bosId'>): number {
  return o.contextTokens + o.queryTokens + (o.bosId === null ? 1 : 0);
}

/**
 * Cuts S windows at evenly spaced starts `⌊j·(T − L)/(S − 1)⌋` (distinct; overlapping only when the
 * text is short). Throws `text_too_short` (naming the token count) when fewer than S distinct
 * windows fit.
 */
export function cutWindows(textIds: readonly number[], o: WindowOptions): Window[] {
  const T = textIds.length;
  const L = windowTextLength(o);
  const S = o.samples;
  if (T < L + S - 1) {
    throw new InvalidInputError(
      'text_too_short',
      `the text file has ${T} tokens; ${S} window${S > 1 ? 's' : ''} of ${L} text tokens (context ${o.contextTokens}${o.bosId !== null ? ' incl. BOS' : ''} + query ${o.queryTokens}` +
        `${o.bosId === null ? ' + 1 target' : ''}) need at least ${L + S - 1}: use a longer text, fewer --samples, or smaller --context-tokens/--query-tokens`,
      'text-file',
    );
  }
  const windows: Window[] = [];
  for (let j = 0; j < S; j++) {
    const start = S === 1 ? 0 : Math.floor((j * (T - L)) / (S - 1));
    const text = textIds.slice(start, start + L);
    windows.push({ start, ids: o.bosId === null ? text : [o.bosId, ...text] });
  }
  return windows;
}

// ---------------------------------------------------------------------------------------------
// metrics

/** Natural-log softmax of one row in float64, max-shifted: (V). */
export function logSoftmax64(row: ArrayLike<number>): Float64Array {
  const V = row.length;
  let m = -Infinity;
  for (let i = 0; i < V; i++) if (row[i] > m) m = row[i];
  const out = new Float64Array(V);
  let s = 0;
  for (let i = 0; i < V; i++) s += Math.exp(row[i] - m);
  const lse = m + Math.log(s);
  for (let i = 0; i < V; i++) out[i] = row[i] - lse;
  return out;
}

/** KL(p ‖ q) from log-probabilities, clamped at ≥ 0. */
export function klFromLogProbs(lp: Float64Array, lq: Float64Array): number {
  let kl = 0;
  for (let i = 0; i < lp.length; i++) {
    const p = Math.exp(lp[i]);
    if (p > 0) kl += p * (lp[i] - lq[i]);
  }
  return kl > 0 ? kl : 0;
}

/** Index of the largest value (first on ties). */
export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** Sums over query rows; `mean*` getters divide by the row count. */
export class FidelityStats {
  rows = 0;
  klSum = 0;
  agree = 0;
  nllSum = 0;

  get kl(): number {
    return this.rows ? this.klSum / this.rows : NaN;
  }
  get top1Agreement(): number {
    return this.rows ? this.agree / this.rows : NaN;
  }
  get nll(): number {
    return this.rows ? this.nllSum / this.rows : NaN;
  }
}

/**
 * Adds M query rows of one window. `global` and `star` are (M, V) row-major logits, `targets` (M).
 * `stats.nll` accumulates the star NLL; `globalStats` (if given) the global NLL.
 */
export function accumulateRows(stats: FidelityStats, global: Float32Array, star: Float32Array, targets: readonly number[], V: number, globalStats?: FidelityStats): void {
  const M = targets.length;
  if (global.length !== M * V || star.length !== M * V) throw new Error(`accumulateRows: expected ${M}×${V} logits, got ${global.length} (global) and ${star.length} (star)`);
  for (let i = 0; i < M; i++) {
    const g = global.subarray(i * V, (i + 1) * V);
    const s = star.subarray(i * V, (i + 1) * V);
    const lg = logSoftmax64(g);
    const ls = logSoftmax64(s);
    stats.rows++;
    stats.klSum += klFromLogProbs(lg, ls);
    if (argmax(g) === argmax(s)) stats.agree++;
    stats.nllSum -= ls[targets[i]];
    if (globalStats) {
      globalStats.rows++;
      globalStats.nllSum -= lg[targets[i]];
    }
  }
}

// ---------------------------------------------------------------------------------------------
// the run

export interface FidelityRunOptions {
  modelDir: string;
  config: ModelConfig;
  windows: Window[];
  contextTokens: number;
  queryTokens: number;
  cells: Cell[];
  /** Requested hosts per Star request. @defaultValue min(4, blocks) per cell */
  hosts?: number;
  /** ORT threads per engine. @defaultValue the LocalCluster defaults */
  threads?: number;
  /** Global prefill chunk (tokens per forward). @defaultValue 2048 */
  prefillChunkTokens?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface FidelityCellResult extends Cell {
  kl: number;
  top1Agreement: number;
  nll: number;
}

export interface FidelityResult {
  contextTokens: number;
  queryTokens: number;
  samples: number;
  globalNll: number;
  cells: FidelityCellResult[];
  /** Hosts of the local cluster (the most any cell needs). */
  hosts: number;
  elapsedMs: number;
}

/** Hosts the cluster needs: the largest effective host count over the cells (validates the plans). */
export function clusterHosts(contextTokens: number, cells: Cell[], hosts?: number): number {
  let max = 1;
  for (const c of cells) {
    const plan = planMode('star', contextTokens, { blockSize: c.blockSize, anchorSize: c.anchorSize, hosts: hosts ?? null });
    max = Math.max(max, plan.effectiveHosts);
  }
  return max;
}

/** Teacher-forced global logits of the M query rows: (M, V). */
export async function globalQueryLogits(engine: ModelEngine, contextIds: number[], queryIds: number[], chunk = 2048): Promise<Float32Array> {
  const cacheId = `fidelity-global-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`;
  const N = contextIds.length;
  await engine.createCache(cacheId, N + queryIds.length);
  try {
    for (let s = 0; s < N; s += chunk) {
      const e = Math.min(N, s + chunk);
      await engine.forward({ cacheId, ids: Int32Array.from(contextIds.slice(s, e)), positions: Int32Array.from({ length: e - s }, (_, i) => s + i), logits: 'none' });
    }
    const logits = await engine.forward({ cacheId, ids: Int32Array.from(queryIds), positions: Int32Array.from(queryIds, (_, i) => N + i), logits: 'all' });
    return logits!;
  } finally {
    await engine.dropCache(cacheId).catch(() => undefined);
  }
}

export async function runFidelity(o: FidelityRunOptions): Promise<FidelityResult> {
  const t0 = performance.now();
  const N = o.contextTokens;
  const M = o.queryTokens;
  const V = o.config.vocabSize;
  if (o.cells.length === 0) throw new InvalidInputError('invalid_block_size', 'no (block size, anchor size) cell to evaluate', 'block-size');
  checkWindowFits(o.config, N, M);
  for (const w of o.windows) {
    if (w.ids.length !== N + M + 1) throw new Error(`window at ${w.start} has ${w.ids.length} tokens, expected ${N + M + 1}`);
    w.ids.forEach((id, i) => {
      if (!Number.isInteger(id) || id < 0 || id >= V) {
        throw new InvalidInputError('invalid_token_id', `token id ${id} (window at text token ${w.start}, index ${i}) is outside the model vocabulary [0, ${V})`, 'text-file');
      }
    });
  }
  const hosts = clusterHosts(N, o.cells, o.hosts); // validates every plan before any engine starts
  const stats = o.cells.map(() => new FidelityStats());
  const globalStats = new FidelityStats();
  const total = o.windows.length * (1 + o.cells.length);
  let done = 0;
  const cluster = await LocalCluster.start(o.modelDir, o.config, { hosts, hostThreads: o.threads, queryThreads: o.threads });
  try {
    o.onProgress?.(0, total); // after start-up, so rates and ETAs reflect the evaluation
    for (const w of o.windows) {
      const contextIds = w.ids.slice(0, N);
      const queryIds = w.ids.slice(N, N + M);
      const targets = w.ids.slice(N + 1, N + M + 1);
      // The query actor's engine is idle between Star requests: use it for the plain global forward.
      const global = await globalQueryLogits(cluster.queryEngine, contextIds, queryIds, o.prefillChunkTokens);
      o.onProgress?.(++done, total);
      for (let c = 0; c < o.cells.length; c++) {
        const { blockSize, anchorSize } = o.cells[c];
        const star = await cluster.queryLogits({ mode: 'star', contextIds, queryIds, blockSize, anchorSize, hosts: o.hosts });
        accumulateRows(stats[c], global, star, targets, V, c === 0 ? globalStats : undefined);
        o.onProgress?.(++done, total);
      }
    }
  } finally {
    await cluster.close();
  }
  return {
    contextTokens: N,
    queryTokens: M,
    samples: o.windows.length,
    globalNll: globalStats.nll,
    cells: o.cells.map((c, i) => ({ ...c, kl: stats[i].kl, top1Agreement: stats[i].top1Agreement, nll: stats[i].nll })),
    hosts,
    elapsedMs: performance.now() - t0,
  };
}

// ---------------------------------------------------------------------------------------------
// output

function fmtKl(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return '0';
  return v < 1e-3 ? v.toExponential(2) : v.toFixed(6);
}

/** `+0.0123` / `-0.0123`; rounds to `+0.0000` rather than `-0.0000`. */
function signed(v: number, digits: number): string {
  const t = v.toFixed(digits);
  return Number(t) === 0 ? `+${(0).toFixed(digits)}` : v > 0 ? `+${t}` : t;
}

/** The human-readable table (stdout without --json). */
export function formatFidelityTable(r: FidelityResult, model: string): string {
  const lines: string[] = [];
  lines.push(`model ${model}: ${r.samples} window${r.samples > 1 ? 's' : ''} of ${r.contextTokens} context + ${r.queryTokens} query tokens, teacher-forced, ${r.hosts} host${r.hosts > 1 ? 's' : ''}`);
  lines.push(`global NLL ${r.globalNll.toFixed(4)} (${r.samples * r.queryTokens} query rows)`);
  lines.push('');
  const head = ['block', 'anchor', 'KL(global‖star)', 'top-1 agree', 'NLL star', 'ΔNLL'];
  const rows = r.cells.map((c) => [
    String(c.blockSize),
    String(c.anchorSize),
    fmtKl(c.kl),
    `${(c.top1Agreement * 100).toFixed(2)}%`,
    c.nll.toFixed(4),
    signed(c.nll - r.globalNll, 4),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const fmt = (row: string[]) => row.map((v, i) => v.padStart(widths[i])).join('  ');
  lines.push(fmt(head));
  for (const row of rows) lines.push(fmt(row));
  return lines.join('\n') + '\n';
}

/** The `--json` object (exactly these keys). */
export function fidelityJson(r: FidelityResult, model: string): Record<string, unknown> {
  return {
    model,
    contextTokens: r.contextTokens,
    queryTokens: r.queryTokens,
    samples: r.samples,
    globalNll: r.globalNll,
    cells: r.cells.map((c) => ({ blockSize: c.blockSize, anchorSize: c.anchorSize, kl: c.kl, top1Agreement: c.top1Agreement, nll: c.nll })),
  };
}
