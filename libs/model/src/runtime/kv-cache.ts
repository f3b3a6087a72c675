/**
 * Paged KV cache for one sequence (or one Star block): per layer a list of pages, each page a
 * head-major K and V buffer `(Hkv, cap, D)` plus the position of every slot. Pages are handed to the
 * attention graph as they are (no copies); slots not yet written carry position `EMPTY_POS`, which
 * the position mask hides from every query. Positions need not be contiguous (Star keeps global
 * positions for a block; an anchor is never stored here).
 */
import { copyRows } from './rows';

/** Position of an unwritten slot: larger than any real position, so `kpos ≤ qpos` never holds. */
export const EMPTY_POS = 1n << 60n;
/** `EMPTY_POS` in the int32 position array (real positions are far below 2³¹ − 1). */
export const EMPTY_POS_I32 = 0x7fffffff;

export interface KvPage {
  k: Float32Array; // (Hkv, cap, D)
  v: Float32Array; // (Hkv, cap, D)
  pos: BigInt64Array; // (cap) — EMPTY_POS where unwritten (int64 feed of the reference attend graph)
  npos: Int32Array; // (cap) — the same positions as numbers, EMPTY_POS_I32 where unwritten
  cap: number;
  len: number;
  /** Smallest and largest written position (Infinity / -Infinity when empty). */
  minPos: number;
  maxPos: number;
  /**
   * Written positions are non-decreasing in slot order (the usual case: a sequence or a Star block
   * appended in order). Unwritten slots follow the written ones with the largest position, so
   * `npos` over the whole page is then sorted too, and the keys visible to a query position form a
   * prefix of any slot range.
   */
  sorted: boolean;
}

export interface KvCacheOptions {
  numLayers: number;
  numKvHeads: number;
  headDim: number;
  /** Maximum tokens per page (the attention key-chunk size). @defaultValue 4096 */
  pageSize?: number;
  /** Expected total tokens: pages are sized to fit it exactly (no masked waste). @defaultValue 0 (grow) */
  reserve?: number;
}

/**
 * Bytes one token's K/V occupy in a cache, all layers: K and V (Hkv·D float32 each) and the int32
 * position per layer, plus the same again for the page's position index.
 */
export function kvBytesPerToken(c: { numLayers: number; numKvHeads: number; headDim: number }): number {
  return c.numLayers * 2 * c.numKvHeads * c.headDim * 4 + c.numLayers * 8;
}

export class KvCache {
  readonly layers: KvPage[][];
  readonly pageSize: number;
  private reserve: number;
  private readonly hkv: number;
  private readonly d: number;

  constructor(opts: KvCacheOptions) {
    this.layers = Array.from({ length: opts.numLayers }, () => []);
    this.pageSize = opts.pageSize ?? 4096;
    this.reserve = opts.reserve ?? 0;
    this.hkv = opts.numKvHeads;
    this.d = opts.headDim;
  }

  /** Tokens stored (identical across layers once a forward pass has finished). */
  get length(): number {
    return this.layers[0].reduce((n, p) => n + p.len, 0);
  }

  /** Bytes held by allocated pages (K, V and positions, all layers). */
  get bytes(): number {
    let b = 0;
    for (const pages of this.layers) for (const p of pages) b += p.k.byteLength + p.v.byteLength + p.pos.byteLength;
    return b;
  }

  /** Raise the expected total so the next pages are sized for it. */
  reserveTokens(total: number): void {
    this.reserve = Math.max(this.reserve, total);
  }

  pages(layer: number): KvPage[] {
    return this.layers[layer];
  }

  /**
   * Append rows `[from, to)` of freshly computed k/v `(Hkv, T, D)` with their positions to `layer`.
   */
  append(layer: number, k: Float32Array, v: Float32Array, positions: ArrayLike<number>, from = 0, to = positions.length): void {
    const T = positions.length;
    const { hkv, d } = this;
    if (k.length !== hkv * T * d || v.length !== k.length) throw new Error(`KvCache.append: k/v size ${k.length} != Hkv·T·D = ${hkv * T * d}`);
    const pages = this.layers[layer];
    let row = from;
    while (row < to) {
      let page = pages[pages.length - 1];
      if (!page || page.len === page.cap) {
        page = this.newPage(pages.reduce((n, p) => n + p.len, 0), to - row);
        pages.push(page);
      }
      const n = Math.min(page.cap - page.len, to - row);
      copyRows(k, T, row, page.k, page.cap, page.len, n, hkv, d);
      copyRows(v, T, row, page.v, page.cap, page.len, n, hkv, d);
      for (let i = 0; i < n; i++) {
        const p = positions[row + i];
        page.pos[page.len + i] = BigInt(p);
        page.npos[page.len + i] = p;
        if (p < page.maxPos) page.sorted = false; // maxPos is the last position while sorted
        if (p < page.minPos) page.minPos = p;
        if (p > page.maxPos) page.maxPos = p;
      }
      page.len += n;
      row += n;
    }
  }

  /**
   * Drop every token after the first `tokens` (in append order) from all layers — used to undo a
   * partially applied step before retrying it.
   */
  truncate(tokens: number): void {
    for (const pages of this.layers) {
      let keep = tokens;
      for (let i = 0; i < pages.length; i++) {
        const p = pages[i];
        if (keep >= p.len) {
          keep -= p.len;
          continue;
        }
        p.pos.fill(EMPTY_POS, keep, p.len);
        p.npos.fill(EMPTY_POS_I32, keep, p.len);
        p.len = keep;
        p.minPos = Infinity;
        p.maxPos = -Infinity;
        p.sorted = true;
        for (let j = 0; j < keep; j++) {
          const v = p.npos[j];
          if (v < p.maxPos) p.sorted = false;
          if (v < p.minPos) p.minPos = v;
          if (v > p.maxPos) p.maxPos = v;
        }
        keep = 0;
        pages.length = p.len === 0 ? i : i + 1;
        break;
      }
    }
  }

  private newPage(stored: number, incoming: number): KvPage {
    const want = this.reserve > stored ? this.reserve - stored : Math.max(64, stored, incoming);
    const cap = Math.max(1, Math.min(this.pageSize, want));
    const size = this.hkv * cap * this.d;
    return {
      k: new Float32Array(size),
      v: new Float32Array(size),
      pos: new BigInt64Array(cap).fill(EMPTY_POS),
      npos: new Int32Array(cap).fill(EMPTY_POS_I32),
      cap,
      len: 0,
      minPos: Infinity,
      maxPos: -Infinity,
      sorted: true,
    };
  }
}

/** Build pages over rows `[from, to)` of k/v `(Hkv, T, D)` without keeping them anywhere. */
export function transientPages(
  k: Float32Array,
  v: Float32Array,
  positions: ArrayLike<number>,
  from: number,
  to: number,
  numKvHeads: number,
  headDim: number,
  pageSize: number,
): KvPage[] {
  if (to <= from) return [];
  const tmp = new KvCache({ numLayers: 1, numKvHeads, headDim, pageSize, reserve: to - from });
  tmp.append(0, k, v, positions, from, to);
  return tmp.pages(0);
}
