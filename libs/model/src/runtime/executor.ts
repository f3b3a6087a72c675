/**
 * The model forward on onnxruntime: one object that owns a model's ORT sessions and KV caches and
 * runs the layer loop. It runs inside a worker thread (see `worker.ts`), because `session.run`
 * blocks the JS thread; `ModelEngine` (engine.ts) is its main-thread handle.
 *
 * One forward, read top to bottom (llama2.c style):
 *   x = embed(ids)                                   // (T, hidden)
 *   for each layer:
 *     q, k, v = qkv(x, cos, sin)                     // (H, T, D), (Hkv, T, D) ×2 — RMSNorm, proj, RoPE
 *     cache.append(k, v rows ≥ keepFrom)             // anchor rows (< keepFrom) are attended, not kept
 *     attn = attend(q over anchor + cache)           // (H, T, D) — anchor: rows < keepFrom, or a kept anchor cache
 *     x = post(x, attn)                              // o_proj + residual + SwiGLU MLP + residual
 *   logits = head(x)                                 // (T or 1, vocab)
 *
 * The same pieces are exposed one by one (`qkv`, `attendCache`, `attendKv`, `post`, `head`) so that
 * Star Attention's phase 2 and Ring Attention can place the attention step on other hosts.
 */
import * as ort from 'onnxruntime-node';
import type { AttendRequest, GroupedQuery, Partial, RowGroup } from '@starq/attention';
import { CapacityError, InvalidInputError } from '@starq/protocol/errors';
import { MAX_BATCH_TILES } from '../onnx/attend-batch-graph';
import { buildHeadGraph, buildPostGraph, buildQkvGraph, MAX_CHAIN_TILES } from '../onnx/graphs';
import { positionLimit, positionLimitSource } from '../positions';
import { ropeCosSin, ropeInvFreq } from '../rope';
import type { ModelConfig, ModelWeights } from '../types';
import type { AttentionBackend } from './attention-backend';
import { BatchedAttention, type AttendJob } from './batched-attention';
import { CacheNotFoundError } from './cache-not-found-error';
import { EMPTY_POS_I32, KvCache, transientPages, type KvPage } from './kv-cache';
import { PagedAttention } from './paged-attention';
import { copyRows, sliceRows } from './rows';
import type { ExecutionProviderChoice } from './execution-provider';
import { sessionOptions } from './session-options';
import { TiledAttention } from './tiled-attention';

/**
 * The attention backend (`AttentionBackend`), i.e. how attention over KV pages is cut into ORT calls.
 *   'tiled' — the fast path (tiled-attention.ts): tiles of ≤ `rowTile` query rows × ≤ `keyTile` keys cut from the pages
 *             (a copy of the page's key range per tile), keys invisible to every row of a tile
 *             trimmed, an additive mask bias, fused Softmax (`buildAttendGraph`), up to
 *             `tilesPerCall` tiles per call merged in the graph (`buildAttendChainGraph`); with
 *             `flash`, the keys a long query's row tile sees in full go to one flash call.
 *   'paged' — the slow reference (paged-attention.ts): one call per whole page, query rows
 *             cut only by `scoreBudgetBytes`, mask computed in the graph with `Where`
 *             (`buildAttendGraphReference`).
 * Both merge the partial results of a row's tiles with the exact LSE merge (`mergeInto`).
 */
export type AttentionPath = 'tiled' | 'paged';

export interface ExecutorOptions {
  /** ORT intra-op threads per session. @defaultValue 1 */
  threads?: number;
  /**
   * Largest attention score matrix (bytes, counted as 2 float32 buffers of H × rows × keys) one ORT
   * call may build: row tiles shrink to honour it, down to 1 row. @defaultValue 256 MiB
   */
  scoreBudgetBytes?: number;
  /** KV page size in tokens (the 'paged' path's key chunk; 'tiled' cuts pages further). @defaultValue 4096 */
  pageSize?: number;
  /** Attention path. @defaultValue 'tiled' */
  attention?: AttentionPath;
  /**
   * 'tiled': keys per attention tile. Pages are cut into ranges of this many slots when a query's
   * row tile times the page size exceeds `rowTile × keyTile` score entries; smaller queries (decode,
   * Star phase 2) attend to whole pages (no copy). @defaultValue 1024
   */
  keyTile?: number;
  /** 'tiled': query rows per attention tile. @defaultValue 128 */
  rowTile?: number;
  /**
   * 'tiled': most key tiles one attend call covers for a row tile — each tile's softmax on its own,
   * the partials merged in the graph (1 = one call per tile, merged in JS; at most
   * MAX_CHAIN_TILES = 16). @defaultValue 4
   */
  tilesPerCall?: number;
  /**
   * Rows per `qkv` / `post` / `head` ORT call: longer inputs run in row slices, which bounds the
   * activation memory every session's arena keeps after its largest call. @defaultValue 2048
   */
  maxRowsPerCall?: number;
  /**
   * Phase-2 attention — `attendMany`, `attendCaches` and the own partials of `queryLayer` — through `BatchedAttention` (batched-attention.ts): the decode-sized items of a
   * call go to ORT together, a few tiles per call. false: each item through `attention` on its
   * own, one or more calls per item (the per-request reference). Prefill (`forward`), Ring's
   * `attendKv` and `attendCache` always use `attention`. @defaultValue true
   */
  attendBatching?: boolean;
  /**
   * 'tiled', long queries (row tiles cut against key tiles) over pages whose written positions
   * never decrease: the keys every row of a row tile sees go to one call of ORT's CPU flash
   * attention (`buildFlashAttendGraph`, LSE from a sink key) instead of key tiles; the causal
   * diagonal still takes tiles. CPU execution provider only (ignored with CUDA). Off by default:
   * it saves CPU time but its kernel splits the work statically between the threads, which costs
   * wall time on a busy machine (docs/BENCHMARKS.md, "Where Global prefill's time goes").
   * @defaultValue false
   */
  flash?: boolean;
  /**
   * 'tiled' with `flash`: query rows per flash call. A flash call covers the keys every row of its
   * rows sees; the row tiles inside it take the rest (their causal diagonal) in tiles. @defaultValue 512
   */
  flashRows?: number;
  /**
   * Execution provider of every session, resolved beforehand with `resolveExecutionProvider`
   * (runtime/execution-provider.ts). @defaultValue `{ provider: 'cpu', cudaDeviceId: 0 }`
   */
  executionProvider?: ExecutionProviderChoice;
}

/** Defaults of `ExecutorOptions` (see each field's doc). */
export const EXECUTOR_DEFAULTS: Readonly<Required<ExecutorOptions>> = {
  threads: 1,
  scoreBudgetBytes: 256 * 1024 * 1024,
  pageSize: 4096,
  attention: 'tiled',
  keyTile: 1024,
  rowTile: 128,
  tilesPerCall: 4,
  maxRowsPerCall: 2048,
  attendBatching: true,
  flash: false,
  flashRows: 512,
  executionProvider: { provider: 'cpu', cudaDeviceId: 0 },
};

/** Fill in defaults and check every option; all problems are reported in one error. */
export function resolveExecutorOptions(opts: ExecutorOptions): Required<ExecutorOptions> {
  const r: Required<ExecutorOptions> = { ...EXECUTOR_DEFAULTS };
  for (const [key, value] of Object.entries(opts) as [keyof ExecutorOptions, unknown][]) {
    if (value !== undefined) (r as Record<string, unknown>)[key] = value;
  }
  const errors: string[] = [];
  for (const key of ['threads', 'scoreBudgetBytes', 'pageSize', 'keyTile', 'rowTile', 'tilesPerCall', 'maxRowsPerCall', 'flashRows'] as const) {
    const v = r[key];
    if (!Number.isSafeInteger(v) || v < 1) errors.push(`${key} must be an integer ≥ 1, got ${String(v)}`);
  }
  if (r.tilesPerCall > MAX_CHAIN_TILES) errors.push(`tilesPerCall must be at most ${MAX_CHAIN_TILES}, got ${r.tilesPerCall}`);
  const ep = r.executionProvider as { provider?: unknown; cudaDeviceId?: unknown } | null;
  if (!ep || (ep.provider !== 'cpu' && ep.provider !== 'cuda') || !Number.isSafeInteger(ep.cudaDeviceId) || (ep.cudaDeviceId as number) < 0) {
    errors.push(`executionProvider must be { provider: 'cpu' | 'cuda', cudaDeviceId: integer ≥ 0 }, got ${JSON.stringify(ep)}`);
  }
  if (typeof r.attendBatching !== 'boolean') errors.push(`attendBatching must be true or false, got ${String(r.attendBatching)}`);
  if (typeof r.flash !== 'boolean') errors.push(`flash must be true or false, got ${String(r.flash)}`);
  if (r.attention !== 'tiled' && r.attention !== 'paged') errors.push(`attention must be 'tiled' or 'paged', got ${String(r.attention)}`);
  for (const key of Object.keys(opts)) {
    if (!(key in EXECUTOR_DEFAULTS)) errors.push(`unknown option ${key} (known: ${Object.keys(EXECUTOR_DEFAULTS).join(', ')})`);
  }
  if (errors.length > 0) throw new InvalidInputError('invalid_executor_options', `invalid executor options: ${errors.join('; ')}`, 'options');
  return r;
}

export interface QkvOut {
  q: Float32Array; // (H, T, D)
  k: Float32Array; // (Hkv, T, D)
  v: Float32Array; // (Hkv, T, D)
}

export interface ForwardRequest {
  /** Cache receiving the K/V of rows ≥ keepFrom (created if absent). */
  cacheId: string;
  ids: Int32Array; // (T)
  positions: Int32Array; // (T)
  /** Rows before this index are an anchor: attended to but not stored. @defaultValue 0 */
  keepFrom?: number;
  /**
   * A cache holding an anchor encoded earlier (its own forward, every row kept): every row of this
   * request also attends to its keys, by position like any key. A Star host encodes a context's
   * anchor once and each block as `ids` = the block only, with this set — the same attention as
   * anchor ++ block with keepFrom = a, without recomputing the anchor. Excludes keepFrom > 0.
   */
  anchorCacheId?: string;
  /** Which rows' logits to return. @defaultValue 'last' */
  logits?: 'none' | 'last' | 'all';
  /** Expected final cache length (sizes pages exactly). */
  reserve?: number;
}

/** Counters for benchmarks: attention calls and FLOPs actually issued. */
export interface ExecutorStats {
  attendCalls: number;
  attendFlops: number;
  linearFlops: number;
  /** Wall time (ms) inside `forward`, per piece (embed, qkv, K/V append, attention, post, head). */
  forwardMs: { embed: number; qkv: number; append: number; attend: number; post: number; head: number };
}

export class ModelExecutor {
  readonly config: ModelConfig;
  private readonly opts: Required<ExecutorOptions>;
  private readonly invFreq: Float64Array;
  private qkvS: ort.InferenceSession[] = [];
  private postS: ort.InferenceSession[] = [];
  /** The configured attention backend (`ExecutorOptions.attention`). */
  private attention!: AttentionBackend;
  /** Phase-2 attention of many items at once (`ExecutorOptions.attendBatching`); null when off. */
  private batched: BatchedAttention | null = null;
  private headS!: ort.InferenceSession;
  private embedW!: Float32Array;
  private readonly caches = new Map<string, KvCache>();
  readonly stats: ExecutorStats = { attendCalls: 0, attendFlops: 0, linearFlops: 0, forwardMs: { embed: 0, qkv: 0, append: 0, attend: 0, post: 0, head: 0 } };

  private constructor(config: ModelConfig, opts: ExecutorOptions) {
    this.config = config;
    this.opts = resolveExecutorOptions(opts);
    this.invFreq = ropeInvFreq(config);
  }

  /** Build every graph and session. Weights are baked into the sessions; the arrays can be dropped. */
  static async create(config: ModelConfig, weights: ModelWeights, opts: ExecutorOptions = {}): Promise<ModelExecutor> {
    const ex = new ModelExecutor(config, opts);
    const so = sessionOptions({ threads: ex.opts.threads, executionProvider: ex.opts.executionProvider });
    const make = (bytes: Uint8Array) => ort.InferenceSession.create(bytes, so);
    for (let l = 0; l < config.numLayers; l++) {
      ex.qkvS.push(await make(buildQkvGraph(config, weights.layers[l], l)));
      ex.postS.push(await make(buildPostGraph(config, weights.layers[l], l)));
    }
    const { rowTile, keyTile, tilesPerCall, scoreBudgetBytes, flashRows } = ex.opts;
    const flash = ex.opts.flash && ex.opts.executionProvider.provider === 'cpu';
    ex.attention =
      ex.opts.attention === 'tiled'
        ? await TiledAttention.create(config, { rowTile, keyTile, tilesPerCall, scoreBudgetBytes, flash, flashRows }, so, ex.stats)
        : await PagedAttention.create(config, scoreBudgetBytes, so, ex.stats);
    if (ex.opts.attendBatching) ex.batched = new BatchedAttention(config, { rowTile, keyTile, tilesPerCall: MAX_BATCH_TILES, scoreBudgetBytes }, so, ex.stats, ex.attention);
    ex.headS = await make(buildHeadGraph(config, weights));
    ex.embedW = weights.embed;
    return ex;
  }

  // ---------------------------------------------------------------- caches

  createCache(id: string, reserve = 0): void {
    if (this.caches.has(id)) throw new Error(`cache ${id} already exists`);
    this.caches.set(id, this.newCache(reserve));
  }

  hasCache(id: string): boolean {
    return this.caches.has(id);
  }

  dropCache(id: string): boolean {
    return this.caches.delete(id);
  }

  cacheInfo(id: string): { tokens: number; bytes: number } {
    const c = this.cache(id);
    return { tokens: c.length, bytes: c.bytes };
  }

  /** Keep only the first `tokens` tokens of a cache (undo a partially applied step). */
  truncateCache(id: string, tokens: number): void {
    this.cache(id).truncate(tokens);
  }

  listCaches(): { id: string; tokens: number; bytes: number }[] {
    return [...this.caches.entries()].map(([id, c]) => ({ id, tokens: c.length, bytes: c.bytes }));
  }

  /** Append k/v `(Hkv, T, D)` rows `[from, T)` with their positions to a cache layer. */
  appendKv(cacheId: string, layer: number, k: Float32Array, v: Float32Array, positions: Int32Array, from = 0): void {
    this.cache(cacheId).append(layer, k, v, positions, from);
  }

  // ---------------------------------------------------------------- pieces

  /** Token embeddings. ids (T) → x (T, hidden). */
  embed(ids: Int32Array): Float32Array {
    const { vocabSize: V, hiddenSize: hid } = this.config;
    const x = new Float32Array(ids.length * hid); // (T, hidden)
    ids.forEach((id, t) => {
      if (!Number.isInteger(id) || id < 0 || id >= V) {
        throw new InvalidInputError('invalid_token_id', `token id ${id} at index ${t} is outside the vocabulary [0, ${V})`, 'ids');
      }
      x.set(this.embedW.subarray(id * hid, (id + 1) * hid), t * hid);
    });
    return x;
  }

  /**
   * RMSNorm, fused q/k/v projection (+ bias) and RoPE of rows x (T, hidden) at `positions` (T):
   * q (H, T, D), k/v (Hkv, T, D). Runs in row slices of ≤ `maxRowsPerCall`.
   */
  qkv(layer: number, x: Float32Array, positions: Int32Array): Promise<QkvOut> {
    return this.qkvRows(layer, x, positions);
  }

  /**
   * `qkv` with optional output buffers: when the rows need more than one ORT call, the slices are
   * written into `out` (allocated when absent); a single call returns ORT's own arrays.
   */
  private async qkvRows(layer: number, x: Float32Array, positions: Int32Array, out?: QkvOut): Promise<QkvOut> {
    const { hiddenSize: hid, headDim: D, numHeads: H, numKvHeads: Hkv } = this.config;
    const T = positions.length;
    if (x.length !== T * hid) throw new Error(`qkv: x has ${x.length} values, expected T·hidden = ${T * hid}`);
    const R = this.opts.maxRowsPerCall;
    const run = async (r0: number, r1: number): Promise<QkvOut> => {
      const n = r1 - r0;
      const { cos, sin } = ropeCosSin(this.invFreq, positions.subarray(r0, r1)); // (n, D/2) each
      const res = await this.qkvS[layer].run({
        x: new ort.Tensor('float32', n === T ? x : x.subarray(r0 * hid, r1 * hid), [n, hid]), // (n, hidden)
        cos: new ort.Tensor('float32', cos, [n, D / 2]),
        sin: new ort.Tensor('float32', sin, [n, D / 2]),
      });
      this.stats.linearFlops += 2 * n * hid * (H + 2 * Hkv) * D;
      return { q: res.q.data as Float32Array, k: res.k.data as Float32Array, v: res.v.data as Float32Array }; // (H, n, D), (Hkv, n, D) ×2
    };
    if (T <= R) return run(0, T);
    const dst: QkvOut = out ?? {
      q: new Float32Array(H * T * D), // (H, T, D)
      k: new Float32Array(Hkv * T * D), // (Hkv, T, D)
      v: new Float32Array(Hkv * T * D), // (Hkv, T, D)
    };
    for (let r0 = 0; r0 < T; r0 += R) {
      const part = await run(r0, Math.min(T, r0 + R));
      const n = part.q.length / (H * D);
      copyRows(part.q, n, 0, dst.q, T, r0, n, H, D);
      copyRows(part.k, n, 0, dst.k, T, r0, n, Hkv, D);
      copyRows(part.v, n, 0, dst.v, T, r0, n, Hkv, D);
    }
    return dst;
  }

  /**
   * o_proj + residual + RMSNorm + SwiGLU MLP + residual: x (T, hidden), attn (H, T, D) → x' (T,
   * hidden). Runs in row slices of ≤ `maxRowsPerCall`.
   */
  post(layer: number, x: Float32Array, attn: Float32Array): Promise<Float32Array> {
    return this.postRows(layer, x, attn);
  }

  /**
   * `post` with an optional output buffer for the multi-call case; `out` may be `x` itself (each
   * slice reads only its own rows of x before its rows of the output are written).
   */
  private async postRows(layer: number, x: Float32Array, attn: Float32Array, out?: Float32Array): Promise<Float32Array> {
    const { hiddenSize: hid, numHeads: H, headDim: D, intermediateSize: I } = this.config;
    const T = x.length / hid;
    if (!Number.isInteger(T) || attn.length !== H * T * D) throw new Error(`post: x has ${x.length} values and attn ${attn.length}, expected T·hidden and H·T·D for one T`);
    const R = this.opts.maxRowsPerCall;
    const run = async (r0: number, r1: number): Promise<Float32Array> => {
      const n = r1 - r0;
      const res = await this.postS[layer].run({
        x: new ort.Tensor('float32', n === T ? x : x.subarray(r0 * hid, r1 * hid), [n, hid]), // (n, hidden)
        attn: new ort.Tensor('float32', n === T ? attn : sliceRows(attn, H, T, D, r0, r1), [H, n, D]), // (H, n, D)
      });
      this.stats.linearFlops += 2 * n * (H * D * hid + 3 * hid * I);
      return res.y.data as Float32Array; // (n, hidden)
    };
    if (T <= R) return run(0, T);
    const y = out ?? new Float32Array(T * hid); // (T, hidden)
    for (let r0 = 0; r0 < T; r0 += R) y.set(await run(r0, Math.min(T, r0 + R)), r0 * hid);
    return y;
  }

  /** Final norm + lm_head. x (T, hidden) → logits (T, vocab), in row slices of ≤ `maxRowsPerCall`. */
  async head(x: Float32Array): Promise<Float32Array> {
    const { hiddenSize: hid, vocabSize: V } = this.config;
    const T = x.length / hid;
    if (!Number.isInteger(T)) throw new Error(`head: x has ${x.length} values, not a multiple of hidden = ${hid}`);
    const R = this.opts.maxRowsPerCall;
    const run = async (r0: number, r1: number): Promise<Float32Array> => {
      const n = r1 - r0;
      const out = await this.headS.run({ x: new ort.Tensor('float32', n === T ? x : x.subarray(r0 * hid, r1 * hid), [n, hid]) }); // (n, hidden)
      this.stats.linearFlops += 2 * n * hid * V;
      return out.logits.data as Float32Array; // (n, vocab)
    };
    if (T <= R) return run(0, T);
    const logits = new Float32Array(T * V); // (T, vocab)
    for (let r0 = 0; r0 < T; r0 += R) logits.set(await run(r0, Math.min(T, r0 + R)), r0 * V);
    return logits;
  }

  /**
   * Partial attention of q `(H, Tq, D)` at `qpos` over everything in a cache layer, through the
   * configured backend (`attention`) whatever `attendBatching` says — the backend's own entry point
   * for tests and probes.
   */
  attendCache(cacheId: string, layer: number, q: Float32Array, qpos: Int32Array): Promise<Partial> {
    return this.attendPages(q, qpos, this.cache(cacheId).pages(layer));
  }

  /**
   * Partial attention of q over the union of several caches (a host's blocks), merged here so a
   * host answers with one partial.
   */
  attendCaches(cacheIds: string[], layer: number, q: Float32Array, qpos: Int32Array): Promise<Partial> {
    return this.attendPhase2([{ q, qpos, pages: cacheIds.flatMap((id) => this.cache(id).pages(layer)) }]).then((r) => r[0]);
  }

  /**
   * Host side of a batched phase-2 call: per item, the partial of its q over the union of its caches
   * (each equals `attendCaches` of the item alone, bit for bit), in item order. Every named cache is
   * checked before any work.
   */
  attendMany(items: AttendRequest[]): Promise<Partial[]> {
    return this.attendPhase2(items.map((it) => ({ q: it.q, qpos: it.qpos, pages: it.cacheIds.flatMap((id) => this.cache(id).pages(it.layer)) })));
  }

  /**
   * The query actor's half of a distributed layer, for the stacked new rows of one or more requests
   * (group g = rows [r_g, r_g + T_g) of x (T, hidden)): q/k/v of all rows in one pass, each group's
   * K/V appended to its own cache, and each group's partial over its own cache (query + generated
   * tokens, causal by position). Hosts supply the context partials. Row r's q/k/v do not depend on
   * the other rows (the projections are row-wise), so a group's outputs equal those of the group
   * run alone. Returns per group q (H, T_g, D) and the own partial (H, T_g, D).
   */
  async queryLayer(layer: number, x: Float32Array, groups: RowGroup[]): Promise<GroupedQuery> {
    const caches = checkGroups(groups).map((id) => this.cache(id));
    if (groups.length === 1) {
      const { positions } = groups[0];
      const { q, k, v } = await this.qkv(layer, x, positions); // (H, T, D), (Hkv, T, D) ×2
      caches[0].append(layer, k, v, positions);
      return { q: [q], own: await this.attendPhase2([{ q, qpos: positions, pages: caches[0].pages(layer) }]) };
    }
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = this.config;
    const positions = new Int32Array(groups.reduce((n, g) => n + g.positions.length, 0)); // (T)
    let r0 = 0;
    for (const g of groups) {
      positions.set(g.positions, r0);
      r0 += g.positions.length;
    }
    const T = positions.length;
    const { q, k, v } = await this.qkv(layer, x, positions); // (H, T, D), (Hkv, T, D) ×2
    const qs: Float32Array[] = [];
    r0 = 0;
    for (let i = 0; i < groups.length; i++) {
      const pos = groups[i].positions; // (T_g)
      const r1 = r0 + pos.length;
      qs.push(sliceRows(q, H, T, D, r0, r1)); // (H, T_g, D)
      caches[i].append(layer, sliceRows(k, Hkv, T, D, r0, r1), sliceRows(v, Hkv, T, D, r0, r1), pos); // (Hkv, T_g, D) ×2
      r0 = r1;
    }
    return { q: qs, own: await this.attendPhase2(groups.map((g, i) => ({ q: qs[i], qpos: g.positions, pages: caches[i].pages(layer) }))) };
  }

  /**
   * `post(layer)` followed by `queryLayer(layer + 1)` in one call — the two consecutive query-actor
   * calls of a Star phase-2 step, so a step costs one worker round trip per layer instead of two:
   * x' = post(layer, x, attn) (T, hidden); then per group q (H, T_g, D) of x' at layer + 1, its K/V
   * appended to the group's cache, and the own partial. Results equal the two calls made separately.
   */
  async postQueryLayer(layer: number, x: Float32Array, attn: Float32Array, groups: RowGroup[]): Promise<GroupedQuery & { x: Float32Array }> {
    if (!Number.isInteger(layer) || layer < 0 || layer + 1 >= this.config.numLayers) {
      throw new Error(`postQueryLayer: layer ${layer} has no next layer (the model has ${this.config.numLayers}); use post for the last layer`);
    }
    checkGroups(groups).forEach((id) => this.cache(id));
    const y = await this.post(layer, x, attn); // (T, hidden)
    return { x: y, ...(await this.queryLayer(layer + 1, y, groups)) };
  }

  /** q/k/v of the rows, with their K/V appended to a cache layer in the same call (Ring's step). */
  async qkvAppend(cacheId: string, layer: number, x: Float32Array, positions: Int32Array): Promise<QkvOut> {
    const out = await this.qkv(layer, x, positions);
    this.cache(cacheId).append(layer, out.k, out.v, positions);
    return out;
  }

  /** Partial attention over k/v given directly (Ring Attention passes K/V blocks around). */
  attendKv(q: Float32Array, qpos: Int32Array, k: Float32Array, v: Float32Array, kpos: Int32Array): Promise<Partial> {
    const { numKvHeads: Hkv, headDim: D } = this.config;
    return this.attendPages(q, qpos, transientPages(k, v, kpos, 0, kpos.length, Hkv, D, this.opts.pageSize));
  }

  // ---------------------------------------------------------------- the forward

  async forward(req: ForwardRequest): Promise<Float32Array | null> {
    const { ids, positions } = req;
    const keepFrom = req.keepFrom ?? 0;
    const T = ids.length;
    const { numLayers: L, hiddenSize: hid, numHeads: H, numKvHeads: Hkv, headDim: D } = this.config;
    if (T === 0) throw new InvalidInputError('empty_input', 'forward needs at least one token', 'ids');
    if (positions.length !== T) throw new Error(`forward: ${positions.length} positions for ${T} ids`);
    this.checkPositions(positions);
    if (req.anchorCacheId !== undefined && keepFrom > 0) {
      throw new InvalidInputError('invalid_forward', `forward with anchorCacheId takes the block's rows only (keepFrom = 0), got keepFrom = ${keepFrom}`, 'keepFrom');
    }
    if (req.anchorCacheId === req.cacheId) throw new InvalidInputError('invalid_forward', `anchorCacheId must name another cache than cacheId (${req.cacheId})`, 'anchorCacheId');
    const anchorCache = req.anchorCacheId !== undefined ? this.cache(req.anchorCacheId) : null;
    if (!this.caches.has(req.cacheId)) this.createCache(req.cacheId, req.reserve ?? T - keepFrom);
    const cache = this.cache(req.cacheId);
    if (req.reserve) cache.reserveTokens(req.reserve);

    const ms = this.stats.forwardMs;
    let t0 = performance.now();
    const lap = (piece: keyof ExecutorStats['forwardMs']): void => {
      const t = performance.now();
      ms[piece] += t - t0;
      t0 = t;
    };
    let x = this.embed(ids); // (T, hidden), updated in place when the rows take several calls
    lap('embed');
    // Buffers reused by every layer when the rows take several qkv/post calls (one call returns
    // ORT's own arrays): q/k/v of the layer and its attention output.
    const sliced = T > this.opts.maxRowsPerCall;
    const scratch: QkvOut | undefined = sliced ? { q: new Float32Array(H * T * D), k: new Float32Array(Hkv * T * D), v: new Float32Array(Hkv * T * D) } : undefined;
    const attnOut = sliced ? new Float32Array(H * T * D) : undefined; // (H, T, D)
    for (let l = 0; l < L; l++) {
      const { q, k, v } = await this.qkvRows(l, x, positions, scratch); // (H, T, D), (Hkv, T, D) ×2
      lap('qkv');
      const anchor = anchorCache ? anchorCache.pages(l) : transientPages(k, v, positions, 0, keepFrom, Hkv, D, this.opts.pageSize);
      cache.append(l, k, v, positions, keepFrom);
      lap('append');
      const attn = await this.attendPages(q, positions, [...anchor, ...cache.pages(l)], attnOut); // (H, T, D)
      lap('attend');
      x = await this.postRows(l, x, attn.o, sliced ? x : undefined);
      lap('post');
    }
    const mode = req.logits ?? 'last';
    if (mode === 'none') return null;
    const logits = await this.head(mode === 'all' ? x : x.subarray((T - 1) * hid)); // (T|1, vocab)
    lap('head');
    return logits;
  }

  // ---------------------------------------------------------------- attention

  /**
   * Attention of q `(H, Tq, D)` at positions `qpos` over the union of the keys of a list of KV
   * pages, as one partial: o `(H, Tq, D)`, lse `(H, Tq)`. Key j is visible to row i iff
   * kpos[j] ≤ qpos[i]; a row with no visible key comes back as o = 0, lse = −∞. The work is cut into
   * ORT calls by the configured path (`ExecutorOptions.attention`) and the partials of a row's
   * calls are merged with the exact LSE merge (the `AttentionBackend` contract).
   */
  private attendPages(q: Float32Array, qpos: Int32Array, pages: KvPage[], out?: Float32Array): Promise<Partial> {
    this.checkQuery(q, qpos);
    return this.attention.attend(q, qpos, pages, out);
  }

  /**
   * Phase-2 attention of several items (each: q over the union of its pages), in item order:
   * through `BatchedAttention` when `attendBatching` is on, else each item on its own.
   */
  private async attendPhase2(jobs: AttendJob[]): Promise<Partial[]> {
    for (const j of jobs) this.checkQuery(j.q, j.qpos);
    if (this.batched) return this.batched.attendMany(jobs);
    const out: Partial[] = [];
    for (const j of jobs) out.push(await this.attention.attend(j.q, j.qpos, j.pages));
    return out;
  }

  // ---------------------------------------------------------------- helpers

  /** q must be (H, Tq, D) for Tq = qpos.length, every position below the empty-slot marker. */
  private checkQuery(q: Float32Array, qpos: Int32Array): void {
    const { numHeads: H, headDim: D } = this.config;
    const Tq = qpos.length;
    if (q.length !== H * Tq * D) throw new Error(`attend: q has ${q.length} values, expected H·Tq·D = ${H * Tq * D}`);
    for (const p of qpos) {
      if (p >= EMPTY_POS_I32) throw new InvalidInputError('invalid_position', `query position ${p} is not below ${EMPTY_POS_I32} (the empty-slot marker)`, 'qpos');
    }
  }

  private newCache(reserve: number): KvCache {
    const { numLayers, numKvHeads, headDim } = this.config;
    return new KvCache({ numLayers, numKvHeads, headDim, pageSize: this.opts.pageSize, reserve });
  }

  private cache(id: string): KvCache {
    const c = this.caches.get(id);
    if (!c) throw new CacheNotFoundError(id);
    return c;
  }

  private checkPositions(positions: Int32Array): void {
    const limit = positionLimit(this.config);
    for (const p of positions) {
      if (p < 0 || p >= limit) {
        throw new CapacityError('context_too_long', `position ${p} exceeds the model's ${positionLimitSource(this.config)}: shorten the context or the generation`, 'context');
      }
    }
  }
}

/** The groups' cache ids, after checking they are distinct and non-empty (a cache takes one group's rows per call). */
function checkGroups(groups: RowGroup[]): string[] {
  if (groups.length === 0) throw new Error('queryLayer: no row groups');
  const ids = groups.map((g) => g.cacheId);
  if (new Set(ids).size !== ids.length) throw new Error(`queryLayer: a cache appears in two row groups (${ids.join(', ')}); give each request its own cache`);
  return ids;
}
