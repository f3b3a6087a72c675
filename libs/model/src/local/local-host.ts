/**
 * In-process implementations of the actor contracts (libs/attention host.ts) over a `ModelEngine`
 * (one worker thread each). The cluster implements the same contracts over Redis.
 */
import { mergeInto, type AttendRequest, type BlockHandle, type EncodeBlockRequest, type Host, type KvBlock, type Partial, type QueryModel } from '@starq/attention';
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

/** The query actor's model work for one request, on an engine, with its own cache. */
export class LocalQueryModel implements QueryModel {
  readonly numLayers: number;

  constructor(readonly engine: ModelEngine, readonly cacheId: string) {
    this.numLayers = engine.config.numLayers;
  }

  embed(ids: Int32Array): Promise<Float32Array> {
    return this.engine.embed(ids);
  }
  queryLayer(layer: number, x: Float32Array, positions: Int32Array): Promise<{ q: Float32Array; own: Partial }> {
    return this.engine.queryLayer(this.cacheId, layer, x, positions);
  }
  post(layer: number, x: Float32Array, attn: Float32Array): Promise<Float32Array> {
    return this.engine.post(layer, x, attn);
  }
  postQueryLayer(layer: number, x: Float32Array, attn: Float32Array, positions: Int32Array): Promise<{ x: Float32Array; q: Float32Array; own: Partial }> {
    return this.engine.postQueryLayer(this.cacheId, layer, x, attn, positions);
  }
  head(x: Float32Array): Promise<Float32Array> {
    return this.engine.head(x);
  }
}
