import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { InvalidInputError, RedisKeys } from '@starq/protocol';
import { ActorIdInUseError } from './errors';
import { createRedis, deleteKeysByPrefix } from './redis';
import { ActorRegistry, type ActorRegistryOptions } from './registry';

const keys = new RedisKeys(`t-reg-${randomBytes(4).toString('hex')}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fast = { keys, heartbeatMs: 100, ttlMs: 400 };

/** The registry is generic: this test's application has three kinds of actor and its own payloads. */
type Kind = 'worker' | 'driver' | 'frontend';
const KINDS: readonly Kind[] = ['worker', 'driver', 'frontend'];
interface Capacity {
  slots: number;
}
interface Status {
  jobs: number;
  busy: boolean;
}
const IDLE: Status = { jobs: 0, busy: false };
const NONE: Capacity = { slots: 0 };
type TestRegistry = ActorRegistry<Kind, Capacity, Status>;

let redis: Redis;
const registries: TestRegistry[] = [];
function registry(opts: ActorRegistryOptions<Kind> = fast, conn?: Redis): TestRegistry {
  const r = new ActorRegistry<Kind, Capacity, Status>(conn ?? redis, { kinds: KINDS, ...opts });
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
    const rec = await host.register({ id: 'host-a', type: 'worker', capacity: { slots: 4 }, status: IDLE });
    expect(rec).toMatchObject({ id: 'host-a', type: 'worker', address: keys.inbox('host-a'), pid: process.pid, capacity: { slots: 4 }, status: { jobs: 0, busy: false } });
    const query = registry();
    await query.register({ id: 'query-a', type: 'driver', capacity: NONE, status: IDLE });

    const view = registry();
    expect(await view.get('host-a')).toEqual(rec);
    expect(await view.isAlive('host-a')).toBe(true);
    expect((await view.list()).map((r) => r.id)).toEqual(['host-a', 'query-a']);
    expect((await view.list('worker')).map((r) => r.id)).toEqual(['host-a']);
    expect(await view.list('frontend')).toEqual([]);

    await host.deregister();
    expect(await view.isAlive('host-a')).toBe(false); // at once, not after ttl
    expect(await view.get('host-a')).toBeNull();
    expect((await view.list()).map((r) => r.id)).toEqual(['query-a']);
    await query.deregister();
  });

  it('refuses an id held by a live actor', async () => {
    const a = registry();
    await a.register({ id: 'dup', type: 'worker', capacity: NONE, status: IDLE });
    const b = registry();
    const err = await b.register({ id: 'dup', type: 'worker', capacity: NONE, status: IDLE }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ActorIdInUseError);
    expect((err as Error).message).toMatch(/dup is held by a live actor \(pid \d+ on .+\)/);
    await a.deregister();
    await b.register({ id: 'dup', type: 'worker', capacity: NONE, status: IDLE }); // free again
    await b.deregister();
  });

  it('publishes status updates', async () => {
    const a = registry();
    await a.register({ id: 'busy-host', type: 'worker', capacity: NONE, status: IDLE });
    await a.update({ jobs: 3, busy: true });
    expect((await a.get('busy-host'))!.status).toEqual({ jobs: 3, busy: true });
    await a.update({ busy: false });
    expect((await a.get('busy-host'))!.status).toEqual({ jobs: 3, busy: false });
    await a.deregister();
  });

  it('heartbeats keep the record alive past the ttl', async () => {
    const a = registry();
    const rec = await a.register({ id: 'steady', type: 'worker', capacity: NONE, status: IDLE });
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
    const crashing = registry({ ...fast, onHeartbeatError: () => undefined }, conn);
    await crashing.register({ id: 'crashy', type: 'worker', capacity: NONE, status: IDLE });
    const view = registry();
    expect(await view.isAlive('crashy')).toBe(true);
    conn.disconnect(); // the process "dies": no more heartbeats, no deregister
    await sleep(fast.ttlMs + 300);
    expect(await view.isAlive('crashy')).toBe(false);
    expect(await view.list()).toEqual([]);
    expect(await redis.sismember(keys.actors(), 'crashy')).toBe(0);
    // its id can be taken by a new incarnation
    const again = registry();
    await again.register({ id: 'crashy', type: 'worker', capacity: NONE, status: IDLE });
    await again.deregister();
  });

  it('validates its options and input', async () => {
    expect(() => new ActorRegistry(redis, { keys, heartbeatMs: 1000, ttlMs: 1000 })).toThrow(InvalidInputError);
    expect(() => new ActorRegistry(redis, { keys, heartbeatMs: 0 })).toThrow(/heartbeatMs must be > 0/);
    const a = registry();
    await expect(a.update({ busy: true })).rejects.toThrow(/register the actor first/);
    await expect(a.register({ id: 'x', type: 'robot' as never, capacity: NONE, status: IDLE })).rejects.toThrow(/actor type must be one of worker, driver, frontend/);
  });

  it('skips records of kinds it does not accept', async () => {
    const a = registry();
    await a.register({ id: 'w1', type: 'worker', capacity: NONE, status: IDLE });
    const other = new ActorRegistry<'robot', Capacity, Status>(redis, { ...fast, kinds: ['robot'] });
    expect(await other.get('w1')).toBeNull();
    expect(await other.list()).toEqual([]);
    const any = new ActorRegistry(redis, fast);
    expect((await any.list()).map((r) => r.id)).toEqual(['w1']);
    await a.deregister();
  });
});
