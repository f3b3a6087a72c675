import { Counter, Registry } from 'prom-client';
import { Drain } from './drain';
import { HealthServer, type ReadinessCheck } from './health-server';
import { DEFAULT_DRAIN_TIMEOUT_MS, parseLifecycleConfig } from './lifecycle-config';

describe('parseLifecycleConfig', () => {
  it('defaults, values and every problem reported', () => {
    const p: string[] = [];
    expect(parseLifecycleConfig({}, p)).toEqual({ healthPort: 0, healthHost: '127.0.0.1', drainTimeoutMs: DEFAULT_DRAIN_TIMEOUT_MS, exitWithParent: false });
    expect(parseLifecycleConfig({ STARQ_HEALTH_PORT: '9090', STARQ_HEALTH_HOST: '0.0.0.0', STARQ_DRAIN_TIMEOUT_MS: '240000', STARQ_EXIT_WITH_PARENT: '1' }, p)).toEqual({ healthPort: 9090, healthHost: '0.0.0.0', drainTimeoutMs: 240000, exitWithParent: true });
    expect(p).toEqual([]);
    parseLifecycleConfig({ STARQ_HEALTH_PORT: '70000', STARQ_DRAIN_TIMEOUT_MS: '-1', STARQ_HEALTH_HOST: 'a b', STARQ_EXIT_WITH_PARENT: 'yes' }, p);
    expect(p).toEqual([
      'STARQ_HEALTH_HOST must be an address or host name (got "a b")',
      'STARQ_EXIT_WITH_PARENT must be 0 or 1 (got "yes")',
      'STARQ_HEALTH_PORT must be an integer in [0, 65535] (got "70000")',
      'STARQ_DRAIN_TIMEOUT_MS must be an integer in [0, 86400000] (got "-1")',
    ]);
  });
});

describe('HealthServer', () => {
  let server: HealthServer;
  let base: string;
  let checks: ReadinessCheck[] = [];
  const metrics = new Registry();
  const counter = new Counter({ name: 'starq_test_things_total', help: 'things', registers: [metrics] });

  beforeAll(async () => {
    server = new HealthServer({ host: '127.0.0.1', port: 0, readiness: async () => checks, metrics, describe: () => ({ role: 'host', draining: false }) });
    base = `http://127.0.0.1:${await server.start()}`;
  });
  afterAll(() => server.stop());

  it('/health is 200 with the description', async () => {
    const r = await fetch(`${base}/health`);
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ status: 'ok', role: 'host', draining: false });
  });

  it('/ready is 503 naming the failing checks, 200 when all pass', async () => {
    checks = [
      { name: 'registered', ok: true },
      { name: 'redis', ok: false, detail: 'PING timed out' },
    ];
    let r = await fetch(`${base}/ready`);
    expect(r.status).toBe(503);
    const body = (await r.json()) as { status: string; error: { code: string; message: string } };
    expect(body.status).toBe('not_ready');
    expect(body.error).toMatchObject({ code: 'not_ready', message: 'not ready: redis (PING timed out)' });
    checks = [{ name: 'registered', ok: true }];
    r = await fetch(`${base}/ready`);
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ status: 'ready', checks });
  });

  it('/metrics exposes the registry; other paths and methods are errors', async () => {
    counter.inc(3);
    const r = await fetch(`${base}/metrics`);
    expect(r.status).toBe(200);
    expect(await r.text()).toContain('starq_test_things_total 3');
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    expect((await fetch(`${base}/health`, { method: 'POST' })).status).toBe(405);
  });
});

describe('Drain', () => {
  it('runs the drain once, then stop, then exits 0; later triggers share the same run', async () => {
    const events: string[] = [];
    let exitCode = -1;
    const d = new Drain({ timeoutMs: 5000, drain: async () => void events.push('drain'), stop: async () => void events.push('stop'), exit: (c) => (exitCode = c), log: () => undefined });
    const a = d.start('SIGTERM');
    const b = d.start('command');
    expect(a).toBe(b);
    expect(d.draining).toBe(true);
    expect(d.trigger).toBe('SIGTERM');
    await a;
    expect(events).toEqual(['drain', 'stop']);
    expect(exitCode).toBe(0);
  });

  it('a drain past its timeout is cut short: stop runs and the process exits', async () => {
    const events: string[] = [];
    let exitCode = -1;
    const d = new Drain({ timeoutMs: 50, drain: () => new Promise<void>(() => undefined), stop: async () => void events.push('stop'), exit: (c) => (exitCode = c), log: (l) => events.push(l) });
    await d.start('SIGTERM');
    expect(events).toContain('drain: timed out after 50 ms; stopping with work in flight');
    expect(events).toContain('stop');
    expect(exitCode).toBe(0);
  });

  it('a failing drain still stops, and exits 1', async () => {
    let stopped = false;
    let exitCode = -1;
    const d = new Drain({ timeoutMs: 1000, drain: async () => Promise.reject(new Error('boom')), stop: async () => void (stopped = true), exit: (c) => (exitCode = c), log: () => undefined });
    await d.start('command');
    expect(stopped).toBe(true);
    expect(exitCode).toBe(1);
  });
});
