/**
 * KV-cache handles in Redis (docs/DESIGN.md §8.4): which host holds which block. Hosts write them after
 * encoding; clients read them to skip phase 1 for an already-encoded context; query actors read
 * them to find a request's blocks. A handle whose host is no longer alive is stale.
 */
import type { Redis } from 'ioredis';
import { kvHandleFromHash, kvHandleToHash, ProtocolError, type KvHandle, type RedisKeys } from '@starq/protocol';

// KEYS: the handle; ARGV: lastUsedAt, TTL seconds. Only an existing handle is touched.
const TOUCH = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'lastUsedAt', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1`;

/**
 * A stored handle, or null when there is none — or only an unreadable one (e.g. the remains of a
 * handle written by an older version): the block is then re-encoded and its handle written anew.
 */
function readHandle(hash: Record<string, string>): KvHandle | null {
  try {
    return kvHandleFromHash(hash);
  } catch (e) {
    if (e instanceof ProtocolError) return null;
    throw e;
  }
}

export class KvDirectory {
  constructor(private readonly redis: Redis, private readonly keys: RedisKeys, private readonly ttlSeconds = 24 * 3600) {}

  async put(h: KvHandle): Promise<void> {
    await this.redis
      .multi()
      .hset(this.keys.kvHandle(h.cacheId), kvHandleToHash(h))
      .expire(this.keys.kvHandle(h.cacheId), this.ttlSeconds)
      .sadd(this.keys.hostKvIndex(h.hostId), h.cacheId)
      .exec();
  }

  /**
   * Records that `block.hostId` now holds an encoded block (created and last used `now`): what a
   * host writes after a phase-1 block job and a query actor after re-encoding a lost block.
   */
  async putEncoded(block: Omit<KvHandle, 'createdAt' | 'lastUsedAt'>, now = Date.now()): Promise<KvHandle> {
    const h: KvHandle = { ...block, createdAt: now, lastUsedAt: now };
    await this.put(h);
    return h;
  }

  async get(cacheId: string): Promise<KvHandle | null> {
    return readHandle(await this.redis.hgetall(this.keys.kvHandle(cacheId)));
  }

  /**
   * Handles of many blocks (null = none). A read that fails counts as none, unless `strict`:
   * then it throws (callers that act on absence, like a host freeing blocks, must not mistake an
   * outage for it).
   */
  async getMany(cacheIds: string[], opts: { strict?: boolean } = {}): Promise<(KvHandle | null)[]> {
    if (cacheIds.length === 0) return [];
    const p = this.redis.pipeline();
    for (const id of cacheIds) p.hgetall(this.keys.kvHandle(id));
    const res = await p.exec();
    if (opts.strict && (!res || res.some(([err]) => err))) throw res?.find(([err]) => err)?.[0] ?? new Error('Redis pipeline returned nothing');
    return (res ?? []).map(([err, rec]) => (err ? null : readHandle(rec as Record<string, string>)));
  }

  /**
   * Marks handles used `now` (and renews their TTL). A handle removed meanwhile (its block
   * released) stays removed: touching never creates a partial handle.
   */
  async touch(cacheIds: string[], now = Date.now()): Promise<void> {
    if (cacheIds.length === 0) return;
    const p = this.redis.pipeline();
    for (const id of cacheIds) p.eval(TOUCH, 1, this.keys.kvHandle(id), String(now), String(this.ttlSeconds));
    await p.exec();
  }

  /**
   * Remove handles — only those still pointing at `hostId` when given (a newer copy elsewhere
   * stays). Two round trips whatever the number of handles (one read, one pipeline of deletes).
   */
  async remove(cacheIds: string[], hostId?: string): Promise<void> {
    if (cacheIds.length === 0) return;
    const current = hostId ? await this.getMany(cacheIds, { strict: true }) : [];
    const p = this.redis.pipeline();
    cacheIds.forEach((id, i) => {
      if (hostId) {
        const h = current[i];
        if (h && h.hostId !== hostId) return;
        p.srem(this.keys.hostKvIndex(hostId), id);
      }
      p.del(this.keys.kvHandle(id));
    });
    const res = await p.exec();
    const failed = res?.find(([err]) => err);
    if (failed) throw failed[0];
  }

  /** Cache ids a host has registered. */
  hostBlocks(hostId: string): Promise<string[]> {
    return this.redis.smembers(this.keys.hostKvIndex(hostId));
  }

  async dropHost(hostId: string): Promise<void> {
    const ids = await this.hostBlocks(hostId);
    await this.remove(ids, hostId);
    await this.redis.del(this.keys.hostKvIndex(hostId));
  }
}
