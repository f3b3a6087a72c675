import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { RedisKeys } from './keys';
import { kvHandleFromHash, kvHandleToHash, validateKvHandle, type KvHandle } from './kv-handle';
import { ProtocolError } from './validate';

const handle: KvHandle = {
  cacheId: 'ctx:abc:star:b8:a4:ff/b1',
  model: 'tiny-llama',
  contextHash: 'ff00ff',
  blockIndex: 1,
  blockSize: 8,
  anchorSize: 4,
  tokenStart: 8,
  tokenEnd: 16,
  layers: 2,
  bytes: 8 * 2 * 2 * 4 * 16,
  hostId: 'host-a',
  createdAt: 1_700_000_000_000,
  lastUsedAt: 1_700_000_000_500,
};

describe('KV handle', () => {
  it('converts to and from a Redis hash record', () => {
    const rec = kvHandleToHash(handle);
    for (const v of Object.values(rec)) expect(typeof v).toBe('string');
    expect(kvHandleFromHash(rec)).toEqual(handle);
    expect(kvHandleFromHash({})).toBeNull();
  });

  it('rejects missing and invalid fields, naming them', () => {
    const rec = kvHandleToHash(handle);
    const { layers: _l, ...noLayers } = rec;
    expect(() => kvHandleFromHash(noLayers)).toThrow(/field layers is missing/);
    expect(() => kvHandleFromHash({ ...rec, bytes: '12x' })).toThrow(ProtocolError);
    expect(() => kvHandleFromHash({ ...rec, tokenEnd: '2' })).toThrow(/tokenEnd \(2\) must be ≥ tokenStart \(8\)/);
    expect(() => validateKvHandle({ ...handle, hostId: '' })).toThrow(/hostId/);
    expect(() => kvHandleToHash({ ...handle, bytes: 1.5 })).toThrow(/bytes must be a non-negative integer/);
  });

  describe('in Redis', () => {
    const keys = new RedisKeys(`t-kv-${randomBytes(4).toString('hex')}`);
    let redis: Redis;
    beforeAll(async () => {
      redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { lazyConnect: true });
      await redis.connect();
    });
    afterAll(async () => {
      const found = await redis.keys(`${keys.prefix}:*`);
      if (found.length) await redis.del(...found);
      await redis.quit();
    });

    it('round-trips through HSET / HGETALL', async () => {
      const key = keys.kvHandle(handle.cacheId);
      await redis.hset(key, kvHandleToHash(handle));
      expect(kvHandleFromHash(await redis.hgetall(key))).toEqual(handle);
      expect(kvHandleFromHash(await redis.hgetall(keys.kvHandle('missing')))).toBeNull();
    });
  });
});
