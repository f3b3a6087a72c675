/**
 * KvDirectory on Redis (127.0.0.1:6379, a random prefix): touching a handle whose block was
 * released meanwhile does not bring back a partial handle, and a partial handle already stored
 * reads as none (the block is re-encoded and its handle written whole) instead of failing the
 * request that looks it up.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { createRedis, DEFAULT_REDIS_URL, deleteKeysByPrefix } from '@starq/actors';
import { RedisKeys } from '@starq/protocol';
import { KvDirectory } from './kv-directory';

const URL_ = process.env.STARQ_TEST_REDIS_URL || DEFAULT_REDIS_URL;
const keys = new RedisKeys(`starq-test-kvdir-${randomBytes(4).toString('hex')}`);
let redis: Redis;
let dir: KvDirectory;

const block = (cacheId: string, hostId = 'host-a') => ({ cacheId, model: 'm', contextHash: 'h0', blockIndex: 0, blockSize: 64, anchorSize: 64, tokenStart: 0, tokenEnd: 64, layers: 2, bytes: 1024, hostId });

beforeAll(async () => {
  redis = await createRedis(URL_);
  dir = new KvDirectory(redis, keys);
});
afterAll(async () => {
  await deleteKeysByPrefix(redis, keys.prefix).catch(() => undefined);
  redis.disconnect();
});

it('touch renews a live handle and never recreates a removed one', async () => {
  await dir.putEncoded(block('c1'), 1000);
  await dir.touch(['c1'], 2000);
  expect((await dir.get('c1'))?.lastUsedAt).toBe(2000);
  await dir.remove(['c1'], 'host-a');
  await dir.touch(['c1'], 3000);
  expect(await redis.exists(keys.kvHandle('c1'))).toBe(0);
  expect(await dir.getMany(['c1'])).toEqual([null]);
});

it('a partial handle reads as none, and writing the block again makes it whole', async () => {
  await redis.hset(keys.kvHandle('c2'), 'lastUsedAt', '5');
  expect(await dir.get('c2')).toBeNull();
  expect(await dir.getMany(['c2', 'c3'])).toEqual([null, null]);
  await dir.putEncoded(block('c2', 'host-b'), 7000);
  expect(await dir.get('c2')).toMatchObject({ cacheId: 'c2', hostId: 'host-b', lastUsedAt: 7000 });
});

it('remove of many handles drops those of the host (and its index entries), keeps those another host holds now', async () => {
  const ids = Array.from({ length: 64 }, (_, k) => `ctx/b${k}`);
  for (const [k, id] of ids.entries()) await dir.putEncoded(block(id, k % 3 === 0 ? 'host-d' : 'host-c'));
  await dir.remove(ids, 'host-c');
  const left = await dir.getMany(ids);
  expect(left.map((h, k) => (h ? `${k}:${h.hostId}` : null)).filter((x) => x !== null)).toEqual(ids.map((_, k) => k).filter((k) => k % 3 === 0).map((k) => `${k}:host-d`));
  expect(await dir.hostBlocks('host-c')).toEqual([]);
  expect((await dir.hostBlocks('host-d')).sort()).toEqual(ids.filter((_, k) => k % 3 === 0).sort());
  await dir.remove(ids); // no host: every handle goes
  expect((await dir.getMany(ids)).every((h) => h === null)).toBe(true);
  await dir.remove([], 'host-c'); // nothing to do
});
