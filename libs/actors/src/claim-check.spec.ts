/**
 * Large RPC messages (claim check) over a real Redis, under a random key prefix: payloads far
 * above Redis's pub/sub output-buffer limit (32 MB hard by default) arrive intact, keep the
 * server's arrival order, and leave no parked keys behind.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { RedisKeys } from '@starq/protocol';
import { watchIntervals } from '@starq/testing';
import { ActorClient } from './actor-client';
import { ActorServer } from './actor-server';
import { isPayloadRef } from './claim-check';
import { closeRedis, createRedis, deleteKeysByPrefix } from './redis';
import { ActorRegistry } from './registry';

const keys = new RedisKeys(`t-claim-${randomBytes(4).toString('hex')}`);
let redis: Redis;
let registry: ActorRegistry;
let server: ActorServer;
let client: ActorClient;
let small: ActorClient;
const order: number[] = [];
const errors: string[] = [];

const intervals = watchIntervals();

beforeAll(async () => {
  redis = await createRedis();
  registry = new ActorRegistry(redis, { keys, heartbeatMs: 200, ttlMs: 2000 });
  await registry.register({ id: 'big', type: 'host', capacity: { model: 'tiny', freeKvBytes: 1 << 20, threads: 1 }, status: {} });
  server = new ActorServer(redis, { actorId: 'big', keys, onError: (e) => errors.push(e.message) });
  server
    .method('double', (args: { x: Float32Array }) => ({ y: args.x.map((v) => 2 * v) }))
    .method('note', (args: { i: number; pad?: Float32Array }) => {
      order.push(args.i);
      return args.i;
    });
  await server.start();
  client = new ActorClient(redis, { keys, registry, defaultTimeoutMs: 60000 });
  small = new ActorClient(redis, { keys, registry, defaultTimeoutMs: 60000, inlineLimitBytes: 64 });
});

afterAll(async () => {
  await client.close();
  await small.close();
  await server.stop();
  await registry.deregister();
  await deleteKeysByPrefix(redis, keys.prefix);
  await closeRedis(redis);
  await intervals.settled(); // the reply parser's buffer-pool interval after the 48 MiB replies
});

it('a 48 MiB argument and a 48 MiB result round-trip (inline pub/sub would exceed the 32 MB subscriber limit)', async () => {
  const n = 12 << 20; // 12 Mi floats = 48 MiB
  const x = new Float32Array(n);
  for (let i = 0; i < n; i += 4096) x[i] = i;
  x[n - 1] = 7;
  const r = await client.call<{ y: Float32Array }>('big', 'double', { x });
  expect(r.y).toHaveLength(n);
  expect(r.y[n - 1]).toBe(14);
  expect(r.y[4096 * 100]).toBe(2 * 4096 * 100);
  expect(await redis.keys(`${keys.prefix}:rpc-payload:*`)).toEqual([]);
  expect(errors).toEqual([]);
}, 120000);

it('parked and inline calls from one caller are handled in the order they were made', async () => {
  order.length = 0;
  const pad = new Float32Array(4096); // 16 KiB: parked under small's 64-byte limit
  const calls = Array.from({ length: 20 }, (_, i) => small.call('big', 'note', i % 3 === 0 ? { i, pad } : { i }));
  expect(await Promise.all(calls)).toEqual(Array.from({ length: 20 }, (_, i) => i));
  expect(order).toEqual(Array.from({ length: 20 }, (_, i) => i));
  expect(await redis.keys(`${keys.prefix}:rpc-payload:*`)).toEqual([]);
});

it('references are distinguishable from msgpack messages', () => {
  expect(isPayloadRef(Buffer.from([0xc1, 0x73, 0x71, 0x72, 0x65, 0x66, 0x41]))).toBe(true);
  expect(isPayloadRef(Buffer.from([0x83, 0xa4]))).toBe(false);
});
