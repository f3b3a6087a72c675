/**
 * The anchors a Star host keeps for its blocks. Every block k ≥ 1 of a context is encoded after the
 * same anchor (the context's first a' tokens at positions 0..a'−1). Under causal attention the
 * anchor's hidden states — and so its K/V in every layer — do not depend on the block that follows,
 * so a host computes them once and encodes each block as its own rows attending to
 * (anchor K/V ++ block): the same math as encoding anchor ++ block, without the anchor's FLOPs.
 *
 * Contract:
 * - An anchor is identified by its tokens and positions, compared exactly: blocks share one only when
 *   its computation is the same.
 * - `acquire(block, …)` names the anchor cache for a block (computing it on first use, in the
 *   engine's call order); `release(block)` ends the block's use. The anchor cache is dropped when
 *   its last block is released, and a block acquired while the anchor is held reuses it.
 * - `bytes` counts each held anchor once, whatever the number of its blocks.
 */
import { createHash } from 'node:crypto';
import type { ModelEngine } from '../runtime/engine';

interface AnchorEntry {
  key: string;
  cacheId: string;
  ids: Int32Array; // (a)
  positions: Int32Array; // (a)
  /** Blocks using the anchor (encoding or held). */
  users: Set<string>;
  /** The anchor's forward (every row kept). */
  ready: Promise<void>;
  /** Bytes of the anchor cache once encoded (0 before). */
  bytes: number;
}

let seq = 0;

export class AnchorStore {
  private readonly byKey = new Map<string, AnchorEntry>();
  private readonly ofBlock = new Map<string, AnchorEntry>();

  constructor(private readonly engine: ModelEngine) {}

  /** Bytes of the anchor caches held (each anchor once). */
  get bytes(): number {
    let b = 0;
    for (const e of this.byKey.values()) b += e.bytes;
    return b;
  }

  /** Anchors held or being encoded. */
  get size(): number {
    return this.byKey.size;
  }

  /** Whether an anchor of these tokens at these positions is held (or being encoded). */
  holds(ids: Int32Array, positions: Int32Array): boolean {
    return this.find(ids, positions) !== undefined;
  }

  /**
   * The cache id of the anchor `ids` (a) at `positions` (a) for `blockId`, encoding it first unless
   * it is held. A block acquires one anchor at a time; acquiring again for the same block
   * returns the same cache.
   */
  async acquire(blockId: string, ids: Int32Array, positions: Int32Array): Promise<string> {
    if (ids.length !== positions.length || ids.length === 0) throw new Error(`AnchorStore.acquire: ${ids.length} ids and ${positions.length} positions (need the same number, ≥ 1)`);
    const had = this.ofBlock.get(blockId);
    if (had) {
      if (!sameRows(had, ids, positions)) throw new Error(`AnchorStore.acquire: block ${blockId} already uses another anchor`);
      await had.ready;
      return had.cacheId;
    }
    let e = this.find(ids, positions);
    if (!e) {
      const key = anchorKey(ids, positions);
      const cacheId = `anchor/${key}/${++seq}`;
      const entry: AnchorEntry = { key, cacheId, ids: ids.slice(), positions: positions.slice(), users: new Set(), ready: Promise.resolve(), bytes: 0 };
      entry.ready = (async () => {
        await this.engine.forward({ cacheId, ids: entry.ids, positions: entry.positions, keepFrom: 0, logits: 'none', reserve: ids.length });
        entry.bytes = (await this.engine.cacheInfo(cacheId)).bytes;
      })();
      entry.ready.catch(() => this.forget(entry)); // a failed anchor is not kept; its waiters get the error
      this.byKey.set(key, entry);
      e = entry;
    }
    e.users.add(blockId);
    this.ofBlock.set(blockId, e);
    try {
      await e.ready;
    } catch (err) {
      this.ofBlock.delete(blockId);
      throw err;
    }
    return e.cacheId;
  }

  /** End a block's use of its anchor (no-op for a block without one); drops the anchor with its last block. */
  async release(blockId: string): Promise<void> {
    const e = this.ofBlock.get(blockId);
    if (!e) return;
    this.ofBlock.delete(blockId);
    e.users.delete(blockId);
    if (e.users.size > 0) return;
    this.forget(e);
    await e.ready.catch(() => undefined);
    await this.engine.dropCache(e.cacheId);
  }

  private forget(e: AnchorEntry): void {
    if (this.byKey.get(e.key) === e) this.byKey.delete(e.key);
  }

  private find(ids: Int32Array, positions: Int32Array): AnchorEntry | undefined {
    const e = this.byKey.get(anchorKey(ids, positions));
    return e && sameRows(e, ids, positions) ? e : undefined;
  }
}

function anchorKey(ids: Int32Array, positions: Int32Array): string {
  const h = createHash('sha256');
  h.update(new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength));
  h.update(new Uint8Array(positions.buffer, positions.byteOffset, positions.byteLength));
  return `${ids.length}.${h.digest('hex').slice(0, 32)}`;
}

function sameRows(e: AnchorEntry, ids: Int32Array, positions: Int32Array): boolean {
  if (e.ids.length !== ids.length) return false;
  for (let i = 0; i < ids.length; i++) if (e.ids[i] !== ids[i] || e.positions[i] !== positions[i]) return false;
  return true;
}
