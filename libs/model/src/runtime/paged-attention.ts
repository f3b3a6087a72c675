/**
 * The reference attention backend: the simple cut that `TiledAttention` is tested against, kept
 * slow on purpose. Query rows are cut so no score matrix exceeds the budget, each page is one key
 * chunk passed whole (unwritten slots masked), pages whose keys all follow every query row are
 * skipped, pages whose keys all precede them run the unmasked graph, and the mask is computed in
 * the graph from int64 positions (`buildAttendGraphReference`).
 */
import * as ort from 'onnxruntime-node';
import { mergeInto, type Partial } from '@starq/attention';
import { buildAttendGraphReference } from '../onnx/graphs';
import type { ModelConfig } from '../types';
import type { AttentionBackend, AttentionCounters } from './attention-backend';
import type { KvPage } from './kv-cache';
import { rowTiles, writePartialRows } from './rows';

export class PagedAttention implements AttentionBackend {
  private constructor(
    private readonly config: ModelConfig,
    /** Largest score matrix (bytes, 2 float32 buffers of H × rows × page capacity) one call may build. */
    private readonly scoreBudgetBytes: number,
    private readonly counters: AttentionCounters,
    /** Sessions with the position mask (qpos/kpos feeds) and without. */
    private readonly masked: ort.InferenceSession,
    private readonly open: ort.InferenceSession,
  ) {}

  static async create(config: ModelConfig, scoreBudgetBytes: number, sessionOptions: ort.InferenceSession.SessionOptions, counters: AttentionCounters): Promise<PagedAttention> {
    const masked = await ort.InferenceSession.create(buildAttendGraphReference(config, true), sessionOptions);
    const open = await ort.InferenceSession.create(buildAttendGraphReference(config, false), sessionOptions);
    return new PagedAttention(config, scoreBudgetBytes, counters, masked, open);
  }

  async attend(q: Float32Array, qpos: Int32Array, pages: KvPage[], out?: Float32Array): Promise<Partial> {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = this.config;
    const Tq = qpos.length;
    const maxCap = pages.reduce((m, p) => Math.max(m, p.cap), 1);
    // Budget covers the score matrix and its exp (2 buffers of H × rows × cap floats).
    const rowsPerChunk = Math.max(1, Math.floor(this.scoreBudgetBytes / (2 * 4 * H * maxCap)));
    const result: Partial = { o: out ? out.fill(0) : new Float32Array(H * Tq * D), lse: new Float32Array(H * Tq).fill(-Infinity), heads: H, rows: Tq, headDim: D };
    for (const tile of rowTiles(q, qpos, H, D, rowsPerChunk)) {
      const { r0, n, q: qc, qpos: pc, minPos: qMin, maxPos: qMax } = tile; // qc (H, n, D), pc (n)
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
        const res = await (open ? this.open : this.masked).run(feeds);
        this.counters.attendCalls++;
        this.counters.attendFlops += 4 * H * n * page.cap * D;
        const part: Partial = { o: res.o.data as Float32Array, lse: res.lse.data as Float32Array, heads: H, rows: n, headDim: D };
        if (acc === null) acc = part;
        else mergeInto(acc, part);
      }
      if (acc !== null) writePartialRows(result, acc, r0); // else no visible keys at all: rows stay empty
    }
    return result;
  }
}
