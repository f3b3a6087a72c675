/**
 * Jobs: one generation request on the cluster, submitted through StarqClient (a BullMQ flow of
 * block jobs + the request) and observed through its event stream and BullMQ state. The gateway
 * keeps no job state in memory that a GET needs: a job's record (`<prefix>:gw:job:<id>`, owner,
 * sizes, plan) is in Redis, so any gateway replica can answer for any job.
 *
 * Status: `queued` (no block encoded or being encoded yet) → `encoding` (phase 1, or encoded and
 * waiting for a query actor) → `generating` (a query actor runs phase 2) → `completed` | `failed`
 * | `cancelled`. The status follows the queue's truth: without a terminal event in the job's
 * stream, BullMQ's state decides (a job BullMQ failed is `failed` with its coded reason, whatever
 * its stream says). `waitingFor` says what a job that cannot progress waits for (no live query actor,
 * no live host); a job left waiting longer than STARQ_ACTOR_WAIT_MS is failed with
 * `query_actor_unavailable` / `host_unavailable` (libs/cluster actor-wait.ts: by the gateway
 * following it, and by the cluster's actors whoever submitted it).
 */
import type { Redis } from 'ioredis';
import { planMode, type Mode } from '@starq/attention';
import { describeFailure, documentedFailure, missingActor, requestCancelKey, statusOfJobError, type FailureDescription, type RequestEvent, type RequestFailure, type RequestResult, type SamplingData, type StarqClient } from '@starq/cluster';
import { generationReport, type GenerationReport } from '@starq/model/generation-report';
import { checkPositions, type PositionParams } from '@starq/model/positions';
import type { StarqTokenizer } from '@starq/model/tokenizer';
import { CapacityError, StarqError } from '@starq/protocol';
import type { Principal } from './auth';
import type { EventHub } from './event-hub';
import { entryTime } from './event-hub';
import { HttpError } from './http';

export type JobStatus = 'queued' | 'encoding' | 'generating' | 'completed' | 'failed' | 'cancelled';
export type JobKind = 'job' | 'completion' | 'chat';

/** What to run (already validated and tokenized). */
export interface JobInput {
  kind: JobKind;
  contextIds: number[];
  queryIds: number[];
  mode: Mode;
  blockSize?: number | null;
  anchorSize?: number | null;
  hosts?: number | null;
  maxNewTokens: number;
  sampling: SamplingData;
  ignoreEos: boolean;
  cache: boolean;
}

/** The job record kept in Redis. */
export interface JobMeta {
  id: string;
  kind: JobKind;
  model: string;
  owner: string;
  createdAt: number;
  mode: Mode;
  contextTokens: number;
  queryTokens: number;
  maxNewTokens: number;
  blockSize: number;
  anchorSize: number;
  cache: boolean;
  blocksTotal: number;
  blocksToEncode: number;
  blocksReused: number;
  /** Identity of the encoded context (its blocks' cache ids are `<contextKey>/b<k>`). */
  contextKey?: string;
}

export interface JobView {
  id: string;
  object: 'job';
  kind: JobKind;
  model: string;
  status: JobStatus;
  /** The actor kind an unfinished job waits for because none is alive, e.g. `waiting for a query actor` (null when it can progress). */
  waitingFor: string | null;
  createdAt: number;
  mode: Mode;
  cache: boolean;
  progress: {
    blocks: { done: number; total: number; reused: number; encoded: number };
    tokens: number;
    maxNewTokens: number;
  };
  timings: { elapsedMs: number; phase1Ms: number | null; firstTokenMs: number | null; phase2Ms: number | null; decodeTokensPerSec: number | null };
  result: GenerationReport | null;
  error: { code: string; message: string; param: string | null } | null;
  blocks: { encoded: number; reused: number; recovered: number } | null;
  /**
   * Why phase 2 has not started computing: the query actor's running set is full
   * (`running_set_full`) or its KV budget is taken (`kv_memory`), with the place in its queue;
   * null otherwise.
   */
  waiting: { reason: 'running_set_full' | 'kv_memory'; position: number } | null;
}

/** A job as the admin endpoints show it: the view plus its record's owner and sizes. */
export interface AdminJobView extends JobView {
  /** Fingerprint of the key that created the job. */
  owner: string;
  /** `admin key`, `API key #i`, `anonymous` or `retired key` (see Authenticator.ownerLabel). */
  ownerLabel: string;
  contextTokens: number;
  queryTokens: number;
  blockSize: number;
  anchorSize: number;
}

/** The end of a job as seen by a follower. */
export type Terminal = { kind: 'done'; result: RequestResult } | { kind: 'error'; error: { code: string; message: string; param: string | null } };

export interface Follower {
  done: Promise<Terminal>;
  stop(): void;
}

/** HTTP status of a job that failed with `code` (for requests that wait for the job): the table of libs/cluster failure.ts. */
export { statusOfJobError };

/** Folded contents of a request's event stream. */
interface StreamState {
  tokens: number[];
  startedAt: number | null;
  firstTokenAt: number | null;
  phase1: { done: number; total: number } | null;
  result: RequestResult | null;
  error: Terminal & { kind: 'error' } | null;
  /** The last `queued` event, until an `admitted` one. */
  waiting: { reason: 'running_set_full' | 'kv_memory'; position: number } | null;
}

/** A failed request's error as a job view shows it. */
function failureError(f: RequestFailure): { code: string; message: string; param: string | null } {
  return { code: f.code, message: f.message, param: f.param };
}

function foldEvents(entries: [string, string[]][]): StreamState {
  const st: StreamState = { tokens: [], startedAt: null, firstTokenAt: null, phase1: null, result: null, error: null, waiting: null };
  for (const [id, fields] of entries) {
    if (st.result || st.error) break; // the first terminal event decides
    let e: RequestEvent;
    try {
      e = JSON.parse(fields[fields.indexOf('e') + 1]) as RequestEvent;
    } catch {
      continue;
    }
    if (e.type === 'started') {
      st.startedAt = entryTime(id); // a rerun (requeued request) starts over: its own first token
      st.firstTokenAt = null;
    }
    else if (e.type === 'phase1') st.phase1 = { done: e.done, total: e.total };
    else if (e.type === 'token') {
      if (e.index === 0 && st.firstTokenAt === null && st.startedAt !== null) st.firstTokenAt = entryTime(id);
      st.tokens[e.index] = e.id; // a rerun after a stall re-sends from index 0: same slots
    } else if (e.type === 'done') st.result = e.result;
    else if (e.type === 'error') st.error = { kind: 'error', error: e.error };
  }
  return st;
}

export interface JobServiceOptions {
  modelId: string;
  maxPositions: number;
  maxQueue: number;
  stopIds: number[];
  /** Called once per job submitted by this gateway when it ends (metrics). */
  onFinished?: (meta: JobMeta, t: Terminal) => void;
  /** Called once per job submitted by this gateway when its phase 2 starts. */
  onSubmitted?: (meta: JobMeta) => void;
  /** Every event of a job submitted by this gateway, with its stream entry id (history). */
  onEvent?: (meta: JobMeta, e: RequestEvent, entryId: string) => void;
  /** True while the gateway drains: new jobs are refused with 503 `draining`. @defaultValue never */
  draining?: () => boolean;
}

const META_TTL_S = 7 * 24 * 3600;
const INDEX_MAX = 10000;

export class JobService {
  /** Jobs submitted here and not finished: id → meta and whether phase 2 started. */
  readonly inFlight = new Map<string, { meta: JobMeta; started: boolean }>();

  constructor(
    private readonly client: StarqClient,
    private readonly redis: Redis,
    private readonly hub: EventHub,
    private readonly tokenizer: StarqTokenizer | null,
    private readonly o: JobServiceOptions,
  ) {}

  private metaKey(id: string): string {
    return `${this.client.keys.prefix}:gw:job:${id}`;
  }

  private indexKey(): string {
    return `${this.client.keys.prefix}:gw:jobs`;
  }

  /** Unfinished requests in the cluster (all gateways and CLIs). */
  async queueDepth(): Promise<number> {
    const c = await this.client.requests.getJobCounts('waiting', 'active', 'waiting-children', 'delayed', 'prioritized');
    return Object.values(c).reduce((a, b) => a + b, 0);
  }

  /**
   * Validate against the model and the cluster, enqueue, record. Throws 422 (position limit or KV
   * capacity), 429 (queue full), 503 (no host or query actor), 400 (bad plan options).
   */
  async submit(input: JobInput, who: Principal, id: string, params: PositionParams): Promise<JobMeta> {
    if (this.o.draining?.()) throw new HttpError(503, 'draining', 'this gateway is shutting down and takes no new jobs: retry, another gateway replica will take it');
    const N = input.contextIds.length;
    const M = input.queryIds.length;
    const plan = planMode(input.mode, N, input); // bad sizes → 400 before anything is enqueued
    checkPositions({ contextTokens: N, queryTokens: M, maxNewTokens: input.maxNewTokens }, this.o.maxPositions, params);
    const depth = await this.queueDepth();
    if (depth >= this.o.maxQueue) {
      throw new HttpError(429, 'queue_full', `the cluster has ${depth} unfinished requests, at or over the limit of ${this.o.maxQueue} (STARQ_MAX_QUEUE): retry later`);
    }
    let sub;
    try {
      sub = await this.client.submit({
        requestId: id,
        model: this.o.modelId,
        mode: input.mode,
        blockSize: input.blockSize ?? null,
        anchorSize: input.anchorSize ?? null,
        hosts: input.hosts ?? null,
        contextIds: input.contextIds,
        queryIds: input.queryIds,
        maxNewTokens: input.maxNewTokens,
        sampling: input.sampling,
        stopIds: this.o.stopIds,
        ignoreEos: input.ignoreEos,
        cache: input.cache,
      });
    } catch (e) {
      if (e instanceof StarqError && (e.code === 'context_too_long' || e.code === 'context_over_capacity')) {
        throw new CapacityError(e.code, e.message, params.context);
      }
      throw e;
    }
    const meta: JobMeta = {
      id,
      kind: input.kind,
      model: this.o.modelId,
      owner: who.owner,
      createdAt: Date.now(),
      mode: input.mode,
      contextTokens: N,
      queryTokens: M,
      maxNewTokens: input.maxNewTokens,
      blockSize: plan.blockSize,
      anchorSize: plan.anchorSize,
      cache: input.cache,
      blocksTotal: sub.plan.numBlocks,
      blocksToEncode: sub.blocksToEncode,
      blocksReused: sub.blocksReused,
      contextKey: sub.contextKey,
    };
    await this.redis
      .multi()
      .set(this.metaKey(id), JSON.stringify(meta), 'EX', META_TTL_S)
      .zadd(this.indexKey(), meta.createdAt, id)
      .zremrangebyrank(this.indexKey(), 0, -INDEX_MAX - 1)
      .exec();
    this.track(meta);
    return meta;
  }

  /** Follow a job submitted here until it ends (for metrics), without holding a connection. */
  private track(meta: JobMeta): void {
    const entry = { meta, started: false };
    this.inFlight.set(meta.id, entry);
    const f = this.follow(meta.id, (e, entryId) => {
      if (e.type === 'started') entry.started = true;
      this.o.onEvent?.(meta, e, entryId);
    });
    void f.done.then(async (t) => {
      this.inFlight.delete(meta.id);
      if (t.kind === 'error' && t.error.code === 'redis_unavailable') await this.recordLost(meta, t.error).catch(() => undefined);
      this.o.onFinished?.(meta, t);
    });
  }

  /**
   * Writes back the record and a final error event of a job Redis lost (restarted without
   * persistence), so that GET and the event stream report `redis_unavailable` instead of 404.
   */
  private async recordLost(meta: JobMeta, error: { code: string; message: string; param: string | null }): Promise<void> {
    const stream = this.client.keys.requestEvents(meta.id);
    const e: RequestEvent = { type: 'error', error };
    await this.redis
      .multi()
      .set(this.metaKey(meta.id), JSON.stringify(meta), 'EX', META_TTL_S, 'NX')
      .zadd(this.indexKey(), meta.createdAt, meta.id)
      .xadd(stream, '*', 'e', JSON.stringify(e))
      .expire(stream, 86400)
      .exec();
  }

  /** The job record, if the caller may see it (404 otherwise: other owners' jobs do not exist). */
  async meta(id: string, who: Principal): Promise<JobMeta> {
    const raw = typeof id === 'string' && /^[A-Za-z0-9_.-]{1,200}$/.test(id) ? await this.redis.get(this.metaKey(id)) : null;
    const meta = raw ? (JSON.parse(raw) as JobMeta) : null;
    if (!meta || (!who.admin && meta.owner !== who.owner)) throw new HttpError(404, 'job_not_found', `job ${JSON.stringify(id)} does not exist (or has expired)`, 'id');
    return meta;
  }

  /** Recent jobs of every owner, newest first (admin); expired records are skipped. */
  async recent(limit: number, label: (owner: string) => string = (o) => o): Promise<AdminJobView[]> {
    const metas = await this.recentMeta(limit);
    const views = await Promise.all(metas.map((m) => this.adminView(m, label).catch(() => null)));
    return views.filter((v): v is AdminJobView => v !== null);
  }

  /** Records of the most recent jobs, newest first (admin; expired records skipped). */
  async recentMeta(limit: number): Promise<JobMeta[]> {
    const ids = await this.redis.zrevrange(this.indexKey(), 0, limit - 1);
    if (ids.length === 0) return [];
    const raws = await this.redis.mget(ids.map((id) => this.metaKey(id)));
    return raws.filter((r): r is string => r !== null).map((r) => JSON.parse(r) as JobMeta);
  }

  /** One job with its owner and sizes (admin). */
  async adminView(meta: JobMeta, label: (owner: string) => string = (o) => o): Promise<AdminJobView> {
    const v = await this.view(meta);
    return { ...v, owner: meta.owner, ownerLabel: label(meta.owner), contextTokens: meta.contextTokens, queryTokens: meta.queryTokens, blockSize: meta.blockSize, anchorSize: meta.anchorSize };
  }

  async get(id: string, who: Principal): Promise<JobView> {
    return this.view(await this.meta(id, who));
  }

  /** Current state of a job, from its event stream and BullMQ. */
  async view(meta: JobMeta): Promise<JobView> {
    const stream = this.client.keys.requestEvents(meta.id);
    const [entries, cancelFlag] = await Promise.all([
      this.redis.xrange(stream, '-', '+') as Promise<[string, string[]][]>,
      this.redis.exists(requestCancelKey(this.client.keys, meta.id)),
    ]);
    const st = foldEvents(entries);
    let status: JobStatus;
    let result = st.result;
    let error: FailureDescription | null = st.error ? documentedFailure(st.error.error, meta.id) : null; // every job ends with a documented code
    let encoded = meta.blocksToEncode;
    let waitingFor: string | null = null;
    if (result) status = 'completed';
    else if (error) status = error.code === 'cancelled' ? 'cancelled' : 'failed';
    else if (cancelFlag) status = 'cancelled';
    else {
      // No terminal event: the queue decides (a stalled-out job has no event of its own).
      const q = await this.queueState(meta.id);
      if (q.kind === 'done') {
        status = 'completed';
        result = q.result;
      } else if (q.kind === 'failed') {
        status = 'failed';
        error = q.error;
      } else {
        waitingFor = await this.missingActor(q.state);
        if (st.startedAt !== null || st.tokens.length > 0) status = q.state === 'active' || q.state === 'completed' ? 'generating' : 'encoding';
        else {
          const progress = await this.phase1Progress(meta.id, q.state);
          encoded = progress.encoded;
          status = progress.encoded > 0 || progress.running || q.state === 'waiting' || q.state === 'prioritized' || q.state === 'active' ? 'encoding' : 'queued';
        }
      }
    }
    if ((status === 'cancelled' || status === 'failed') && st.startedAt === null) {
      encoded = (await this.phase1Progress(meta.id).catch(() => ({ encoded: 0 }))).encoded; // how far phase 1 got
    }
    if (meta.mode === 'ring' && st.phase1) encoded = st.phase1.done >= st.phase1.total ? meta.blocksTotal : 0;
    const finished = status === 'completed' || status === 'failed' || status === 'cancelled';
    const now = Date.now();
    const tokens = result ? result.generatedIds.length : st.tokens.length;
    const phase1Ms = result ? result.timings.phase1Ms : st.startedAt !== null ? st.startedAt - meta.createdAt : null;
    const firstTokenMs = result ? result.timings.firstTokenMs : st.firstTokenAt !== null && st.startedAt !== null ? st.firstTokenAt - st.startedAt : null;
    const phase2Started = status === 'generating' || status === 'completed';
    return {
      id: meta.id,
      object: 'job',
      kind: meta.kind,
      model: meta.model,
      status,
      waitingFor: finished ? null : waitingFor,
      createdAt: meta.createdAt,
      mode: meta.mode,
      cache: meta.cache,
      progress: {
        blocks: { done: meta.blocksReused + (phase2Started ? meta.blocksToEncode : encoded), total: meta.blocksTotal, reused: meta.blocksReused, encoded: phase2Started ? meta.blocksToEncode : encoded },
        tokens,
        maxNewTokens: meta.maxNewTokens,
      },
      timings: {
        elapsedMs: (finished && entries.length > 0 ? entryTime(entries[entries.length - 1][0]) : now) - meta.createdAt,
        phase1Ms,
        firstTokenMs,
        phase2Ms: result ? result.timings.phase2Ms : null,
        decodeTokensPerSec: result ? result.timings.decodeTokensPerSec : null,
      },
      result: result ? this.generateJson(result) : null,
      error: status === 'completed' ? null : error,
      blocks: result ? { encoded: result.blocksEncoded, reused: result.blocksReused, recovered: result.blocksRecovered } : null,
      waiting: finished ? null : st.waiting,
    };
  }

  /** The request job's state in BullMQ: finished (with its result or coded failure) or its state name. */
  async queueState(id: string): Promise<{ kind: 'done'; result: RequestResult } | { kind: 'failed'; error: FailureDescription } | { kind: 'open'; state: string }> {
    const job = await this.client.requests.getJob(id);
    const state = job ? await job.getState() : 'unknown';
    if (state === 'completed' && job?.returnvalue) return { kind: 'done', result: job.returnvalue as RequestResult };
    if (state === 'failed' || state === 'unknown') {
      return { kind: 'failed', error: job ? failureError(await this.client.requestFailure(job)) : describeFailure(null, { requestId: id, job: 'request' }) };
    }
    return { kind: 'open', state };
  }

  /** What a job in BullMQ state `state` waits for when no live actor can move it on (actor-wait.ts), or null. */
  async missingActor(state: string): Promise<string | null> {
    return missingActor(state, await this.client.registry.list());
  }

  /**
   * Blocks encoded so far (children processed) and whether a host is encoding one now (a block
   * job of this request among the queue's active jobs: at most one per host, so this stays cheap
   * however many blocks the request has).
   */
  async phase1Progress(id: string, state?: string): Promise<{ encoded: number; running: boolean }> {
    const job = await this.client.requests.getJob(id);
    if (!job) return { encoded: 0, running: false };
    const st = state ?? (await job.getState());
    const c = await job.getDependenciesCount({ processed: true });
    if (st !== 'waiting-children') return { encoded: c.processed ?? 0, running: false };
    const active = await this.client.blocks.getActive(0, 999);
    return { encoded: c.processed ?? 0, running: active.some((j) => (j.data as { requestId?: string } | undefined)?.requestId === id) };
  }

  /** `starq generate --json`'s object for a result (text decoded like the CLI: special tokens kept). */
  generateJson(r: RequestResult): GenerationReport {
    return generationReport(r, this.tokenizer ? this.tokenizer.decode(r.generatedIds, { skipSpecialTokens: false }) : null);
  }

  /**
   * Cancel (idempotent for cancelled jobs). 409 `job_finished` for a job that already completed or
   * failed.
   */
  async cancel(id: string, who: Principal, reason = 'cancelled by the client'): Promise<JobView> {
    const meta = await this.meta(id, who);
    const before = await this.view(meta);
    if (before.status === 'completed' || before.status === 'failed') {
      throw new HttpError(409, 'job_finished', `job ${id} already ${before.status}: nothing to cancel`, 'id');
    }
    if (before.status !== 'cancelled') await this.client.cancel(id, `job ${id} was ${reason}`);
    return this.view(meta);
  }

  /** Cancel a job this gateway is serving (stop sequence reached, client went away). */
  async cancelInternal(id: string, reason: string): Promise<void> {
    await this.client.cancel(id, `job ${id} was ${reason}`).catch(() => undefined);
  }

  /**
   * Follow a job's events until it ends. `onEvent` sees every event after stream entry `from`
   * ('0' = all) up to the terminal one, with its entry id. The job's BullMQ state is looked at
   * after 1 s, then every 1.5 s: it notices a request failed without an event of its own (a block
   * job failed, the job stalled out, Redis lost it), tells `onWaiting` when the job starts or stops
   * waiting for a missing actor kind (see {@link missingActor}), and fails a job that waited longer
   * than STARQ_ACTOR_WAIT_MS (`query_actor_unavailable` / `host_unavailable`).
   */
  follow(id: string, onEvent: (e: RequestEvent, entryId: string) => void = () => undefined, from = '0', onWaiting: (waiting: string | null) => void = () => undefined): Follower {
    let settle!: (t: Terminal) => void;
    let ended = false;
    let watchdog: NodeJS.Timeout | undefined;
    let waiting: string | null = null;
    const done = new Promise<Terminal>((r) => (settle = r));
    const finish = (t: Terminal) => {
      if (ended) return;
      ended = true;
      unsubscribe();
      clearTimeout(watchdog);
      settle(t);
    };
    const unsubscribe = this.hub.subscribe(
      id,
      (e, entryId) => {
        if (ended) return;
        onEvent(e, entryId);
        if (e.type === 'done') finish({ kind: 'done', result: e.result });
        else if (e.type === 'error') finish({ kind: 'error', error: documentedFailure(e.error, id) });
      },
      from,
    );
    const schedule = (delay: number) => {
      watchdog = setTimeout(() => void check().finally(() => !ended && schedule(1500)), delay);
      watchdog.unref();
    };
    const check = () =>
      (async () => {
        const q = await this.queueState(id);
        if (ended) return;
        if (q.kind === 'failed') {
          await new Promise((r) => setTimeout(r, 300)); // let a last error event arrive first
          if (ended) return;
          // A job gone from the queue without a final event is `redis_unavailable` (Redis lost it:
          // starq removes no request job).
          finish({ kind: 'error', error: q.error });
        } else if (q.kind === 'done') {
          await new Promise((r) => setTimeout(r, 300));
          finish({ kind: 'done', result: q.result });
        } else {
          const w = await this.client.enforceActorWait(id, q.state); // past STARQ_ACTOR_WAIT_MS the job fails (its error event ends this follow)
          if (ended) return;
          if (w !== waiting) {
            waiting = w;
            onWaiting(w);
          }
        }
      })().catch(() => undefined);
    schedule(1000);
    return { done, stop: () => finish({ kind: 'error', error: { code: 'unsubscribed', message: 'stopped following', param: null } }) };
  }
}
