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

/**
 * Phase 2 for many requests in one host call: one `AttendRequest` per request (its rows' q over
 * that request's blocks on this host). Items are independent: item i's rows attend only to item
 * i's caches.
 */
export type AttendBatch = AttendRequest[];

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
 *   returning the existing handle). The K/V kept are those of rows ≥ keepFrom of the causal
 *   forward of `ids`; how the anchor rows (< keepFrom) are computed is the host's choice — a host
 *   may encode an anchor once and keep it for all its blocks that start with the same anchor
 *   (same ids at the same positions), as long as it frees it with the last of them and counts it
 *   once in its KV memory.
 * - `attend` returns ONE partial (o, lse) for q over all keys of the named caches this host holds,
 *   with key j visible to query i iff kpos[j] ≤ qpos[i]; a row with no visible key has lse = −∞.
 *   It throws if a named cache is not held here.
 * - `attendMany` answers a batch of attend requests in one call: partial i equals `attend(items[i])`
 *   bit for bit (same caches, same rows, same kernels), in item order. It throws if any named cache
 *   is not held here (the whole call fails; the caller retries the batch).
 * - Ring phase 1 is layer-synchronous: `ringStart`, then per layer `ringQkv` (returns this host's
 *   K/V for the layer and stores it in the cache), `ringAttend` once per incoming K/V block, and
 *   `ringPost`; finally `ringEnd`. State is per `cacheId`.
 * - `release` frees caches; unknown ids are ignored.
 */
export interface Host {
  readonly id: string;
  encodeBlock(req: EncodeBlockRequest): Promise<BlockHandle>;
  attend(req: AttendRequest): Promise<Partial>;
  attendMany(items: AttendBatch): Promise<Partial[]>;
  ringStart(cacheId: string, ids: Int32Array, positions: Int32Array): Promise<void>;
  ringQkv(cacheId: string, layer: number): Promise<KvBlock>;
  ringAttend(cacheId: string, layer: number, kv: KvBlock): Promise<void>;
  ringPost(cacheId: string, layer: number): Promise<void>;
  ringEnd(cacheId: string): Promise<void>;
  release(cacheIds: string[]): Promise<void>;
}

/** One request's new rows inside a batched phase-2 step: its own query cache and the rows' positions. */
export interface RowGroup {
  /** The request's own cache (query + generated K/V) on the query model. */
  cacheId: string;
  positions: Int32Array; // (Ti)
}

/**
 * The query actor's own model work for the new rows of one or more requests, stacked: group g's
 * rows are rows [r_g, r_g + T_g) of every (T, ·) input, in group order (T = Σ T_g).
 *
 * Contract:
 * - Row independence: every row's outputs (x, q, logits) are exactly — bit for bit — what the
 *   same row would give if its group ran alone; a group's own partial depends only on that group's
 *   rows and cache. Batching changes no token.
 * - `queryLayer` appends each group's K/V to that group's own cache and returns, per group, q
 *   (H, T_g, D) and the partial of the group's rows over its own cache (causal by position).
 * - `postQueryLayer` (optional fusion) equals `post(layer)` then `queryLayer(layer + 1)`; callers
 *   use it only when layer + 1 < numLayers.
 */
export interface QueryModel {
  readonly numLayers: number;
  embed(ids: Int32Array): Promise<Float32Array>; // (T, hidden)
  queryLayer(layer: number, x: Float32Array, groups: RowGroup[]): Promise<GroupedQuery>;
  post(layer: number, x: Float32Array, attn: Float32Array): Promise<Float32Array>; // x (T, hidden), attn (H, T, D) → (T, hidden)
  postQueryLayer?(layer: number, x: Float32Array, attn: Float32Array, groups: RowGroup[]): Promise<GroupedQuery & { x: Float32Array }>;
  head(x: Float32Array): Promise<Float32Array>; // (T', hidden) → (T', vocab)
}

/** Per group (in group order): q (H, T_g, D) of its rows and their partial over its own cache. */
export interface GroupedQuery {
  q: Float32Array[];
  own: Partial[];
}

/** Cache id of block k of a context encoded under `contextKey` (model + mode + b + a + content hash). */
export function blockCacheId(contextKey: string, block: number): string {
  return `${contextKey}/b${block}`;
}

/**
 * Key of one request's private blocks of a context: a `cache: false` request keeps the blocks it
 * has to encode under `blockCacheId(privateBlockKey(contextKey, requestId), k)`, which no other
 * request looks up (it still reuses the shared `blockCacheId(contextKey, k)` blocks that exist).
 */
export function privateBlockKey(contextKey: string, requestId: string): string {
  return `${contextKey}/req:${requestId}`;
}

/** True when `cacheId` is a block under `privateKey` (`blockCacheId(privateKey, k)` for some k). */
export function isPrivateOf(cacheId: string, privateKey: string): boolean {
  return cacheId.startsWith(`${privateKey}/b`) && /^\d+$/.test(cacheId.slice(privateKey.length + 2));
}
