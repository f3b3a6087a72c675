import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { InvalidInputError, RedisKeys } from '@starq/protocol';
import { ActorIdInUseError } from './errors';
import { createRedis, deleteKeysByPrefix } from './redis';
import { ActorRegistry } from './registry';

const keys = new RedisKeys(`t-reg-${randomBytes(4).toString('hex')}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fast = { keys, heartbeatMs: 100, ttlMs: 400 };

let redis: Redis;
const registries: ActorRegistry[] = [];
function registry(opts = fast, conn?: Redis): ActorRegistry {
  const r = new ActorRegistry(conn ?? redis, opts);
  registries.push(r);
  return r;
}

beforeAll(async () => {
  redis = await createRedis();
});
afterAll(async () => {
  for (const r of registries) await r.deregister().catch(() => undefined);
  await deleteKeysByPrefix(redis, keys.prefix);
  await redis.quit();
});

describe('ActorRegistry', () => {
  it('registers, gets, lists by type and deregisters', async () => {
    const host = registry();
    const rec = await host.register({ id: 'host-a', type: 'host', capacity: { model: 'tiny', freeKvBytes: 1 << 30, threads: 4 } });
    expect(rec).toMatchObject({ id: 'host-a', type: 'host', address: keys.inbox('host-a'), pid: process.pid, status: { blocks: 0, kvBytes: 0, busy: false } });
    const query = registry();
    await query.register({ id: 'query-a', type: 'query' });

    const view = registry();
    expect(await view.get('host-a')).toEqual(rec);
    expect(await view.isAlive('host-a')).toBe(true);
    expect((await view.list()).map((r) => r.id)).toEqual(['host-a', 'query-a']);
    expect((await view.list('host')).map((r) => r.id)).toEqual(['host-a']);
    expect(await view.list('gateway')).toEqual([]);

    await host.deregister();
    expect(await view.isAlive('host-a')).toBe(false); // at once, not after ttl
    expect(await view.get('host-a')).toBeNull();
    expect((await view.list()).map((r) => r.id)).toEqual(['query-a']);
    await query.deregister();
  });

  it('refuses an id held by a live actor', async () => {
    const a = registry();
    await a.register({ id: 'dup', type: 'host' });
    const b = registry();
    const err = await b.register({ id: 'dup', type: 'host' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ActorIdInUseError);
    expect((err as Error).message).toMatch(/dup is held by a live actor \(pid \d+ on .+\)/);
    await a.deregister();
    await b.register({ id: 'dup', type: 'host' }); // free again
    await b.deregister();
  });

  it('publishes status updates', async () => {
    const a = registry();
    await a.register({ id: 'busy-host', type: 'host' });
    await a.update({ blocks: 3, kvBytes: 4096, busy: true });
    expect((await a.get('busy-host'))!.status).toEqual({ blocks: 3, kvBytes: 4096, busy: true });
    await a.update({ busy: false });
    expect((await a.get('busy-host'))!.status).toEqual({ blocks: 3, kvBytes: 4096, busy: false });
    await a.deregister();
  });

  it('heartbeats keep the record alive past the ttl', async () => {
    const a = registry();
    const rec = await a.register({ id: 'steady', type: 'host' });
    await sleep(3 * fast.ttlMs);
    const now = await a.get('steady');
    expect(now).not.toBeNull();
    expect(now!.heartbeatAt).toBeGreaterThan(rec.heartbeatAt);
    expect(now!.incarnation).toBe(rec.incarnation);
    const ttl = await redis.pttl(keys.actor('steady'));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(fast.ttlMs);
    await a.deregister();
  });

  it('a crashed actor expires after the ttl and is pruned from the set', async () => {
    const conn = await createRedis();
    const crashing = registry({ ...fast, onHeartbeatError: () => undefined } as typeof fast, conn);
    await crashing.register({ id: 'crashy', type: 'host' });
    const view = registry();
    expect(await view.isAlive('crashy')).toBe(true);
    conn.disconnect(); // the process "dies": no more heartbeats, no deregister
    await sleep(fast.ttlMs + 300);
    expect(await view.isAlive('crashy')).toBe(false);
    expect(await view.list()).toEqual([]);
    expect(await redis.sismember(keys.actors(), 'crashy')).toBe(0);
    // its id can be taken by a new incarnation
    const again = registry();
    await again.register({ id: 'crashy', type: 'host' });
    await again.deregister();
  });

  it('validates its options and input', async () => {
    expect(() => new ActorRegistry(redis, { keys, heartbeatMs: 1000, ttlMs: 1000 })).toThrow(InvalidInputError);
    expect(() => new ActorRegistry(redis, { keys, heartbeatMs: 0 })).toThrow(/heartbeatMs must be > 0/);
    const a = registry();
    await expect(a.update({ busy: true })).rejects.toThrow(/register the actor first/);
    await expect(a.register({ id: 'x', type: 'worker' as never })).rejects.toThrow(/actor type must be one of host, query, gateway/);
  });
});
