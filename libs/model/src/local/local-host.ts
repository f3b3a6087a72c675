/**
 * In-process host actor: the `Host` contract (libs/attention host.ts) over a `ModelEngine` (one
 * worker thread). The host actor process serves the same object over actor calls; the query side
 * is `EngineQueryBackend` (serving/query-backend.ts).
 */
import { mergeInto, type AttendBatch, type AttendRequest, type BlockHandle, type EncodeBlockRequest, type Host, type KvBlock, type Partial } from '@starq/attention';
import type { ModelEngine } from '../runtime/engine';

interface RingState {
  positions: Int32Array; // (T)
  x: Float32Array; // (T, hidden)
  q: Float32Array | null; // (H, T, D) of the current layer
  acc: Partial | null; // merged partial of the current layer
}

export class LocalHost implements Host {
  private readonly ring = new Map<string, RingState>();

  constructor(readonly id: string, readonly engine: ModelEngine) {}

  async encodeBlock(req: EncodeBlockRequest): Promise<BlockHandle> {
    if (!(await this.engine.hasCache(req.cacheId))) {
      await this.engine.forward({ cacheId: req.cacheId, ids: req.ids, positions: req.positions, keepFrom: req.keepFrom, logits: 'none', reserve: req.ids.length - req.keepFrom });
    }
    const info = await this.engine.cacheInfo(req.cacheId);
    return { cacheId: req.cacheId, hostId: this.id, tokens: info.tokens, bytes: info.bytes };
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
    }
  }

  private state(cacheId: string): RingState {
    const st = this.ring.get(cacheId);
    if (!st) throw new Error(`no ring state for ${cacheId} on host ${this.id} (call ringStart first)`);
    return st;
  }
}
