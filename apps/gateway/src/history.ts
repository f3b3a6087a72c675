/**
 * The cluster over the last hour, kept in Redis so that every gateway replica shows the same
 * charts: queue depth, running requests, generated tokens/s, time to first token and per-token
 * latency percentiles, and KV bytes per host.
 *
 * Time is cut into buckets of `intervalMs`. Two kinds of record per bucket:
 * - a **snapshot** of cluster state at the bucket's start (queue counts, running requests, KV per
 *   host), written by exactly one gateway: the one that wins `SET …:lock:<bucket> NX`;
 * - **activity** of the jobs each gateway follows (the jobs it submitted): tokens generated in the
 *   bucket (by the event stream's own timestamps), TTFTs and per-token latencies of the tokens
 *   that fell in it. Every gateway adds its share (HINCRBY / RPUSH), so the sum is the cluster's.
 * Snapshots live in one sorted set (score = bucket time) trimmed to `keepMs`; activity keys
 * expire after `keepMs` plus a margin. Latency lists are capped per gateway and bucket
 * (`maxSamplesPerBucket`, reservoir-free: the first samples are kept), so memory is bounded.
 */
import type { Redis } from 'ioredis';
import type { StarqClient } from '@starq/cluster';

export interface HistoryOptions {
  /** Bucket width. @defaultValue 5000 */
  intervalMs?: number;
  /** How far back the history goes. @defaultValue 3600000 (one hour) */
  keepMs?: number;
  /** Latency samples a gateway records per bucket and series. @defaultValue 500 */
  maxSamplesPerBucket?: number;
}

export interface HistorySnapshot {
  t: number;
  /** Requests not finished and not running: waiting (incl. prioritized), waiting for their blocks, delayed. */
  queueDepth: number;
  /**
   * Requests in the query actors' running sets (the batch size across query actors, from their
   * serving status); BullMQ's `active` count when no query actor reports one.
   */
  running: number;
  /** Requests a query actor took from the queue but has not admitted yet (waiting for room). */
  admissionWaiting: number;
  /** Block jobs waiting or being encoded. */
  blocksPending: number;
  hosts: number;
  queryActors: number;
  /** KV bytes held, per host id. */
  kvBytes: Record<string, number>;
}

export interface HistoryPoint extends HistorySnapshot {
  tokens: number;
  tokensPerSec: number;
  ttftP50Ms: number | null;
  ttftP99Ms: number | null;
  perTokenP50Ms: number | null;
  perTokenP99Ms: number | null;
}

export interface History {
  object: 'history';
  intervalMs: number;
  from: number;
  to: number;
  points: HistoryPoint[];
}

function quantile(sorted: number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

interface Pending {
  tokens: number;
  ttft: number[];
  perToken: number[];
}

export class HistoryRecorder {
  readonly intervalMs: number;
  readonly keepMs: number;
  private readonly maxSamples: number;
  private readonly pending = new Map<number, Pending>();
  /** Per job: time of its last token and of its phase-2 start. */
  private readonly jobs = new Map<string, { lastTokenAt: number | null; startedAt: number | null }>();
  private timer: NodeJS.Timeout | undefined;
  private readonly redis: Redis;

  constructor(private readonly client: StarqClient, o: HistoryOptions = {}) {
    this.redis = client.redis;
    this.intervalMs = o.intervalMs ?? 5000;
    this.keepMs = o.keepMs ?? 3600_000;
    this.maxSamples = o.maxSamplesPerBucket ?? 500;
  }

  private key(...parts: (string | number)[]): string {
    return [`${this.client.keys.prefix}:gw:history`, ...parts].join(':');
  }

  bucketOf(t: number): number {
    return Math.floor(t / this.intervalMs) * this.intervalMs;
  }

  /** Starts sampling (first snapshot now, then at every bucket boundary). */
  start(): void {
    const tick = () => {
      void this.tick().catch(() => undefined); // Redis down: the gap shows in the charts
      const now = Date.now();
      this.timer = setTimeout(tick, this.bucketOf(now) + this.intervalMs - now + 5);
      this.timer.unref();
    };
    tick();
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    await this.flush(Infinity).catch(() => undefined);
  }

  /** A request event of a job this gateway follows (`entryTime`: the stream entry's epoch ms). */
  observe(jobId: string, type: string, entryTime: number, tokenIndex?: number): void {
    const j = this.jobs.get(jobId) ?? { lastTokenAt: null, startedAt: null };
    this.jobs.set(jobId, j);
    if (type === 'started') j.startedAt = entryTime;
    else if (type === 'token') {
      const p = this.bucket(entryTime);
      p.tokens++;
      if (tokenIndex === 0 && j.startedAt !== null) this.push(p.ttft, entryTime - j.startedAt);
      else if (j.lastTokenAt !== null) this.push(p.perToken, entryTime - j.lastTokenAt);
      j.lastTokenAt = entryTime;
    } else if (type === 'done' || type === 'error') this.jobs.delete(jobId);
  }

  private bucket(t: number): Pending {
    const b = this.bucketOf(t);
    let p = this.pending.get(b);
    if (!p) this.pending.set(b, (p = { tokens: 0, ttft: [], perToken: [] }));
    return p;
  }

  private push(xs: number[], v: number): void {
    if (xs.length < this.maxSamples) xs.push(Math.max(0, v));
  }

  /** Writes this gateway's activity of buckets that ended before `before`. */
  private async flush(before: number): Promise<void> {
    const ttlS = Math.ceil((this.keepMs + 10 * this.intervalMs) / 1000);
    const m = this.redis.multi();
    let n = 0;
    for (const [b, p] of this.pending) {
      if (b + this.intervalMs > before) continue;
      this.pending.delete(b);
      if (p.tokens > 0) m.hincrby(this.key('tokens'), String(b), p.tokens);
      if (p.ttft.length > 0) m.rpush(this.key('ttft', b), ...p.ttft.map(String)).expire(this.key('ttft', b), ttlS);
      if (p.perToken.length > 0) m.rpush(this.key('tok', b), ...p.perToken.map(String)).expire(this.key('tok', b), ttlS);
      n++;
    }
    if (n > 0) await m.exec();
  }

  /** One sampling round: flush finished buckets; snapshot the current bucket if no replica has. */
  async tick(now = Date.now()): Promise<void> {
    await this.flush(now);
    const b = this.bucketOf(now);
    const won = await this.redis.set(this.key('lock', b), '1', 'PX', 2 * this.intervalMs, 'NX');
    if (won !== 'OK') return;
    const [counts, actors] = await Promise.all([this.client.queueCounts(), this.client.registry.list()]);
    const r = counts.requests;
    const queries = actors.filter((a) => a.type === 'query');
    const snap: HistorySnapshot = {
      t: b,
      queueDepth: (r.waiting ?? 0) + (r['waiting-children'] ?? 0) + (r.delayed ?? 0),
      running: queries.some((a) => a.status.serving) ? queries.reduce((n, a) => n + (a.status.serving?.running ?? 0), 0) : (r.active ?? 0),
      admissionWaiting: queries.reduce((n, a) => n + (a.status.serving?.waiting ?? 0), 0),
      blocksPending: (counts.blocks.waiting ?? 0) + (counts.blocks.active ?? 0),
      hosts: actors.filter((a) => a.type === 'host').length,
      queryActors: queries.length,
      kvBytes: Object.fromEntries(actors.filter((a) => a.type === 'host').map((a) => [a.id, a.status.kvBytes])),
    };
    await this.redis
      .multi()
      .zadd(this.key('snapshots'), b, JSON.stringify(snap))
      .zremrangebyscore(this.key('snapshots'), '-inf', b - this.keepMs)
      .exec();
    // Token counts of buckets older than the history: one HDEL per round keeps the hash bounded.
    const old = (await this.redis.hkeys(this.key('tokens'))).filter((k) => Number(k) < b - this.keepMs);
    if (old.length > 0) await this.redis.hdel(this.key('tokens'), ...old);
  }

  /** The last `spanMs` (at most keepMs), one point per snapshot, oldest first. */
  async read(spanMs = this.keepMs, now = Date.now()): Promise<History> {
    const from = now - Math.min(spanMs, this.keepMs);
    const raw = await this.redis.zrangebyscore(this.key('snapshots'), from, '+inf');
    const snaps = raw.map((s) => JSON.parse(s) as HistorySnapshot);
    const p = this.redis.pipeline();
    p.hgetall(this.key('tokens'));
    for (const s of snaps) p.lrange(this.key('ttft', s.t), 0, -1).lrange(this.key('tok', s.t), 0, -1);
    const res = ((await p.exec()) ?? []).map(([err, v]) => (err ? null : v));
    const tokens = (res[0] ?? {}) as Record<string, string>;
    const nums = (v: unknown) => ((v as string[] | null) ?? []).map(Number).sort((a, b) => a - b);
    const points = snaps.map((s, i): HistoryPoint => {
      const ttft = nums(res[1 + 2 * i]);
      const tok = nums(res[2 + 2 * i]);
      const n = Number(tokens[String(s.t)] ?? 0);
      return { ...s, tokens: n, tokensPerSec: n / (this.intervalMs / 1000), ttftP50Ms: quantile(ttft, 0.5), ttftP99Ms: quantile(ttft, 0.99), perTokenP50Ms: quantile(tok, 0.5), perTokenP99Ms: quantile(tok, 0.99) };
    });
    return { object: 'history', intervalMs: this.intervalMs, from, to: now, points };
  }
}
