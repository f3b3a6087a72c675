/**
 * Submitting generation requests to a starq cluster and following them (used by `starq generate
 * --redis`, `starq submit` and the gateway).
 *
 * A request becomes a BullMQ flow: the parent job (queue `requests`, taken by a query actor)
 * waits for its children (queue `blocks`, one per Star block still to encode, taken by any free
 * host). Blocks whose KV handle points at a live host are reused and get no job. The context's
 * token ids are stored once in Redis; jobs carry only its hash and token ranges. Progress, tokens
 * and the result arrive on the request's event stream.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { FlowJob, FlowProducer, Job, Queue } from 'bullmq';
import { blockCacheId, planMode, privateBlockKey, type Mode, type StarPlan } from '@starq/attention';
import { CapacityError, InvalidInputError, RedisKeys, StarqError, contextHash, contextKey } from '@starq/protocol';
import { createFlowProducer, createQueue, createRedis, duplicateRedis, jobFailure } from '@starq/actors';
import { checkPositions } from '@starq/model/positions';
import { storeContextIds } from './context-store';
import { ClusterRegistry, type ClusterActorRecord } from './registry';
import { describeFailure, documentedFailure, failedChildKey, statusOfJobError, type FailureFacts } from './failure';
import type { BlockJobData, RequestEvent, RequestJobData, RequestResult, SamplingData } from './jobs';
import { KvDirectory } from './kv-directory';
import { ActorWaitDeadline, DEFAULT_ACTOR_WAIT_MS, failRequest, missingActor, requestCancelKey } from './actor-wait';

export interface SubmitRequest {
  model: string;
  mode: Mode;
  blockSize?: number | null;
  anchorSize?: number | null;
  hosts?: number | null;
  contextIds: number[];
  queryIds: number[];
  maxNewTokens: number;
  sampling: SamplingData;
  stopIds: number[];
  ignoreEos?: boolean;
  /**
   * Keep the KV blocks for later requests on the same context. False: the blocks this request
   * encodes are private to it (`privateBlockKey`: no other request finds them) and released when
   * it ends; shared blocks already cached are still reused (and kept). @defaultValue true
   */
  cache?: boolean;
  /** Use this request id (must be unique). @defaultValue random UUID */
  requestId?: string;
}

export interface Submission {
  requestId: string;
  plan: StarPlan;
  /** Identity of the encoded context: block k's cache id is `blockCacheId(contextKey, k)`. */
  contextKey: string;
  blocksToEncode: number;
  blocksReused: number;
}

export interface StarqClientOptions {
  /** Key prefix of the cluster. @defaultValue 'starq' */
  prefix?: string;
  /** How long a context's token ids stay in Redis. @defaultValue 86400 s */
  contextTtlSeconds?: number;
  /** The flag or variable the URL came from, named when Redis is unreachable. @defaultValue none */
  urlSource?: string;
  /**
   * How long a request may wait for a missing actor kind (no live query actor or host) before
   * {@link StarqClient.wait} (and the gateway) fail it with `query_actor_unavailable` /
   * `host_unavailable`; the cluster's actors enforce their own STARQ_ACTOR_WAIT_MS as well
   * (actor-wait.ts). @defaultValue 60000
   */
  actorWaitMs?: number;
}

/** Why a request job failed. */
export interface RequestFailure {
  code: string;
  message: string;
  param: string | null;
  /**
   * True when the failure is an error record written by a starq process; false for BullMQ's own
   * reasons (e.g. a job that stalled too often), which failure.ts turns into a documented code.
   */
  recorded: boolean;
}

export class RequestFailedError extends StarqError {
  constructor(code: string, message: string, param: string | null = null, status = 500) {
    super(code, message, { param, status });
  }
}

/** Attempts of a block job (backoff 0.5 s, 1 s) before it fails its request. */
const BLOCK_JOB_ATTEMPTS = 3;

export class StarqClient {
  readonly keys: RedisKeys;
  readonly registry: ClusterRegistry;
  readonly directory: KvDirectory;
  private readonly flows: FlowProducer;
  readonly requests: Queue;
  readonly blocks: Queue;
  /** The actor-wait deadline this client enforces on the requests it follows. */
  readonly actorWait: ActorWaitDeadline;

  private constructor(readonly redis: Redis, private readonly bull: Redis, private readonly opts: Required<StarqClientOptions>) {
    this.keys = new RedisKeys(opts.prefix);
    this.registry = new ClusterRegistry(redis, { keys: this.keys });
    this.directory = new KvDirectory(redis, this.keys);
    this.flows = createFlowProducer({ connection: bull, prefix: this.keys.bullPrefix });
    this.requests = createQueue(this.keys.queues.requests, { connection: bull, prefix: this.keys.bullPrefix });
    this.blocks = createQueue(this.keys.queues.blocks, { connection: bull, prefix: this.keys.bullPrefix });
    this.actorWait = new ActorWaitDeadline({ redis, keys: this.keys, requests: this.requests, limitMs: opts.actorWaitMs });
  }

  /** True while both Redis connections are up (false during an outage, while they reconnect). */
  get connected(): boolean {
    return this.redis.status === 'ready' && this.bull.status === 'ready';
  }

  static async connect(url: string, opts: StarqClientOptions = {}): Promise<StarqClient> {
    const redis = await createRedis(url, { connectionName: 'starq-client', urlSource: opts.urlSource });
    const bull = await createRedis(url, { forBullmq: true, connectionName: 'starq-client-bull', urlSource: opts.urlSource });
    return new StarqClient(redis, bull, { prefix: opts.prefix ?? 'starq', contextTtlSeconds: opts.contextTtlSeconds ?? 86400, urlSource: opts.urlSource ?? '', actorWaitMs: opts.actorWaitMs ?? DEFAULT_ACTOR_WAIT_MS });
  }

  /** Live actors, optionally of one type. */
  actors(type?: ClusterActorRecord['type']): Promise<ClusterActorRecord[]> {
    return this.registry.list(type);
  }

  /** Validate, store the context, enqueue the flow. */
  async submit(req: SubmitRequest): Promise<Submission> {
    const plan = planMode(req.mode, req.contextIds.length, req);
    const hosts = await this.registry.list('host');
    const queryActors = await this.registry.list('query');
    if (hosts.length === 0 || queryActors.length === 0) {
      throw new RequestFailedError('cluster_unavailable', `the cluster has ${hosts.length} live host actors and ${queryActors.length} query actors; need at least one of each (start one with \`starq cluster up\`)`, null, 503);
    }
    // `hosts` above the live host count is accepted: it shapes the plan only (how blocks group);
    // any free host takes each block job, and ring mode deals its blocks round-robin over the live
    // hosts, so at most the live hosts hold the blocks (`RequestResult.hosts` says how many did).
    // A client that always asks for N hosts keeps working while one of them restarts or drains.
    const models = new Set([...hosts, ...queryActors].map((a) => a.capacity.model));
    if (!models.has(req.model)) {
      throw new InvalidInputError('unknown_model', `model ${JSON.stringify(req.model)} is not served by this cluster (served: ${[...models].join(', ')})`, 'model');
    }
    const maxPositions = Math.min(...hosts.map((h) => h.capacity.maxPositions ?? Infinity));
    checkPositions({ contextTokens: req.contextIds.length, queryTokens: req.queryIds.length, maxNewTokens: req.maxNewTokens }, maxPositions);
    const capacity = hosts.reduce((s, h) => s + Math.max(0, h.capacity.freeKvBytes), 0);
    const need = estimateKvBytes(hosts[0], req.contextIds.length);
    if (need !== null && capacity > 0 && need > capacity) {
      throw new CapacityError('context_over_capacity', `the context needs about ${need} bytes of KV cache but the cluster's hosts have ${capacity} bytes free`, 'context');
    }
    const requestId = req.requestId ?? randomUUID();
    const hash = contextHash(req.contextIds);
    const key = contextKey({ model: req.model, mode: req.mode === 'star' ? 'star' : 'exact', blockSize: plan.blockSize, anchorSize: plan.anchorSize, contextIds: req.contextIds });
    await storeContextIds(this.redis, this.keys, hash, req.contextIds, this.opts.contextTtlSeconds);

    // Blocks already encoded on a live host are reused; ring mode encodes in the query actor.
    const alive = new Set(hosts.map((h) => h.id));
    const cacheIds = plan.blocks.map((b) => blockCacheId(key, b.index));
    const handles = req.mode === 'ring' ? cacheIds.map(() => null) : await this.directory.getMany(cacheIds);
    const missing = req.mode === 'ring' ? [] : plan.blocks.filter((b, i) => !handles[i] || !alive.has(handles[i]!.hostId));
    // cache: false encodes what is missing under the request's private key (never the shared ids).
    const encodeKey = req.cache === false ? privateBlockKey(key, requestId) : key;
    const data: RequestJobData = {
      requestId,
      model: req.model,
      mode: req.mode,
      blockSize: req.blockSize ?? null,
      anchorSize: req.anchorSize ?? null,
      hosts: req.hosts ?? null,
      contextHash: hash,
      contextLength: req.contextIds.length,
      contextKey: key,
      queryIds: req.queryIds,
      maxNewTokens: req.maxNewTokens,
      sampling: req.sampling,
      stopIds: req.stopIds,
      ignoreEos: !!req.ignoreEos,
      cache: req.cache ?? true,
      encodedBlocks: missing.map((b) => b.index),
      submittedAt: Date.now(),
    };
    const children: FlowJob[] = missing.map((b) => {
      const child: BlockJobData = {
        requestId,
        model: req.model,
        cacheId: encodeKey === key ? cacheIds[b.index] : blockCacheId(encodeKey, b.index),
        contextHash: hash,
        contextLength: req.contextIds.length,
        blockIndex: b.index,
        blockSize: plan.blockSize,
        anchorSize: plan.anchorSize,
        segments: b.phase1.segments,
        keepFrom: b.phase1.keepFrom,
      };
      // Flows take no queue defaults: a block job that fails for a reason retrying can fix (a host
      // error, Redis down for a moment) is retried (encoding is idempotent); final errors fail at once.
      return { name: 'block', queueName: this.keys.queues.blocks, data: child, opts: { jobId: `${requestId}-b${b.index}`, failParentOnFailure: true, attempts: BLOCK_JOB_ATTEMPTS, backoff: { type: 'exponential', delay: 500 } } };
    });
    // priority: a flow parent whose children finish is moved to the front of `wait` (LIFO under load:
    // the oldest request could starve behind newer ones); prioritized jobs of equal priority are FIFO.
    await this.flows.add({
      name: 'request',
      queueName: this.keys.queues.requests,
      data,
      opts: { jobId: requestId, attempts: 1, priority: 1 },
      children,
    });
    return { requestId, plan, contextKey: key, blocksToEncode: missing.length, blocksReused: plan.numBlocks - missing.length };
  }

  /**
   * Follow a request's events until it finishes. Resolves with the result; rejects with the
   * request's error (or when a block job failed for good). `token` is called once per index, in
   * order: a rerun of the request (after a stall or a query actor's hand-back) sends tokens from
   * index 0 again, and those repeats are skipped; `event` sees every event as written.
   */
  async wait(requestId: string, on: { token?: (id: number, index: number) => void; phase1?: (done: number, total: number) => void; event?: (e: RequestEvent) => void } = {}, timeoutMs = 0): Promise<RequestResult> {
    const stream = this.keys.requestEvents(requestId);
    const reader = duplicateRedis(this.redis, () => undefined); // an outage surfaces as the read's own error
    let last = '0';
    let nextToken = 0; // a rerun (stalled or handed-back request) sends tokens from index 0 again
    const deadline = timeoutMs > 0 ? Date.now() + timeoutMs : Infinity;
    try {
      for (;;) {
        const res = (await reader.xread('COUNT', 100, 'BLOCK', 500, 'STREAMS', stream, last)) as [string, [string, string[]][]][] | null;
        for (const [, entries] of res ?? []) {
          for (const [id, fields] of entries) {
            last = id;
            const e = JSON.parse(fields[1]) as RequestEvent;
            on.event?.(e);
            if (e.type === 'token') {
              if (e.index === nextToken) {
                nextToken++;
                on.token?.(e.id, e.index);
              }
            } else if (e.type === 'phase1') on.phase1?.(e.done, e.total);
            else if (e.type === 'done') return e.result;
            else if (e.type === 'error') {
              const f = documentedFailure(e.error, requestId);
              throw new RequestFailedError(f.code, f.message, f.param, statusOfJobError(f.code));
            }
          }
        }
        if (!res) {
          const job = await this.requests.getJob(requestId);
          const state = job ? await job.getState() : 'unknown';
          if (state === 'failed') {
            const f = await this.requestFailure(job!);
            throw new RequestFailedError(f.code, f.message, f.param, statusOfJobError(f.code));
          }
          if (state === 'unknown' && (await this.redis.exists(stream)) === 0) throw new RequestFailedError('request_not_found', `request ${requestId} does not exist (or expired)`, 'request_id', 404);
          await this.enforceActorWait(requestId, state); // a failure arrives as the stream's error event
          if (Date.now() > deadline) throw new RequestFailedError('request_timeout', `request ${requestId} did not finish within ${timeoutMs} ms (state: ${state})`, null, 504);
        }
      }
    } finally {
      reader.disconnect();
    }
  }

  /**
   * Cancel a request: mark it cancelled (the query actor stops at its next step, or when it takes
   * the request, and releases its KV blocks unless the request asked to cache them), remove its
   * block jobs that no host has started, and end its event stream with a `cancelled` error.
   * Block jobs already running finish (their blocks are released with the request's).
   */
  async cancel(requestId: string, message = `request ${requestId} was cancelled`): Promise<{ blocksFreed: number }> {
    await this.redis.set(requestCancelKey(this.keys, requestId), '1', 'EX', 86400);
    let blocksFreed = 0;
    const job = await this.requests.getJob(requestId);
    if (job) {
      const pending = async () => (await job.getDependenciesCount({ unprocessed: true }).catch(() => ({ unprocessed: 0 }))).unprocessed ?? 0;
      const before = await pending();
      await job.removeUnprocessedChildren().catch(() => undefined); // skips children a host holds (locked)
      blocksFreed = before - (await pending());
    }
    const stream = this.keys.requestEvents(requestId);
    const e: RequestEvent = { type: 'error', error: { code: 'cancelled', message, param: null } };
    await this.redis.multi().xadd(stream, '*', 'e', JSON.stringify(e)).expire(stream, 86400).exec();
    return { blocksFreed };
  }

  /**
   * Why a failed request job failed, as a documented job error (failure.ts): the error of the
   * block job that failed it (a request fails when one of its block jobs fails for good), else the
   * request job's own. BullMQ's own reasons get a code and a message naming the actors that held
   * the job (from the request's `started` / `requeued` events and BullMQ's processedBy).
   */
  async requestFailure(job: Job): Promise<RequestFailure> {
    const id = String(job.id);
    let reason = job.failedReason || null;
    let facts: FailureFacts = { requestId: id, job: 'request' };
    let holder = job.processedBy ?? null;
    let stalls = job.stalledCounter ?? null;
    const childKey = reason ? failedChildKey(reason) : null;
    const failedChildren = (await job.getDependencies({ failed: { count: 10 } }).catch(() => ({ failed: [] as string[] }))).failed ?? [];
    const blockKey = `${this.blocks.qualifiedName}:`;
    for (const key of childKey ? [childKey, ...failedChildren] : failedChildren) {
      if (!key.startsWith(blockKey)) continue;
      const child = await this.blocks.getJob(key.slice(blockKey.length));
      if (!child?.failedReason) continue;
      reason = child.failedReason;
      facts = { requestId: id, job: 'block', block: (child.data as BlockJobData | undefined)?.blockIndex ?? null };
      holder = child.processedBy ?? null;
      stalls = child.stalledCounter ?? null;
      break;
    }
    const record = jobFailure(reason);
    if (record) return { ...documentedFailure({ code: record.code, message: record.message, param: record.param }, id), recorded: true };
    if (reason !== null && !failedChildKey(reason) && /stalled|lock|active state/i.test(reason)) {
      facts.actors = await this.holders(id, facts, holder);
      facts.stalls = stalls;
    }
    return { ...describeFailure(reason || null, facts), recorded: false };
  }

  /** Actors that held a request's job (or one of its block jobs), oldest first, from its events and BullMQ's processedBy. */
  private async holders(requestId: string, facts: FailureFacts, last: string | null): Promise<string[]> {
    const out: string[] = [];
    const add = (a: string | null | undefined) => a && !out.includes(a) && out.push(a);
    const entries = (await this.redis.xrange(this.keys.requestEvents(requestId), '-', '+').catch(() => [])) as [string, string[]][];
    for (const [, fields] of entries) {
      let e: RequestEvent;
      try {
        e = JSON.parse(fields[1]) as RequestEvent;
      } catch {
        continue;
      }
      if (facts.job === 'request' && e.type === 'started') add(e.queryActor);
      if (e.type === 'requeued' && e.job === facts.job && (facts.job === 'request' || e.block === facts.block)) add(e.actor);
    }
    add(last);
    return out;
  }

  /**
   * End a request with an error from outside its actors (e.g. no query actor came in time): the
   * first of cancel/fail to mark the request decides; later calls do nothing (see `failRequest`).
   * @returns false when the request was already cancelled or failed this way.
   */
  async fail(requestId: string, error: { code: string; message: string; param: string | null }): Promise<boolean> {
    return failRequest(this.redis, this.keys, this.requests, requestId, error);
  }

  /**
   * What a request in BullMQ state `state` waits for (no live actor of a kind it needs), recorded
   * for the actor-wait deadline; fails the request past the deadline (actor-wait.ts).
   * @returns what it waits for, or null.
   */
  async enforceActorWait(requestId: string, state: string): Promise<string | null> {
    const waiting = missingActor(state, await this.registry.list());
    await this.actorWait.check(requestId, waiting);
    return waiting;
  }

  /** Queue counts (for tests and the dashboard); `waiting` includes BullMQ's `prioritized` state. */
  async queueCounts(): Promise<{ blocks: Record<string, number>; requests: Record<string, number> }> {
    const counts = async (q: Queue) => {
      const c = await q.getJobCounts('waiting', 'prioritized', 'active', 'completed', 'failed', 'delayed', 'waiting-children');
      const { prioritized, ...rest } = c;
      return { ...rest, waiting: (rest.waiting ?? 0) + (prioritized ?? 0) };
    };
    return { blocks: await counts(this.blocks), requests: await counts(this.requests) };
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.flows.close(), this.requests.close(), this.blocks.close()]);
    this.redis.disconnect();
    this.bull.disconnect();
  }
}

/** Bytes of KV for N context tokens, from a host's advertised per-token size (null if unknown). */
function estimateKvBytes(host: ClusterActorRecord | undefined, tokens: number): number | null {
  const perToken = host?.capacity.kvBytesPerToken;
  return perToken ? perToken * tokens : null;
}
