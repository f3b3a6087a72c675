/**
 * HistoryRecorder against a real Redis (random prefix, removed after): two gateway replicas
 * observing their own jobs add up to one history; exactly one replica snapshots each bucket;
 * buckets older than the kept span are dropped.
 */
import { StarqClient } from '@starq/cluster';
import { HistoryRecorder } from './history';

const REDIS_URL = process.env.STARQ_TEST_REDIS_URL || 'redis://127.0.0.1:6379';

describe('HistoryRecorder (real Redis)', () => {
  let client: StarqClient;
  const prefix = `t-hist-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

  beforeAll(async () => {
    client = await StarqClient.connect(REDIS_URL, { prefix });
  });

  afterAll(async () => {
    const keys = await client.redis.keys(`${prefix}:*`);
    if (keys.length > 0) await client.redis.del(...keys);
    await client.close();
  });

  it('merges the activity of two replicas, snapshots each bucket once, and keeps only the span', async () => {
    const a = new HistoryRecorder(client, { intervalMs: 1000, keepMs: 10_000 });
    const b = new HistoryRecorder(client, { intervalMs: 1000, keepMs: 10_000 });
    const t0 = Math.floor(Date.now() / 1000) * 1000 - 5000; // five buckets ago, bucket-aligned
    // Replica a: job j1 starts, first token after 40 ms, then tokens every 10 ms (all in bucket t0).
    a.observe('j1', 'started', t0 + 100);
    a.observe('j1', 'token', t0 + 140, 0);
    for (let i = 1; i <= 4; i++) a.observe('j1', 'token', t0 + 140 + 10 * i, i);
    // Replica b: job j2, first token after 80 ms, one more 30 ms later, in the same bucket.
    b.observe('j2', 'started', t0 + 200);
    b.observe('j2', 'token', t0 + 280, 0);
    b.observe('j2', 'token', t0 + 310, 1);
    // Both replicas tick for the same bucket: one snapshot only.
    await Promise.all([a.tick(t0 + 1500), b.tick(t0 + 1500)]);
    const h = await a.read(10_000, t0 + 2000);
    const bucket = h.points.filter((p) => p.t === t0 + 1000);
    expect(bucket).toHaveLength(1);
    // Activity is attributed to the bucket its tokens fell in (t0), which has no snapshot: read it
    // through a snapshot of t0 written now.
    await a.tick(t0 + 10);
    const h2 = await a.read(10_000, t0 + 2000);
    const p0 = h2.points.find((p) => p.t === t0)!;
    expect(p0.tokens).toBe(7); // 5 from a, 2 from b
    expect(p0.tokensPerSec).toBe(7);
    expect(p0.ttftP50Ms).toBe(40); // samples 40 and 80: p50 = the lower one
    expect(p0.ttftP99Ms).toBe(80);
    expect(p0.perTokenP50Ms).toBe(10); // 10, 10, 10, 10, 30
    expect(p0.perTokenP99Ms).toBe(30);
    // Older than keepMs: gone from the snapshots after the next tick.
    await a.tick(t0 + 20_000);
    const h3 = await a.read(10_000, t0 + 20_000);
    expect(h3.points.every((p) => p.t >= t0 + 10_000)).toBe(true);
    expect(await client.redis.hget(`${prefix}:gw:history:tokens`, String(t0))).toBeNull();
  });
});
