/**
 * Admin routes: the dashboard page (`GET /admin`, static HTML/JS/CSS from ./admin, served without a
 * key — it holds no secrets and asks the user for the admin key) and the JSON endpoints it polls,
 * which all need the admin key:
 *
 * - `GET /admin/overview?jobs=N` — one snapshot for the dashboard: live actors (registry records:
 *   pid/host, threads, KV bytes used and limit, blocks, last heartbeat age), BullMQ queue counts,
 *   the N most recent jobs of every owner;
 * - `GET /admin/jobs?limit=N`, `GET /admin/jobs/:id` — recent jobs / one job, with owner and sizes;
 * - `GET /admin/cluster` — live actors (raw registry records) and queue counts.
 *
 * Cancelling goes through the native `DELETE /v1/jobs/:id`, where the admin key may cancel any
 * job.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ClusterActorRecord } from '@starq/cluster';
import type { Gateway } from './gateway';
import { HttpError, sendJson, type Req, type Res } from './http';

/** Files of the dashboard, by the name they are served under (`/admin/assets/<name>`). */
const ASSETS: Record<string, string> = {
  'dashboard.js': 'application/javascript; charset=utf-8',
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
  startedAt: number;
  lastHeartbeatMsAgo: number;
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

  private actorsView(records: ClusterActorRecord[], now: number): AdminActor[] {
    const order = { host: 0, query: 1, gateway: 2 } as const;
    return [...records]
      .sort((a, b) => order[a.type] - order[b.type] || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
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
        startedAt: a.startedAt,
        lastHeartbeatMsAgo: Math.max(0, now - a.heartbeatAt),
      }));
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
      actors: this.actorsView(records, now),
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
}
