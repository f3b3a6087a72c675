/**
 * Which Redis keys (and types) BullMQ uses for starq's queues, proved on the real local Redis with
 * real BullMQ queues and starq's own client — the facts the KEDA Redis-list scaler
 * (deploy/k8s/components/keda-redis-lists) depends on. The KEDA `redis` scaler reads LLEN of one
 * list: it can see block jobs waiting (`<prefix>:bull:blocks:wait`), never a request waiting for a
 * query actor (`<prefix>:bull:requests:prioritized`, a sorted set, because request jobs carry a
 * priority).
 */
import type { Redis } from 'ioredis';
import { createRedis, createWorker } from '@starq/actors';
import { ClusterRegistry, StarqClient } from '@starq/cluster';
import { QUEUE_NAMES, RedisKeys } from '@starq/protocol';
import { deletePrefix, randomPrefix, REDIS_URL, until } from '../helpers/cluster';

describe('BullMQ keys of the starq queues (real Redis, real BullMQ)', () => {
  const prefix = randomPrefix('keda');
  const keys = new RedisKeys(prefix);
  const key = (queue: string, state: string) => `${keys.bullPrefix}:${queue}:${state}`;
  let redis: Redis;
  let client: StarqClient;
  const registries: ClusterRegistry[] = [];

  beforeAll(async () => {
    redis = await createRedis(REDIS_URL);
    client = await StarqClient.connect(REDIS_URL, { prefix });
    // Registry records so that submit() accepts requests; nothing consumes the queues until the
    // test starts its own worker.
    for (const [id, type] of [
      ['h0', 'host'],
      ['q0', 'query'],
    ] as const) {
      const r = new ClusterRegistry(redis, { keys, heartbeatMs: 200, ttlMs: 2000 });
      await r.register({ id: `${prefix}-${id}`, type, capacity: { model: 'm', freeKvBytes: 1 << 30, threads: 1, kvBytesPerToken: 16, maxPositions: 4096 } });
      registries.push(r);
    }
  });

  afterAll(async () => {
    for (const r of registries) await r.deregister().catch(() => undefined);
    await client.close();
    await deletePrefix(redis, prefix);
    redis.disconnect();
  });

  const type = (k: string) => redis.type(k);

  it('block jobs wait in the list <prefix>:bull:blocks:wait; requests wait for their blocks in a sorted set, then in <prefix>:bull:requests:prioritized', async () => {
    const submit = (n: number) =>
      client.submit({ model: 'm', mode: 'star', contextIds: Array.from({ length: 64 }, (_, i) => (i * 7 + n) % 50), queryIds: [1, 2], maxNewTokens: 4, blockSize: 16, anchorSize: 16, sampling: { temperature: 0, topK: 0, topP: 1, seed: 0 }, stopIds: [] });
    const a = await submit(1);
    const b = await submit(2);
    expect(a.blocksToEncode + b.blocksToEncode).toBe(8);

    // Phase 1 pending: 8 block jobs in a list KEDA can LLEN; both requests waiting for children.
    expect(await type(key(QUEUE_NAMES.blocks, 'wait'))).toBe('list');
    expect(await redis.llen(key(QUEUE_NAMES.blocks, 'wait'))).toBe(8);
    expect((await client.queueCounts()).blocks.waiting).toBe(8); // what the gateway's metric reports
    expect(await type(key(QUEUE_NAMES.requests, 'waiting-children'))).toBe('zset');
    expect(await redis.zcard(key(QUEUE_NAMES.requests, 'waiting-children'))).toBe(2);
    expect(await type(key(QUEUE_NAMES.requests, 'wait'))).toBe('none');

    // A host takes one block: it moves to the list `active`.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let taken = 0;
    const bull = await createRedis(REDIS_URL, { forBullmq: true });
    const worker = createWorker(QUEUE_NAMES.blocks, async () => {
      taken++;
      await gate;
      return { ok: true };
    }, { connection: bull, prefix: keys.bullPrefix, concurrency: 1 });
    try {
      await until('a block job to be taken', async () => taken === 1, 20000, 20);
      expect(await type(key(QUEUE_NAMES.blocks, 'active'))).toBe('list');
      expect(await redis.llen(key(QUEUE_NAMES.blocks, 'active'))).toBe(1);
      expect(await redis.llen(key(QUEUE_NAMES.blocks, 'wait'))).toBe(7);

      // Every block done: the requests (priority 1) wait for a query actor in a sorted set.
      release();
      await until('all block jobs to complete', async () => (await client.queueCounts()).blocks.completed === 8, 30000, 50);
      await until('both requests released', async () => (await redis.zcard(key(QUEUE_NAMES.requests, 'prioritized'))) === 2, 10000, 50);
    } finally {
      await worker.close();
      bull.disconnect();
    }
    expect(await type(key(QUEUE_NAMES.requests, 'prioritized'))).toBe('zset');
    expect(await type(key(QUEUE_NAMES.requests, 'wait'))).toBe('none'); // LLEN of it reads 0 with 2 requests waiting
    expect(await redis.llen(key(QUEUE_NAMES.requests, 'wait'))).toBe(0);
    await expect(redis.llen(key(QUEUE_NAMES.requests, 'prioritized'))).rejects.toThrow(/WRONGTYPE/);
    expect((await client.queueCounts()).requests.waiting).toBe(2); // the gateway's metric sees them
    expect(await redis.llen(key(QUEUE_NAMES.blocks, 'wait'))).toBe(0);
  });
});
