/**
 * End-to-end test of the admin dashboard's operator views in headless Chromium, against a real
 * gateway, two host actors and one query actor on Redis (random key prefix, all removed after):
 *
 * - job detail: a job watched to completion shows a Gantt bar for every block, on the host that
 *   encoded it (checked against the KV directory), its events and the per-token latency chart;
 * - KV map: the context is listed on the hosts that hold it; "Evict" (confirmed) frees it, the
 *   audit log records it, and the next request on the same context re-encodes every block;
 * - a host SIGKILLed during generation: the job completes and its Gantt marks the blocks that
 *   were re-encoded on the surviving host;
 * - history: the charts show the queue, tokens/s, latencies and KV per host from Redis.
 *
 * With STARQ_SCREENSHOTS=<dir> each view is saved there as a PNG at 1280×800
 * (docs/admin/ holds the ones the docs show: `npm run screenshots`).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { blockCacheId, privateBlockKey } from '@starq/attention';
import type { RandomCheckpointOptions } from '@starq/model/synthetic/random-checkpoint';
import { randomTokenIds, TmpDirs, smallLlama } from '@starq/testing';
import { describeBrowser, launchChromium } from './helpers/browser';
import { deletePrefix, randomPrefix, stopProcess, TestCluster, until } from './helpers/cluster';
import { JobsApi, request, startGateway, writeModel } from './helpers/gateway';

jest.setTimeout(240000);

const OPTS: RandomCheckpointOptions = smallLlama({ hidden: 64, intermediate: 128, vocab: 128, maxPositions: 4096, seed: 9 });
const rnd = () => Math.random().toString(36).slice(2, 10);
const ADMIN_KEY = `sk-admin-${rnd()}`;
const SHOTS = process.env.STARQ_SCREENSHOTS ? path.resolve(process.env.STARQ_SCREENSHOTS) : null;

describeBrowser('admin dashboard views (browser)', () => {
  const tmp = new TmpDirs();
  let cluster: TestCluster;
  let gw: Awaited<ReturnType<typeof startGateway>> | null = null;
  let ctx: BrowserContext | null = null;
  let page: Page;
  let url = '';
  const dialogs: string[] = [];

  const jobs = new JobsApi(() => url, ADMIN_KEY);
  const submit = (body: Record<string, unknown>) => jobs.submit(body);
  const getJob = (id: string) => jobs.get(id);
  const finished = (id: string) => jobs.finished(id);
  const contextKeyOf = async (id: string): Promise<string> => ((await cluster.client.requests.getJob(id))!.data as { contextKey: string }).contextKey;
  const shot = async (name: string) => {
    if (!SHOTS) return;
    fs.mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
  };
  const open = async (hash: string) => {
    await page.goto(`${url}/admin${hash}`);
    await page.locator('#actors tr[data-actor-id]').first().waitFor({ state: 'attached' });
  };

  beforeAll(async () => {
    const modelDir = writeModel(tmp.make('starq-admin-views-model-'), OPTS, null);
    const prefix = randomPrefix('adminviews');
    cluster = await TestCluster.start({ modelDir, hosts: 2, queryActors: 1, prefix });
    gw = await startGateway({ STARQ_REDIS_URL: process.env.STARQ_TEST_REDIS_URL || 'redis://127.0.0.1:6379', STARQ_PREFIX: prefix, STARQ_MODEL_DIR: modelDir, STARQ_ADMIN_KEY: ADMIN_KEY, STARQ_HISTORY_INTERVAL_MS: '500' });
    url = gw.url;
    ctx = await launchChromium(tmp.make('starq-admin-views-chromium-'));
    page = ctx.pages()[0] ?? (await ctx.newPage());
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.accept(); // the confirmation every action asks for
    });
    await page.goto(`${url}/admin`);
    await page.fill('#admin-key', ADMIN_KEY);
    await page.click('#key-save');
    await page.locator('#actors tr[data-actor-id]').first().waitFor();
  }, 240000);

  afterAll(async () => {
    await ctx?.close().catch(() => undefined);
    if (gw) await stopProcess(gw.proc, 5000);
    if (cluster) {
      await cluster.stop();
      await deletePrefix(cluster.redis, cluster.prefix).catch(() => undefined);
    }
    tmp.cleanup();
  }, 60000);

  const DOC = [1, ...randomTokenIds(159, OPTS.vocab, 81, 3)]; // 160 tokens: 4 blocks of 40 on 2 hosts

  it('job detail: every block in the Gantt on the host that encoded it, events and per-token chart', async () => {
    const id = await submit({ contextIds: DOC, queryIds: [5, 6], blockSize: 40, hosts: 2, maxNewTokens: 12, ignoreEos: true });
    await open(`#job=${id}`);
    await page.waitForFunction(() => (globalThis as any).document.querySelector('#detail-fields [data-field="status"]')?.textContent === 'completed', undefined, { timeout: 120000 });
    const job = await finished(id);
    expect(job.status).toBe('completed');
    // The detail fields and the timeline are fetched one after the other: wait for a timeline read
    // after completion (a Gantt drawn from an earlier poll can still show pending blocks).
    await page.waitForFunction(() => {
      const bars = [...(globalThis as any).document.querySelectorAll('#gantt g.bar')];
      return bars.length === 4 && bars.every((b: any) => b.getAttribute('data-kind') !== 'pending');
    });
    const key = await contextKeyOf(id);
    const handles = await cluster.client.directory.getMany([0, 1, 2, 3].map((k) => blockCacheId(key, k)));
    for (let k = 0; k < 4; k++) {
      const bar = page.locator(`#gantt g.bar[data-block="${k}"]`);
      await expect(bar.getAttribute('data-kind')).resolves.toBe('encoded');
      await expect(bar.getAttribute('data-host')).resolves.toBe(handles[k]!.hostId);
    }
    expect(new Set(handles.map((h) => h!.hostId)).size).toBe(2); // both hosts have a Gantt row
    await expect(page.locator('#gantt .rowlabel').count()).resolves.toBe(2);
    await expect(page.getByTestId('timeline-plan').textContent()).resolves.toMatch(/star · 4 block\(s\) of 40 tokens · anchor 40 · 2 host\(s\)/);
    for (const e of ['submitted', 'started', 'done']) await expect(page.locator(`#events tr[data-event="${e}"]`).count()).resolves.toBe(1);
    // One latency per token after the first, drawn as a line.
    const d = await page.locator('#token-chart .series path.line').getAttribute('d');
    expect((d ?? '').split(/[ML]/).filter((x) => x.trim()).length).toBe(11);
    await shot('job-detail');
  });

  it('KV map lists the context on its hosts; "Evict" frees it, is audited, and the next request re-encodes', async () => {
    const again = await submit({ contextIds: DOC, queryIds: [7], blockSize: 40, hosts: 2, maxNewTokens: 2, ignoreEos: true });
    expect((await finished(again)).blocks).toMatchObject({ encoded: 0, reused: 4 }); // the cache works before the eviction
    const key = await contextKeyOf(again);
    await open('#kv');
    const rows = page.locator(`#kv-map tr[data-context="${key}"]`);
    await rows.first().waitFor();
    expect(await rows.count()).toBe(2); // held on both hosts
    const held = (await rows.locator('[data-field="blocks"]').allTextContents()).join(', ').split(', ').map(Number).sort();
    expect(held).toEqual([0, 1, 2, 3]);
    await shot('kv-map');
    await rows.first().locator('button[data-action="evict"]').click();
    await page.getByTestId('notice').waitFor({ state: 'visible' });
    await expect(page.getByTestId('notice').textContent()).resolves.toMatch(/Context evicted: 4 block\(s\)/);
    expect(dialogs.some((m) => m.includes(`Evict context ${key}`))).toBe(true);
    await until('the context to leave the KV map', async () => (await page.locator(`#kv-map tr[data-context="${key}"]`).count()) === 0, 10000);
    expect((await cluster.client.directory.getMany([0, 1, 2, 3].map((k) => blockCacheId(key, k)))).every((h) => h === null)).toBe(true);

    await open('#audit');
    const entry = page.locator('#audit tr[data-action="evict_context"]').first();
    await entry.waitFor();
    await expect(entry.getAttribute('data-outcome')).resolves.toBe('ok');
    await expect(entry.textContent()).resolves.toContain(key);
    await shot('audit-log');

    const after = await submit({ contextIds: DOC, queryIds: [7], blockSize: 40, hosts: 2, maxNewTokens: 2, ignoreEos: true });
    expect((await finished(after)).blocks).toMatchObject({ encoded: 4, reused: 0 });
  });

  it('"Drain" on a host moves its blocks to the other host before it exits; the same question gets the same tokens', async () => {
    const doc = [1, ...randomTokenIds(159, OPTS.vocab, 83, 3)];
    const q = { contextIds: doc, queryIds: [4, 5], blockSize: 40, hosts: 2, maxNewTokens: 10, ignoreEos: true };
    const first = await finished(await submit(q));
    expect(first.status).toBe('completed');
    const key = await contextKeyOf(first.id);
    const ids = [0, 1, 2, 3].map((k) => blockCacheId(key, k));
    const before = await cluster.client.directory.getMany(ids);
    const victim = before[0]!.hostId;
    const other = cluster.hosts().find((h) => h.id !== victim)!.id;
    await open('');
    const button = page.locator(`#actors tr[data-actor-id="${victim}"] button[data-action="drain"]`);
    await button.click();
    await page.getByTestId('notice').waitFor({ state: 'visible' });
    await expect(page.getByTestId('notice').textContent()).resolves.toContain(`Drain started: drain started on ${victim}`);
    expect(dialogs.some((m) => m.includes(`Drain host ${victim}?`))).toBe(true);
    const proc = cluster.actor(victim).proc;
    await until(`${victim} to exit after its drain`, async () => proc.exitCode !== null || proc.signalCode !== null, 60000);
    expect(proc.exitCode).toBe(0);
    const after = await cluster.client.directory.getMany(ids);
    expect(after.map((h) => h?.hostId)).toEqual([other, other, other, other]); // every block moved
    await open('#kv');
    const row = page.locator(`#kv-map .kv-host[data-host-id="${other}"] tr[data-context="${key}"]`);
    await row.waitFor();
    await expect(row.locator('[data-field="blocks"]').textContent()).resolves.toBe('0, 1, 2, 3');
    expect(await page.locator(`#kv-map .kv-host[data-host-id="${victim}"]`).count()).toBe(0);
    await open('#audit');
    await expect(page.locator('#audit tr[data-action="drain_host"]').first().getAttribute('data-outcome')).resolves.toBe('ok');
    // A replacement host joins (as a supervisor or Kubernetes would start one); the moved blocks
    // serve the same question: nothing re-encoded, the same tokens.
    await cluster.addHosts(1);
    const second = await finished(await submit(q));
    expect(second.blocks).toMatchObject({ encoded: 0, reused: 4 });
    expect(second.result.generatedIds).toEqual(first.result.generatedIds);
  });

  it('a host killed during generation: the job completes and its Gantt marks the re-encoded blocks', async () => {
    const doc = [1, ...randomTokenIds(159, OPTS.vocab, 82, 3)];
    const id = await submit({ contextIds: doc, queryIds: [3], blockSize: 40, hosts: 2, maxNewTokens: 600, ignoreEos: true, cache: false });
    await until(`job ${id} to generate`, async () => (await getJob(id)).progress.tokens >= 3, 120000, 20);
    const key = await contextKeyOf(id);
    // cache: false: the blocks it encodes are its own (privateBlockKey), not the context's shared ones.
    const before = await cluster.client.directory.getMany([0, 1, 2, 3].map((k) => blockCacheId(privateBlockKey(key, id), k)));
    const victim = before[0]!.hostId;
    const lost = before.map((h, k) => (h!.hostId === victim ? k : -1)).filter((k) => k >= 0);
    await cluster.kill(victim);
    const job = await finished(id);
    expect(job.status).toBe('completed');
    await open(`#job=${id}`);
    await page.waitForFunction((n) => (globalThis as any).document.querySelectorAll('#gantt g.bar[data-kind="recovered"]').length === n, lost.length, { timeout: 20000 });
    const survivor = cluster.hosts()[0].id;
    for (const k of lost) {
      const bar = page.locator(`#gantt g.bar[data-kind="recovered"][data-block="${k}"]`);
      await expect(bar.getAttribute('data-host')).resolves.toBe(survivor);
      await expect(bar.locator('title').textContent()).resolves.toContain(`re-encoded after ${victim} was lost`);
    }
    await expect(page.locator('#events tr[data-event="recovered"]').count()).resolves.toBe(1);
    await shot('job-detail-recovered');
  });

  it('history: queue, tokens/s, latency percentiles and KV per host over time, from Redis', async () => {
    await finished(await submit({ contextIds: DOC, queryIds: [8], blockSize: 40, hosts: 2, maxNewTokens: 16, ignoreEos: true }));
    const h = await until('history with generated tokens', async () => {
      const r = await request(url, 'GET', '/admin/history', { key: ADMIN_KEY });
      return r.json.points.some((p: any) => p.tokensPerSec > 0 && p.perTokenP50Ms !== null) ? r.json : null;
    }, 20000, 250);
    expect(h.intervalMs).toBe(500);
    expect(h.points.length).toBeGreaterThan(2);
    await open('#history');
    for (const chart of ['h-queue', 'h-tokens', 'h-ttft', 'h-pertoken', 'h-kv']) await page.locator(`#${chart} g.series`).first().waitFor();
    await expect(page.locator('#h-queue g.series').count()).resolves.toBe(2);
    await expect(page.locator('#h-ttft g.series[data-series="p99"]').count()).resolves.toBe(1);
    // Series are told apart without colour: each has its own dash pattern and a text label.
    const dashes = await page.locator('#h-queue g.series path.line').evaluateAll((ps) => ps.map((p) => p.getAttribute('stroke-dasharray')));
    expect(new Set(dashes).size).toBe(2);
    await expect(page.locator('#h-queue g.series text.label').count()).resolves.toBe(2);
    await shot('history');
    await open('');
    await shot('overview');
  });
});
