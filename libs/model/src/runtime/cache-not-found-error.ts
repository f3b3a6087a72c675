/**
 * The engine was asked to use a KV cache it does not hold (never created, or released — possibly
 * while the call waited). Code `kv_not_found`, as a host's KvNotFoundError (libs/cluster): a
 * caller that can re-encode the block does so and retries.
 */
import { StarqError } from '@starq/protocol/errors';

export class CacheNotFoundError extends StarqError {
  constructor(readonly cacheId: string) {
    super('kv_not_found', `no KV cache ${cacheId} on this executor (released or never created): re-encode it`, { param: 'cacheIds', status: 409 });
  }
}
