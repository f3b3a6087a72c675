/**
 * ActorServer + ActorClient over a real Redis, under a random key prefix.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { Packr } from 'msgpackr';
import { InvalidInputError, RedisKeys, decode, encode, message, type ReplyMessage } from '@starq/protocol';
import { ActorClient } from './actor-client';
import { ActorServer } from './actor-server';
import { ActorClientClosedError, ActorDiedError, ActorTimeoutError, CallAbortedError, RemoteCallError } from './errors';
import { createRedis, deleteKeysByPrefix } from './redis';
import { ActorRegistry } from './registry';

const keys = new RedisKeys(`t-rpc-${randomBytes(4).toString('hex')}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const raw = new Packr({ moreTypes: true, useRecords: false });

let redis: Redis;
let server: ActorServer;
let registry: ActorRegistry;
let client: ActorClient;
const serverErrors: string[] = [];
const released: { cacheIds: string[] }[] = [];
const lanes = { inSerial: 0, maxSerial: 0, inConc: 0, maxConc: 0, inCompute: 0, maxCompute: 0 };

async function tracked<T>(key: 'Serial' | 'Conc' | 'Compute', ms: number, value: T): Promise<T> {
  const cur = `in${key}` as const;
  const max = `max${key}` as const;
  lanes[cur]++;
  lanes[max] = Math.max(lanes[max], lanes[cur]);
  await sleep(ms);
  lanes[cur]--;
  return value;
}

/** Subscribes a probe reply channel and returns the next `n` replies published on it. */
async function probe(): Promise<{ channel: string; next: () => Promise<ReplyMessage>; close: () => Promise<void> }> {
  const sub = redis.duplicate();
  const channel = keys.replyChannel(`probe-${randomBytes(3).toString('hex')}`);
  const queue: ReplyMessage[] = [];
  const waiters: ((m: ReplyMessage) => void)[] = [];
  sub.on('messageBuffer', (_ch: Buffer, data: Buffer) => {
    const m = decode(data) as ReplyMessage;
    const w = waiters.shift();
    if (w) w(m);
    else queue.push(m);
  });
  await sub.subscribe(channel);
  return {
    channel,
    next: () => (queue.length ? Promise.resolve(queue.shift()!) : new Promise((r) => waiters.push(r))),
    close: async () => {
      await sub.quit();
    },
  };
}

beforeAll(async () => {
  redis = await createRedis();
  registry = new ActorRegistry(redis, { keys, heartbeatMs: 200, ttlMs: 1000 });
  await registry.register({ id: 'svc', type: 'host', capacity: { model: 'tiny', freeKvBytes: 1 << 20, threads: 1 }, status: {} });
  server = new ActorServer(redis, { actorId: 'svc', keys, onError: (e) => serverErrors.push(e.message) });
  server
    .method('echo', (args) => args)
    .method('negate', (args: { x: Float32Array }) => ({ y: args.x.map((v) => -v) }))
    .method('fail', () => {
      throw new InvalidInputError('bad_layer', 'layer 99 is out of range: the model has 2 layers', 'layer');
    })
    .method('crash', async () => {
      throw new TypeError('undefined is not a function');
    })
    .method('sleep', async (args: { ms: number }) => {
      await sleep(args.ms);
      return 'slept';
    })
    .method('serialStep', (args: { i: number; ms: number }) => tracked('Serial', args.ms, args.i), { serial: true })
    .method('concStep', (args: { i: number }) => tracked('Conc', 30, args.i))
    .method('computeA', () => tracked('Compute', 10, 'a'), { serial: 'compute' })
    .method('computeB', () => tracked('Compute', 10, 'b'), { serial: 'compute' })
    .method('unsendable', () => {
      const loop: Record<string, unknown> = {};
      loop.self = loop; // msgpack cannot encode cycles
      return loop;
    })
    .onMessage('release', (m) => {
      released.push(m);
    });
  await server.start();
  client = new ActorClient(redis, { keys, defaultTimeoutMs: 5000 });
});

afterAll(async () => {
  await client.close();
  await server.stop();
  await registry.deregister();
  await deleteKeysByPrefix(redis, keys.prefix);
  await redis.quit();
});

describe('actor RPC', () => {
  it('calls a method and gets its result, typed arrays intact', async () => {
    const h = client.handle('svc');
    const args = { a: 1, s: 'x', q: new Float32Array([1.5, -2]), pos: new Int32Array([7, 8]), nested: [{ n: null }] };
    const out = await h.call<typeof args>('echo', args);
    expect(out).toEqual(args);
    expect(out.q).toBeInstanceOf(Float32Array);
    expect(out.pos).toBeInstanceOf(Int32Array);
    expect(await h.call('echo')).toBeUndefined();
  });

  it('propagates a remote StarqError with code, param and status', async () => {
    const err = await client.handle('svc').call('fail', {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteCallError);
    const e = err as RemoteCallError;
    expect(e.code).toBe('bad_layer');
    expect(e.param).toBe('layer');
    expect(e.status).toBe(400);
    expect(e.remoteName).toBe('InvalidInputError');
    expect(e.message).toMatch(/layer 99 is out of range: the model has 2 layers \(remote InvalidInputError in fail on actor svc\)/);
  });

  it('maps any other thrown error to internal_error', async () => {
    const err = (await client.handle('svc').call('crash').catch((e: unknown) => e)) as RemoteCallError;
    expect(err).toBeInstanceOf(RemoteCallError);
    expect(err.code).toBe('internal_error');
    expect(err.remoteName).toBe('TypeError');
    expect(err.message).toMatch(/undefined is not a function/);
  });

  it('answers an unknown method with unknown_method, listing the methods', async () => {
    const err = (await client.handle('svc').call('nope').catch((e: unknown) => e)) as RemoteCallError;
    expect(err.code).toBe('unknown_method');
    expect(err.message).toMatch(/has no method nope; its methods: echo, negate/);
  });

  it('reports a result that cannot be encoded', async () => {
    const err = (await client.handle('svc').call('unsendable').catch((e: unknown) => e)) as RemoteCallError;
    expect(err).toBeInstanceOf(RemoteCallError);
    expect(err.code).toBe('reply_encode_failed');
    expect(await client.handle('svc').call('echo', 2)).toBe(2);
  });

  it('times out with ActorTimeoutError when the live actor is slow', async () => {
    const t0 = Date.now();
    const err = await client.handle('svc').call('sleep', { ms: 400 }, { timeoutMs: 100 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ActorTimeoutError);
    expect((err as ActorTimeoutError).code).toBe('actor_timeout');
    expect((err as Error).message).toMatch(/timed out after 100 ms: the actor is alive/);
    expect(Date.now() - t0).toBeLessThan(400);
    expect(client.pending).toBe(0);
    const stray = client.strayReplies;
    await sleep(400); // the late reply arrives and is ignored
    expect(client.strayReplies).toBe(stray + 1);
  });

  it('fails fast with ActorDiedError when nobody listens on the inbox', async () => {
    const t0 = Date.now();
    const err = await client.handle('nobody').call('echo', 1, { timeoutMs: 5000 }).catch((e: unknown) => e);
    expect(Date.now() - t0).toBeLessThan(500);
    expect(err).toBeInstanceOf(ActorDiedError);
    expect((err as ActorDiedError).code).toBe('actor_died');
    expect((err as Error).message).toMatch(/actor nobody is gone \(no process subscribes to its inbox\).*pick a live actor/);
  });

  it('turns a timeout into ActorDiedError when the actor has no live registry record', async () => {
    // subscribed but never registered (or heartbeat expired): a hung process
    const zombie = new ActorServer(redis, { actorId: 'zombie', keys });
    zombie.method('sleep', () => sleep(1000));
    await zombie.start();
    try {
      const err = await client.handle('zombie').call('sleep', {}, { timeoutMs: 100 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ActorDiedError);
      expect((err as Error).message).toMatch(/heartbeat expired/);
    } finally {
      await zombie.stop({ drainMs: 0 });
    }
  });

  it('fails a pending call as soon as the callee\'s registry record expires (no waiting for the timeout)', async () => {
    // a hung actor: subscribed, registered, then its heartbeats stop (record expires after ttl)
    const hungRegistry = new ActorRegistry(redis, { keys, heartbeatMs: 100, ttlMs: 400 });
    await hungRegistry.register({ id: 'hung', type: 'host', capacity: {}, status: {} });
    const hung = new ActorServer(redis, { actorId: 'hung', keys, onError: () => undefined }); // its late reply may find Redis closed
    hung.method('sleep', () => sleep(1500));
    await hung.start();
    const watcher = new ActorClient(redis, { keys, livenessCheckMs: 200 });
    try {
      const t0 = Date.now();
      const call = watcher.handle('hung').call('sleep', {}, { timeoutMs: 20000 }).catch((e: unknown) => e);
      await sleep(300);
      await hungRegistry.deregister(); // as if the process had frozen and its record expired
      const err = await call;
      expect(err).toBeInstanceOf(ActorDiedError);
      expect((err as Error).message).toMatch(/registry record expired while the call was pending/);
      expect(Date.now() - t0).toBeLessThan(2000);
    } finally {
      await watcher.close();
      await hung.stop({ drainMs: 0 });
    }
  });

  it('survives malformed messages and keeps serving', async () => {
    const p = await probe();
    const before = { ...server.stats };
    try {
      const inbox = keys.inbox('svc');
      await redis.publish(inbox, Buffer.from('not msgpack at all'));
      await redis.publish(inbox, raw.pack([1, 2, 3]));
      await redis.publish(inbox, raw.pack({ v: 99, kind: 'call', id: 'x1', from: p.channel, method: 'echo', args: 1, deadline: Date.now() + 1000 }));
      await redis.publish(inbox, raw.pack({ v: 1, kind: 'call', id: 'x2', from: p.channel, method: 7, deadline: Date.now() + 1000 }));
      await redis.publish(inbox, raw.pack({ v: 1, kind: 'call', id: 'x3', from: 'elsewhere', method: 'echo', deadline: Date.now() + 1000 }));
      await redis.publish(inbox, encode(message('reply', { id: 'zz', ok: true }))); // valid, but no handler
      const r1 = await p.next();
      expect(r1).toMatchObject({ id: 'x1', ok: false, error: { code: 'protocol_error', param: 'v' } });
      expect(r1.error!.message).toMatch(/unsupported protocol version v=99/);
      const r2 = await p.next();
      expect(r2).toMatchObject({ id: 'x2', ok: false, error: { code: 'protocol_error', param: 'call.method' } });
      // still serving
      expect(await client.handle('svc').call('echo', 'ok')).toBe('ok');
      expect(server.stats.malformed - before.malformed).toBe(5);
      expect(server.stats.dropped - before.dropped).toBe(1);
      expect(serverErrors.some((m) => /not valid msgpack/.test(m))).toBe(true);
      expect(serverErrors.some((m) => /reply channel elsewhere is not under/.test(m))).toBe(true);
    } finally {
      await p.close();
    }
  });

  it('does not run a call that arrives past its deadline', async () => {
    const p = await probe();
    try {
      const expired = server.stats.expired;
      await redis.publish(keys.inbox('svc'), encode(message('call', { id: 'late', from: p.channel, method: 'echo', args: 1, deadline: Date.now() - 50 })));
      expect(await p.next()).toMatchObject({ id: 'late', ok: false, error: { code: 'deadline_exceeded' } });
      expect(server.stats.expired).toBe(expired + 1);
    } finally {
      await p.close();
    }
  });

  it('runs serial methods one at a time, in arrival order', async () => {
    const h = client.handle('svc');
    const done: number[] = [];
    const delays = [30, 5, 20, 1, 10, 0, 15, 2];
    await Promise.all(delays.map((ms, i) => h.call<number>('serialStep', { i, ms }).then((v) => done.push(v))));
    expect(done).toEqual(delays.map((_, i) => i));
    expect(lanes.maxSerial).toBe(1);
  });

  it('runs plain methods concurrently, and a shared lane serially across methods', async () => {
    const h = client.handle('svc');
    await Promise.all([0, 1, 2, 3, 4].map((i) => h.call('concStep', { i })));
    expect(lanes.maxConc).toBeGreaterThan(1);
    const out = await Promise.all(['computeA', 'computeB', 'computeA', 'computeB'].map((m) => h.call(m)));
    expect(out).toEqual(['a', 'b', 'a', 'b']);
    expect(lanes.maxCompute).toBe(1);
  });

  it('delivers fire-and-forget control messages to onMessage handlers', async () => {
    const n = await client.handle('svc').send('release', { cacheIds: ['c1', 'c2'] });
    expect(n).toBe(1);
    for (let i = 0; i < 50 && released.length === 0; i++) await sleep(10);
    expect(released).toEqual([{ cacheIds: ['c1', 'c2'] }]);
  });

  it('honours an AbortSignal', async () => {
    const ac = new AbortController();
    const pending = client.handle('svc').call('sleep', { ms: 200 }, { signal: ac.signal });
    ac.abort();
    await expect(pending).rejects.toBeInstanceOf(CallAbortedError);
    await expect(client.handle('svc').call('echo', 1, { signal: ac.signal })).rejects.toBeInstanceOf(CallAbortedError);
  });

  it('close() fails pending calls with ActorClientClosedError', async () => {
    const c2 = new ActorClient(redis, { keys });
    const pending = c2
      .handle('svc')
      .call('sleep', { ms: 300 })
      .catch((e: unknown) => e);
    await sleep(20);
    await c2.close();
    expect(await pending).toBeInstanceOf(ActorClientClosedError);
    // closing while the first call is still subscribing the reply channel
    const c3 = new ActorClient(redis, { keys });
    const early = c3
      .handle('svc')
      .call('echo', 1)
      .catch((e: unknown) => e);
    await c3.close();
    expect(await early).toBeInstanceOf(ActorClientClosedError);
    await expect(c2.handle('svc').call('echo', 1)).rejects.toBeInstanceOf(ActorClientClosedError);
  });

  it('stop() finishes the running call and fails queued ones with ActorDiedError', async () => {
    const s2 = new ActorServer(redis, { actorId: 'stopper', keys });
    s2.method('work', (args: { ms: number }) => sleep(args.ms).then(() => 'done'), { serial: true });
    await s2.start();
    const h = client.handle('stopper');
    const first = h.call('work', { ms: 150 });
    const queued = h.call('work', { ms: 150 }).catch((e: unknown) => e);
    await sleep(50);
    await s2.stop();
    expect(await first).toBe('done');
    const err = await queued;
    expect(err).toBeInstanceOf(ActorDiedError);
    expect((err as Error).message).toMatch(/shutting down/);
    await expect(h.call('work', { ms: 1 })).rejects.toBeInstanceOf(ActorDiedError); // gone now
  });

  it('round-trips a 1 MB Float32Array', async () => {
    const x = new Float32Array(262_144).map((_, i) => Math.sin(i));
    const out = await client.handle('svc').call<{ y: Float32Array }>('negate', { x });
    expect(out.y).toBeInstanceOf(Float32Array);
    expect(out.y.byteOffset % 4).toBe(0);
    expect(out.y.length).toBe(x.length);
    for (let i = 0; i < x.length; i += 997) expect(out.y[i]).toBe(-x[i]);
    expect(out.y[x.length - 1]).toBe(-x[x.length - 1]);
  });

  it('matches every reply to its call: 1000 sequential calls, then 200 concurrent ones', async () => {
    // (The round trip's duration is measured by bench/rpc.ts, not here.) A client of its own: late
    // replies to earlier tests' timed-out calls arrive on the shared client's channel, not on this one.
    const own = new ActorClient(redis, { keys, defaultTimeoutMs: 5000 });
    await own.start();
    try {
      const h = own.handle('svc');
      for (let i = 0; i < 1000; i++) expect(await h.call('echo', { i })).toEqual({ i });
      const concurrent = await Promise.all(Array.from({ length: 200 }, (_, i) => h.call('echo', { i, s: 'x'.repeat(i) })));
      expect(concurrent).toEqual(Array.from({ length: 200 }, (_, i) => ({ i, s: 'x'.repeat(i) })));
      expect(own.strayReplies).toBe(0);
    } finally {
      await own.close();
    }
  });
});
