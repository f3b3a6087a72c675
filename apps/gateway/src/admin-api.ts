/**
 * Admin routes: the dashboard page (`GET /admin`, static HTML/JS/CSS from ./admin, served without a
 * key — it holds no secrets and asks the user for the admin key) and the JSON endpoints it polls,
 * which all need the admin key:
 *
 * - `GET /admin/overview?jobs=N` — one snapshot for the dashboard: live actors (registry records:
 *   pid/host, threads, KV bytes used and limit, blocks, last heartbeat age) and the actors a
 *   `starq cluster up` supervisor reports starting, restarting or dead, BullMQ queue counts, the N
 *   most recent jobs of every owner;
 * - `GET /admin/jobs?limit=N`, `GET /admin/jobs/:id` — recent jobs / one job, with owner and sizes;
 * - `GET /admin/cluster` — live actors (raw registry records) and queue counts;
 * - `GET /admin/jobs/:id/timeline` — the job's life: plan, block encodes per host, events,
 *   per-token latencies (job-timeline.ts);
 * - `GET /admin/kv` — per host, the contexts and blocks it holds, limit, eviction order (kv-map.ts);
 * - `GET /admin/history?span=MS` — the last hour of cluster state and activity (history.ts);
 * - `GET /admin/audit?limit=N` — the audit log of admin actions (audit-log.ts);
 * - actions, each `POST` with the JSON body `{"confirm": "<target>"}` naming the target again
 *   (a guard against a stray or replayed call) and written to the audit log with its outcome:
 *   `POST /admin/jobs/:id/cancel`, `POST /admin/kv/evict` (`{"contextKey", "confirm"}`),
 *   `POST /admin/hosts/:id/drain`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { StarqError } from '@starq/protocol';
import type { AuditEntry } from './audit-log';
import { actorStatusRows, Supervisor, type ClusterActorRecord } from '@starq/cluster';
import type { Gateway } from './gateway';
import { HttpError, readJsonBody, sendJson, type Req, type Res } from './http';
import { jobTimeline } from './job-timeline';

/** Largest body an admin action takes. */
const ACTION_BODY_LIMIT = 4096;

/** Files of the dashboard, by the name they are served under (`/admin/assets/<name>`). */
const ASSETS: Record<string, string> = {
  'dashboard.js': 'application/javascript; charset=utf-8',
  'charts.js': 'application/javascript; charset=utf-8',
  'dashboard.css': 'text/css; charset=utf-8',
};

/**
 * Same-origin scripts, styles and fetches only; no inline code, no framing, no form posts (the key
 * form is handled in script). The page embeds nothing from elsewhere.
 */
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const STATIC_HEADERS = {
  'Cache-Control': 'no-cache',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

/** An actor as the dashboard lists it. */
export interface AdminActor {
  id: string;
  type: ClusterActorRecord['type'];
  model: string;
  hostname: string;
  pid: number;
  threads: number;
  /** KV bytes held (hosts; last value the actor published). */
  kvBytes: number;
  /** The host's KV limit (STARQ_KV_LIMIT_BYTES); null for query actors. */
  kvLimitBytes: number | null;
  blocks: number;
  busy: boolean;
  /** Taking no new work, handing its blocks / requests over before it exits. */
  draining: boolean;
  /** ONNX Runtime execution provider (`cpu`, `cuda:<device>`); null when the actor did not say. */
  executionProvider: string | null;
  startedAt: number;
  /** null for an actor that is not alive. */
  lastHeartbeatMsAgo: number | null;
  /** `alive`, or — from a cluster-up supervisor — `starting`, `restarting`, `dead`. */
  state: 'alive' | 'starting' | 'restarting' | 'dead';
  /** Restarts of a supervised actor so far. */
  restarts: number;
  /** How its last incarnation ended (`killed by SIGKILL`, `exit 1`), for a supervised actor. */
  lastExit: string | null;
}

function intParam(raw: unknown, name: string, def: number, max: number): number {
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new HttpError(400, 'invalid_value', `${name} must be an integer in [1, ${max}]`, name);
  return n;
}

export class AdminApi {
  private readonly files = new Map<string, Buffer>();
  private readonly startedAt = Date.now();

  constructor(private readonly gw: Gateway, private readonly dir = path.join(__dirname, 'admin')) {}

  /** A dashboard file, read once. */
  private file(name: string): Buffer {
    let b = this.files.get(name);
    if (!b) {
      b = fs.readFileSync(path.join(this.dir, name));
      this.files.set(name, b);
    }
    return b;
  }

  /** GET /admin — the dashboard page (no key needed; its data calls need the admin key). */
  page(res: Res): void {
    const body = this.file('index.html');
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': body.length, 'Content-Security-Policy': CSP, 'X-Frame-Options': 'DENY', ...STATIC_HEADERS });
    res.end(body);
  }

  /** GET /admin/assets/:name — the dashboard's script and style sheet. */
  asset(res: Res, name: string): void {
    const type = Object.prototype.hasOwnProperty.call(ASSETS, name) ? ASSETS[name] : undefined;
    if (!type) throw new HttpError(404, 'not_found', `no asset ${JSON.stringify(name)}`);
    const body = this.file(name);
    res.writeHead(200, { 'Content-Type': type, 'Content-Length': body.length, ...STATIC_HEADERS });
    res.end(body);
  }

  /** Live actors and the supervised ones that are down, hosts first. */
  private async actorsView(records: ClusterActorRecord[], now: number): Promise<AdminActor[]> {
    const order: Record<string, number> = { host: 0, query: 1, gateway: 2 };
    const rows = actorStatusRows(records, await Supervisor.list(this.gw.client.redis, this.gw.client.keys).catch(() => []), now);
    const shown = new Set(rows.filter((r) => r.alive).map((r) => r.id));
    const down: AdminActor[] = rows
      .filter((r) => !r.alive)
      .map((r) => ({ id: r.id, type: r.type as AdminActor['type'], model: '', hostname: r.hostname, pid: r.pid ?? 0, threads: 0, kvBytes: 0, kvLimitBytes: null, blocks: 0, busy: false, draining: false, executionProvider: null, startedAt: 0, lastHeartbeatMsAgo: null, state: r.state, restarts: r.restarts, lastExit: r.lastExit }));
    const live: AdminActor[] = records
      .filter((a) => shown.has(a.id))
      .map((a) => ({
        id: a.id,
        type: a.type,
        model: a.capacity.model,
        hostname: a.hostname,
        pid: a.pid,
        threads: a.capacity.threads,
        kvBytes: a.status.kvBytes,
        kvLimitBytes: a.type === 'host' ? a.capacity.freeKvBytes : null,
        blocks: a.status.blocks,
        busy: a.status.busy,
        draining: a.status.draining === true,
        executionProvider: a.capacity.executionProvider ? (a.capacity.executionProvider === 'cuda' ? `cuda:${a.capacity.cudaDeviceId ?? 0}` : a.capacity.executionProvider) : null,
        startedAt: a.startedAt,
        lastHeartbeatMsAgo: Math.max(0, now - a.heartbeatAt),
        state: 'alive' as const,
        restarts: 0,
        lastExit: null,
      }));
    return [...live, ...down].sort((a, b) => (order[a.type] ?? 3) - (order[b.type] ?? 3) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** GET /admin/overview?jobs=N — everything the dashboard shows, in one call. */
  async overview(req: Req, res: Res, jobsRaw: unknown): Promise<void> {
    this.gw.auth.authenticate(req, 'admin');
    const n = intParam(jobsRaw, 'jobs', 25, 200);
    const [records, queues, jobs] = await Promise.all([this.gw.client.actors(), this.gw.client.queueCounts(), this.gw.jobs.recent(n, (o) => this.gw.auth.ownerLabel(o))]);
    const now = Date.now();
    sendJson(res, 200, {
      object: 'admin.overview',
      now,
      gateway: {
        id: this.gw.cfg.gatewayId,
        pid: process.pid,
        model: this.gw.modelId,
        prefix: this.gw.cfg.prefix,
        startedAt: this.startedAt,
        jobsInFlight: this.gw.jobs.inFlight.size,
        maxQueue: this.gw.cfg.maxQueue,
      },
      actors: await this.actorsView(records, now),
      queues,
      jobs,
    });
  }

  /** GET /admin/jobs?limit=N — recent jobs of every owner, newest first. */
  async jobs(req: Req, res: Res, limitRaw: unknown): Promise<void> {
    this.gw.auth.authenticate(req, 'admin');
    const limit = intParam(limitRaw, 'limit', 50, 1000);
    sendJson(res, 200, { object: 'list', data: await this.gw.jobs.recent(limit, (o) => this.gw.auth.ownerLabel(o)) });
  }

  /** GET /admin/jobs/:id — one job of any owner, with its owner and sizes. */
  async job(req: Req, res: Res, id: string): Promise<void> {
    const who = this.gw.auth.authenticate(req, 'admin');
    const meta = await this.gw.jobs.meta(id, who);
    sendJson(res, 200, await this.gw.jobs.adminView(meta, (o) => this.gw.auth.ownerLabel(o)));
  }

  /** GET /admin/cluster — live actors (registry records) and queue counts. */
  async cluster(req: Req, res: Res): Promise<void> {
    this.gw.auth.authenticate(req, 'admin');
    const [actors, queues] = await Promise.all([this.gw.client.actors(), this.gw.client.queueCounts()]);
    sendJson(res, 200, { model: this.gw.modelId, prefix: this.gw.cfg.prefix, actors, queues, gatewayJobsInFlight: this.gw.jobs.inFlight.size });
  }

  /** GET /admin/jobs/:id/timeline — plan, block encodes per host, events and per-token latencies. */
  async timeline(req: Req, res: Res, id: string): Promise<void> {
    const who = this.gw.auth.authenticate(req, 'admin');
    const meta = await this.gw.jobs.meta(id, who);
    sendJson(res, 200, await jobTimeline(this.gw.client, meta));
  }

  /** GET /admin/kv — where the KV lives. */
  async kvMap(req: Req, res: Res): Promise<void> {
    this.gw.auth.authenticate(req, 'admin');
    const recent = await this.gw.jobs.recentMeta(500);
    sendJson(res, 200, await this.gw.kv.map(recent));
  }

  /** GET /admin/history?span=MS — one point per history bucket, oldest first. */
  async history(req: Req, res: Res, spanRaw: unknown): Promise<void> {
    this.gw.auth.authenticate(req, 'admin');
    const span = intParam(spanRaw, 'span', this.gw.history.keepMs, this.gw.history.keepMs);
    sendJson(res, 200, await this.gw.history.read(span));
  }

  /** GET /admin/audit?limit=N — admin actions, newest first. */
  async auditLog(req: Req, res: Res, limitRaw: unknown): Promise<void> {
    this.gw.auth.authenticate(req, 'admin');
    const limit = intParam(limitRaw, 'limit', 100, 1000);
    sendJson(res, 200, { object: 'list', data: await this.gw.audit.list(limit) });
  }

  /** POST /admin/jobs/:id/cancel {"confirm": id}. */
  async cancelJob(req: Req, res: Res, id: string): Promise<void> {
    const who = this.gw.auth.authenticate(req, 'admin');
    await this.confirmed(req, id);
    await this.act(res, 'cancel_job', id, async () => {
      const v = await this.gw.jobs.cancel(id, who, 'cancelled by an administrator');
      return { detail: `status ${v.status}`, body: v };
    });
  }

  /** POST /admin/kv/evict {"contextKey", "confirm": contextKey}. */
  async evict(req: Req, res: Res): Promise<void> {
    this.gw.auth.authenticate(req, 'admin');
    const body = await readJsonBody(req, ACTION_BODY_LIMIT);
    const key = body.contextKey;
    if (typeof key !== 'string' || key.length === 0 || key.length > 1000) throw new HttpError(400, 'invalid_value', 'contextKey must be a non-empty string (a context key from GET /admin/kv)', 'contextKey');
    if (body.confirm !== key) throw new HttpError(400, 'confirmation_required', 'set "confirm" to the contextKey to confirm the eviction', 'confirm');
    await this.act(res, 'evict_context', key, async () => {
      const r = await this.gw.kv.evict(key);
      const blocks = r.hosts.reduce((s, h) => s + h.blocks, 0);
      const bytes = r.hosts.reduce((s, h) => s + h.bytes, 0);
      if (blocks === 0 && r.staleHandlesRemoved === 0) throw new HttpError(404, 'context_not_found', `no host holds blocks of context ${JSON.stringify(key)}`, 'contextKey');
      return { detail: `${blocks} block(s), ${bytes} bytes freed on ${r.hosts.length} host(s); ${r.staleHandlesRemoved} stale handle(s) removed`, body: { object: 'kv.eviction', ...r } };
    });
  }

  /** POST /admin/hosts/:id/drain {"confirm": id}. */
  async drain(req: Req, res: Res, hostId: string): Promise<void> {
    this.gw.auth.authenticate(req, 'admin');
    await this.confirmed(req, hostId);
    await this.act(res, 'drain_host', hostId, async () => {
      const r = await this.gw.drainHost(hostId);
      return { detail: r.detail, body: { object: 'host.drain', hostId, ...r } };
    });
  }

  /** The body must be {"confirm": target}. */
  private async confirmed(req: Req, target: string): Promise<void> {
    const body = await readJsonBody(req, ACTION_BODY_LIMIT);
    if (body.confirm !== target) throw new HttpError(400, 'confirmation_required', `set "confirm" to ${JSON.stringify(target)} to confirm this action`, 'confirm');
  }

  /** Runs an action, writes its outcome to the audit log, answers with its body (or its error). */
  private async act(res: Res, action: AuditEntry['action'], target: string, run: () => Promise<{ detail: string; body: unknown }>): Promise<void> {
    try {
      const r = await run();
      await this.gw.audit.record({ actor: 'admin key', action, target, outcome: 'ok', detail: r.detail });
      sendJson(res, 200, r.body);
    } catch (e) {
      const code = e instanceof StarqError ? e.code : 'internal_error';
      await this.gw.audit.record({ actor: 'admin key', action, target, outcome: 'error', detail: `[${code}] ${(e as Error).message}` }).catch(() => undefined);
      throw e;
    }
  }
}

