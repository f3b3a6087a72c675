/**
 * The query actor's compute and KV store as the serving loop sees them: the batched `QueryModel`
 * (libs/attention host.ts) plus the own-cache lifecycle. `EngineQueryBackend` implements it over one
 * `ModelEngine` (a worker thread); the in-process cluster and the query actor process both use it.
 */
import type { GroupedQuery, QueryModel, RowGroup } from '@starq/attention';
import type { ModelEngine } from '../runtime/engine';
import { kvBytesPerToken } from '../runtime/kv-cache';

/**
 * Contract (beyond `QueryModel`'s):
 * - `createCache(id, reserve)` makes an empty own cache sized for `reserve` tokens; ids are unique
 *   among live caches.
 * - `truncateCache(id, tokens)` keeps the first `tokens` tokens of every layer (rolls back a step
 *   that appended to some layers and then failed).
 * - `dropCache` frees a cache; dropping an unknown id is a no-op.
 * - `kvBytesPerToken` is what one cached token costs, for admission.
 */
export interface QueryBackend extends QueryModel {
  readonly kvBytesPerToken: number;
  createCache(id: string, reserveTokens: number): Promise<void>;
  truncateCache(id: string, tokens: number): Promise<void>;
  dropCache(id: string): Promise<void>;
}

export class EngineQueryBackend implements QueryBackend {
  readonly numLayers: number;
  readonly kvBytesPerToken: number;

  constructor(readonly engine: ModelEngine) {
    this.numLayers = engine.config.numLayers;
    this.kvBytesPerToken = kvBytesPerToken(engine.config);
  }

  embed(ids: Int32Array): Promise<Float32Array> {
    return this.engine.embed(ids);
  }
  queryLayer(layer: number, x: Float32Array, groups: RowGroup[]): Promise<GroupedQuery> {
    return this.engine.queryLayer(layer, x, groups);
  }
  post(layer: number, x: Float32Array, attn: Float32Array): Promise<Float32Array> {
    return this.engine.post(layer, x, attn);
  }
  postQueryLayer(layer: number, x: Float32Array, attn: Float32Array, groups: RowGroup[]): Promise<GroupedQuery & { x: Float32Array }> {
    return this.engine.postQueryLayer(layer, x, attn, groups);
  }
  head(x: Float32Array): Promise<Float32Array> {
    return this.engine.head(x);
  }
  createCache(id: string, reserveTokens: number): Promise<void> {
    return this.engine.createCache(id, reserveTokens);
  }
  truncateCache(id: string, tokens: number): Promise<void> {
    return this.engine.truncateCache(id, tokens);
  }
  async dropCache(id: string): Promise<void> {
    await this.engine.dropCache(id);
  }
}
