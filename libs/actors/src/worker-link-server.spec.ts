/**
 * Direct links served from a worker thread (WorkerLinkServer): the worker answers its own methods,
 * everything else reaches the main thread's ActorServer through the relay, stop() drains and
 * refuses on both, and a dying worker thread fails the calls in flight at once. Real Redis, real
 * worker threads and sockets.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { MessageChannel, threadId, Worker, type MessagePort } from 'node:worker_threads';
import type { Redis } from 'ioredis';
import { RedisKeys } from '@starq/protocol';
import { ActorClient, type CallTrace } from './actor-client';
import { ActorServer } from './actor-server';
import { ActorDiedError, RemoteCallError } from './errors';
import { createRedis, deleteKeysByPrefix } from './redis';
import { ActorRegistry } from './registry';

const prefix = `t-wlink-${randomBytes(4).toString('hex')}`;
const keys = new RedisKeys(prefix);

describe('direct links served from a worker thread', () => {
  let redis: Redis;
  const workers: Worker[] = [];
  const servers: ActorServer[] = [];
  const clients: ActorClient[] = [];
  const registries: ActorRegistry[] = [];

  beforeAll(async () => {
    redis = await createRedis();
  });

  afterAll(async () => {
    for (const c of clients) await c.close();
    for (const r of registries) await r.deregister(); // stops its heartbeat before the connection closes
    for (const s of servers) await s.stop({ drainMs: 100 });
    for (const w of workers) await w.terminate();
    await deleteKeysByPrefix(redis, prefix);
    redis.disconnect();
  });

  /** An actor whose links are served by a worker thread; the main thread serves `where` too (so a relayed call is told apart) and `mainOnly`. */
  async function actor(id: string): Promise<{ server: ActorServer; worker: Worker; control: MessagePort; tells: unknown[] }> {
    const relay = new MessageChannel();
    const control = new MessageChannel();
    const server = new ActorServer(redis, { actorId: id, keys });
    const tells: unknown[] = [];
    server.method('mainOnly', (a: unknown) => ({ threadId, a }));
    server.onMessage('note', (b) => void tells.push(b));
    server.relayLinks(relay.port1);
    await server.start();
    servers.push(server);
    const entry = path.join(__dirname, 'testing/link-worker-thread.ts');
    const worker = new Worker(`require('tsx/cjs/api').register({ tsconfig: ${JSON.stringify(path.resolve(__dirname, '../../../tsconfig.json'))} }); require(${JSON.stringify(entry)}).run();`, {
      eval: true,
      workerData: { actorId: id, relay: relay.port2, control: control.port2 },
      transferList: [relay.port2, control.port2],
    });
    workers.push(worker);
    const { address } = await new Promise<{ address: string }>((resolve, reject) => {
      control.port1.once('message', resolve);
      worker.once('error', reject);
    });
    const registry = new ActorRegistry(redis, { keys, heartbeatMs: 1000, ttlMs: 30000 });
    registries.push(registry);
    await registry.register({ id, type: 'host', capacity: {}, status: {}, link: address });
    return { server, worker, control: control.port1, tells };
  }

  function client(onTrace?: (t: CallTrace) => void): ActorClient {
    const c = new ActorClient(redis, { keys, registry: new ActorRegistry(redis, { keys }), onLinkFallback: () => undefined, onTrace, livenessCheckMs: 0 });
    clients.push(c);
    return c;
  }

  it('answers its own methods in the worker and relays the rest to the main thread', async () => {
    const { server, tells } = await actor('w-basic');
    const traces: CallTrace[] = [];
    const c = client((t) => traces.push(t));
    const inWorker = await c.call<{ threadId: number }>('w-basic', 'where', null);
    expect(c.transportTo('w-basic')).toBe('link');
    expect(inWorker.threadId).not.toBe(threadId);
    const q = Float32Array.from({ length: 256 }, (_, i) => i / 3);
    const relayed = await c.call<{ threadId: number; a: { q: Float32Array } }>('w-basic', 'mainOnly', { q });
    expect(relayed.threadId).toBe(threadId);
    expect(relayed.a.q).toEqual(q);
    await expect(c.call('w-basic', 'nope', null)).rejects.toThrow(expect.objectContaining({ code: 'unknown_method' }));
    await c.handle('w-basic').send('note', { n: 1 }); // tells go through Redis, not the link
    await new Promise((r) => setTimeout(r, 100));
    expect(tells).toEqual([{ n: 1 }]);
    // the main server saw the relayed calls as link calls; the worker's call never reached it
    expect(server.stats.receivedDirect).toBe(2);
    const t = traces.find((x) => x.method === 'where')!;
    expect(t).toMatchObject({ transport: 'link', ok: true });
    expect(t.server!.finished).toBeGreaterThanOrEqual(t.server!.received);
  });

  it('stop(): a call running in the worker finishes, later calls are refused, then the links close', async () => {
    const { server, control } = await actor('w-stop');
    const c = client();
    expect(await c.call('w-stop', 'mainOnly', 1)).toMatchObject({ a: 1 }); // link open
    const running = c.call('w-stop', 'gate', null, { timeoutMs: 30000 });
    await new Promise((r) => setTimeout(r, 100)); // it runs in the worker
    const stopping = server.stop({ drainMs: 10000 });
    await new Promise((r) => setTimeout(r, 50));
    await expect(c.call('w-stop', 'where', null, { timeoutMs: 30000 })).rejects.toThrow(ActorDiedError); // actor_stopped, from the worker
    control.postMessage('open');
    await expect(running).resolves.toBe('opened');
    await stopping;
    expect(c.transportTo('w-stop')).toBeNull();
  });

  it('a worker thread that dies fails the calls in flight on its links at once', async () => {
    const { worker } = await actor('w-die');
    const c = client();
    expect(await c.call('w-die', 'mainOnly', 0)).toMatchObject({ a: 0 });
    const hanging = c.call('w-die', 'hang', null, { timeoutMs: 120000 });
    hanging.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 50));
    const t0 = Date.now();
    await worker.terminate();
    await expect(hanging).rejects.toThrow(ActorDiedError);
    expect(Date.now() - t0).toBeLessThan(10000);
  });

  it('a worker method that throws answers with its error code and param', async () => {
    await actor('w-err');
    const c = client();
    const err = await c.call('w-err', 'fail', null).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteCallError);
    expect(err).toMatchObject({ code: 'bad_thing', param: 'x' });
  });
});
