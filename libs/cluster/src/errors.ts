/** Errors of the starq cluster protocol that callers match by type or code. */
import { StarqError } from '@starq/protocol';

/** Code of {@link KvNotFoundError}; also the code of the RemoteCallError a caller receives. */
export const KV_NOT_FOUND = 'kv_not_found';

/**
 * A host was asked to attend over a KV block it does not hold (evicted, released, or encoded on
 * another host). The caller re-encodes the block (by lineage) and retries.
 */
export class KvNotFoundError extends StarqError {
  constructor(
    readonly cacheId: string,
    readonly hostId: string,
  ) {
    super(KV_NOT_FOUND, `host ${hostId} does not hold KV block ${cacheId} (evicted or never encoded here): re-encode it`, { param: 'cacheIds', status: 409 });
  }
}

/**
 * True for a {@link KvNotFoundError} thrown locally or received from a remote host (a
 * RemoteCallError carries the remote error's code).
 */
export function isKvNotFound(e: unknown): boolean {
  return e instanceof StarqError && e.code === KV_NOT_FOUND;
}
