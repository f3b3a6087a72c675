/**
 * Redis connection factory. The initial connect fails fast (one attempt, `connectTimeoutMs`) with
 * a {@link RedisUnavailableError} that names the URL; once connected, a dropped connection is
 * retried forever with capped backoff (Redis restarts should not kill services).
 */
import { Redis, type RedisOptions } from 'ioredis';
import { InvalidInputError } from '@starq/protocol';
import { RedisUnavailableError } from './errors';

/** URL used when none is given. */
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

export interface RedisUrlParts {
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
  /** `rediss://` */
  tls: boolean;
}

/**
 * Parses `redis://[[user]:password@]host[:port][/db]` (or `rediss://` for TLS).
 * @throws InvalidInputError (`invalid_redis_url`, param `redis-url`)
 */
export function parseRedisUrl(url: string): RedisUrlParts {
  const bad = (why: string): never => {
    throw new InvalidInputError('invalid_redis_url', `invalid Redis URL ${JSON.stringify(redactRedisUrl(url))}: ${why}; expected redis://[user:password@]host[:port][/db]`, 'redis-url');
  };
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return bad('not a URL');
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') bad(`scheme must be redis:// or rediss:// (got ${u.protocol}//)`);
  if (!u.hostname) bad('missing host');
  const port = u.port ? Number(u.port) : 6379;
  const path = u.pathname.replace(/^\//, '');
  if (path !== '' && !/^\d+$/.test(path)) bad(`database must be a number (got /${path})`);
  const db = path === '' ? 0 : Number(path);
  const parts: RedisUrlParts = { host: u.hostname.replace(/^\[|\]$/g, ''), port, db, tls: u.protocol === 'rediss:' };
  if (u.username) parts.username = decodeURIComponent(u.username);
  if (u.password) parts.password = decodeURIComponent(u.password);
  return parts;
}

/** The URL with any password replaced by `***` (for messages and logs). */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString().replace(/\/$/, '');
  } catch {
    return url.replace(/:[^:@/]*@/, ':***@');
  }
}

export interface CreateRedisOptions {
  /**
   * Connection for BullMQ (workers need `maxRetriesPerRequest: null`, i.e. commands wait through
   * outages instead of failing).
   * @defaultValue false
   */
  forBullmq?: boolean;
  /** Timeout of the initial TCP connect + ready check. @defaultValue 2000 */
  connectTimeoutMs?: number;
  /**
   * How many reconnect attempts a command waits through before it fails (non-BullMQ connections).
   * @defaultValue 3
   */
  maxRetriesPerRequest?: number;
  /** CLIENT SETNAME, shown by `redis-cli client list`. @defaultValue none */
  connectionName?: string;
  /**
   * Where the URL came from — the flag or environment variable a user changes to point at another
   * server (e.g. `--redis`, `STARQ_REDIS_URL`); named by {@link RedisUnavailableError}.
   * @defaultValue none (the error says "the Redis URL")
   */
  urlSource?: string;
  /**
   * Called with connection errors after the initial connect (reconnect attempts).
   * @defaultValue console.warn of the first error of each outage
   */
  onError?: (err: Error) => void;
}

/**
 * Connects to Redis and resolves once the connection is ready.
 * @param url - @defaultValue {@link DEFAULT_REDIS_URL}
 * @throws RedisUnavailableError when the server cannot be reached within `connectTimeoutMs`.
 */
export async function createRedis(url: string = DEFAULT_REDIS_URL, opts: CreateRedisOptions = {}): Promise<Redis> {
  const p = parseRedisUrl(url);
  const connectTimeoutMs = opts.connectTimeoutMs ?? 2000;
  const shown = redactRedisUrl(url);
  let connected = false;
  let outage = false;
  const redis = new Redis({
    host: p.host,
    port: p.port,
    db: p.db,
    username: p.username,
    password: p.password,
    tls: p.tls ? {} : undefined,
    lazyConnect: true,
    connectTimeout: connectTimeoutMs,
    // ioredis arms this timer on every disconnect and, after a failed connect, never clears it:
    // keep it short so a failed process exits promptly (2000 by default).
    disconnectTimeout: 500,
    connectionName: opts.connectionName,
    maxRetriesPerRequest: opts.forBullmq ? null : (opts.maxRetriesPerRequest ?? 3),
    // No retry before the first successful connect (fail fast); afterwards back off up to 2 s.
    retryStrategy: (times: number) => (connected ? Math.min(50 * 2 ** Math.min(times, 6), 2000) : null),
  });
  const onError =
    opts.onError ??
    ((err: Error) => {
      if (!outage) console.warn(`[starq] Redis ${shown}: ${err.message} (reconnecting)`);
      outage = true;
    });
  let lastError: NodeJS.ErrnoException | undefined;
  redis.on('error', (err: Error) => {
    if (connected) onError(err);
    else lastError = err;
  });
  redis.on('ready', () => {
    outage = false;
  });

  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      redis.connect(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${connectTimeoutMs} ms`)), connectTimeoutMs + 250);
      }),
    ]);
  } catch (err) {
    if (redis.status !== 'end') redis.disconnect(); // (disconnect() on an ended client would reconnect)
    (redis as unknown as { stream?: { destroy(): void } }).stream?.destroy(); // do not wait for a silent peer's FIN
    const e = lastError ?? (err as NodeJS.ErrnoException);
    throw new RedisUnavailableError(shown, e.code ?? e.message ?? String(err), e, opts.urlSource);
  } finally {
    clearTimeout(timer);
  }
  connected = true;
  return redis;
}

/**
 * A second connection with the same options (e.g. for SUBSCRIBE), connecting lazily on its first
 * command. Connection errors go to `onError` instead of ioredis' "Unhandled error event" output.
 * @param onError - @defaultValue console.warn of the first error of each outage
 */
export function duplicateRedis(redis: Redis, onError?: (err: Error) => void, overrides: Partial<RedisOptions> = {}): Redis {
  const dup = redis.duplicate(overrides);
  let outage = false;
  dup.on('error', (err: Error) => {
    if (onError) onError(err);
    else if (!outage) console.warn(`[starq] Redis ${dup.options.host}:${dup.options.port}: ${err.message} (reconnecting)`);
    outage = true;
  });
  dup.on('ready', () => {
    outage = false;
  });
  return dup;
}

/**
 * Deletes every key under `prefix` (`prefix:*`, e.g. a test's random prefix) with SCAN + UNLINK.
 * Returns the number of keys deleted.
 */
export async function deleteKeysByPrefix(redis: Redis, prefix: string): Promise<number> {
  if (!prefix) throw new InvalidInputError('invalid_key_prefix', 'refusing to delete keys with an empty prefix', 'prefix');
  const pattern = `${prefix.replace(/[*?[\]\\]/g, (c) => `\\${c}`)}:*`;
  let cursor = '0';
  let n = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length) n += await redis.unlink(...keys);
  } while (cursor !== '0');
  return n;
}

/**
 * Closes a connection and resolves once its socket is closed: QUIT (the server answers, then
 * closes), or `disconnect()` when that does not answer within `timeoutMs`. `disconnect()` alone
 * returns while the socket and ioredis' disconnect timer are still alive, so a process (or a test
 * file) that ends right after it still holds them.
 * @param timeoutMs - @defaultValue 2000
 */
export async function closeRedis(redis: Redis, timeoutMs = 2000): Promise<void> {
  if (redis.status === 'end') return;
  if (redis.status === 'wait') {
    redis.disconnect(); // never connected (lazy): no socket to wait for
    return;
  }
  const ended = new Promise<void>((resolve) => redis.once('end', () => resolve()));
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), timeoutMs);
  });
  try {
    if ((await Promise.race([redis.quit().catch(() => 'failed' as const), late])) !== 'OK') redis.disconnect();
    await Promise.race([ended, late]);
  } finally {
    clearTimeout(timer);
  }
}
