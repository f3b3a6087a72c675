/**
 * Phase-2 attention for many items at once — a host's `attendMany` (every running request's rows
 * over that request's blocks) and the query engine's own-cache partials of a batched step — in as
 * few ORT calls as possible.
 *
 * A decode-sized item (≤ `rowTile` rows, rows × widest page ≤ `rowTile × keyTile` score entries:
 * the items the tiled path would not cut) becomes one tile per page it can see: the whole page,
 * passed to ORT without a copy, with an additive mask bias (0 visible, −1e30 hidden) unless every
 * slot is written and before every row. The tiles of all items go to ORT together — open tiles in
 * calls of 1, 2, 4, … up to `tilesPerCall` tiles within `scoreBudgetBytes`, then the masked ones
 * the same way — through `buildAttendBatchGraph`: each tile
 * has its own ops and sizes there (no padding, no shared key tensor), so a tile's output is what
 * it would be alone. An item's tiles are then merged in page order (exact LSE merge, float64), so
 * an item's partial depends only on the item — bit for bit, whatever else is in the batch and
 * however the tiles are cut into calls. Larger items (a long query chunk) go to the configured
 * backend (`fallback`), one item at a time.
 *
 * Against the per-request path (each item through the configured backend on its own): the same
 * partial up to float32 rounding (tested against a float64 reference in batched-attention.spec.ts);
 * a decode row over whole written pages gives the same ORT ops as the tiled path and the same bits.
 */
import * as ort from 'onnxruntime-node';
import { emptyPartial64, mergeInto, type Partial } from '@starq/attention';
import { buildAttendBatchGraph, MAX_BATCH_TILES } from '../onnx/attend-batch-graph';
import type { ModelConfig } from '../types';
import type { AttentionBackend, AttentionCounters } from './attention-backend';
import type { KvPage } from './kv-cache';
import { writePartialRows } from './rows';
import { maskBias } from './tiled-attention';

/** One item: q `(H, Tq, D)` at positions `qpos` (Tq) over the union of the keys of `pages`. */
export interface AttendJob {
  q: Float32Array; // (H, Tq, D)
  qpos: Int32Array; // (Tq)
  pages: KvPage[];
}

/** How `BatchedAttention` cuts the work (the executor's options of the same names). */
export interface BatchedAttentionSettings {
  /** Most query rows of a batched item. */
  rowTile: number;
  /** With `rowTile`: most score entries (rows × widest page) of a batched item. */
  keyTile: number;
  /** Most tiles per ORT call (1..MAX_BATCH_TILES). */
  tilesPerCall: number;
  /** Largest sum of the tiles' score matrices (bytes, 2 float32 buffers of H × rows × keys each) one call may build. */
  scoreBudgetBytes: number;
}

/** A page of an item, attended as one tile. */
interface Tile {
  job: number;
  page: KvPage;
  open: boolean;
  bytes: number;
}

export class BatchedAttention {
  /** Sessions by tile pattern ('o' open / 'm' masked per tile), created on first use. */
  private readonly sessions = new Map<string, Promise<ort.InferenceSession>>();

  constructor(
    private readonly config: ModelConfig,
    private readonly settings: BatchedAttentionSettings,
    private readonly sessionOptions: ort.InferenceSession.SessionOptions,
    private readonly counters: AttentionCounters,
    /** Items too large to batch go here, one by one. */
    private readonly fallback: AttentionBackend,
  ) {
    if (!Number.isSafeInteger(settings.tilesPerCall) || settings.tilesPerCall < 1 || settings.tilesPerCall > MAX_BATCH_TILES) {
      throw new RangeError(`BatchedAttention: tilesPerCall must be an integer in 1..${MAX_BATCH_TILES}, got ${settings.tilesPerCall}`);
    }
  }

  /**
   * Per job, in job order, the partial of its q over its pages (the `AttentionBackend.attend`
   * contract: key j visible to row i iff npos[j] ≤ qpos[i]; a row with no visible key is o = 0,
   * lse = −∞).
   */
  async attendMany(jobs: readonly AttendJob[]): Promise<Partial[]> {
    const { numHeads: H, headDim: D } = this.config;
    const { rowTile, keyTile, scoreBudgetBytes } = this.settings;
    const results: Partial[] = jobs.map((j) => ({ o: new Float32Array(H * j.qpos.length * D), lse: new Float32Array(H * j.qpos.length).fill(-Infinity), heads: H, rows: j.qpos.length, headDim: D }));
    const tiles: Tile[] = [];
    const large: number[] = [];
    jobs.forEach((job, j) => {
      const Tq = job.qpos.length;
      if (Tq === 0) return;
      let qMin = Infinity;
      let qMax = -Infinity;
      for (const p of job.qpos) {
        if (p < qMin) qMin = p;
        if (p > qMax) qMax = p;
      }
      const live = job.pages.filter((p) => p.len > 0 && p.minPos <= qMax); // pages with a key some row can see
      const maxCap = live.reduce((m, p) => Math.max(m, p.cap), 0);
      if (Tq > rowTile || Tq * maxCap > rowTile * keyTile) {
        large.push(j);
        return;
      }
      for (const page of live) tiles.push({ job: j, page, open: page.len === page.cap && page.maxPos <= qMin, bytes: 2 * 4 * H * Tq * page.cap });
    });

    // Calls: the open tiles, then the masked ones, each run cut into calls of a power-of-two
    // number of tiles (≤ tilesPerCall, within the score budget), so an engine only ever builds
    // sessions for 1, 2, 4, … open or masked tiles (a new batch size costs no session build).
    const outs: Partial[] = new Array(tiles.length);
    const qTensors = new Map<number, ort.Tensor>();
    for (const open of [true, false]) {
      const run = tiles.map((t, i) => (t.open === open ? i : -1)).filter((i) => i >= 0);
      for (let i = 0; i < run.length; ) {
        let n = 1;
        let bytes = tiles[run[i]].bytes;
        for (;;) {
          const next = 2 * n;
          if (next > this.settings.tilesPerCall || i + next > run.length) break;
          let more = 0;
          for (let k = i + n; k < i + next; k++) more += tiles[run[k]].bytes;
          if (bytes + more > scoreBudgetBytes) break;
          bytes += more;
          n = next;
        }
        await this.run(tiles, run.slice(i, i + n), jobs, qTensors, outs);
        i += n;
      }
    }

    // Each job's tiles (contiguous, in page order) merged into its partial.
    for (let i = 0; i < tiles.length; ) {
      const j0 = tiles[i].job;
      let e = i + 1;
      while (e < tiles.length && tiles[e].job === j0) e++;
      if (e - i === 1) writePartialRows(results[j0], outs[i], 0);
      else {
        const acc = emptyPartial64(H, jobs[j0].qpos.length, D);
        for (let t = i; t < e; t++) mergeInto(acc, outs[t]);
        writePartialRows(results[j0], acc, 0);
      }
      i = e;
    }
    for (const j of large) results[j] = await this.fallback.attend(jobs[j].q, jobs[j].qpos, jobs[j].pages, results[j].o);
    return results;
  }

  /** One ORT call over the tiles `order` (indices into `tiles`); outputs stored by tile index. */
  private async run(tiles: Tile[], order: number[], jobs: readonly AttendJob[], qTensors: Map<number, ort.Tensor>, outs: Partial[]): Promise<void> {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = this.config;
    const feeds: Record<string, ort.Tensor> = {};
    order.forEach((t, s) => {
      const { job: j, page, open } = tiles[t];
      const { q, qpos } = jobs[j];
      let qT = qTensors.get(j);
      if (!qT) qTensors.set(j, (qT = new ort.Tensor('float32', q, [H, qpos.length, D]))); // (H, Tq, D)
      feeds[`q${s}`] = qT;
      feeds[`k${s}`] = new ort.Tensor('float32', page.k, [Hkv, page.cap, D]); // (Hkv, cap, D)
      feeds[`v${s}`] = new ort.Tensor('float32', page.v, [Hkv, page.cap, D]); // (Hkv, cap, D)
      if (!open) feeds[`bias${s}`] = new ort.Tensor('float32', maskBias(qpos, page.npos, 0, page.cap, page.sorted), [qpos.length, page.cap]); // (Tq, cap)
      this.counters.attendFlops += 4 * H * qpos.length * page.cap * D;
    });
    const res = await (await this.session(order.map((t) => !tiles[t].open))).run(feeds);
    this.counters.attendCalls++;
    order.forEach((t, s) => {
      outs[t] = { o: res[`o${s}`].data as Float32Array, lse: res[`lse${s}`].data as Float32Array, heads: H, rows: jobs[tiles[t].job].qpos.length, headDim: D };
    });
  }

  /** The batch session for a tile pattern (built on first use). */
  private session(masked: boolean[]): Promise<ort.InferenceSession> {
    const key = masked.map((m) => (m ? 'm' : 'o')).join('');
    let s = this.sessions.get(key);
    if (!s) {
      s = ort.InferenceSession.create(buildAttendBatchGraph(this.config, masked), this.sessionOptions);
      s.catch(() => this.sessions.delete(key)); // a failed build is retried by the next call
      this.sessions.set(key, s);
    }
    return s;
  }
}
