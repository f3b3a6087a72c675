/**
 * ClusterBlockLocator on Redis (127.0.0.1:6379, a random prefix; two registered host records):
 * a request with a private key (`cache: false`) uses its private copy of a block first, then the
 * shared one, and re-encodes a missing or lost block under its private id — the shared handle is
 * never written; a request without one uses and re-encodes the shared ids. The hosts are
 * recorders of the `encodeBlock` calls the locator makes (no model: the locator's choices are
 * what is tested; test/private-blocks.e2e.ts runs the same on real host processes).
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { blockCacheId, planMode, privateBlockKey, type EncodeBlockRequest, type Host } from '@starq/attention';
import { createRedis, DEFAULT_REDIS_URL, deleteKeysByPrefix } from '@starq/actors';
import { RedisKeys } from '@starq/protocol';
import { ClusterBlockLocator, type ClusterContext } from './cluster-block-locator';
import { KvDirectory } from './kv-directory';
import { ClusterRegistry } from './registry';

const URL_ = process.env.STARQ_TEST_REDIS_URL || DEFAULT_REDIS_URL;
const keys = new RedisKeys(`starq-test-locator-${randomBytes(4).toString('hex')}`);
let redis: Redis;
let dir: KvDirectory;
const registries: ClusterRegistry[] = [];
const encoded: { hostId: string; cacheId: string }[] = [];

const recordingHost = (id: string): Host =>
  ({
    id,
    encodeBlock: async (req: EncodeBlockRequest) => {
      encoded.push({ hostId: id, cacheId: req.cacheId });
      return { cacheId: req.cacheId, hostId: id, tokens: req.ids.length, bytes: 100 };
    },
  }) as unknown as Host;

const plan = planMode('star', 8, { blockSize: 4 }); // 2 blocks
const KEY = 'ctx:test';
const ctx = (privateKey?: string): ClusterContext => ({ mode: 'star', plan, contextKey: KEY, privateKey, contextIds: [1, 2, 3, 4, 5, 6, 7, 8], model: 'm', contextHash: 'h' });
const put = (cacheId: string, hostId: string, blockIndex: number) => dir.putEncoded({ cacheId, model: 'm', contextHash: 'h', blockIndex, blockSize: 4, anchorSize: 4, tokenStart: 4 * blockIndex, tokenEnd: 4 * blockIndex + 4, layers: 2, bytes: 100, hostId });
const ids = (r: { placement: { host: Host; cacheIds: string[] }[] }) => r.placement.flatMap((p) => p.cacheIds.map((c) => `${p.host.id}:${c}`));

beforeAll(async () => {
  redis = await createRedis(URL_);
  dir = new KvDirectory(redis, keys);
  for (const id of ['host-a', 'host-b']) {
    const r = new ClusterRegistry(redis, { keys, heartbeatMs: 1000, ttlMs: 60000 });
    await r.register({ id, type: 'host', capacity: { model: 'm', freeKvBytes: 1 << 20, threads: 1 } });
    registries.push(r);
  }
});
afterAll(async () => {
  for (const r of registries) await r.deregister().catch(() => undefined);
  await deleteKeysByPrefix(redis, keys.prefix).catch(() => undefined);
  redis.disconnect();
});
beforeEach(async () => {
  encoded.length = 0;
  await deleteKeysByPrefix(redis, `${keys.prefix}:kv`).catch(() => undefined);
  await deleteKeysByPrefix(redis, `${keys.prefix}:host-kv`).catch(() => undefined);
});

const locator = () => new ClusterBlockLocator({ directory: dir, registry: new ClusterRegistry(redis, { keys }), host: recordingHost, numLayers: 2 });

it('a private key prefers the private copy, then the shared one; no re-encode when both are held', async () => {
  const priv = privateBlockKey(KEY, 'req-1');
  await put(blockCacheId(KEY, 0), 'host-a', 0);
  await put(blockCacheId(KEY, 1), 'host-a', 1);
  await put(blockCacheId(priv, 1), 'host-b', 1);
  const r = await locator().locate(ctx(priv), new Set());
  expect(ids(r)).toEqual([`host-a:${blockCacheId(KEY, 0)}`, `host-b:${blockCacheId(priv, 1)}`]);
  expect(r.reencoded).toEqual([]);
  expect(encoded).toEqual([]);
  // Without a private key, only the shared ids count.
  expect(ids(await locator().locate(ctx(), new Set()))).toEqual([`host-a:${blockCacheId(KEY, 0)}`, `host-a:${blockCacheId(KEY, 1)}`]);
});

it('a private key re-encodes missing and lost blocks under the private id and never writes a shared handle', async () => {
  const priv = privateBlockKey(KEY, 'req-2');
  await put(blockCacheId(KEY, 0), 'host-a', 0); // block 1: nowhere
  const r = await locator().locate(ctx(priv), new Set(['host-a'])); // host-a lost for this request
  expect(r.reencoded).toEqual([0, 1]);
  expect(r.fromHost).toBe('host-a');
  expect(encoded).toEqual([
    { hostId: 'host-b', cacheId: blockCacheId(priv, 0) },
    { hostId: 'host-b', cacheId: blockCacheId(priv, 1) },
  ]);
  expect(ids(r)).toEqual([`host-b:${blockCacheId(priv, 0)}`, `host-b:${blockCacheId(priv, 1)}`]);
  expect((await dir.get(blockCacheId(KEY, 0)))?.hostId).toBe('host-a'); // the shared handle is as it was
  expect(await dir.get(blockCacheId(KEY, 1))).toBeNull();
  expect((await dir.getMany([blockCacheId(priv, 0), blockCacheId(priv, 1)])).map((h) => h?.hostId)).toEqual(['host-b', 'host-b']);
});

it('without a private key, a missing block is re-encoded under the shared id', async () => {
  const r = await locator().locate(ctx(), new Set());
  expect(r.reencoded).toEqual([0, 1]);
  expect(encoded.map((e) => e.cacheId)).toEqual([blockCacheId(KEY, 0), blockCacheId(KEY, 1)]);
  expect((await dir.getMany([blockCacheId(KEY, 0), blockCacheId(KEY, 1)])).every((h) => h !== null)).toBe(true);
});
