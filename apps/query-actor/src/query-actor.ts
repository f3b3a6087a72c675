/**
 * A query actor process: takes request jobs (flow parents, released by BullMQ once their block
 * jobs are done) and runs phase 2 — per layer, q is broadcast to the hosts holding the request's
 * blocks, their partials come back over actor calls and are merged exactly with the query actor's
 * own partial (libs/attention star.ts) — streaming tokens to the request's event stream.
 *
 * Faults: a host that dies (or lost a block) during phase 2 is detected by the failing call; its
 * blocks are re-encoded on live hosts from the request's context (lineage), the step's partial
 * K/V are rolled back from the query cache, and the step is retried. Ring mode runs its phase 1
 * here (layer-synchronous over the hosts).
 */
import { UnrecoverableError, WaitingError, type Job, type Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  blockCacheId,
  phase1Positions,
  phase1Tokens,
  planMode,
  ringPhase1,
  HostCallError,
  starStep,
  type ContextPlacement,
  type StarPlan,
} from '@starq/attention';
import { ActorClient, ActorDiedError, ActorTimeoutError, createRedis, createWorker } from '@starq/actors';
import {
  actorReadiness,
  ClusterRegistry,
  fetchContextIds,
  HealthServer,
  isKvNotFound,
  KvDirectory,
  RemoteHost,
  requestCancelKey,
  type ActorConfig,
  type RequestEvent,
  type RequestJobData,
  type RequestResult,
} from '@starq/cluster';
import { decodeLoop } from '@starq/model/generate';
import { EngineQueryBackend } from '@starq/model/serving/query-backend';
import { LocalHost } from '@starq/model/local/local-host';
import { loadConfig } from '@starq/model/config';
import { ModelEngine } from '@starq/model/runtime/engine';
import { resolveExecutionProvider, type ExecutionProviderChoice } from '@starq/model/runtime/execution-provider';
import type { ModelConfig } from '@starq/model/types';
import { RedisKeys, StarqError } from '@starq/protocol';
import { QueryMetrics } from './query-metrics';

/** Step failures that re-encoding lost blocks can fix. */
function isRecoverable(err: unknown): boolean {
  const e = err instanceof HostCallError ? err.cause : err;
  return e instanceof ActorDiedError || e instanceof ActorTimeoutError || isKvNotFound(e);
}

const MAX_RECOVERIES = 3;

/** Thrown inside a request when the drain timeout runs out: the job goes back to the queue. */
class HandBack extends Error {
  constructor(requestId: string) {
    super(`request ${requestId} handed back to the queue: this query actor is draining`);
    this.name = 'HandBack';
  }
}

/** Time kept at the end of a drain to move running requests back to the queue. */
const HAND_BACK_MARGIN_MS = 3000;

function cancelledError(requestId: string): StarqError {
  return new StarqError('cancelled', `request ${requestId} was cancelled`, { status: 409 });
}

export class QueryActor {
  private redis!: Redis;
  private bull!: Redis;
  private engine!: ModelEngine;
  private registry!: ClusterRegistry;
  private client!: ActorClient;
  private worker!: Worker;
  private directory!: KvDirectory;
  private readonly keys: RedisKeys;
  private readonly model: ModelConfig;
  private active = 0;
  private health: HealthServer | null = null;
  private warmed = false;
  private draining = false;
  private handingBack = false;
  /** The execution provider this actor computes on (resolved at start). */
  provider: ExecutionProviderChoice | null = null;
  readonly metrics: QueryMetrics;
  /** Port of the health server once started. */
  healthPort: number | null = null;

  constructor(readonly cfg: ActorConfig) {
    this.keys = new RedisKeys(cfg.prefix);
    this.model = loadConfig(cfg.modelDir);
    this.metrics = new QueryMetrics(cfg.actorId, () => ({ active: this.active, draining: this.draining }));
  }

  get id(): string {
    return this.cfg.actorId;
  }

  async start(): Promise<void> {
    this.redis = await createRedis(this.cfg.redisUrl, { connectionName: this.id, urlSource: 'STARQ_REDIS_URL' });
    this.bull = await createRedis(this.cfg.redisUrl, { forBullmq: true, connectionName: `${this.id}-bull`, urlSource: 'STARQ_REDIS_URL' });
    this.health = new HealthServer({
      host: this.cfg.lifecycle.healthHost,
      port: this.cfg.lifecycle.healthPort,
      metrics: this.metrics.registry,
      readiness: () => actorReadiness({ redis: () => this.redis, registry: () => this.registry, warmed: () => this.warmed, draining: () => this.draining }),
      describe: () => ({ actor: this.id, role: 'query', draining: this.draining, executionProvider: this.provider?.provider ?? null }),
    });
    this.healthPort = await this.health.start(); // /health answers during the model load; /ready waits for it
    this.provider = await resolveExecutionProvider(this.cfg.executionProvider);
    this.engine = await ModelEngine.load(this.cfg.modelDir, this.model, { threads: this.cfg.threads, executionProvider: this.provider });
    const warm = new LocalHost(`${this.id}-warmup`, this.engine);
    await warm.encodeBlock({ cacheId: '__warmup__', ids: Int32Array.of(0), positions: Int32Array.of(0), keepFrom: 0 });
    await warm.release(['__warmup__']);
    this.warmed = true;
    this.directory = new KvDirectory(this.redis, this.keys);
    this.registry = new ClusterRegistry(this.redis, { keys: this.keys, heartbeatMs: this.cfg.heartbeatMs, ttlMs: this.cfg.ttlMs });
    this.client = new ActorClient(this.redis, { keys: this.keys, registry: this.registry, defaultTimeoutMs: this.cfg.attendTimeoutMs });
    await this.client.start();
    await this.registry.register({ id: this.id, type: 'query', capacity: {
        model: this.cfg.modelId,
        freeKvBytes: 0,
        threads: this.cfg.threads,
        executionProvider: this.provider.provider,
        ...(this.provider.provider === 'cuda' ? { cudaDeviceId: this.provider.cudaDeviceId } : {}),
      },
    });
    this.worker = createWorker<RequestJobData, RequestResult>(this.keys.queues.requests, (job, token) => this.run(job, token), {
      connection: this.bull,
      prefix: this.keys.bullPrefix,
      concurrency: this.cfg.concurrency,
      lockDuration: 30000,
      stalledInterval: 5000,
    });
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
      this.handingBack = true;
      await closed.catch(() => undefined);
    }
    return { handedBack: outcome === 'late' ? running : 0 };
  }

  async stop(): Promise<void> {
    this.draining = true;
    await this.worker?.close().catch(() => undefined);
    await this.health?.stop().catch(() => undefined);
    await this.client?.close().catch(() => undefined);
    await this.registry?.deregister().catch(() => undefined);
    await this.engine?.close().catch(() => undefined);
    this.redis?.disconnect();
    this.bull?.disconnect();
  }

  /** One request, start to finish. */
  async run(job: Job<RequestJobData>, token?: string): Promise<RequestResult> {
    const d = job.data;
    // A malformed job's requestId may be unusable as a key part (not a string, whitespace): then
    // its events go to the job id's stream, so that building the key cannot mask the real error.
    const streamId = typeof d?.requestId === 'string' && /^\S+$/.test(d.requestId) ? d.requestId : String(job.id);
    const emit = (e: RequestEvent) => this.emit(streamId, e);
    try {
      if (!d || typeof d.requestId !== 'string' || !Array.isArray(d.queryIds) || typeof d.contextHash !== 'string') {
        throw new StarqError('malformed_job', `request job ${job.id} is malformed: expected {requestId, contextHash, queryIds, ...}`, { param: 'job' });
      }
      return await this.runValid(job, d, emit);
    } catch (e) {
      if (e instanceof HandBack) {
        // Back to the queue as it is (no error event, no attempt used): another query actor reruns it.
        await job.moveToWait(token);
        this.metrics.handBack();
        throw new WaitingError();
      }
      const { code, param } = e as { code?: unknown; param?: unknown };
      await emit({
        type: 'error',
        error: { code: typeof code === 'string' ? code : 'internal_error', message: (e as Error).message, param: typeof param === 'string' ? param : null },
      }).catch(() => undefined);
      // Retrying a malformed job cannot help: fail it for good (as the host does for block jobs).
      if (e instanceof StarqError && e.code === 'malformed_job') throw new UnrecoverableError(`[${e.code}] ${e.message}`);
      throw e;
    } finally {
      await this.redis.expire(this.keys.requestEvents(streamId), 3600).catch(() => undefined);
    }
  }

  private async runValid(job: Job<RequestJobData>, d: RequestJobData, emit: (e: RequestEvent) => Promise<void>): Promise<RequestResult> {
    this.active++;
    await this.registry.update({ busy: true }).catch(() => undefined);
    const plan = planMode(d.mode, d.contextLength, { blockSize: d.blockSize, anchorSize: d.anchorSize, hosts: d.hosts });
    const ctx = await this.contextIds(d);
    const N = d.contextLength;
    const M = d.queryIds.length;
    const qcache = `${d.requestId}/query`;
    await this.engine.createCache(qcache, M + d.maxNewTokens);
    const stats = { encoded: 0, reused: 0, recovered: 0 };
    let placement: ContextPlacement[] = [];
    try {
      if (await this.isCancelled(d.requestId)) {
        if (!d.cache && d.mode !== 'ring') await this.releaseBlocks(plan, d); // blocks encoded before the cancel
        throw cancelledError(d.requestId);
      }
      if (d.mode === 'ring') {
        const hosts = await this.pickHosts(plan.effectiveHosts);
        placement = await ringPhase1(plan, ctx, hosts, d.contextKey, this.model.numLayers, (done, total) => void emit({ type: 'phase1', done, total }));
        stats.encoded = plan.numBlocks;
      } else {
        placement = await this.locate(plan, d, ctx, stats, emit);
      }
      const children = await job.getDependenciesCount({ processed: true }).catch(() => ({ processed: 0 }));
      stats.encoded = Math.max(stats.encoded, children.processed ?? 0);
      stats.reused = d.mode === 'ring' ? 0 : plan.numBlocks - stats.encoded - stats.recovered;
      await emit({ type: 'started', queryActor: this.id, blocks: plan.numBlocks, reused: stats.reused });
      const phase1Ms = Date.now() - d.submittedAt;

      const qm = new EngineQueryBackend(this.engine);
      const step = async (ids: Int32Array, positions: Int32Array) => (await starStep(qm, [{ context: placement, cacheId: qcache, ids, positions, logits: 'last' }]))[0]!;
      let cached = 0; // rows in the query cache before the current step
      let recoveries = 0;
      const suspects = new Set<string>(); // hosts that failed a call: treated as dead for this request
      const resilientStep = async (ids: Int32Array, positions: Int32Array): Promise<Float32Array> => {
        for (;;) {
          try {
            if (this.handingBack) throw new HandBack(d.requestId);
            const cancelled = this.isCancelled(d.requestId); // checked alongside the step, off the hot path
            const t0 = performance.now();
            const logits = await step(ids, positions);
            this.metrics.step((performance.now() - t0) / 1000);
            cached += ids.length;
            if (await cancelled) throw cancelledError(d.requestId);
            return logits;
          } catch (e) {
            if (!isRecoverable(e) || d.mode === 'ring' || ++recoveries > MAX_RECOVERIES) throw e instanceof HostCallError ? e.cause : e;
            this.metrics.recovered();
            await this.engine.truncateCache(qcache, cached);
            const cause = e instanceof HostCallError ? e.cause : e;
            if (cause instanceof ActorDiedError || cause instanceof ActorTimeoutError) suspects.add(cause.actorId);
            const fresh = await this.locate(plan, d, ctx, stats, emit, suspects);
            placement.splice(0, placement.length, ...fresh); // starStep reads the same array
          }
        }
      };
      const r = await decodeLoop(resilientStep, N, d.queryIds, {
        maxNewTokens: d.maxNewTokens,
        sampling: d.sampling,
        stopIds: d.stopIds,
        ignoreEos: d.ignoreEos,
        onToken: (id, index) => {
          this.metrics.token();
          void emit({ type: 'token', index, id });
          void job.updateProgress({ tokens: index + 1 }).catch(() => undefined);
        },
      });
      const result: RequestResult = {
        requestId: d.requestId,
        mode: d.mode,
        contextTokens: N,
        queryTokens: M,
        blockSize: plan.blockSize,
        anchorSize: plan.anchorSize,
        hosts: new Set(placement.map((p) => p.host.id)).size,
        generatedIds: r.generatedIds,
        finishReason: r.finishReason,
        timings: { phase1Ms, ...r.timings },
        blocksEncoded: stats.encoded,
        blocksReused: stats.reused,
        blocksRecovered: stats.recovered,
      };
      await emit({ type: 'done', result });
      return result;
    } finally {
      this.active--;
      await this.engine.dropCache(qcache).catch(() => undefined);
      if (!d.cache || d.mode === 'ring') {
        await Promise.all(placement.map((p) => p.host.release(p.cacheIds).catch(() => undefined)));
      }
      await this.registry.update({ busy: this.active > 0 }).catch(() => undefined);
    }
  }

  /**
   * Where the request's blocks are: read their KV handles; re-encode every block whose handle is
   * missing or whose host is not alive on a live host (least KV first). Placement is in block
   * order, one entry per host.
   */
  private async locate(
    plan: StarPlan,
    d: RequestJobData,
    ctx: Int32Array,
    stats: { recovered: number },
    emit: (e: RequestEvent) => Promise<void>,
    suspects: ReadonlySet<string> = new Set(),
  ): Promise<ContextPlacement[]> {
    const cacheIds = plan.blocks.map((b) => blockCacheId(d.contextKey, b.index));
    const handles = await this.directory.getMany(cacheIds);
    const hosts = (await this.registry.list('host')).filter((h) => !suspects.has(h.id));
    const alive = new Set(hosts.map((h) => h.id));
    const owner: string[] = [];
    const lost: number[] = [];
    let lostFrom = '';
    plan.blocks.forEach((b, i) => {
      const h = handles[i];
      if (h && alive.has(h.hostId)) owner[i] = h.hostId;
      else {
        lost.push(b.index);
        if (h) lostFrom = h.hostId;
      }
    });
    if (lost.length > 0) {
      if (hosts.length === 0) throw new StarqError('cluster_unavailable', 'no live host actor to encode the context on: start hosts with `starq cluster up`', { status: 503 });
      // Re-encode on hosts that are not draining (a draining host is handing its own blocks away).
      const targets = hosts.filter((h) => !h.status.draining);
      const load = new Map((targets.length > 0 ? targets : hosts).map((h) => [h.id, h.status.kvBytes]));
      for (const k of lost) {
        const target = [...load.entries()].sort((a, b) => a[1] - b[1])[0][0];
        const b = plan.blocks[k];
        const host = this.remote(target);
        const handle = await host.encodeBlock({ cacheId: cacheIds[k], ids: Int32Array.from(phase1Tokens(ctx, b.phase1)), positions: phase1Positions(b.phase1), keepFrom: b.phase1.keepFrom });
        await this.directory.putEncoded({
          cacheId: cacheIds[k],
          model: d.model,
          contextHash: d.contextHash,
          blockIndex: k,
          blockSize: plan.blockSize,
          anchorSize: plan.anchorSize,
          tokenStart: b.start,
          tokenEnd: b.end,
          layers: this.model.numLayers,
          bytes: handle.bytes,
          hostId: target,
        });
        load.set(target, (load.get(target) ?? 0) + handle.bytes);
        owner[k] = target;
      }
      stats.recovered += lost.length;
      await emit({ type: 'recovered', blocks: lost, fromHost: lostFrom, toHosts: lost.map((k) => owner[k]) });
    }
    await this.directory.touch(cacheIds);
    const placement: ContextPlacement[] = [];
    owner.forEach((hostId, k) => {
      const last = placement[placement.length - 1];
      if (last && last.host.id === hostId) last.cacheIds.push(cacheIds[k]);
      else placement.push({ host: this.remote(hostId), cacheIds: [cacheIds[k]] });
    });
    return placement;
  }

  /** Set by StarqClient.cancel (DELETE /v1/jobs/:id). */
  private async isCancelled(requestId: string): Promise<boolean> {
    return (await this.redis.exists(requestCancelKey(this.keys, requestId)).catch(() => 0)) === 1;
  }

  /** Release every block of the request's plan that some host holds (a cancelled, uncached request). */
  private async releaseBlocks(plan: StarPlan, d: RequestJobData): Promise<void> {
    const cacheIds = plan.blocks.map((b) => blockCacheId(d.contextKey, b.index));
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

  private async emit(requestId: string, e: RequestEvent): Promise<void> {
    await this.redis.xadd(this.keys.requestEvents(requestId), 'MAXLEN', '~', '100000', '*', 'e', JSON.stringify(e));
  }
}
