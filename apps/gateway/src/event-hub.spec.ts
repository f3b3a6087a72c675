/**
 * EventHub against the real Redis at STARQ_TEST_REDIS_URL / 127.0.0.1:6379 (random key prefix,
 * deleted afterwards): many subscribers joining while events are written and while reads are
 * under way each see every event of their stream, in order, exactly once.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { createRedis, deleteKeysByPrefix } from '@starq/actors';
import { EventHub } from './event-hub';

const URL = process.env.STARQ_TEST_REDIS_URL || 'redis://127.0.0.1:6379';
const prefix = `starq-test-hub-${randomBytes(5).toString('hex')}`;
const key = (id: string) => `${prefix}:events:${id}`;
let redis: Redis;
let hub: EventHub;

beforeAll(async () => {
  redis = await createRedis(URL, { connectionName: 'starq-hub-spec' });
  hub = new EventHub(redis, key);
  await hub.start();
});

afterAll(async () => {
  await hub.close();
  await deleteKeysByPrefix(redis, prefix);
  redis.disconnect();
});

const token = (index: number) => JSON.stringify({ type: 'token', index, id: index * 7 });

it('late and concurrent subscribers get whole streams, in order, once', async () => {
  const streams = ['a', 'b', 'c', 'd'];
  const N = 60;
  const got = new Map<string, number[]>();
  const subs: (() => void)[] = [];
  const subscribe = (s: string, tag: string) => {
    const list: number[] = [];
    got.set(`${s}/${tag}`, list);
    subs.push(hub.subscribe(s, (e) => e.type === 'token' && list.push(e.index)));
  };
  for (const s of streams) subscribe(s, 'early');
  for (let i = 0; i < N; i++) {
    await Promise.all(streams.map((s) => redis.xadd(key(s), '*', 'e', token(i))));
    if (i % 10 === 5) for (const s of streams) subscribe(s, `late${i}`); // joins mid-stream, from the start
    if (i % 7 === 0) await new Promise((r) => setTimeout(r, 2));
  }
  const want = Array.from({ length: N }, (_, i) => i);
  const deadline = Date.now() + 10000;
  while ([...got.values()].some((l) => l.length < N) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  for (const [name, list] of got) expect({ name, list }).toEqual({ name, list: want });
  for (const u of subs) u();
  expect(hub.size).toBe(0);
});

it('wakes a blocked read for a new stream at once', async () => {
  await redis.xadd(key('e'), '*', 'e', token(0));
  const t0 = Date.now();
  const seen = await new Promise<number>((resolve) => {
    const off = hub.subscribe('e', (e) => {
      if (e.type === 'token') {
        off();
        resolve(Date.now() - t0);
      }
    });
  });
  expect(seen).toBeLessThan(500); // the read blocks for 2 s; the new subscription must not wait for it
});
