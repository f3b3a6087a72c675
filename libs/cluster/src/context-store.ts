/**
 * A context's token ids live once in Redis (`keys.contextIds(hash)`, raw little-endian Int32Array)
 * for the lifetime of its requests; jobs name them by hash. The client stores them, hosts and query
 * actors fetch them: a host's block job reads only its own segments (anchor ++ block, a + b ids)
 * with GETRANGE, so encoding a context of K blocks reads O(N + K·a) ids from Redis, not O(K·N).
 */
import type { Redis } from 'ioredis';
import type { TokenRange } from '@starq/attention';
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

/** The stored context has another length than the job that names it says. */
export class ContextLengthMismatchError extends Error {
  constructor(
    readonly hash: string,
    readonly stored: number,
    readonly expected: number,
  ) {
    super(`context ${hash} has ${stored} tokens, the job says ${expected}`);
    this.name = 'ContextLengthMismatchError';
  }
}

/**
 * The ids of `segments` (half-open token ranges within [0, contextLength)) of a stored context of
 * `contextLength` tokens, concatenated in order (Σ end − start), read with one STRLEN and one
 * GETRANGE per range in a single round trip. null when the context is no longer in Redis;
 * `ContextLengthMismatchError` when the stored context has another length; `RangeError` for a
 * range outside [0, contextLength).
 */
export async function fetchContextSegments(redis: Redis, keys: RedisKeys, hash: string, segments: readonly TokenRange[], contextLength: number): Promise<Int32Array | null> {
  const outside = segments.find((s) => s.start < 0 || s.end > contextLength);
  if (outside) throw new RangeError(`context ${hash}: range [${outside.start}, ${outside.end}) is outside its ${contextLength} tokens`);
  const key = keys.contextIds(hash);
  const p = redis.pipeline().strlen(key);
  for (const s of segments) if (s.end > s.start) p.getrangeBuffer(key, s.start * 4, s.end * 4 - 1);
  const res = await p.exec();
  if (!res) throw new Error('Redis pipeline returned nothing');
  const failed = res.find(([err]) => err);
  if (failed) throw failed[0];
  const bytes = res[0][1] as number;
  if (bytes === 0) return null;
  if (bytes !== contextLength * 4) throw new ContextLengthMismatchError(hash, bytes / 4, contextLength);
  const total = segments.reduce((n, s) => n + Math.max(0, s.end - s.start), 0);
  const ids = new Int32Array(total); // (Σ end − start)
  let o = 0;
  let r = 1;
  for (const s of segments) {
    if (s.end <= s.start) continue;
    const buf = res[r++][1] as Buffer;
    ids.set(new Int32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength)), o);
    o += s.end - s.start;
  }
  return ids;
}
