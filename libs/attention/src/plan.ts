/**
 * Block / anchor / host planning for Star Attention (docs/DESIGN.md §2).
 *
 *   Blocks   B_k = c[k·b, min((k+1)·b, N)), k = 0..K−1, K = ⌈N/b⌉, no padding.
 *   Phase 1  block 0 is encoded alone (positions 0..|B_0|−1); block k ≥ 1 is encoded as
 *            c[0, a') ++ B_k with positions 0..a'−1 ++ k·b..k·b+|B_k|−1, a' = min(a, N),
 *            causal attention inside that sequence; only B_k's K/V (the rows from `keepFrom` on)
 *            are kept. a = 0: every block alone at its global positions.
 *   Hosts    contiguous runs of blocks, as even as possible; never more hosts than blocks.
 *
 * Every position in a phase-1 sequence equals the token's index in the context (the anchor is
 * c[0, a') at positions 0..a'−1, the block c[k·b, ..) at k·b, ..), so a sequence is fully described
 * by its token ranges; `phase1Positions` expands them.
 */
import { InvalidInputError } from '@starq/protocol/errors';

/** Half-open token range [start, end) of the context. */
export interface TokenRange {
  start: number;
  end: number;
}

/** The phase-1 input of one block: `segments` concatenated, positions = token indices. */
export interface Phase1Sequence {
  /** Token ranges of the context, in order: [anchor,] block. */
  segments: TokenRange[];
  /** Number of leading anchor rows to discard after encoding (a' for k ≥ 1, else 0). */
  keepFrom: number;
  /** Total sequence length (keepFrom + block length). */
  length: number;
}

export interface BlockPlan {
  index: number; // k
  start: number; // k·b
  end: number; // min((k+1)·b, N)
  phase1: Phase1Sequence;
}

export interface HostAssignment {
  host: number; // 0..effectiveHosts−1
  blocks: number[]; // contiguous block indices
}

export interface HostPlan {
  requestedHosts: number;
  effectiveHosts: number; // min(requested, K)
  assignments: HostAssignment[]; // (effectiveHosts)
  /** hostOfBlock[k] = host that owns block k. (K) */
  hostOfBlock: number[];
}

export interface BlockLayout {
  contextLength: number; // N
  blockSize: number; // b
  anchorSize: number; // a (as requested)
  anchorLength: number; // a' = min(a, N), the anchor length used by blocks k ≥ 1
  numBlocks: number; // K
  blocks: BlockPlan[]; // (K)
}

/** Everything a Star request needs to distribute phase 1. */
export interface StarPlan extends BlockLayout, HostPlan {}

// ---------------------------------------------------------------------------------------------
// validation

interface Problem {
  code: string;
  param: string;
  message: string;
}

function describe(v: unknown): string {
  return typeof v === 'number' ? String(v) : JSON.stringify(v) ?? String(v);
}

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v);
}

function checkContext(N: unknown, out: Problem[]): void {
  if (!isInt(N) || N < 1) {
    out.push({
      code: 'empty_context',
      param: 'context',
      message: `context must contain at least 1 token (got length ${describe(N)})`,
    });
  }
}

function checkBlockSize(b: unknown, out: Problem[]): void {
  if (!isInt(b) || b < 1) {
    out.push({
      code: 'invalid_block_size',
      param: 'block_size',
      message: `block_size must be an integer >= 1 (got ${describe(b)})`,
    });
  }
}

function checkAnchor(a: unknown, b: unknown, out: Problem[]): void {
  const bOk = isInt(b) && b >= 1;
  if (!isInt(a) || a < 0 || (bOk && a > (b as number))) {
    out.push({
      code: 'invalid_anchor_size',
      param: 'anchor_size',
      message: bOk
        ? `anchor_size must be an integer with 0 <= anchor_size <= block_size (${b}) (got ${describe(a)})`
        : `anchor_size must be an integer with 0 <= anchor_size <= block_size (got ${describe(a)})`,
    });
  }
}

function checkHosts(h: unknown, out: Problem[]): void {
  if (!isInt(h) || h < 1) {
    out.push({ code: 'invalid_hosts', param: 'hosts', message: `hosts must be an integer >= 1 (got ${describe(h)})` });
  }
}

/** One error for all problems: code and param of the first, message listing all. */
function throwProblems(problems: Problem[]): void {
  if (problems.length === 0) return;
  const message =
    problems.length === 1 ? problems[0].message : `invalid parameters: ${problems.map((p) => p.message).join('; ')}`;
  throw new InvalidInputError(problems[0].code, message, problems[0].param);
}

// ---------------------------------------------------------------------------------------------
// planning

/** Default block size: ⌈N/4⌉ (at least 1). */
export function defaultBlockSize(N: number): number {
  return Math.max(1, Math.ceil(N / 4));
}

/** Default host count for K blocks: min(4, K). */
export function defaultHosts(K: number): number {
  return Math.max(1, Math.min(4, K));
}

function layout(N: number, b: number, a: number): BlockLayout {
  const K = Math.ceil(N / b);
  const aLen = Math.min(a, N);
  const blocks: BlockPlan[] = [];
  for (let k = 0; k < K; k++) {
    const start = k * b;
    const end = Math.min(start + b, N);
    const withAnchor = k >= 1 && aLen > 0;
    const segments: TokenRange[] = withAnchor ? [{ start: 0, end: aLen }, { start, end }] : [{ start, end }];
    const keepFrom = withAnchor ? aLen : 0;
    blocks.push({ index: k, start, end, phase1: { segments, keepFrom, length: keepFrom + (end - start) } });
  }
  return { contextLength: N, blockSize: b, anchorSize: a, anchorLength: aLen, numBlocks: K, blocks };
}

function hostPlan(K: number, hosts: number): HostPlan {
  const eff = Math.min(hosts, K);
  const base = Math.floor(K / eff);
  const extra = K % eff; // the first `extra` hosts take one more block
  const assignments: HostAssignment[] = [];
  const hostOfBlock: number[] = new Array<number>(K);
  let next = 0;
  for (let h = 0; h < eff; h++) {
    const n = base + (h < extra ? 1 : 0);
    const blocks: number[] = [];
    for (let i = 0; i < n; i++) {
      blocks.push(next);
      hostOfBlock[next] = h;
      next++;
    }
    assignments.push({ host: h, blocks });
  }
  return { requestedHosts: hosts, effectiveHosts: eff, assignments, hostOfBlock };
}

/**
 * Split a context of N tokens into blocks of b and describe each block's phase-1 sequence with an
 * anchor of a tokens. Throws InvalidInputError (all problems in one error).
 */
export function planBlocks(N: number, b: number, a: number = b): BlockLayout {
  const problems: Problem[] = [];
  checkBlockSize(b, problems);
  checkAnchor(a, b, problems);
  checkContext(N, problems);
  throwProblems(problems);
  return layout(N, b, a);
}

/**
 * Assign K blocks to hosts as contiguous, near-even runs (host i gets ⌊K/h⌋ or ⌈K/h⌉ blocks, the
 * larger runs first). Uses only min(hosts, K) hosts.
 */
export function assignHosts(K: number, hosts: number): HostPlan {
  const problems: Problem[] = [];
  checkHosts(hosts, problems);
  if (!isInt(K) || K < 1) {
    problems.push({ code: 'empty_context', param: 'context', message: `need at least 1 block (got ${describe(K)})` });
  }
  throwProblems(problems);
  return hostPlan(K, hosts);
}

export interface StarPlanOptions {
  /** N, the number of context tokens. */
  contextLength: number;
  /** b. @defaultValue ⌈N/4⌉ */
  blockSize?: number | null;
  /** a. @defaultValue b */
  anchorSize?: number | null;
  /** @defaultValue min(4, K) */
  hosts?: number | null;
}

/**
 * The full plan with defaults applied: blocks, phase-1 sequences and host assignment. All invalid
 * parameters are reported together in one InvalidInputError (code/param of the first, in the order
 * block_size, anchor_size, hosts, context).
 */
export function planStar(opts: StarPlanOptions): StarPlan {
  const N = opts.contextLength;
  const nOk = isInt(N) && N >= 1;
  const b = opts.blockSize ?? (nOk ? defaultBlockSize(N) : 1);
  const a = opts.anchorSize ?? b;
  const problems: Problem[] = [];
  checkBlockSize(b, problems);
  checkAnchor(a, b, problems);
  if (opts.hosts !== undefined && opts.hosts !== null) checkHosts(opts.hosts, problems);
  checkContext(N, problems);
  throwProblems(problems);
  const blocks = layout(N, b, a);
  const hosts = hostPlan(blocks.numBlocks, opts.hosts ?? defaultHosts(blocks.numBlocks));
  return { ...blocks, ...hosts };
}

/** Positions of a phase-1 sequence: (length) — each token's index in the context. */
export function phase1Positions(seq: Phase1Sequence): Int32Array {
  const pos = new Int32Array(seq.length); // (length)
  let t = 0;
  for (const { start, end } of seq.segments) for (let i = start; i < end; i++) pos[t++] = i;
  return pos;
}

/** Token ids of a phase-1 sequence, gathered from the context ids: (length). */
export function phase1Tokens(contextIds: ArrayLike<number>, seq: Phase1Sequence): number[] {
  const ids: number[] = [];
  for (const { start, end } of seq.segments) for (let i = start; i < end; i++) ids.push(contextIds[i]);
  return ids;
}
