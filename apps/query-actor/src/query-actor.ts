/**
 * A query actor process: the cluster adapter of the serving loop (libs/model serving/). It takes
 * request jobs (flow parents, released by BullMQ once their block jobs are done), finds each
 * request's blocks (KV directory; Ring mode runs its phase 1 here), and submits the request to one
 * `ServingLoop` that advances every running request together — per layer one engine call for all
 * their rows and one `attendMany` actor call per host — streaming each request's tokens and
 * serving events to its event stream.
 *
 * Faults: lost hosts and lost blocks are the loop's recovery (`ClusterBlockLocator` re-encodes on
 * live hosts, the failed step is rolled back and retried); cancellation (`StarqClient.cancel`) is
 * polled and aborts the request, which leaves the running set at the next step. Draining: no new
 * jobs; requests still running when the drain timeout nears leave the loop and go back to the
 * queue.
 */
import { WaitingError, type Job, type Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { blockCacheId, HostCallError, isPrivateOf, planMode, privateBlockKey, ringPhase1, type ContextPlacement, type StarPlan } from '@starq/attention';
import { ActorClient, createWorker, failJob } from '@starq/actors';
import {
  ActorBoot,
  classifyActorFailure,
  ClusterBlockLocator,
  ClusterRegistry,
  fetchContextIds,
  isRedisDown,
  jobErrorOf,
  KvDirectory,
  RemoteHost,
  requestCancelKey,
  StarqReaper,
  statusOfJobError,
  validateRequestJob,
  type ActorConfig,
  type ClusterContext,
  type RequestEvent,
  type RequestJobData,
  type RequestResult,
} from '@starq/cluster';
import { loadConfig } from '@starq/model/config';
import { ModelEngine } from '@starq/model/runtime/engine';
import type { ExecutionProviderChoice } from '@starq/model/runtime/execution-provider';
import { encodeCacheId, type Relocation } from '@starq/model/serving/block-locator';
import { EngineQueryBackend } from '@starq/model/serving/query-backend';
import { RequestCancelledError, ServingLoop } from '@starq/model/serving/serving-loop';
import type { ModelConfig } from '@starq/model/types';
import { ProtocolError, RedisKeys, StarqError } from '@starq/protocol';
import { EventWriter } from './event-writer';
import { PacedQueryBackend } from './paced-query-backend';
import { QueryMetrics } from './query-metrics';

/** The host a placement puts a block cache on ('' when none). */
function hostOfBlock(placement: ContextPlacement[], cacheId: string): string {
  return placement.find((p) => p.cacheIds.includes(cacheId))?.host.id ?? '';
}

/** How often a running request's cancel flag is checked. */
const CANCEL_POLL_MS = 200;
/** Most often a running request's job progress (tokens generated) is written to BullMQ. */
const PROGRESS_EVERY_MS = 1000;
/** Most often the serving statistics are published in the registry. */
const STATUS_EVERY_MS = 1000;

/** A running request's rejection when the drain timeout runs out: the job goes back to the queue. */
class HandBack extends Error {
  constructor(requestId: string) {
    super(`request ${requestId} handed back to the queue: this query actor is draining`);
    this.name = 'HandBack';
  }
}

/**
 * This actor no longer holds the request's job: its lock was taken away (the reaper requeued it
 * while this process looked dead, e.g. paused) and another query actor runs it. Stop quietly: the
 * other run owns the request's events.
 */
export class JobLockLostError extends StarqError {
  constructor(requestId: string) {
    super('job_lock_lost', `request ${requestId} was requeued while this query actor looked dead; another query actor runs it`, { status: 409 });
  }
}

/** Placement attempts before phase 2 when hosts die while lost blocks are re-encoded. */
const FIRST_PLACEMENT_TRIES = 4;

/** Time kept at the end of a drain to move running requests back to the queue. */
const HAND_BACK_MARGIN_MS = 3000;

export class QueryActor {
  private redis!: Redis;
  private bull!: Redis;
  private engine!: ModelEngine;
  private registry!: ClusterRegistry;
  private client!: ActorClient;
  private worker!: Worker;
  private directory!: KvDirectory;
  private events!: EventWriter;
  private locator!: ClusterBlockLocator;
  private loop!: ServingLoop<ClusterContext>;
  private reaper!: StarqReaper;
  private readonly keys: RedisKeys;
  private readonly model: ModelConfig;
  private active = 0;
  private lastStatus = 0;
  private statusTimer: NodeJS.Timeout | null = null;
  private boot: ActorBoot | null = null;
  /** Port of the health server once started. */
  get healthPort(): number | null {
    return this.boot?.healthPort ?? null;
  }
  private draining = false;
  /** Set when the drain timeout runs out: every running request is aborted with `HandBack`. */
  private readonly handBack = new AbortController();
  /** The execution provider this actor computes on (resolved at start). */
  private provider!: ExecutionProviderChoice;
  readonly metrics: QueryMetrics;

  constructor(readonly cfg: ActorConfig) {
    this.keys = new RedisKeys(cfg.prefix);
    this.model = loadConfig(cfg.modelDir);
    this.metrics = new QueryMetrics(cfg.actorId, () => ({ active: this.active, draining: this.draining }));
  }

  get id(): string {
    return this.cfg.actorId;
  }

  async start(): Promise<void> {
    this.boot = await ActorBoot.start({
      cfg: this.cfg,
      model: this.model,
      role: 'query',
      metrics: this.metrics.registry,
      registry: () => this.registry,
      draining: () => this.draining,
    });
    this.redis = this.boot.redis;
    this.bull = this.boot.bull;
    this.engine = this.boot.engine;
    this.provider = this.boot.provider!;
    this.directory = new KvDirectory(this.redis, this.keys);
    this.events = new EventWriter(this.redis);
    this.registry = new ClusterRegistry(this.redis, { keys: this.keys, heartbeatMs: this.cfg.heartbeatMs, ttlMs: this.cfg.ttlMs });
    this.client = new ActorClient(this.redis, { keys: this.keys, registry: this.registry, defaultTimeoutMs: this.cfg.attendTimeoutMs });
    await this.client.start();
    this.locator = new ClusterBlockLocator({ directory: this.directory, registry: this.registry, host: (id) => this.remote(id), numLayers: this.model.numLayers });
    const backend = this.cfg.testStepDelayMs > 0 ? new PacedQueryBackend(this.engine, this.cfg.testStepDelayMs) : new EngineQueryBackend(this.engine);
    this.loop = new ServingLoop(backend, {
      batching: this.cfg.batching,
      maxRunning: this.cfg.maxRunning,
      kvBudgetBytes: this.cfg.queryKvBytes,
      locator: this.locator,
      classifyFailure: classifyActorFailure,
      onStep: (s) => {
        this.metrics.step(s.ms / 1000, s.batch);
        void this.publishStatus(false);
      },
    });
    await this.registry.register({
      id: this.id,
      type: 'query',
      capacity: {
        model: this.cfg.modelId,
        freeKvBytes: this.cfg.queryKvBytes,
        threads: this.cfg.threads,
        executionProvider: this.provider.provider,
        ...(this.provider.provider === 'cuda' ? { cudaDeviceId: this.provider.cudaDeviceId } : {}),
      },
    });
    this.statusTimer = setInterval(() => void this.publishStatus(false), STATUS_EVERY_MS); // the window moves on while idle
    this.statusTimer.unref();
    this.reaper = new StarqReaper({ redis: this.redis, bull: this.bull, keys: this.keys, registry: this.registry, actorWaitMs: this.cfg.actorWaitMs });
    this.worker = createWorker<RequestJobData, RequestResult>(this.keys.queues.requests, (job, token) => this.run(job, token), {
      connection: this.bull,
      prefix: this.keys.bullPrefix,
      concurrency: this.cfg.concurrency,
      lockDuration: 30000,
      stalledInterval: 1000, // a dead query actor's request is requeued by the next check once the reaper unlocked it
      name: this.id, // the job's processedBy: the reaper checks its liveness
    });
    this.worker.on('error', (e) => !isRedisDown(e) && process.stderr.write(`query-actor ${this.id}: queue worker: ${e.message}\n`)); // outages are logged once by the connection
    this.reaper.start();
  }

  /**
   * Drain: marked draining, no new requests; the requests in flight run to their end. Those still
   * running shortly before `deadline` are moved back to the queue (another query actor reruns
   * them from their blocks; the gateway forwards each token index once, so a client sees no
   * duplicate).
   */
  async drain(deadline: number): Promise<{ handedBack: number }> {
    this.draining = true;
    await this.registry?.update({ draining: true }).catch(() => undefined);
    const closed = this.worker ? this.worker.close() : Promise.resolve();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), Math.max(0, deadline - HAND_BACK_MARGIN_MS - Date.now()))));
    const outcome = await Promise.race([closed.then(() => 'closed' as const), late]);
    clearTimeout(timer);
    const running = this.active;
    if (outcome === 'late' && running > 0) {
      this.handBack.abort();
      await closed.catch(() => undefined);
    }
    return { handedBack: outcome === 'late' ? running : 0 };
  }

  async stop(): Promise<void> {
    this.draining = true;
    if (this.statusTimer) clearInterval(this.statusTimer);
    await this.reaper?.stop().catch(() => undefined);
    await this.worker?.close().catch(() => undefined);
    await this.client?.close().catch(() => undefined);
    await this.registry?.deregister().catch(() => undefined);
    await this.events?.flushed();
    await this.boot?.close();
  }

  /** One request, start to finish. */
  async run(job: Job<RequestJobData>, token?: string): Promise<RequestResult> {
    const d = job.data;
    // A malformed job's requestId may be unusable as a key part (not a string, whitespace): then
    // its events go to the job id's stream, so that building the key cannot mask the real error.
    const streamId = typeof d?.requestId === 'string' && /^\S+$/.test(d.requestId) ? d.requestId : String(job.id);
    const emit = (e: RequestEvent) => this.emit(streamId, e);
    try {
      let valid: RequestJobData;
      try {
        valid = validateRequestJob(d);
      } catch (e) {
        if (!(e instanceof ProtocolError)) throw e;
        throw new StarqError('malformed_job', `request job ${job.id} is malformed: ${e.message}`, { param: e.param });
      }
      return await this.runValid(job, valid, emit);
    } catch (err) {
      if (err instanceof JobLockLostError) throw err; // the run that holds the job reports it
      if (err instanceof HandBack) {
        // Back to the queue as it is (no error event, no attempt used): another query actor reruns it.
        await job.moveToWait(token);
        this.metrics.handBack();
        throw new WaitingError();
      }
      // Every way a run ends in error becomes one documented job error (failure.ts): the event
      // clients read and the job's failure record say the same.
      const error = jobErrorOf(err, streamId);
      if (error.code === 'redis_unavailable' || error.code === 'internal_error') process.stderr.write(`query-actor ${this.id}: request ${streamId}: ${(err as Error)?.stack ?? String(err)}\n`);
      await emit({ type: 'error', error }).catch(() => undefined);
      // A request job has one attempt: fail it for good with the same record.
      throw failJob(new StarqError(error.code, error.message, { param: error.param, status: statusOfJobError(error.code) }), { retry: false });
    } finally {
      await this.redis.expire(this.keys.requestEvents(streamId), 3600).catch(() => undefined);
    }
  }

  private async runValid(job: Job<RequestJobData>, d: RequestJobData, emit: (e: RequestEvent) => Promise<void>): Promise<RequestResult> {
    this.active++;
    void this.publishStatus(true);
    const plan = planMode(d.mode, d.contextLength, { blockSize: d.blockSize, anchorSize: d.anchorSize, hosts: d.hosts });
    // Blocks an uncached (or ring) request encodes are its own: kept under its private key, found by no other request.
    const privateKey = !d.cache || d.mode === 'ring' ? privateBlockKey(d.contextKey, d.requestId) : undefined;
    const ctx: ClusterContext = { mode: d.mode, plan, contextKey: d.contextKey, privateKey, contextIds: await this.contextIds(d), model: d.model, contextHash: d.contextHash };
    const cancel = new AbortController();
    const poll = setInterval(
      () =>
        void this.isCancelled(job).then(
          (c) => c && cancel.abort(),
          (e) => cancel.abort(e), // JobLockLostError: another query actor runs it now
        ),
      CANCEL_POLL_MS,
    );
    const handBack = () => cancel.abort(new HandBack(d.requestId));
    if (this.handBack.signal.aborted) handBack();
    else this.handBack.signal.addEventListener('abort', handBack, { once: true });
    let placement: ContextPlacement[] = [];
    /** Blocks re-encoded by this request (lost ones): with its own block jobs', the blocks it did not reuse. */
    const reencoded = new Set<number>();
    const ownBlocks = () => new Set([...(d.encodedBlocks ?? plan.blocks.map((b) => b.index)), ...reencoded]);
    try {
      if (await this.isCancelled(job)) {
        if (!d.cache && d.mode !== 'ring') await this.releasePrivate(plan, privateKey!, new Set()); // blocks encoded before the cancel
        throw new RequestCancelledError(d.requestId);
      }
      let encoded = 0;
      let recovered = 0;
      if (d.mode === 'ring') {
        const hosts = await this.pickHosts(plan.effectiveHosts);
        placement = await ringPhase1(plan, ctx.contextIds, hosts, privateKey!, this.model.numLayers, (done, total) => void emit({ type: 'phase1', done, total }));
        encoded = plan.numBlocks;
      } else {
        const r = await this.firstPlacement(ctx);
        placement = r.placement;
        recovered = r.reencoded.length;
        for (const k of r.reencoded) reencoded.add(k);
        if (recovered > 0) await emit({ type: 'recovered', blocks: r.reencoded, fromHost: r.fromHost, toHosts: r.reencoded.map((k) => hostOfBlock(placement, encodeCacheId(ctx, k))) });
      }
      if (d.encodedBlocks) encoded = Math.max(encoded, d.encodedBlocks.length);
      else encoded = Math.max(encoded, (await job.getDependenciesCount({ processed: true }).catch(() => ({ processed: 0 }))).processed ?? 0);
      // Reused = blocks found in the cache, i.e. neither this request's block jobs' nor re-encoded by it.
      const reused = d.mode === 'ring' ? 0 : Math.max(0, plan.numBlocks - (d.encodedBlocks ? ownBlocks().size : encoded + recovered));
      await emit({ type: 'started', queryActor: this.id, blocks: plan.numBlocks, reused });
      const phase1Ms = Date.now() - d.submittedAt;
      let progressAt = 0;
      const r = await this.loop.submit({
        id: d.requestId,
        contextLength: d.contextLength,
        queryIds: d.queryIds,
        placement,
        context: ctx,
        generate: {
          maxNewTokens: d.maxNewTokens,
          sampling: d.sampling,
          stopIds: d.stopIds,
          ignoreEos: d.ignoreEos,
          // Neither write is awaited: the token goes out with the step's other events in one
          // pipeline (EventWriter) while the next step runs; Redis down: the step's own calls fail and tell.
          onToken: (id, index) => {
            this.metrics.token();
            const at = Date.now();
            void emit({ type: 'token', index, id, at }).catch(() => undefined);
            if (at - progressAt >= PROGRESS_EVERY_MS) {
              progressAt = at;
              void job.updateProgress({ tokens: index + 1 }).catch(() => undefined);
            }
          },
        },
        signal: cancel.signal,
        onEvent: (e) => {
          if (e.type === 'recovered') {
            this.metrics.recovered();
            for (const k of e.blocks) reencoded.add(k);
          }
          void emit(e).catch(() => undefined);
        },
      });
      placement = r.placement;
      const { queuedMs: _queued, ...timings } = r.timings;
      const result: RequestResult = {
        requestId: d.requestId,
        mode: d.mode,
        contextTokens: d.contextLength,
        queryTokens: d.queryIds.length,
        blockSize: plan.blockSize,
        anchorSize: plan.anchorSize,
        hosts: new Set(placement.map((p) => p.host.id)).size,
        generatedIds: r.generatedIds,
        finishReason: r.finishReason,
        timings: { phase1Ms, ...timings },
        blocksEncoded: encoded,
        blocksReused: reused,
        blocksRecovered: recovered + r.recoveredBlocks,
      };
      void job.updateProgress({ tokens: r.generatedIds.length }).catch(() => undefined);
      await emit({ type: 'done', result });
      return result;
    } finally {
      clearInterval(poll);
      this.handBack.signal.removeEventListener('abort', handBack);
      this.active--;
      if (d.mode === 'ring') await Promise.all(placement.map((p) => p.host.release(p.cacheIds).catch(() => undefined)));
      else if (!d.cache && !(cancel.signal.reason instanceof HandBack || cancel.signal.reason instanceof JobLockLostError)) {
        // Only its private blocks: shared blocks it reused belong to the cache (other requests').
        // A request passed on to another query actor keeps them: its rerun (same id) finds them.
        const mine = placement.flatMap((p) => p.cacheIds).filter((c) => isPrivateOf(c, privateKey!));
        await Promise.all(placement.map((p) => p.host.release(p.cacheIds.filter((c) => isPrivateOf(c, privateKey!))).catch(() => undefined)));
        await this.releasePrivate(plan, privateKey!, new Set(mine)); // encoded by its block jobs but not in the final placement
      }
      void this.publishStatus(true);
    }
  }

  /**
   * Where the request's blocks are, re-encoding lost ones. A host that dies while re-encoding is
   * left out and the placement looked up again, up to {@link FIRST_PLACEMENT_TRIES} times; then the
   * HostCallError ends the request (`host_lost`).
   */
  private async firstPlacement(ctx: ClusterContext): Promise<Relocation> {
    const lost = new Set<string>();
    for (let i = 1; ; i++) {
      try {
        return await this.locator.locate(ctx, lost);
      } catch (e) {
        const kind = e instanceof HostCallError ? classifyActorFailure(e.cause) : null;
        if (!(e instanceof HostCallError) || !kind || i >= FIRST_PLACEMENT_TRIES) throw e;
        if (kind === 'host-lost') lost.add(e.hostId);
      }
    }
  }

  /** Busy flag and the serving loop's statistics in the registry (throttled unless `now`). */
  private async publishStatus(now: boolean): Promise<void> {
    const t = Date.now();
    if (!now && t - this.lastStatus < STATUS_EVERY_MS) return;
    this.lastStatus = t;
    await this.registry.update({ busy: this.active > 0, serving: this.loop.snapshot() }).catch(() => undefined);
  }

  /**
   * True when the request was cancelled (StarqClient.cancel, DELETE /v1/jobs/:id).
   * @throws JobLockLostError when this actor's lock on the job is gone (see JobLockLostError).
   */
  private async isCancelled(job: Job<RequestJobData>): Promise<boolean> {
    const r = await this.redis
      .multi()
      .exists(requestCancelKey(this.keys, job.data.requestId))
      .get(`${this.keys.bullPrefix}:${this.keys.queues.requests}:${job.id}:lock`)
      .exec()
      .catch(() => null);
    if (!r) return false; // Redis unreachable: the step itself will tell
    // BullMQ never restores a lock once it is gone (the next stalled check requeues the job).
    if (job.token && r[1][1] !== job.token) throw new JobLockLostError(job.data.requestId);
    return r[0][1] === 1;
  }

  /** Release the request's private blocks (under `privateKey`) that the KV directory places on some host, but those in `done`. */
  private async releasePrivate(plan: StarPlan, privateKey: string, done: ReadonlySet<string>): Promise<void> {
    const cacheIds = plan.blocks.map((b) => blockCacheId(privateKey, b.index)).filter((c) => !done.has(c));
    const byHost = new Map<string, string[]>();
    (await this.directory.getMany(cacheIds)).forEach((h, i) => {
      if (h) byHost.set(h.hostId, [...(byHost.get(h.hostId) ?? []), cacheIds[i]]);
    });
    await Promise.all([...byHost].map(([hostId, ids]) => this.remote(hostId).release(ids).catch(() => undefined)));
  }

  private remote(hostId: string): RemoteHost {
    return new RemoteHost(hostId, this.client.handle(hostId), { attendMs: this.cfg.attendTimeoutMs });
  }

  /** Ring mode: `n` live hosts (blocks round-robin over them when fewer are alive). */
  private async pickHosts(n: number): Promise<RemoteHost[]> {
    const hosts = (await this.registry.list('host')).sort((a, b) => a.id.localeCompare(b.id));
    if (hosts.length === 0) throw new StarqError('cluster_unavailable', 'no live host actor for ring attention', { status: 503 });
    return Array.from({ length: n }, (_, i) => this.remote(hosts[i % hosts.length].id));
  }

  private async contextIds(d: RequestJobData): Promise<Int32Array> {
    const ids = await fetchContextIds(this.redis, this.keys, d.contextHash); // (N)
    if (!ids) throw new StarqError('context_expired', `the context of request ${d.requestId} is no longer in Redis: resubmit it`, { param: 'context' });
    if (ids.length !== d.contextLength) throw new StarqError('malformed_job', `context ${d.contextHash} has ${ids.length} tokens, the request says ${d.contextLength}`, { param: 'context' });
    return ids;
  }

  /** Appends `e` to the request's event stream, in order with its earlier events (see EventWriter). */
  private emit(requestId: string, e: RequestEvent): Promise<void> {
    return this.events.write(this.keys.requestEvents(requestId), e);
  }
}
