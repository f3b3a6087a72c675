/**
 * KV-cache handle (docs/DESIGN.md §8.4): the Redis record a host writes after encoding a block, so a later
 * request on the same context + model + (b, a) can find and reuse it instead of re-running phase 1.
 * Stored as a Redis hash at `RedisKeys.kvHandle(cacheId)`; every field is a string there.
 */
import { ProtocolError } from './validate';

export interface KvHandle {
  /** Name of the cache (`blockCacheId(contextKey, blockIndex)`). */
  cacheId: string;
  model: string;
  /** `contextHash(ids)` of the whole context. */
  contextHash: string;
  blockIndex: number;
  /** Block size b. */
  blockSize: number;
  /** Anchor size a. */
  anchorSize: number;
  /** First context token index whose K/V the cache holds. */
  tokenStart: number;
  /** One past the last token index held (half-open range). */
  tokenEnd: number;
  /** Number of layers with K/V in the cache. */
  layers: number;
  /** Bytes of K/V held. */
  bytes: number;
  /** Actor id of the host holding the cache. */
  hostId: string;
  /** Epoch ms. */
  createdAt: number;
  /** Epoch ms of the last attend on this cache. */
  lastUsedAt: number;
}

const STRING_FIELDS = ['cacheId', 'model', 'contextHash', 'hostId'] as const;
const INT_FIELDS = ['blockIndex', 'blockSize', 'anchorSize', 'tokenStart', 'tokenEnd', 'layers', 'bytes', 'createdAt', 'lastUsedAt'] as const;

function bad(field: string, what: string): never {
  throw new ProtocolError(`KV handle field ${field} ${what}`, { param: `kvHandle.${field}` });
}

/** Throws a ProtocolError naming the field unless `h` is a complete, consistent handle. */
export function validateKvHandle(h: KvHandle): KvHandle {
  if (typeof h !== 'object' || h === null) throw new ProtocolError('KV handle must be an object', { param: 'kvHandle' });
  for (const f of STRING_FIELDS) {
    if (typeof h[f] !== 'string' || h[f].length === 0) bad(f, `must be a non-empty string (got ${JSON.stringify(h[f])})`);
  }
  for (const f of INT_FIELDS) {
    if (typeof h[f] !== 'number' || !Number.isSafeInteger(h[f]) || h[f] < 0) bad(f, `must be a non-negative integer (got ${JSON.stringify(h[f])})`);
  }
  if (h.tokenEnd < h.tokenStart) bad('tokenEnd', `(${h.tokenEnd}) must be ≥ tokenStart (${h.tokenStart})`);
  if (h.blockSize === 0) bad('blockSize', 'must be > 0');
  if (h.lastUsedAt < h.createdAt) bad('lastUsedAt', `(${h.lastUsedAt}) must be ≥ createdAt (${h.createdAt})`);
  return h;
}

/** Handle → field/value record for HSET. Validates first. */
export function kvHandleToHash(h: KvHandle): Record<string, string> {
  validateKvHandle(h);
  const out: Record<string, string> = {};
  for (const f of STRING_FIELDS) out[f] = h[f];
  for (const f of INT_FIELDS) out[f] = String(h[f]);
  return out;
}

/**
 * HGETALL result → handle. Returns null for an empty record (the key does not exist).
 * @throws ProtocolError when a field is missing or not a valid value.
 */
export function kvHandleFromHash(rec: Record<string, string>): KvHandle | null {
  if (!rec || Object.keys(rec).length === 0) return null;
  const h: Record<string, unknown> = {};
  for (const f of STRING_FIELDS) {
    if (rec[f] === undefined) bad(f, 'is missing');
    h[f] = rec[f];
  }
  for (const f of INT_FIELDS) {
    const s = rec[f];
    if (s === undefined) bad(f, 'is missing');
    if (!/^\d+$/.test(s)) bad(f, `must be a non-negative integer (got ${JSON.stringify(s)})`);
    h[f] = Number(s);
  }
  return validateKvHandle(h as unknown as KvHandle);
}
