/**
 * The fast attention backend. Query rows are cut into row tiles of ≤ `rowTile` rows. When a row
 * tile times the widest page exceeds `rowTile × keyTile` score entries (a long prefill), every
 * page's written slots are cut into key tiles of ≤ `keyTile` slots (copied once per call as
 * (Hkv, w, D) and reused by every row tile); otherwise (decode, short queries) each page is one key
 * tile and goes to ORT without a copy. The graphs: `buildAttendGraph` (additive mask bias, fused
 * softmax) and `buildAttendChainGraph` (up to `tilesPerCall` tiles per call, merged in the graph).
 * With `flash` on a long query over position-sorted pages, the keys every row of a row tile sees
 * (a prefix of the keys in page order) go to one `buildAttendFlashGraph` call instead (ORT's CPU
 * flash attention, LSE recovered from a sink key); the rest of the row tile's keys (the causal
 * diagonal) take the tiles as above.
 */
import * as ort from 'onnxruntime-node';
import { emptyPartial64, mergeInto, type Partial, type Partial64 } from '@starq/attention';
import { buildAttendChainGraph, buildAttendGraph, buildFlashAttendGraph, MASKED_SCORE } from '../onnx/graphs';
import type { ModelConfig } from '../types';
import type { AttentionBackend, AttentionCounters } from './attention-backend';
import type { KvPage } from './kv-cache';
import { copyRows, rowTiles, sliceRows, writePartialRows } from './rows';

/** How `TiledAttention` cuts the work (the executor's options of the same names). */
export interface TiledAttentionSettings {
  /** Query rows per tile. */
  rowTile: number;
  /** Keys per tile when pages are cut. */
  keyTile: number;
  /** Most key tiles per ORT call (1..MAX_CHAIN_TILES). */
  tilesPerCall: number;
  /** Largest score matrix (bytes, 2 float32 buffers of H × rows × keys) one call may build. */
  scoreBudgetBytes: number;
  /** Long queries over position-sorted pages: the keys every row of a row tile sees in one flash call. */
  flash: boolean;
  /** Query rows per flash call (a multiple of `rowTile` keeps the flash groups aligned with row tiles). */
  flashRows: number;
}

/** A flash group's call: rows [r0, r1), flat keys [0, c), its partial (null: not used). */
interface FlashGroup {
  r0: number;
  r1: number;
  c: number;
  part: Partial64 | null;
}

/** Fewest keys a row tile must see in full for the flash call to be used (below, tiles only). */
export const FLASH_MIN_KEYS = 128;

/**
 * Smallest sink weight r = e^{s*}/(L + e^{s*}) the flash call's LSE is recovered from: below it
 * (s* more than ~69 under the row's LSE, a very peaked row) the row tile is computed with tiles.
 */
const FLASH_MIN_SINK = 1e-30;

/**
 * Every written key of the live pages in page order, for flash calls; built once per attend call
 * when the written positions are non-decreasing across the pages, so that the keys at positions
 * ≤ p are a prefix [0, c).
 */
interface FlatKeys {
  n: number;
  pos: Int32Array; // (n), non-decreasing
  /** Per live page (as indexed by `keyTiles`): flat index of its slot 0. */
  offset: number[];
  k: Float32Array[]; // per KV head (1 + n, D + 1): row 0 the sink key [0…0, 1], row 1 + j = [k_j, 0]
  v: Float32Array[]; // per KV head (1 + n, D + 1): row 0 [0…0, 1], row 1 + j = [v_j, 0]
  /** Σ_{j < sumTo} k_j per KV head (float64, D each), advanced as row tiles move forward. */
  sum: Float64Array[];
  sumTo: number;
}

export class TiledAttention implements AttentionBackend {
  /** Chain sessions by tile pattern ('o' open / 'm' masked per tile), created on first use. */
  private readonly chain = new Map<string, Promise<ort.InferenceSession>>();

  private constructor(
    private readonly config: ModelConfig,
    private readonly settings: TiledAttentionSettings,
    private readonly sessionOptions: ort.InferenceSession.SessionOptions,
    private readonly counters: AttentionCounters,
    /** Single-tile sessions: with an additive mask bias, and without. */
    private readonly masked: ort.InferenceSession,
    private readonly open: ort.InferenceSession,
    /** The flash session (`buildFlashAttendGraph`), when `settings.flash`. */
    private readonly flash: ort.InferenceSession | null,
  ) {}

  static async create(config: ModelConfig, settings: TiledAttentionSettings, sessionOptions: ort.InferenceSession.SessionOptions, counters: AttentionCounters): Promise<TiledAttention> {
    const masked = await ort.InferenceSession.create(buildAttendGraph(config, true), sessionOptions);
    const open = await ort.InferenceSession.create(buildAttendGraph(config, false), sessionOptions);
    const flash = settings.flash ? await ort.InferenceSession.create(buildFlashAttendGraph(config), sessionOptions) : null;
    return new TiledAttention(config, { ...settings }, sessionOptions, counters, masked, open, flash);
  }

  /**
   * Per (row tile, key tile):
   *   - keys after every row of the tile: skipped;
   *   - on a position-sorted page, keys hidden from every row (a tail of the range) are trimmed off
   *     (always for cut tiles; for a whole page when the saved scores outweigh the copy);
   *   - keys all written and all before every row: the unmasked graph;
   *   - otherwise the masked graph with an additive bias (n, w): 0 visible, −1e30 hidden.
   * Consecutive tiles of a row tile go to ORT together, up to `tilesPerCall` per call — a run of
   * open tiles closed by one masked tile, or a run of masked tiles — as one chain call
   * (`buildAttendChainGraph`: per-tile softmax, partials merged in the graph). The calls' partials
   * are folded into a float64 accumulator (`mergeInto`), so the result does not depend on the
   * tiling beyond float32 rounding. `out` (H, Tq, D), when given, receives o (every row is written).
   * With flash (long queries, pages sorted across pages): a row tile's keys at positions ≤ its first
   * row's position (all visible to every row) are one flash call (`flashPrefix`) when there are at
   * least FLASH_MIN_KEYS of them; the tiles above then cover only the keys after that prefix.
   */
  async attend(q: Float32Array, qpos: Int32Array, pages: KvPage[], out?: Float32Array): Promise<Partial> {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = this.config;
    const { rowTile, keyTile, scoreBudgetBytes } = this.settings;
    const Tq = qpos.length;
    const result: Partial = { o: out ?? new Float32Array(H * Tq * D), lse: new Float32Array(H * Tq).fill(-Infinity), heads: H, rows: Tq, headDim: D };
    const live = pages.filter((p) => p.len > 0);
    if (live.length === 0 || Tq === 0) {
      result.o.fill(0);
      return result;
    }
    const maxCap = live.reduce((m, p) => Math.max(m, p.cap), 1);
    let rows = Math.min(rowTile, Tq);
    const cut = rows * maxCap > rowTile * keyTile;
    const width = cut ? Math.min(keyTile, maxCap) : maxCap;
    // The budget covers the score matrix and its softmax (2 buffers of H × rows × width floats).
    rows = Math.max(1, Math.min(rows, Math.floor(scoreBudgetBytes / (2 * 4 * H * width))));
    const tiles = keyTiles(live, cut ? keyTile : 0);
    const flat = cut && this.flash ? flatKeys(live, Hkv, D) : null;
    const kvCache = new Map<string, { k: ort.Tensor; v: ort.Tensor }>(); // full-width cut tiles, reused across row tiles
    const kvOf = (page: KvPage, pageIdx: number, c0: number, c1: number, reuse: boolean): { k: ort.Tensor; v: ort.Tensor } => {
      if (c0 === 0 && c1 === page.cap) {
        return { k: new ort.Tensor('float32', page.k, [Hkv, page.cap, D]), v: new ort.Tensor('float32', page.v, [Hkv, page.cap, D]) };
      }
      const key = `${pageIdx}:${c0}:${c1}`;
      const hit = kvCache.get(key);
      if (hit) return hit;
      const w = c1 - c0;
      const kv = {
        k: new ort.Tensor('float32', sliceRows(page.k, Hkv, page.cap, D, c0, c1), [Hkv, w, D]), // (Hkv, w, D)
        v: new ort.Tensor('float32', sliceRows(page.v, Hkv, page.cap, D, c0, c1), [Hkv, w, D]), // (Hkv, w, D)
      };
      if (reuse) kvCache.set(key, kv);
      return kv;
    };

    // Flash groups: whole row tiles, about flashRows rows.
    const groupRows = Math.max(rows, Math.floor(this.settings.flashRows / rows) * rows);
    let group: FlashGroup = { r0: 0, r1: 0, c: 0, part: null };
    for (const tile of rowTiles(q, qpos, H, D, rows)) {
      const { r0, n, q: qc, qpos: pc, minPos: qMin, maxPos: qMax } = tile; // qc (H, n, D), pc (n)
      const qT = new ort.Tensor('float32', qc, [H, n, D]);
      const acc: Partial64 = emptyPartial64(H, n, D);
      // Flat keys [0, done) went to the flash call of this row tile's flash group (its rows copied
      // into acc); the tiles take the rest.
      let done = 0;
      if (flat) {
        if (r0 >= group.r1) group = await this.flashGroup(flat, q, qpos, r0, Math.min(Tq, r0 + groupRows));
        if (group.part) {
          copyRows(group.part.o, group.part.rows, r0 - group.r0, acc.o, n, 0, n, H, D);
          copyRows(group.part.lse, group.part.rows, r0 - group.r0, acc.lse, n, 0, n, H, 1);
          done = group.c;
        }
      }
      // The key ranges this row tile sees, after skipping and trimming.
      const items: { page: KvPage; c0: number; c1: number; open: boolean; kv: { k: ort.Tensor; v: ort.Tensor } }[] = [];
      for (const t of tiles) {
        if (t.minPos > qMax) continue; // every key hidden from every row
        const { page } = t;
        const c0 = flat && done > 0 ? Math.max(t.c0, done - flat.offset[t.pageIdx]) : t.c0;
        if (c0 >= t.c1) continue; // all in the flash prefix
        let c1 = t.c1;
        if (page.sorted) {
          // Visible keys of the range form a prefix: drop the tail hidden from every row.
          const vis = upperBound(page.npos, c0, t.c1, qMax);
          const whole = c0 === 0 && t.c1 === page.cap;
          if (vis < c1 && (!whole || worthTrimming(c1 - c0, vis - c0, n, H, Hkv))) c1 = vis;
        }
        if (c1 <= c0) continue;
        const written = c1 <= page.len;
        const maxPos = page.sorted && written ? page.npos[c1 - 1] : t.maxPos;
        items.push({ page, c0, c1, open: written && maxPos <= qMin, kv: kvOf(page, t.pageIdx, c0, c1, c0 === t.c0 && c1 === t.c1) });
      }
      // Calls: a run of open tiles, closed by one masked tile, or a run of masked tiles; at most
      // tilesPerCall tiles each (so at most 3·tilesPerCall chain graphs ever get built).
      const P = this.settings.tilesPerCall;
      for (let i = 0; i < items.length; ) {
        let j = i + 1;
        if (items[i].open) {
          while (j < items.length && j - i < P && items[j].open) j++;
          if (j < items.length && j - i < P) j++; // the masked tile that ends the run
        } else {
          while (j < items.length && j - i < P && !items[j].open) j++;
        }
        const group = items.slice(i, j);
        i = j;
        let width = 0;
        let res: ort.InferenceSession.OnnxValueMapType;
        if (group.length === 1) {
          const it = group[0];
          width = it.c1 - it.c0;
          const feeds: Record<string, ort.Tensor> = { q: qT, k: it.kv.k, v: it.kv.v };
          if (!it.open) feeds.bias = new ort.Tensor('float32', maskBias(pc, it.page.npos, it.c0, it.c1, it.page.sorted), [n, width]); // (n, w)
          res = await (it.open ? this.open : this.masked).run(feeds);
        } else {
          const feeds: Record<string, ort.Tensor> = { q: qT };
          group.forEach((it, g) => {
            const w = it.c1 - it.c0;
            width += w;
            feeds[`k${g}`] = it.kv.k;
            feeds[`v${g}`] = it.kv.v;
            if (!it.open) feeds[`bias${g}`] = new ort.Tensor('float32', maskBias(pc, it.page.npos, it.c0, it.c1, it.page.sorted), [n, w]); // (n, w)
          });
          res = await (await this.chainSession(group.map((it) => !it.open))).run(feeds);
        }
        this.counters.attendCalls++;
        this.counters.attendFlops += 4 * H * n * width * D;
        mergeInto(acc, { o: res.o.data as Float32Array, lse: res.lse.data as Float32Array, heads: H, rows: n, headDim: D });
      }
      writePartialRows(result, acc, r0);
    }
    return result;
  }

  /**
   * The flash call of query rows [r0, r1) (a flash group, `flashRows` rows, split into row tiles
   * afterwards): over the flat keys at positions ≤ the group's smallest position, all visible to
   * every row of the group. `part` is null when there are fewer than FLASH_MIN_KEYS such keys or
   * the LSE could not be recovered (`flashPrefix`); the group's row tiles then take tiles only.
   */
  private async flashGroup(flat: FlatKeys, q: Float32Array, qpos: Int32Array, r0: number, r1: number): Promise<FlashGroup> {
    const { numHeads: H, headDim: D } = this.config;
    const m = r1 - r0;
    let qMin = Infinity;
    for (let i = r0; i < r1; i++) if (qpos[i] < qMin) qMin = qpos[i];
    const c = upperBound(flat.pos, 0, flat.n, qMin);
    if (c < FLASH_MIN_KEYS) return { r0, r1, c: 0, part: null };
    const part = emptyPartial64(H, m, D);
    const qg = m === qpos.length ? q : sliceRows(q, H, qpos.length, D, r0, r1); // (H, m, D)
    const ok = await this.flashPrefix(flat, c, qg, m, part);
    return { r0, r1, c: ok ? c : 0, part: ok ? part : null };
  }

  /**
   * One flash call (`buildFlashAttendGraph`) for the row tile qc (H, n, D) over flat keys [0, c),
   * all visible to every row; writes o and lse into `acc` (empty before) and returns true, or
   * returns false (acc untouched) when some row's sink weight falls outside
   * [FLASH_MIN_SINK, 0.75] and its LSE cannot be recovered precisely.
   * The sink logit of row i is s*_i = q_i·k̄/√D + log c (k̄ the mean of the c keys): by Jensen's
   * inequality s*_i ≤ lse_i, so r_i ≤ 1/2 and 1 − r_i keeps its precision; lse_i = s*_i +
   * log((1 − r_i)/r_i), o_i = o'_i / (1 − r_i).
   */
  private async flashPrefix(flat: FlatKeys, c: number, qc: Float32Array, n: number, acc: Partial64): Promise<boolean> {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = this.config;
    const G = H / Hkv;
    const Dp = D + 1;
    const R = G * n; // rows per KV head
    const scale = 1 / Math.sqrt(D);
    const scale32 = Math.fround(scale);
    advanceKeySums(flat, c, Hkv, D);
    const logC = Math.log(c);
    const feeds: Record<string, ort.Tensor> = {};
    const sink = new Float64Array(H * n); // (H, n): s*_i as the kernel computes it
    for (let h = 0; h < Hkv; h++) {
      const sum = flat.sum[h];
      const qp = new Float32Array(R * Dp); // (G·n, D+1)
      for (let r = 0; r < R; r++) {
        const src = (h * R + r) * D; // q head h·G + ⌊r/n⌋, row r mod n: contiguous in (H, n, D)
        let dot = 0;
        for (let d = 0; d < D; d++) {
          const x = qc[src + d];
          qp[r * Dp + d] = x;
          dot += x * sum[d];
        }
        const a = Math.fround((dot * scale) / c / scale32 + logC / scale32);
        qp[r * Dp + D] = a;
        sink[h * R + r] = a * scale32;
      }
      feeds[`q${h}`] = new ort.Tensor('float32', qp, [1, R, Dp]);
      feeds[`k${h}`] = new ort.Tensor('float32', flat.k[h].subarray(0, (1 + c) * Dp), [1, 1 + c, Dp]);
      feeds[`v${h}`] = new ort.Tensor('float32', flat.v[h].subarray(0, (1 + c) * Dp), [1, 1 + c, Dp]);
    }
    const res = await this.flash!.run(feeds);
    this.counters.attendCalls++;
    this.counters.attendFlops += 4 * H * n * c * D;
    const outs = Array.from({ length: Hkv }, (_, h) => res[`o${h}`].data as Float32Array); // (G·n, D+1) each
    for (let h = 0; h < Hkv; h++) {
      for (let r = 0; r < R; r++) {
        const w = outs[h][r * Dp + D];
        if (!(w >= FLASH_MIN_SINK && w <= 0.75)) return false;
      }
    }
    for (let h = 0; h < Hkv; h++) {
      const out = outs[h];
      for (let r = 0; r < R; r++) {
        const row = h * R + r; // (H, n) row index
        const w = out[r * Dp + D];
        const inv = 1 / (1 - w);
        for (let d = 0; d < D; d++) acc.o[row * D + d] = out[r * Dp + d] * inv;
        acc.lse[row] = sink[row] + Math.log((1 - w) / w);
      }
    }
    return true;
  }

  /** The chain attend session for a tile pattern (built on first use). */
  private chainSession(masked: boolean[]): Promise<ort.InferenceSession> {
    const key = masked.map((m) => (m ? 'm' : 'o')).join('');
    let s = this.chain.get(key);
    if (!s) {
      s = ort.InferenceSession.create(buildAttendChainGraph(this.config, masked), this.sessionOptions);
      this.chain.set(key, s);
    }
    return s;
  }
}

/** A key range of one page: slots [c0, c1), with the range's smallest / largest written position. */
interface KeyTile {
  page: KvPage;
  pageIdx: number;
  c0: number;
  c1: number;
  minPos: number;
  maxPos: number;
}

/**
 * Key tiles over non-empty pages: with `width` > 0, each page's written slots [0, len) in ranges of
 * ≤ width; with `width` = 0, each page whole ([0, cap), unwritten slots included).
 */
function keyTiles(pages: KvPage[], width: number): KeyTile[] {
  const tiles: KeyTile[] = [];
  pages.forEach((page, pageIdx) => {
    if (width === 0 || page.cap <= width) {
      tiles.push({ page, pageIdx, c0: 0, c1: width === 0 || page.len === page.cap ? page.cap : page.len, minPos: page.minPos, maxPos: page.maxPos });
      return;
    }
    for (let c0 = 0; c0 < page.len; c0 += width) {
      const c1 = Math.min(page.len, c0 + width);
      let minPos = Infinity;
      let maxPos = -Infinity;
      if (page.sorted) {
        minPos = page.npos[c0];
        maxPos = page.npos[c1 - 1];
      } else {
        for (let j = c0; j < c1; j++) {
          const p = page.npos[j];
          if (p < minPos) minPos = p;
          if (p > maxPos) maxPos = p;
        }
      }
      tiles.push({ page, pageIdx, c0, c1, minPos, maxPos });
    }
  });
  return tiles;
}

/** First index in [lo, hi) of the sorted `a` whose value exceeds x (hi when none does). */
function upperBound(a: Int32Array, lo: number, hi: number, x: number): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Whether to copy the visible prefix (c of w slots) of a whole page instead of passing the page
 * as it is with the hidden tail masked: the copy moves 2·Hkv·c·D floats, the masked tail costs
 * 4·H·D FLOPs per (row, slot); at ~5 GB/s copying vs ~50 GFLOP/s that is worth it when
 * (w − c)·n·H ≥ 20·c·Hkv.
 */
function worthTrimming(w: number, c: number, n: number, H: number, Hkv: number): boolean {
  return (w - c) * n * H >= 20 * c * Hkv;
}

/**
 * Additive mask of rows at positions `qpos` (n) over slots [c0, c1) of a page: (n, c1−c0) with 0
 * where npos[j] ≤ qpos[i] and MASKED_SCORE elsewhere. On a sorted page each row's visible keys are
 * a prefix, found by binary search and filled in bulk.
 */
export function maskBias(qpos: Int32Array, npos: Int32Array, c0: number, c1: number, sorted: boolean): Float32Array {
  const n = qpos.length;
  const w = c1 - c0;
  const bias = new Float32Array(n * w); // (n, w), zero = visible
  for (let i = 0; i < n; i++) {
    const qp = qpos[i];
    const row = i * w;
    if (sorted) {
      const vis = upperBound(npos, c0, c1, qp) - c0;
      if (vis < w) bias.fill(MASKED_SCORE, row + vis, row + w);
    } else {
      for (let j = 0; j < w; j++) if (npos[c0 + j] > qp) bias[row + j] = MASKED_SCORE;
    }
  }
  return bias;
}

/**
 * The flash layout of the live pages' written keys (`FlatKeys`), or null when the written positions
 * decrease somewhere (within a page or from one page to the next) or there are fewer than
 * FLASH_MIN_KEYS keys.
 */
function flatKeys(pages: KvPage[], Hkv: number, D: number): FlatKeys | null {
  let n = 0;
  let last = -Infinity;
  for (const p of pages) {
    if (!p.sorted || p.npos[0] < last) return null;
    last = p.npos[p.len - 1];
    n += p.len;
  }
  if (n < FLASH_MIN_KEYS) return null;
  const Dp = D + 1;
  const pos = new Int32Array(n); // (n)
  const offset: number[] = [];
  const k = Array.from({ length: Hkv }, () => new Float32Array((1 + n) * Dp)); // (1 + n, D+1) each
  const v = Array.from({ length: Hkv }, () => new Float32Array((1 + n) * Dp)); // (1 + n, D+1) each
  for (let h = 0; h < Hkv; h++) {
    k[h][D] = 1;
    v[h][D] = 1;
  }
  let f = 0;
  for (const p of pages) {
    offset.push(f);
    pos.set(p.npos.subarray(0, p.len), f);
    for (let h = 0; h < Hkv; h++) {
      const kh = k[h];
      const vh = v[h];
      for (let j = 0; j < p.len; j++) {
        const src = (h * p.cap + j) * D;
        const dst = (1 + f + j) * Dp;
        kh.set(p.k.subarray(src, src + D), dst);
        vh.set(p.v.subarray(src, src + D), dst);
      }
    }
    f += p.len;
  }
  return { n, pos, offset, k, v, sum: Array.from({ length: Hkv }, () => new Float64Array(D)), sumTo: 0 };
}

/** Move `flat.sum` to Σ_{j < c} k_j (forward from the last prefix, or again from 0). */
function advanceKeySums(flat: FlatKeys, c: number, Hkv: number, D: number): void {
  const Dp = D + 1;
  if (c < flat.sumTo) {
    for (const s of flat.sum) s.fill(0);
    flat.sumTo = 0;
  }
  for (let h = 0; h < Hkv; h++) {
    const s = flat.sum[h];
    const kh = flat.k[h];
    for (let j = flat.sumTo; j < c; j++) {
      const row = (1 + j) * Dp;
      for (let d = 0; d < D; d++) s[d] += kh[row + d];
    }
  }
  flat.sumTo = c;
}
