/**
 * Direct links: framing, address parsing, and ActorClient/ActorServer over a link — the transport
 * choice from the registry record, the pub/sub fallback, call ordering, and a link that breaks
 * mid-call because its actor process was killed. Real Redis (random key prefix), real processes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { RedisKeys } from '@starq/protocol';
import { ActorClient, type CallTrace } from './actor-client';
import { ActorServer } from './actor-server';
import { formatLinkAddress, isMachineLocal, parseLinkAddress } from './link-address';
import { FrameReader, LinkFrameError } from './link-frames';
import { ActorDiedError, ActorTimeoutError } from './errors';
import { createRedis, deleteKeysByPrefix } from './redis';
import { ActorRegistry } from './registry';

const prefix = `t-link-${randomBytes(4).toString('hex')}`;
const keys = new RedisKeys(prefix);

function frame(payload: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(payload.length, 0);
  return Buffer.concat([head, payload]);
}

describe('link framing and addresses', () => {
  it('reassembles frames split at any byte and several frames in one chunk', () => {
    const payloads = [Buffer.from('a'), Buffer.alloc(0), randomBytes(1000), Buffer.from('last')];
    const stream = Buffer.concat(payloads.map(frame));
    for (const step of [1, 3, 7, 4096]) {
      const r = new FrameReader();
      const got: Buffer[] = [];
      for (let i = 0; i < stream.length; i += step) got.push(...r.push(stream.subarray(i, i + step)));
      expect(got.map((b) => b.toString('hex'))).toEqual(payloads.map((b) => b.toString('hex')));
    }
  });

  it('refuses a frame larger than the limit', () => {
    const r = new FrameReader(16);
    expect(() => r.push(frame(Buffer.alloc(17)))).toThrow(LinkFrameError);
  });

  it('parses tcp and unix addresses and rejects others with invalid_link_address', () => {
    expect(parseLinkAddress('tcp://127.0.0.1:0')).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 0 });
    expect(parseLinkAddress('tcp://[::1]:7400')).toEqual({ kind: 'tcp', host: '::1', port: 7400 });
    expect(parseLinkAddress('unix:/tmp/x.sock')).toEqual({ kind: 'unix', path: '/tmp/x.sock' });
    expect(formatLinkAddress(parseLinkAddress('tcp://[::1]:7400'))).toBe('tcp://[::1]:7400');
    expect(isMachineLocal(parseLinkAddress('tcp://127.0.0.1:1'))).toBe(true);
    expect(isMachineLocal(parseLinkAddress('tcp://10.1.2.3:1'))).toBe(false);
    for (const bad of ['', 'http://x:1', 'tcp://x', 'tcp://x:99999', 'unix:relative.sock']) {
      expect(() => parseLinkAddress(bad)).toThrow(expect.objectContaining({ code: 'invalid_link_address', param: 'link' }));
    }
  });
});

describe('actor calls over direct links', () => {
  let redis: Redis;
  const servers: ActorServer[] = [];
  const registries: ActorRegistry[] = [];
  const clients: ActorClient[] = [];
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    redis = await createRedis();
  });

  afterAll(async () => {
    for (const c of clients) await c.close();
    for (const s of servers) await s.stop({ drainMs: 100 });
    for (const r of registries) await r.deregister().catch(() => undefined);
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await deleteKeysByPrefix(redis, prefix);
    redis.disconnect();
  });

  async function actor(id: string, opts: { link?: string; register?: { link?: string | null; hostname?: string } } = {}): Promise<{ server: ActorServer; order: number[] }> {
    const order: number[] = [];
    const server = new ActorServer(redis, { actorId: id, keys, link: opts.link });
    server.method('echo', (a: unknown) => a);
    server.method('seq', (a: { i: number }) => {
      order.push(a.i);
      return a.i;
    });
    server.method('serialSeq', async (a: { i: number }) => {
      await new Promise((r) => setImmediate(r));
      order.push(a.i);
      return a.i;
    }, { serial: true });
    await server.start();
    servers.push(server);
    const registry = new ActorRegistry(redis, { keys, heartbeatMs: 1000, ttlMs: 30000 });
    const reg = opts.register ?? { link: server.linkAddress };
    await registry.register({ id, type: 'host', capacity: {}, status: {}, link: reg.link, ...(reg.hostname ? { hostname: reg.hostname } : {}) });
    registries.push(registry);
    return { server, order };
  }

  function client(extra: { onLinkFallback?: (s: string) => void; onTrace?: (t: CallTrace) => void } = {}): ActorClient {
    const c = new ActorClient(redis, { keys, registry: new ActorRegistry(redis, { keys }), onLinkFallback: extra.onLinkFallback ?? (() => undefined), onTrace: extra.onTrace });
    clients.push(c);
    return c;
  }

  it('uses the link an actor advertises: results intact, large messages as one frame', async () => {
    const { server } = await actor('a-link', { link: 'tcp://127.0.0.1:0' });
    expect(server.linkAddress).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
    const c = client();
    const q = Float32Array.from({ length: 64 }, (_, i) => i / 7);
    const out = await c.call<{ q: Float32Array; s: string }>('a-link', 'echo', { q, s: 'x' });
    expect(c.transportTo('a-link')).toBe('link');
    expect(out.q).toEqual(q);
    const big = new Float32Array(600_000).map((_, i) => i); // 2.4 MB: above the pub/sub inline limit
    const back = await c.call<Float32Array>('a-link', 'echo', big);
    expect(Buffer.from(back.buffer, back.byteOffset, back.byteLength).equals(Buffer.from(big.buffer))).toBe(true);
    expect(server.stats.receivedDirect).toBe(2);
  });

  it('works over a Unix socket too', async () => {
    const sock = path.join('/tmp', `${prefix}-u.sock`);
    const { server } = await actor('a-unix', { link: `unix:${sock}` });
    expect(server.linkAddress).toBe(`unix:${sock}`);
    const c = client();
    expect(await c.call('a-unix', 'echo', [1, 2])).toEqual([1, 2]);
    expect(c.transportTo('a-unix')).toBe('link');
  });

  it('starts and answers the calls of one caller in the order made (concurrent and serial methods)', async () => {
    const { order } = await actor('a-order', { link: 'tcp://127.0.0.1:0' });
    const c = client();
    // The first calls are made while the link is still being opened: they wait for it, in order.
    const results = await Promise.all(Array.from({ length: 300 }, (_, i) => c.call<number>('a-order', i % 2 ? 'seq' : 'serialSeq', { i })));
    expect(results).toEqual(Array.from({ length: 300 }, (_, i) => i));
    expect(order.filter((i) => i % 2 === 1)).toEqual(Array.from({ length: 150 }, (_, k) => 2 * k + 1));
    expect(order.filter((i) => i % 2 === 0)).toEqual(Array.from({ length: 150 }, (_, k) => 2 * k));
    expect(c.transportTo('a-order')).toBe('link');
  });

  it('falls back to pub/sub when the actor advertises no link', async () => {
    const { server } = await actor('a-plain');
    const fallbacks: string[] = [];
    const c = client({ onLinkFallback: (s) => fallbacks.push(s) });
    expect(await c.call('a-plain', 'echo', 5)).toBe(5);
    expect(c.transportTo('a-plain')).toBe('pubsub');
    expect(server.stats.receivedDirect).toBe(0);
    expect(fallbacks).toEqual([]); // nothing advertised: nothing to report
  });

  it('falls back to pub/sub, and says why, when the advertised link cannot be used', async () => {
    const other = await actor('a-other', { link: 'tcp://127.0.0.1:0' });
    // refused: the address belongs to another actor
    await actor('a-wrong', { register: { link: other.server.linkAddress } });
    // unreachable: a machine-local address on another machine
    await actor('a-remote', { register: { link: 'tcp://127.0.0.1:9', hostname: 'some-other-machine' } });
    const fallbacks: string[] = [];
    const c = client({ onLinkFallback: (s) => fallbacks.push(s) });
    expect(await c.call('a-wrong', 'echo', 1)).toBe(1);
    expect(await c.call('a-remote', 'echo', 2)).toBe(2);
    expect(c.transportTo('a-wrong')).toBe('pubsub');
    expect(c.transportTo('a-remote')).toBe('pubsub');
    expect(fallbacks).toEqual([expect.stringMatching(/a-wrong.*refused: this is actor a-other/), expect.stringMatching(/a-remote on some-other-machine .*machine-local link/)]);
  });

  it('keeps the call semantics over a link: a slow live actor times out, a stopping one drains and refuses', async () => {
    const { server } = await actor('a-stop', { link: 'tcp://127.0.0.1:0' });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let wake!: () => void;
    const late = new Promise<void>((r) => (wake = r));
    server.method('late', () => late); // answers only after its caller gave up
    server.method('slow', async () => {
      await gate;
      return 'done';
    }, { serial: true });
    const c = client();
    expect(await c.call('a-stop', 'echo', 0)).toBe(0); // link open
    await expect(c.call('a-stop', 'late', null, { timeoutMs: 300 })).rejects.toThrow(ActorTimeoutError);
    wake(); // its late reply is a stray on the link, not an error
    const running = c.call('a-stop', 'slow', null, { timeoutMs: 30000 });
    const queued = c.call('a-stop', 'slow', null, { timeoutMs: 30000 });
    queued.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 100)); // both reached the actor: one runs, one waits in the lane
    const stopping = server.stop({ drainMs: 10000 });
    await expect(queued).rejects.toThrow(/shutting down/);
    await expect(queued).rejects.toBeInstanceOf(ActorDiedError);
    release();
    await expect(running).resolves.toBe('done'); // the running call drains over the still-open link
    await stopping;
    expect(c.transportTo('a-stop')).toBeNull(); // found dead: the next call looks it up again
  });

  it('records a trace of both sides when asked', async () => {
    await actor('a-trace', { link: 'tcp://127.0.0.1:0' });
    const traces: CallTrace[] = [];
    const c = client({ onTrace: (t) => traces.push(t) });
    await c.call('a-trace', 'echo', Float32Array.of(1, 2));
    expect(traces).toHaveLength(1);
    const t = traces[0];
    expect(t).toMatchObject({ actorId: 'a-trace', method: 'echo', transport: 'link', ok: true });
    const s = t.server!;
    for (const [a, b] of [
      [t.called, t.encoded],
      [t.encoded, t.sent],
      [s.received, s.decoded],
      [s.decoded, s.started],
      [s.started, s.finished],
      [t.replied, t.settled],
    ]) {
      expect(b).toBeGreaterThanOrEqual(a);
    }
  });

  it('fails a call in flight with ActorDiedError when the actor process is killed, long before its timeout', async () => {
    const id = `a-proc-${randomBytes(2).toString('hex')}`;
    const child = spawn(process.execPath, ['-e', `require('tsx/cjs/api').register(); require(${JSON.stringify(path.join(__dirname, 'testing/link-actor-process.ts'))}).main()`], {
      env: { ...process.env, STARQ_PREFIX: prefix, STARQ_ACTOR_ID: id },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(child);
    const ready = await new Promise<{ link: string; pid: number }>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (b: Buffer) => {
        out += b.toString();
        const m = /^ready (.*)$/m.exec(out);
        if (m) resolve(JSON.parse(m[1]));
      });
      child.once('exit', (code) => reject(new Error(`actor process exited with ${code} before it was ready`)));
    });
    const fallbacks: string[] = [];
    const c = new ActorClient(redis, { keys, registry: new ActorRegistry(redis, { keys }), onLinkFallback: (s) => fallbacks.push(s), livenessCheckMs: 0 });
    clients.push(c);
    expect(await c.call(id, 'echo', 'hi')).toBe('hi');
    expect(c.transportTo(id)).toBe('link');
    const hanging = c.call(id, 'hang', null, { timeoutMs: 120000 });
    hanging.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 50)); // the call is on the wire
    process.kill(ready.pid, 'SIGKILL');
    await expect(hanging).rejects.toThrow(ActorDiedError);
    await expect(hanging).rejects.toThrow(/direct link .* closed while the call was in flight/);
    // Its registry record is still live (60 s TTL): the next call finds the link refused, falls
    // back to pub/sub and learns there that nobody listens.
    await expect(c.call(id, 'echo', 'again', { timeoutMs: 120000 })).rejects.toThrow(ActorDiedError);
    expect(fallbacks).toEqual([expect.stringContaining(`direct link to actor ${id}`)]);
  }, 60000);
});
