/**
 * In-process host actor: the `Host` contract (libs/attention host.ts) over a `ModelEngine` (one
 * worker thread). The host actor process serves the same object over actor calls; the query side
 * is `EngineQueryBackend` (serving/query-backend.ts).
 */
import { mergeInto, type AttendBatch, type AttendRequest, type BlockHandle, type EncodeBlockRequest, type Host, type KvBlock, type Partial } from '@starq/attention';
import type { ModelEngine } from '../runtime/engine';
import { AnchorStore } from './anchor-store';

interface RingState {
  positions: Int32Array; // (T)
  x: Float32Array; // (T, hidden)
  q: Float32Array | null; // (H, T, D) of the current layer
  acc: Partial | null; // merged partial of the current layer
}

export interface LocalHostOptions {
  /**
   * Encode each anchor once per host and every anchored block's rows over its K/V (`AnchorStore`);
   * false recomputes the anchor with every block (anchor ++ block, as in the paper).
   * @defaultValue true
   */
  shareAnchors?: boolean;
}

export class LocalHost implements Host {
  private readonly ring = new Map<string, RingState>();
  private readonly anchors: AnchorStore;
  private readonly shareAnchors: boolean;
  /** Encodes in flight by cache id (a repeated request waits for the first). */
  private readonly encoding = new Map<string, Promise<void>>();

  constructor(readonly id: string, readonly engine: ModelEngine, opts: LocalHostOptions = {}) {
    this.anchors = new AnchorStore(engine);
    this.shareAnchors = opts.shareAnchors ?? true;
  }

  /** Bytes of the shared anchors this host holds (each once; block handles count their own rows). */
  get anchorBytes(): number {
    return this.anchors.bytes;
  }

  /** Anchor rows that encoding `req` would add to this host: 0 when its anchor is held or there is none. */
  newAnchorTokens(req: EncodeBlockRequest): number {
    if (req.keepFrom === 0 || !this.shareAnchors) return 0;
    return this.anchors.holds(req.ids.subarray(0, req.keepFrom), req.positions.subarray(0, req.keepFrom)) ? 0 : req.keepFrom;
  }

  /**
   * Phase 1 of a block. With a shared anchor (keepFrom > 0): the anchor rows [0, keepFrom) are
   * encoded once per host (`AnchorStore`), and the block's rows [keepFrom, T) in their own forward
   * attending to (anchor K/V ++ block) — the K/V kept are those of anchor ++ block's rows ≥ keepFrom.
   */
  async encodeBlock(req: EncodeBlockRequest): Promise<BlockHandle> {
    let pending = this.encoding.get(req.cacheId);
    if (!pending) {
      pending = this.encodeOnce(req).finally(() => this.encoding.delete(req.cacheId));
      this.encoding.set(req.cacheId, pending);
    }
    await pending;
    const info = await this.engine.cacheInfo(req.cacheId);
    return { cacheId: req.cacheId, hostId: this.id, tokens: info.tokens, bytes: info.bytes };
  }

  private async encodeOnce(req: EncodeBlockRequest): Promise<void> {
    if (await this.engine.hasCache(req.cacheId)) return;
    const { cacheId, ids, positions, keepFrom } = req;
    const T = ids.length;
    const shared = keepFrom > 0 && this.shareAnchors;
    try {
      if (!shared) {
        await this.engine.forward({ cacheId, ids, positions, keepFrom, logits: 'none', reserve: T - keepFrom });
      } else {
        const anchorCacheId = await this.anchors.acquire(cacheId, ids.slice(0, keepFrom), positions.slice(0, keepFrom));
        await this.engine.forward({ cacheId, ids: ids.slice(keepFrom), positions: positions.slice(keepFrom), anchorCacheId, logits: 'none', reserve: T - keepFrom });
      }
    } catch (e) {
      // A failed encode leaves nothing behind: no half-written cache that a retry would take as done.
      await this.engine.dropCache(cacheId).catch(() => undefined);
      await this.anchors.release(cacheId);
      throw e;
    }
  }

  attend(req: AttendRequest): Promise<Partial> {
    return this.engine.attendCaches(req.cacheIds, req.layer, req.q, req.qpos);
  }

  attendMany(items: AttendBatch): Promise<Partial[]> {
    return this.engine.attendMany(items);
  }

  async ringStart(cacheId: string, ids: Int32Array, positions: Int32Array): Promise<void> {
    if (this.ring.has(cacheId)) throw new Error(`ring state for ${cacheId} already exists on host ${this.id}`);
    await this.engine.createCache(cacheId, ids.length);
    this.ring.set(cacheId, { positions, x: await this.engine.embed(ids), q: null, acc: null });
  }

  async ringQkv(cacheId: string, layer: number): Promise<KvBlock> {
    const st = this.state(cacheId);
    const { q, k, v } = await this.engine.qkvAppend(cacheId, layer, st.x, st.positions);
    st.q = q;
    st.acc = null;
    return { k, v, kpos: st.positions };
  }

  async ringAttend(cacheId: string, layer: number, kv: KvBlock): Promise<void> {
    const st = this.state(cacheId);
    if (!st.q) throw new Error(`ringAttend before ringQkv for ${cacheId} layer ${layer}`);
    const part = await this.engine.attendKv(st.q, st.positions, kv.k, kv.v, kv.kpos);
    st.acc = st.acc ? mergeInto(st.acc, part) : part;
  }

  async ringPost(cacheId: string, layer: number): Promise<void> {
    const st = this.state(cacheId);
    if (!st.acc) throw new Error(`ringPost before any ringAttend for ${cacheId} layer ${layer}`);
    st.x = await this.engine.post(layer, st.x, st.acc.o);
    st.q = null;
    st.acc = null;
  }

  async ringEnd(cacheId: string): Promise<void> {
    this.ring.delete(cacheId);
  }

  async release(cacheIds: string[]): Promise<void> {
    for (const id of cacheIds) {
      this.ring.delete(id);
      await this.engine.dropCache(id);
      await this.anchors.release(id);
    }
  }

  private state(cacheId: string): RingState {
    const st = this.ring.get(cacheId);
    if (!st) throw new Error(`no ring state for ${cacheId} on host ${this.id} (call ringStart first)`);
    return st;
  }
}
