/**
 * The two actor roles of Star Attention, as small interfaces. The in-process implementation
 * (`LocalHost`, libs/model) and the Redis cluster implementation (apps/host-actor behind a remote
 * handle) implement the same contracts, so the algorithms in star.ts / ring.ts run unchanged on both.
 */
import type { Partial } from './partial';

/** Phase 1 of one block: encode `ids` at `positions`, keep K/V of rows ≥ keepFrom as `cacheId`. */
export interface EncodeBlockRequest {
  /** Name of the KV cache to create (one per block; see `blockCacheId`). */
  cacheId: string;
  ids: Int32Array; // (T) anchor ++ block
  positions: Int32Array; // (T)
  /** Anchor rows to attend to but not keep. */
  keepFrom: number;
}

export interface BlockHandle {
  cacheId: string;
  hostId: string;
  tokens: number;
  bytes: number;
}

/** Phase 2: q of some query/generated rows, attended over the caches named. */
export interface AttendRequest {
  cacheIds: string[];
  layer: number;
  q: Float32Array; // (H, Tq, D)
  qpos: Int32Array; // (Tq)
}

/** K/V of one host's block for one layer, as passed around the ring. */
export interface KvBlock {
  k: Float32Array; // (Hkv, T, D)
  v: Float32Array; // (Hkv, T, D)
  kpos: Int32Array; // (T)
}

/**
 * A host actor: owns the K/V of some context blocks.
 *
 * Contract:
 * - `encodeBlock` is a pure function of its request (lineage: a lost block is re-encoded from the
 *   same request) and is idempotent per cacheId (a second call for an existing cache is a no-op
 *   returning the existing handle).
 * - `attend` returns ONE partial (o, lse) for q over all keys of the named caches this host holds,
 *   with key j visible to query i iff kpos[j] ≤ qpos[i]; a row with no visible key has lse = −∞.
 *   It throws if a named cache is not held here.
 * - Ring phase 1 is layer-synchronous: `ringStart`, then per layer `ringQkv` (returns this host's
 *   K/V for the layer and stores it in the cache), `ringAttend` once per incoming K/V block, and
 *   `ringPost`; finally `ringEnd`. State is per `cacheId`.
 * - `release` frees caches; unknown ids are ignored.
 */
export interface Host {
  readonly id: string;
  encodeBlock(req: EncodeBlockRequest): Promise<BlockHandle>;
  attend(req: AttendRequest): Promise<Partial>;
  ringStart(cacheId: string, ids: Int32Array, positions: Int32Array): Promise<void>;
  ringQkv(cacheId: string, layer: number): Promise<KvBlock>;
  ringAttend(cacheId: string, layer: number, kv: KvBlock): Promise<void>;
  ringPost(cacheId: string, layer: number): Promise<void>;
  ringEnd(cacheId: string): Promise<void>;
  release(cacheIds: string[]): Promise<void>;
}

/**
 * The query actor's own model work for one request: the non-attention pieces for the query and
 * generated rows, and the partial over its own cache (query + generated K/V, causal by position).
 */
export interface QueryModel {
  readonly numLayers: number;
  embed(ids: Int32Array): Promise<Float32Array>; // (T, hidden)
  /** q of the new rows and their partial over the own cache (after appending their K/V to it). */
  queryLayer(layer: number, x: Float32Array, positions: Int32Array): Promise<{ q: Float32Array; own: Partial }>;
  post(layer: number, x: Float32Array, attn: Float32Array): Promise<Float32Array>; // (T, hidden)
  /**
   * Optional fusion: `post(layer)` then `queryLayer(layer + 1)` in one call (one round trip to the
   * engine instead of two). Must equal the two calls in sequence; callers use it only when
   * layer + 1 < numLayers.
   */
  postQueryLayer?(layer: number, x: Float32Array, attn: Float32Array, positions: Int32Array): Promise<{ x: Float32Array; q: Float32Array; own: Partial }>;
  head(x: Float32Array): Promise<Float32Array>; // (T, vocab)
}

/** Cache id of block k of a context encoded under `contextKey` (model + mode + b + a + content hash). */
export function blockCacheId(contextKey: string, block: number): string {
  return `${contextKey}/b${block}`;
}
