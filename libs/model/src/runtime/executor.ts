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
 *     attn = attend(q over anchor pages + cache)     // (H, T, D) — chunked, merged by LSE
 *     x = post(x, attn)                              // o_proj + residual + SwiGLU MLP + residual
 *   logits = head(x)                                 // (T or 1, vocab)
 *
 * The same pieces are exposed one by one (`qkv`, `attendCache`, `attendKv`, `post`, `head`) so that
 * Star Attention's phase 2 and Ring Attention can place the attention step on other hosts.
 */
import * as ort from 'onnxruntime-node';
import { mergeInto, type Partial } from '@starq/attention';
import { CapacityError, InvalidInputError } from '@starq/protocol/errors';
import { buildAttendGraph, buildHeadGraph, buildPostGraph, buildQkvGraph } from '../onnx/graphs';
import { ropeCosSin, ropeInvFreq } from '../rope';
import type { ModelConfig, ModelWeights } from '../types';
import { KvCache, transientPages, type KvPage } from './kv-cache';

export interface ExecutorOptions {
  /** ORT intra-op threads per session. @defaultValue 1 */
  threads?: number;
  /** Largest attention score matrix (bytes) one ORT call may build. @defaultValue 256 MiB */
  scoreBudgetBytes?: number;
  /** KV page size in tokens (= attention key chunk). @defaultValue 4096 */
  pageSize?: number;
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
}

export class ModelExecutor {
  readonly config: ModelConfig;
  private readonly opts: Required<ExecutorOptions>;
  private readonly invFreq: Float64Array;
  private qkvS: ort.InferenceSession[] = [];
  private postS: ort.InferenceSession[] = [];
  private attendMasked!: ort.InferenceSession;
  private attendOpen!: ort.InferenceSession;
  private headS!: ort.InferenceSession;
  private embedW!: Float32Array;
  private readonly caches = new Map<string, KvCache>();
  readonly stats: ExecutorStats = { attendCalls: 0, attendFlops: 0, linearFlops: 0 };

  private constructor(config: ModelConfig, opts: ExecutorOptions) {
    this.config = config;
    this.opts = {
      threads: opts.threads ?? 1,
      scoreBudgetBytes: opts.scoreBudgetBytes ?? 256 * 1024 * 1024,
      pageSize: opts.pageSize ?? 4096,
    };
    this.invFreq = ropeInvFreq(config);
  }

  /** Build every graph and session. Weights are baked into the sessions; the arrays can be dropped. */
  static async create(config: ModelConfig, weights: ModelWeights, opts: ExecutorOptions = {}): Promise<ModelExecutor> {
    const ex = new ModelExecutor(config, opts);
    const so: ort.InferenceSession.SessionOptions = {
      intraOpNumThreads: ex.opts.threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      // Several sessions share few cores: spinning threads steal the cores from each other.
      extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
    };
    const make = (bytes: Uint8Array) => ort.InferenceSession.create(bytes, so);
    for (let l = 0; l < config.numLayers; l++) {
      ex.qkvS.push(await make(buildQkvGraph(config, weights.layers[l], l)));
      ex.postS.push(await make(buildPostGraph(config, weights.layers[l], l)));
    }
    ex.attendMasked = await make(buildAttendGraph(config, true));
    ex.attendOpen = await make(buildAttendGraph(config, false));
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

  async qkv(layer: number, x: Float32Array, positions: Int32Array): Promise<QkvOut> {
    const { hiddenSize: hid, headDim: D } = this.config;
    const T = positions.length;
    const { cos, sin } = ropeCosSin(this.invFreq, positions); // (T, D/2) each
    const out = await this.qkvS[layer].run({
      x: new ort.Tensor('float32', x, [T, hid]),
      cos: new ort.Tensor('float32', cos, [T, D / 2]),
      sin: new ort.Tensor('float32', sin, [T, D / 2]),
    });
    const { numHeads: H, numKvHeads: Hkv } = this.config;
    this.stats.linearFlops += 2 * T * hid * (H + 2 * Hkv) * D;
    return { q: out.q.data as Float32Array, k: out.k.data as Float32Array, v: out.v.data as Float32Array };
  }

  async post(layer: number, x: Float32Array, attn: Float32Array): Promise<Float32Array> {
    const { hiddenSize: hid, numHeads: H, headDim: D, intermediateSize: I } = this.config;
    const T = x.length / hid;
    const out = await this.postS[layer].run({
      x: new ort.Tensor('float32', x, [T, hid]),
      attn: new ort.Tensor('float32', attn, [H, T, D]),
    });
    this.stats.linearFlops += 2 * T * (H * D * hid + 3 * hid * I);
    return out.y.data as Float32Array; // (T, hidden)
  }

  /** Final norm + lm_head. x (T, hidden) → logits (T, vocab). */
  async head(x: Float32Array): Promise<Float32Array> {
    const { hiddenSize: hid, vocabSize: V } = this.config;
    const T = x.length / hid;
    const out = await this.headS.run({ x: new ort.Tensor('float32', x, [T, hid]) });
    this.stats.linearFlops += 2 * T * hid * V;
    return out.logits.data as Float32Array;
  }

  /** Partial attention of q `(H, Tq, D)` at `qpos` over everything in a cache layer. */
  attendCache(cacheId: string, layer: number, q: Float32Array, qpos: Int32Array): Promise<Partial> {
    return this.attendPages(q, qpos, this.cache(cacheId).pages(layer));
  }

  /**
   * Partial attention of q over the union of several caches (a host's blocks), merged here so a
   * host answers with one partial.
   */
  attendCaches(cacheIds: string[], layer: number, q: Float32Array, qpos: Int32Array): Promise<Partial> {
    return this.attendPages(q, qpos, cacheIds.flatMap((id) => this.cache(id).pages(layer)));
  }

  /**
   * The query actor's half of a distributed layer: q/k/v of the new rows, their K/V appended to the
   * query actor's own cache, and the partial of q over that cache (query + generated tokens,
   * causal by position). Hosts supply the context partials.
   */
  async queryLayer(cacheId: string, layer: number, x: Float32Array, positions: Int32Array): Promise<{ q: Float32Array; own: Partial }> {
    const { q } = await this.qkvAppend(cacheId, layer, x, positions);
    return { q, own: await this.attendPages(q, positions, this.cache(cacheId).pages(layer)) };
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
    const { numLayers: L, hiddenSize: hid, numKvHeads: Hkv, headDim: D } = this.config;
    if (T === 0) throw new InvalidInputError('empty_input', 'forward needs at least one token', 'ids');
    if (positions.length !== T) throw new Error(`forward: ${positions.length} positions for ${T} ids`);
    this.checkPositions(positions);
    if (!this.caches.has(req.cacheId)) this.createCache(req.cacheId, req.reserve ?? T - keepFrom);
    const cache = this.cache(req.cacheId);
    if (req.reserve) cache.reserveTokens(req.reserve);

    let x = this.embed(ids); // (T, hidden)
    for (let l = 0; l < L; l++) {
      const { q, k, v } = await this.qkv(l, x, positions);
      const anchor = transientPages(k, v, positions, 0, keepFrom, Hkv, D, this.opts.pageSize);
      cache.append(l, k, v, positions, keepFrom);
      const attn = await this.attendPages(q, positions, [...anchor, ...cache.pages(l)]); // (H, T, D)
      x = await this.post(l, x, attn.o);
    }
    const mode = req.logits ?? 'last';
    if (mode === 'none') return null;
    return this.head(mode === 'all' ? x : x.subarray((T - 1) * hid)); // (T|1, vocab)
  }

  // ---------------------------------------------------------------- chunked attention

  /**
   * Attention of q `(H, Tq, D)` over a list of KV pages, with no score matrix larger than the
   * budget: query rows are cut into chunks, each page is one key chunk, and the chunk partials are
   * merged with the exact LSE merge. Pages whose keys all follow every query row are skipped;
   * pages whose keys all precede them run the unmasked graph.
   */
  private async attendPages(q: Float32Array, qpos: Int32Array, pages: KvPage[]): Promise<Partial> {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = this.config;
    const Tq = qpos.length;
    if (q.length !== H * Tq * D) throw new Error(`attend: q has ${q.length} values, expected H·Tq·D = ${H * Tq * D}`);
    const maxCap = pages.reduce((m, p) => Math.max(m, p.cap), 1);
    // Budget covers the score matrix and its exp (2 buffers of H × rows × cap floats).
    const rowsPerChunk = Math.max(1, Math.floor(this.opts.scoreBudgetBytes / (2 * 4 * H * maxCap)));
    const result: Partial = { o: new Float32Array(H * Tq * D), lse: new Float32Array(H * Tq).fill(-Infinity), heads: H, rows: Tq, headDim: D };
    for (let r0 = 0; r0 < Tq; r0 += rowsPerChunk) {
      const r1 = Math.min(Tq, r0 + rowsPerChunk);
      const n = r1 - r0;
      const qc = n === Tq ? q : sliceRows(q, H, Tq, D, r0, r1); // (H, n, D)
      const pc = n === Tq ? qpos : qpos.subarray(r0, r1);
      let qMin = Infinity;
      let qMax = -Infinity;
      for (const p of pc) {
        if (p < qMin) qMin = p;
        if (p > qMax) qMax = p;
      }
      const qposT = new ort.Tensor('int64', BigInt64Array.from(pc, (p) => BigInt(p)), [n]);
      const qT = new ort.Tensor('float32', qc, [H, n, D]);
      let acc: Partial | null = null;
      for (const page of pages) {
        if (page.len === 0 || page.minPos > qMax) continue; // every key hidden from every row
        const open = page.len === page.cap && page.maxPos <= qMin;
        const feeds: Record<string, ort.Tensor> = {
          q: qT,
          k: new ort.Tensor('float32', page.k, [Hkv, page.cap, D]),
          v: new ort.Tensor('float32', page.v, [Hkv, page.cap, D]),
        };
        if (!open) {
          feeds.qpos = qposT;
          feeds.kpos = new ort.Tensor('int64', page.pos, [page.cap]);
        }
        const out = await (open ? this.attendOpen : this.attendMasked).run(feeds);
        this.stats.attendCalls++;
        this.stats.attendFlops += 4 * H * n * page.cap * D;
        const part: Partial = { o: out.o.data as Float32Array, lse: out.lse.data as Float32Array, heads: H, rows: n, headDim: D };
        if (acc === null) acc = part;
        else mergeInto(acc, part);
      }
      if (acc === null) continue; // no visible keys at all: rows stay empty (o = 0, lse = -inf)
      if (n === Tq) return acc;
      writeRows(result, acc, r0);
    }
    return result;
  }

  // ---------------------------------------------------------------- helpers

  private newCache(reserve: number): KvCache {
    const { numLayers, numKvHeads, headDim } = this.config;
    return new KvCache({ numLayers, numKvHeads, headDim, pageSize: this.opts.pageSize, reserve });
  }

  private cache(id: string): KvCache {
    const c = this.caches.get(id);
    if (!c) throw new Error(`no KV cache ${id} on this executor`);
    return c;
  }

  private checkPositions(positions: Int32Array): void {
    const { maxPositionEmbeddings: maxPos, slidingWindow } = this.config;
    const limit = slidingWindow !== null ? Math.min(maxPos, slidingWindow) : maxPos;
    for (const p of positions) {
      if (p < 0 || p >= limit) {
        const why = slidingWindow !== null && slidingWindow < maxPos ? `the model's sliding window (${slidingWindow})` : `the model's position limit (max_position_embeddings = ${maxPos})`;
        throw new CapacityError('context_too_long', `position ${p} exceeds ${why}: shorten the context or the generation`, 'context');
      }
    }
  }
}

/** Copy query rows [r0, r1) of x (H, T, D) into a new (H, r1−r0, D). */
function sliceRows(x: Float32Array, H: number, T: number, D: number, r0: number, r1: number): Float32Array {
  const n = r1 - r0;
  const out = new Float32Array(H * n * D);
  for (let h = 0; h < H; h++) out.set(x.subarray((h * T + r0) * D, (h * T + r1) * D), h * n * D);
  return out;
}

/** Write chunk partial `part` (H, n, D) into rows starting at r0 of `dst` (H, T, D). */
function writeRows(dst: Partial, part: Partial, r0: number): void {
  const { heads: H, headDim: D } = dst;
  const T = dst.rows;
  const n = part.rows;
  for (let h = 0; h < H; h++) {
    dst.o.set(part.o.subarray(h * n * D, (h + 1) * n * D), (h * T + r0) * D);
    dst.lse.set(part.lse.subarray(h * n, (h + 1) * n), h * T + r0);
  }
}
