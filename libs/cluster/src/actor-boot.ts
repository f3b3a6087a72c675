/**
 * The start-up sequence every compute actor process (host and query) shares, in this order:
 *  1. two Redis connections (commands/pub-sub and BullMQ's blocking connection);
 *  2. the health server, so /health answers while the model loads and /ready says why it waits;
 *  3. the execution provider, resolved once (a configured provider that cannot load fails here);
 *  4. the model engine, then one warm-up block encoded and released, after which `warmed` is true.
 * What differs between the roles (registry records, queues, actor calls) follows in each actor.
 */
import type { Redis } from 'ioredis';
import type { Registry } from 'prom-client';
import { createRedis } from '@starq/actors';
import { LocalHost } from '@starq/model/local/local-host';
import { ModelEngine } from '@starq/model/runtime/engine';
import { resolveExecutionProvider, type ExecutionProviderChoice } from '@starq/model/runtime/execution-provider';
import type { ModelConfig } from '@starq/model/types';
import type { ActorConfig } from './actor-config';
import { actorReadiness } from './actor-health';
import { HealthServer } from './health-server';
import type { ClusterRegistry } from './registry';

/** Cache id of the warm-up block (encoded once at start, then released). */
const WARMUP_CACHE = '__warmup__';

export interface ActorBootOptions {
  cfg: ActorConfig;
  model: ModelConfig;
  role: 'host' | 'query';
  /** The actor's Prometheus registry, served at /metrics. */
  metrics: Registry;
  /** The actor's registry client once it exists (readiness checks the actor's record is live). */
  registry: () => ClusterRegistry | undefined;
  draining: () => boolean;
  /** Delay added to every encode (tests of slow phase 1 only). @defaultValue 0 */
  testEncodeDelayMs?: number;
}

/** The connections, servers and engine a booted actor owns; `close` releases them all. */
export class ActorBoot {
  warmed = false;
  healthPort: number | null = null;
  provider: ExecutionProviderChoice | null = null;
  engine!: ModelEngine;

  private constructor(
    readonly redis: Redis,
    readonly bull: Redis,
    private readonly health: HealthServer,
  ) {}

  static async start(o: ActorBootOptions): Promise<ActorBoot> {
    const id = o.cfg.actorId;
    const redis = await createRedis(o.cfg.redisUrl, { connectionName: id, urlSource: 'STARQ_REDIS_URL' });
    const bull = await createRedis(o.cfg.redisUrl, { forBullmq: true, connectionName: `${id}-bull`, urlSource: 'STARQ_REDIS_URL' });
    let boot: ActorBoot | null = null;
    const health = new HealthServer({
      host: o.cfg.lifecycle.healthHost,
      port: o.cfg.lifecycle.healthPort,
      metrics: o.metrics,
      readiness: () => actorReadiness({ redis: () => redis, registry: o.registry, warmed: () => boot?.warmed ?? false, draining: o.draining }),
      describe: () => ({ actor: id, role: o.role, draining: o.draining(), executionProvider: boot?.provider?.provider ?? null }),
    });
    boot = new ActorBoot(redis, bull, health);
    try {
      boot.healthPort = await health.start();
      boot.provider = await resolveExecutionProvider(o.cfg.executionProvider);
      boot.engine = await ModelEngine.load(o.cfg.modelDir, o.model, {
        threads: o.cfg.threads,
        executionProvider: boot.provider,
        attendBatching: o.cfg.attendBatching,
        ...(o.cfg.maxRowsPerCall !== null ? { maxRowsPerCall: o.cfg.maxRowsPerCall } : {}),
        ...(o.testEncodeDelayMs ? { testEncodeDelayMs: o.testEncodeDelayMs } : {}),
      });
      const warm = new LocalHost(`${id}-warmup`, boot.engine);
      await warm.encodeBlock({ cacheId: WARMUP_CACHE, ids: Int32Array.of(0), positions: Int32Array.of(0), keepFrom: 0 });
      await warm.release([WARMUP_CACHE]);
      boot.warmed = true;
      return boot;
    } catch (e) {
      await boot.close();
      throw e;
    }
  }

  /** Stops the health server, closes the engine and both Redis connections (each step best-effort). */
  async close(): Promise<void> {
    await this.health.stop().catch(() => undefined);
    await this.engine?.close().catch(() => undefined);
    this.redis.disconnect();
    this.bull.disconnect();
  }
}
