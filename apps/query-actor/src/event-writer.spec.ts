import { randomBytes } from 'node:crypto';
import { createRedis, deleteKeysByPrefix, DEFAULT_REDIS_URL } from '@starq/actors';
import type { Redis } from 'ioredis';
import { EventWriter } from './event-writer';

const URL_ = process.env.STARQ_TEST_REDIS_URL || DEFAULT_REDIS_URL;

describe('EventWriter', () => {
  let redis: Redis;
  const prefix = `test-events-${randomBytes(4).toString('hex')}`;
  beforeAll(async () => {
    redis = await createRedis(URL_);
  });
  afterAll(async () => {
    await deleteKeysByPrefix(redis, prefix);
    await redis.quit();
  });

  const read = async (key: string) => ((await redis.xrange(key, '-', '+')) as [string, string[]][]).map(([, f]) => JSON.parse(f[1]));

  it('writes every event of every stream in order, many per pipeline', async () => {
    const w = new EventWriter(redis);
    const a = `${prefix}:a`;
    const b = `${prefix}:b`;
    const writes: Promise<void>[] = [];
    for (let step = 0; step < 50; step++) {
      // one "step": a token for each of two requests, written without waiting
      writes.push(w.write(a, { type: 'token', index: step }), w.write(b, { type: 'token', index: step }));
      if (step % 7 === 0) await new Promise((r) => setImmediate(r));
    }
    writes.push(w.write(a, { type: 'done' }));
    await Promise.all(writes);
    expect(await read(a)).toEqual([...Array.from({ length: 50 }, (_, i) => ({ type: 'token', index: i })), { type: 'done' }]);
    expect(await read(b)).toEqual(Array.from({ length: 50 }, (_, i) => ({ type: 'token', index: i })));
    expect(w.events).toBe(101);
    expect(w.pipelines).toBeLessThan(w.events / 2);
  });

  it("rejects only the event Redis refused, and keeps writing the others", async () => {
    const w = new EventWriter(redis);
    const notStream = `${prefix}:string`;
    await redis.set(notStream, 'x');
    const ok = `${prefix}:ok`;
    const r = await Promise.allSettled([w.write(ok, { i: 0 }), w.write(notStream, { i: 1 }), w.write(ok, { i: 2 })]);
    expect(r.map((x) => x.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(String((r[1] as PromiseRejectedResult).reason)).toMatch(/WRONGTYPE/);
    expect(await read(ok)).toEqual([{ i: 0 }, { i: 2 }]);
  });

  it('flushed() waits for every queued event', async () => {
    const w = new EventWriter(redis);
    const k = `${prefix}:f`;
    for (let i = 0; i < 10; i++) void w.write(k, { i });
    await w.flushed();
    expect((await read(k)).length).toBe(10);
  });
});
