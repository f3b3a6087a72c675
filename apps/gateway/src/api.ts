/**
 * Route handlers of the native API, the probes and metrics (plain functions of the request and
 * response; the Nest controller only maps URLs to them). The OpenAI-compatible routes are in
 * openai.ts, the admin dashboard and its endpoints in admin-api.ts.
 */
import { randomUUID } from 'node:crypto';
import type { Gateway } from './gateway';
import { HttpError, readBody, sendError, sendJson, type Req, type Res } from './http';
import { serveJobEvents } from './job-events';
import type { JobInput } from './jobs';
import { NATIVE_PARAMS, withParams } from './params';
import type { JobBody } from './schemas';

/** Runs a handler; any error becomes the JSON error response. */
export async function guard(res: Res, fn: () => Promise<void> | void): Promise<void> {
  try {
    await fn();
  } catch (e) {
    if (!res.headersSent) sendError(res, e);
    else res.end();
  }
}

export class NativeApi {
  constructor(private readonly gw: Gateway) {}

  private get jobs() {
    return this.gw.jobs;
  }

  health(res: Res): void {
    sendJson(res, 200, { status: 'ok' });
  }

  async ready(res: Res): Promise<void> {
    const r = await this.gw.readiness();
    if (r.ready) return sendJson(res, 200, { status: 'ready', redis: true, hosts: r.hosts, queryActors: r.queryActors });
    const why = r.draining ? 'this gateway is draining (shutting down): it takes no new jobs' : !r.redis ? 'Redis is not reachable' : `the cluster has ${r.hosts} live host actors and ${r.queryActors} query actors; need at least one of each`;
    sendJson(res, 503, { status: r.draining ? 'draining' : 'not_ready', redis: r.redis, hosts: r.hosts, queryActors: r.queryActors, error: { code: 'not_ready', message: why, param: null, type: 'server_error' } });
  }

  async metrics(res: Res): Promise<void> {
    const m = await this.gw.metrics.render();
    res.writeHead(200, { 'Content-Type': m.contentType });
    res.end(m.body);
  }

  /** POST /v1/jobs → 202 with the job. */
  async create(req: Req, res: Res): Promise<void> {
    const who = this.gw.auth.authenticate(req, 'user');
    const got = await this.gw.intake.run('job', await readBody(req, this.gw.cfg.maxBodyBytes));
    const b = got.body as Omit<JobBody, 'prompt' | 'context' | 'query' | 'contextIds' | 'queryIds'>;
    if (b.model !== undefined && b.model !== this.gw.modelId) {
      throw new HttpError(404, 'model_not_found', `model ${JSON.stringify(b.model)} is not served here (served: ${this.gw.modelId})`, 'model');
    }
    const input: JobInput = {
      kind: 'job',
      contextIds: Array.from(got.contextIds),
      queryIds: Array.from(got.queryIds),
      mode: b.mode,
      blockSize: b.blockSize,
      anchorSize: b.anchorSize,
      hosts: b.hosts,
      maxNewTokens: b.maxNewTokens,
      sampling: { temperature: b.temperature, topP: b.topP, topK: b.topK, seed: b.seed },
      ignoreEos: b.ignoreEos,
      cache: b.cache,
    };
    const meta = await withParams(NATIVE_PARAMS, () => this.jobs.submit(input, who, randomUUID(), { context: got.contextParam, maxNewTokens: 'maxNewTokens' }));
    this.gw.metrics.jobSubmitted(meta);
    sendJson(res, 202, await this.jobs.view(meta), { Location: `/v1/jobs/${meta.id}` });
  }

  async get(req: Req, res: Res, id: string): Promise<void> {
    const who = this.gw.auth.authenticate(req, 'user');
    sendJson(res, 200, await this.jobs.get(id, who));
  }

  async cancel(req: Req, res: Res, id: string): Promise<void> {
    const who = this.gw.auth.authenticate(req, 'user');
    sendJson(res, 200, await this.jobs.cancel(id, who));
  }

  /**
   * GET /v1/jobs/:id/events — SSE: `job` (snapshot), `progress` (phase-1 blocks, status changes;
   * one with status `generating` always precedes the first token), `token` (each generated token,
   * in order, with its text delta), `recovered`, `requeued` (an actor running the job or one of its
   * blocks died; the job went back to the queue), `waiting` (`{waiting}`: what the job waits for, or
   * null once it moves again), and finally `result` (the completed job) or
   * `error` (failed or cancelled: `{error, job}`). A new reader gets the events from the job's
   * start; every event has an `id:`, and a reader that reconnects with `Last-Event-ID` (or
   * `?lastEventId=`) gets the events after it (see job-events.ts).
   */
  events(req: Req, res: Res, id: string): Promise<void> {
    return serveJobEvents(this.gw, req, res, id);
  }
}
