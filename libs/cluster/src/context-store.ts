/**
 * A context's token ids live once in Redis (`keys.contextIds(hash)`, raw little-endian Int32Array)
 * for the lifetime of its requests; jobs name them by hash. The client stores them, hosts and query
 * actors fetch them.
 */
import type { Redis } from 'ioredis';
import type { RedisKeys } from '@starq/protocol';

/** Stores `ids` under `hash` for `ttlSeconds`. */
export async function storeContextIds(redis: Redis, keys: RedisKeys, hash: string, ids: ArrayLike<number>, ttlSeconds: number): Promise<void> {
  await redis.set(keys.contextIds(hash), Buffer.from(Int32Array.from(ids).buffer), 'EX', ttlSeconds);
}

/** The context's ids (N), or null when they are no longer in Redis (expired or never stored). */
export async function fetchContextIds(redis: Redis, keys: RedisKeys, hash: string): Promise<Int32Array | null> {
  const buf = await redis.getBuffer(keys.contextIds(hash));
  if (!buf) return null;
  return new Int32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength)); // (N)
}
