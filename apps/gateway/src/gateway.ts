/**
 * The gateway's resources and their lifecycle (no HTTP here): the model's tokenizer and limits,
 * the cluster client, the event hub, the job service and metrics. The gateway is stateless (job
 * records live in Redis), so any number of replicas can serve one cluster; it does not register
 * in the actor registry (which lists the actors that compute).
 */
import { ActorClient } from '@starq/actors';
import { HOST_METHODS, StarqClient } from '@starq/cluster';
import { loadConfig } from '@starq/model/config';
import { positionLimit } from '@starq/model/positions';
import { StarqTokenizer } from '@starq/model/tokenizer';
import type { ModelConfig } from '@starq/model/types';
import { AuditLog } from './audit-log';
import { Authenticator } from './auth';
import type { GatewayConfig } from './config';
import { entryTime, EventHub } from './event-hub';
import { HistoryRecorder } from './history';
import { IntakePool } from './intake/intake-pool';
import { JobService } from './jobs';
import { KvMapService } from './kv-map';
import { HttpError } from './http';
import { Metrics } from './metrics';

export class Gateway {
  readonly model: ModelConfig;
  readonly tokenizer: StarqTokenizer | null;
  readonly tokenizerError: string | null = null;
  /** The model's position limit (max_position_embeddings, or the sliding window if smaller). */
  readonly maxPositions: number;
  readonly auth: Authenticator;
  client!: StarqClient;
  hub!: EventHub;
  jobs!: JobService;
  metrics!: Metrics;
  /** The last hour of cluster state and activity, shared by every replica through Redis. */
  history!: HistoryRecorder;
  /** Admin actions taken through any replica. */
  audit!: AuditLog;
  kv!: KvMapService;
  actors!: ActorClient;
  /** True from the start of a drain (SIGTERM): /ready is 503 and new jobs are refused. */
  draining = false;
  /** HTTP responses not yet finished (SSE streams included). */
  private open = 0;
  /** Parses, validates and tokenizes request bodies in worker threads (never on the event loop). */
  intake!: IntakePool;

  constructor(readonly cfg: GatewayConfig) {
    this.model = loadConfig(cfg.modelDir);
    let tokenizer: StarqTokenizer | null = null;
    try {
      tokenizer = StarqTokenizer.load(cfg.modelDir);
    } catch (e) {
      this.tokenizerError = (e as Error).message; // token-id requests still work
    }
    this.tokenizer = tokenizer;
    this.maxPositions = positionLimit(this.model);
    this.auth = new Authenticator(cfg);
  }

  get modelId(): string {
    return this.cfg.modelId;
  }

  async start(): Promise<void> {
    this.intake = new IntakePool({
      modelDir: this.cfg.modelDir,
      vocabSize: this.model.vocabSize,
      maxPositions: this.maxPositions,
      workers: this.cfg.intakeWorkers,
      queueLimit: this.cfg.intakeQueue,
      timeoutMs: this.cfg.intakeTimeoutMs,
      memoryMb: this.cfg.intakeMemoryMb,
    });
    await this.intake.start();
    this.client = await StarqClient.connect(this.cfg.redisUrl, { prefix: this.cfg.prefix, urlSource: 'STARQ_REDIS_URL', actorWaitMs: this.cfg.actorWaitMs });
    this.hub = new EventHub(this.client.redis, (id) => this.client.keys.requestEvents(id));
    await this.hub.start();
    this.actors = new ActorClient(this.client.redis, { keys: this.client.keys, registry: this.client.registry, defaultTimeoutMs: 5000 });
    await this.actors.start();
    this.metrics = new Metrics({ client: this.client, registry: this.client.registry, actors: this.actors, jobs: () => this.jobs });
    this.jobs = new JobService(this.client, this.client.redis, this.hub, this.tokenizer, {
      modelId: this.modelId,
      maxPositions: this.maxPositions,
      maxQueue: this.cfg.maxQueue,
      stopIds: this.tokenizer?.eosTokenIds ?? [],
      onFinished: (meta, t) => this.metrics.jobFinished(meta, t),
      onEvent: (meta, e, entryId) => this.history.observe(meta.id, e.type, entryTime(entryId), e.type === 'token' ? e.index : undefined),
      draining: () => this.draining,
    });
    this.history = new HistoryRecorder(this.client, { intervalMs: this.cfg.historyIntervalMs });
    this.history.start();
    this.audit = new AuditLog(this.client.redis, this.cfg.prefix, this.cfg.gatewayId);
    this.kv = new KvMapService(this.client, this.actors);
  }

  async stop(): Promise<void> {
    await this.history?.stop();
    await this.intake?.close().catch(() => undefined);
    await this.hub?.close().catch(() => undefined);
    await this.actors?.close().catch(() => undefined);
    await this.client?.close().catch(() => undefined);
  }

  /**
   * Fails fast while Redis is unreachable, instead of letting a request wait on a reconnecting
   * connection.
   * @throws HttpError 503 `redis_unavailable`.
   */
  requireRedis(): void {
    if (!this.client.connected) throw new HttpError(503, 'redis_unavailable', 'Redis is not reachable: the gateway cannot take or report jobs now; retry when it is back (GET /ready tells)');
  }

  /** Counts `res` as in flight until it closes (what a drain waits for). */
  track(res: { once(event: 'close', fn: () => void): unknown }): void {
    this.open++;
    res.once('close', () => this.open--);
  }

  /** Responses in flight (SSE streams, long non-streaming completions, probes). */
  get inFlight(): number {
    return this.open;
  }

  /**
   * Drain: /ready turns 503 and new jobs get 503 `draining` at once; resolves when no response is
   * in flight any more (every open SSE stream's job ended) or at `deadline`, whichever is first.
   * The jobs themselves run on the query actors and are not affected.
   */
  async drain(deadline: number): Promise<{ open: number }> {
    this.draining = true;
    while (this.open > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    return { open: this.open };
  }

  /** Readiness: not draining, Redis answers and at least one host and one query actor are alive. */
  async readiness(): Promise<{ ready: boolean; draining: boolean; redis: boolean; hosts: number; queryActors: number }> {
    if (this.draining) return { ready: false, draining: true, redis: false, hosts: 0, queryActors: 0 };
    const ping = await Promise.race([this.client.redis.ping().then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 1000))]).catch(() => false);
    if (!ping) return { ready: false, draining: false, redis: false, hosts: 0, queryActors: 0 };
    const actors = await this.client.registry.list().catch(() => []);
    const hosts = actors.filter((a) => a.type === 'host').length;
    const queryActors = actors.filter((a) => a.type === 'query').length;
    return { ready: hosts > 0 && queryActors > 0, draining: false, redis: true, hosts, queryActors };
  }

  /**
   * Drains a host actor: the same drain a SIGTERM starts (it stops taking block jobs, its blocks
   * move to other hosts, then it exits; a supervisor or Kubernetes starts a replacement).
   */
  async drainHost(hostId: string): Promise<{ detail: string; blocks: number }> {
    const host = (await this.client.registry.list('host')).find((h) => h.id === hostId);
    if (!host) throw new HttpError(404, 'host_not_found', `no live host actor ${JSON.stringify(hostId)}`, 'id');
    await this.actors.handle(hostId).call(HOST_METHODS.drain, {}, { timeoutMs: 10000 });
    return { detail: `drain started on ${hostId} (${host.status.blocks} block(s), ${host.status.kvBytes} bytes to move)`, blocks: host.status.blocks };
  }
}
