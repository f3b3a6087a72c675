/**
 * End-to-end test of the admin dashboard (`GET /admin`) in a real headless Chromium driven by
 * playwright-core, against a real gateway process, one host actor and one query actor on Redis
 * (random key prefix, every process and key removed afterwards).
 *
 * - The page loads without a key and contains no secret; its data calls need the admin key: no
 *   key and a wrong key show the 401 message, an API key the 403 message.
 * - With the admin key (kept in sessionStorage across a reload) it shows the live actors (ids,
 *   pids), the queues, and a job submitted through the API with its final status; the job's
 *   detail view shows its output; "last updated" advances while the page polls.
 * - The page's cancel button cancels a long-running job of another key (admin rights).
 * - "Forget" removes the key from sessionStorage and hides the cluster data.
 *
 * Chromium: see test/helpers/browser.ts (Debian's, never a downloaded build; a missing one fails
 * the suite unless STARQ_SKIP_BROWSER_TESTS gives a reason).
 */
import { type BrowserContext, type Page } from 'playwright-core';
import { describeBrowser, launchChromium } from './helpers/browser';
import { deletePrefix, randomPrefix, stopProcess, TestCluster, until } from './helpers/cluster';
import { JobsApi, request, startGateway, TERMINAL_STATUSES as TERMINAL, writeModel } from './helpers/gateway';
import { randomTokenIds, TmpDirs, smallLlama } from '@starq/testing';
import type { RandomCheckpointOptions } from '@starq/model/synthetic/random-checkpoint';

jest.setTimeout(180000);

const OPTS: RandomCheckpointOptions = smallLlama({ hidden: 64, intermediate: 128, vocab: 128, maxPositions: 4096, seed: 5 });
const rnd = () => Math.random().toString(36).slice(2, 10);
const USER_KEY = `sk-user-${rnd()}`;
const ADMIN_KEY = `sk-admin-${rnd()}`;
const WRONG_KEY = `sk-wrong-${rnd()}`;

describeBrowser('admin dashboard (browser)', () => {
  const tmp = new TmpDirs();
  let cluster: TestCluster;
  let gw: Awaited<ReturnType<typeof startGateway>> | null = null;
  let ctx: BrowserContext | null = null;
  let page: Page;
  let url = '';
  let prefix = '';

  const jobs = new JobsApi(() => url, USER_KEY);
  const submit = (body: unknown) => jobs.submit(body);
  const getJob = (id: string) => jobs.get(id);
  const banner = () => page.getByTestId('banner');
  const useKey = async (key: string) => {
    if (!page.url().includes('/admin')) await page.goto(`${url}/admin`); // a test run alone (-t)
    await page.fill('#admin-key', key);
    await page.click('#key-save');
  };
  const ensureAdmin = async () => {
    if (!page.url().includes('/admin')) await page.goto(`${url}/admin`);
    if ((await page.evaluate(() => (globalThis as any).sessionStorage.getItem('starq.adminKey'))) !== ADMIN_KEY) await useKey(ADMIN_KEY);
  };
  const jobRow = (id: string) => page.locator(`#jobs tr[data-job-id="${id}"]`);

  beforeAll(async () => {
    const modelDir = writeModel(tmp.make('starq-admin-model-'), OPTS, null);
    prefix = randomPrefix('admin');
    cluster = await TestCluster.start({ modelDir, hosts: 1, queryActors: 1, prefix });
    gw = await startGateway({ STARQ_REDIS_URL: process.env.STARQ_TEST_REDIS_URL || 'redis://127.0.0.1:6379', STARQ_PREFIX: prefix, STARQ_MODEL_DIR: modelDir, STARQ_API_KEYS: USER_KEY, STARQ_ADMIN_KEY: ADMIN_KEY });
    url = gw.url;
    ctx = await launchChromium(tmp.make('starq-admin-chromium-'));
    page = ctx.pages()[0] ?? (await ctx.newPage());
    page.on('dialog', (d) => void d.accept()); // the cancel confirmation
  }, 240000);

  afterAll(async () => {
    await ctx?.close().catch(() => undefined);
    if (gw) await stopProcess(gw.proc, 5000);
    if (cluster) {
      await cluster.stop();
      await deletePrefix(cluster.redis, prefix).catch(() => undefined);
    }
    tmp.cleanup();
  }, 60000);

  describe('overview, keys and cancel', () => {
    it('the page loads without a key, embeds no secret, and asks for the admin key (401)', async () => {
      const html = await request(url, 'GET', '/admin');
      expect(html.status).toBe(200);
      expect(html.headers['content-type']).toMatch(/^text\/html/);
      expect(html.headers['content-security-policy']).toMatch(/script-src 'self'/);
      for (const asset of ['/admin/assets/dashboard.js', '/admin/assets/dashboard.css']) {
        const a = await request(url, 'GET', asset);
        expect(a.status).toBe(200);
        for (const text of [html.text, a.text]) for (const k of [ADMIN_KEY, USER_KEY]) expect(text).not.toContain(k);
      }
      expect((await request(url, 'GET', '/admin/assets/..%2Fapi.ts')).status).toBe(404);
      expect((await request(url, 'GET', '/admin/overview')).status).toBe(401);
      expect((await request(url, 'GET', '/admin/overview', { key: USER_KEY })).status).toBe(403);

      await page.goto(`${url}/admin`);
      await expect(page.title()).resolves.toBe('starq admin');
      await banner().waitFor({ state: 'visible' });
      await expect(banner().textContent()).resolves.toMatch(/Not authorized \(401 missing_api_key/);
      await expect(page.getByTestId('last-updated').textContent()).resolves.toMatch(/not loaded/);
    });

    it('a wrong key shows the 401 message, an API key the 403 message', async () => {
      await useKey(WRONG_KEY);
      await page.waitForFunction(() => /401 invalid_api_key/.test((globalThis as any).document.getElementById('banner').textContent ?? ''));
      expect(await banner().isVisible()).toBe(true);
      await useKey(USER_KEY);
      await page.waitForFunction(() => /403 admin_required/.test((globalThis as any).document.getElementById('banner').textContent ?? ''));
      await expect(banner().textContent()).resolves.toMatch(/Forbidden \(403 admin_required: this endpoint needs the admin key\)/);
      // Nothing was rendered from the cluster, and the data area is hidden.
      expect(await page.locator('#actors tr[data-actor-id]').count()).toBe(0);
      expect(await page.locator('#content').isVisible()).toBe(false);
    });

    it('with the admin key it shows the live actors, the queues and a finished job with its final status', async () => {
      const ctxIds = [1, ...randomTokenIds(99, OPTS.vocab, 71, 3)];
      const id = await submit({ contextIds: ctxIds, queryIds: [5, 6], blockSize: 32, maxNewTokens: 6, ignoreEos: true });
      const done = await until(`job ${id} to finish`, async () => {
        const j = await getJob(id);
        return TERMINAL.has(j.status) ? j : null;
      }, 90000);
      expect({ status: done.status, error: done.error }).toEqual({ status: 'completed', error: null });

      await useKey(ADMIN_KEY);
      await banner().waitFor({ state: 'hidden' });
      for (const a of cluster.actors) {
        const row = page.locator(`#actors tr[data-actor-id="${a.id}"]`);
        await row.waitFor();
        await expect(row.getAttribute('data-actor-type')).resolves.toBe(a.kind);
        await expect(row.textContent()).resolves.toContain(`:${a.proc.pid}`);
      }
      const host = cluster.actors.find((a) => a.kind === 'host')!;
      await expect(page.locator(`#actors tr[data-actor-id="${host.id}"] [data-field="kv"]`).textContent()).resolves.toMatch(/ \/ /); // used / limit
      await expect(page.locator(`#actors tr[data-actor-id="${host.id}"] [data-field="heartbeat"]`).textContent()).resolves.toMatch(/ago$/);
      await expect(page.locator(`#actors tr[data-actor-id="${host.id}"] [data-field="threads"]`).textContent()).resolves.toMatch(/ · cpu$/); // STARQ_EXECUTION_PROVIDER default
      await page.locator('#queues tr[data-queue="requests"] [data-field="completed"]').waitFor();
      expect(Number(await page.locator('#queues tr[data-queue="requests"] [data-field="completed"]').textContent())).toBeGreaterThanOrEqual(1);

      const row = jobRow(id);
      await row.waitFor();
      await expect(row.getAttribute('data-status')).resolves.toBe('completed');
      await expect(row.locator('[data-field="status"]').textContent()).resolves.toBe('completed');
      await expect(row.locator('[data-field="tokens"]').textContent()).resolves.toBe('6 / 6');
      await expect(row.locator('[data-field="blocks"]').textContent()).resolves.toBe('4 / 4');
      await expect(row.textContent()).resolves.toContain('API key #1');
      expect(await row.locator('button[data-action="cancel"]').count()).toBe(0);

      // "last updated" advances while the page polls.
      const t1 = Number(await page.getByTestId('last-updated').getAttribute('data-updated-at'));
      await page.waitForFunction((t) => Number((globalThis as any).document.getElementById('last-updated').getAttribute('data-updated-at')) > t, t1, { timeout: 10000 });
      await expect(page.getByTestId('last-updated').textContent()).resolves.toMatch(/^last updated \d\d:\d\d:\d\d \(\d+\.\d s ago\)$/);

      // The detail view (a link) shows the job with its output.
      await row.locator('a[data-field="id"]').click();
      await page.waitForFunction(() => (globalThis as any).document.querySelector('#detail-fields [data-field="status"]')?.textContent === 'completed');
      expect(page.url()).toContain(`#job=${id}`);
      await expect(page.getByTestId('detail-text').textContent()).resolves.toBe(done.result.text);
      await expect(page.locator('#detail-fields [data-field="tokens generated"]').textContent()).resolves.toBe('6 / 6');

      // The key lives in this tab's sessionStorage: a reload needs no new entry.
      expect(await page.evaluate(() => (globalThis as any).sessionStorage.getItem('starq.adminKey'))).toBe(ADMIN_KEY);
      expect(await page.inputValue('#admin-key')).toBe('');
      await page.reload();
      await jobRow(id).waitFor();
      expect(await banner().isVisible()).toBe(false);
    });

    it('cancel from the page cancels a long-running job (admin key, another key\'s job)', async () => {
      const ctxIds = [1, ...randomTokenIds(159, OPTS.vocab, 72, 3)];
      await ensureAdmin();
      const id = await submit({ contextIds: ctxIds, queryIds: [9, 10], blockSize: 40, maxNewTokens: 3000, ignoreEos: true, cache: false });
      const row = jobRow(id);
      await row.waitFor({ timeout: 30000 });
      await page.waitForFunction((jid) => (globalThis as any).document.querySelector(`#jobs tr[data-job-id="${jid}"]`)?.getAttribute('data-status') === 'generating', id, { timeout: 60000 });
      await row.locator('button[data-action="cancel"]').click();
      await page.getByTestId('notice').waitFor({ state: 'visible' });
      await expect(page.getByTestId('notice').textContent()).resolves.toContain(`Job ${id} cancelled`);
      await page.waitForFunction((jid) => (globalThis as any).document.querySelector(`#jobs tr[data-job-id="${jid}"]`)?.getAttribute('data-status') === 'cancelled', id, { timeout: 10000 });
      expect(await row.locator('[data-field="error"]').textContent()).toBe('cancelled');
      expect(await row.locator('button[data-action="cancel"]').count()).toBe(0);
      const a = await getJob(id);
      expect(a.status).toBe('cancelled');
      expect(a.error.code).toBe('cancelled');
      expect(a.progress.tokens).toBeLessThan(3000);
      await until('the request to leave the queue', async () => {
        const c = await request(url, 'GET', '/admin/cluster', { key: ADMIN_KEY });
        return c.json.queues.requests.active === 0;
      }, 30000);
      const b = await getJob(id);
      await new Promise((r) => setTimeout(r, 500));
      expect((await getJob(id)).progress.tokens).toBe(b.progress.tokens); // generation stopped
    });

    it('"Forget" drops the key from the session and hides the data again', async () => {
      await ensureAdmin();
      await page.locator('#actors tr[data-actor-id]').first().waitFor();
      await page.click('#key-forget');
      await page.waitForFunction(() => /401 missing_api_key/.test((globalThis as any).document.getElementById('banner').textContent ?? ''));
      expect(await page.evaluate(() => (globalThis as any).sessionStorage.getItem('starq.adminKey'))).toBeNull();
      expect(await page.locator('#content').isVisible()).toBe(false);
    });
  });
});
