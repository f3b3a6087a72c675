import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { InvalidInputError } from '@starq/protocol';
import { RedisUnavailableError } from './errors';
import { DEFAULT_REDIS_URL, createRedis, deleteKeysByPrefix, parseRedisUrl, redactRedisUrl } from './redis';

const URL_ = process.env.STARQ_TEST_REDIS_URL || DEFAULT_REDIS_URL;

describe('parseRedisUrl', () => {
  it('parses host, port, db, credentials and TLS', () => {
    expect(parseRedisUrl('redis://127.0.0.1:6379')).toEqual({ host: '127.0.0.1', port: 6379, db: 0, tls: false });
    expect(parseRedisUrl('redis://cache')).toEqual({ host: 'cache', port: 6379, db: 0, tls: false });
    expect(parseRedisUrl('rediss://u:p%40ss@h.example:6380/3')).toEqual({ host: 'h.example', port: 6380, db: 3, username: 'u', password: 'p@ss', tls: true });
    expect(parseRedisUrl('redis://:secret@[::1]:7000/1')).toEqual({ host: '::1', port: 7000, db: 1, password: 'secret', tls: false });
  });

  it('rejects bad URLs with invalid_redis_url', () => {
    for (const bad of ['localhost:6379', 'http://h:1', 'redis://h/abc']) {
      expect(() => parseRedisUrl(bad)).toThrow(InvalidInputError);
    }
    expect(() => parseRedisUrl('http://x:pw@h')).toThrow(/scheme must be redis/);
  });

  it('redacts passwords', () => {
    expect(redactRedisUrl('redis://u:secret@h:1/2')).toBe('redis://u:***@h:1/2');
  });
});

describe('createRedis', () => {
  it('connects and runs commands', async () => {
    const r = await createRedis(URL_);
    try {
      expect(await r.ping()).toBe('PONG');
      expect(r.options.maxRetriesPerRequest).toBe(3);
    } finally {
      await r.quit();
    }
    const b = await createRedis(URL_, { forBullmq: true });
    expect(b.options.maxRetriesPerRequest).toBeNull();
    await b.quit();
  });

  it('fails fast with RedisUnavailableError naming the URL and how to start Redis', async () => {
    const t0 = Date.now();
    const err = await createRedis('redis://:pw@127.0.0.1:1', { connectTimeoutMs: 1000 }).catch((e: unknown) => e);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(err).toBeInstanceOf(RedisUnavailableError);
    const e = err as RedisUnavailableError;
    expect(e.code).toBe('redis_unavailable');
    expect(e.message).toContain('redis://:***@127.0.0.1:1');
    expect(e.message).not.toContain(':pw@');
    expect(e.message).toMatch(/ECONNREFUSED/);
    expect(e.message).toMatch(/redis-server/);
    expect(e.message).toMatch(/point the Redis URL at a running server/);
    expect(e.param).toBe('redis');
  });

  it('names where the URL came from, so the user knows what to change', async () => {
    const err = await createRedis('redis://127.0.0.1:1', { connectTimeoutMs: 1000, urlSource: 'STARQ_REDIS_URL' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RedisUnavailableError);
    expect((err as RedisUnavailableError).message).toMatch(/point STARQ_REDIS_URL at a running server/);
    expect((err as RedisUnavailableError).param).toBe('STARQ_REDIS_URL');
  });

  it('times out when the server accepts but never answers', async () => {
    const sockets = new Set<Socket>();
    const server = createServer((s) => sockets.add(s)); // accepts, stays silent
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const t0 = Date.now();
      const err = await createRedis(`redis://127.0.0.1:${port}`, { connectTimeoutMs: 300 }).catch((e: unknown) => e);
      expect(Date.now() - t0).toBeLessThan(2000);
      expect(err).toBeInstanceOf(RedisUnavailableError);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    }
  });

  it('fails on a server that does not speak Redis', async () => {
    const sockets = new Set<Socket>();
    const server = createServer((s) => {
      sockets.add(s);
      s.end('HTTP/1.1 400 Bad Request\r\n\r\n');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const err = await createRedis(`redis://127.0.0.1:${port}`, { connectTimeoutMs: 300 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RedisUnavailableError);
      expect((err as Error).message).toMatch(/Protocol error/);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    }
  });
});

describe('deleteKeysByPrefix', () => {
  it('deletes exactly the keys under the prefix', async () => {
    const r = await createRedis(URL_);
    const p = `t-del-${randomBytes(4).toString('hex')}`;
    try {
      await r.mset(`${p}:a`, '1', `${p}:b:c`, '2', `${p}x:other`, '3');
      expect(await deleteKeysByPrefix(r, p)).toBe(2);
      expect(await r.exists(`${p}:a`, `${p}:b:c`)).toBe(0);
      expect(await r.get(`${p}x:other`)).toBe('3');
    } finally {
      await r.del(`${p}x:other`);
      await r.quit();
    }
  });
});
