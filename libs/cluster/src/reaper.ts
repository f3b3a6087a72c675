/**
 * The reaper every starq actor runs: a JobReaper over both queues (`blocks`, `requests`) that
 * tells the request whose job it requeued with a `requeued` event, and the cluster side of the
 * actor-wait deadline (actor-wait.ts): requests waiting for an actor kind none of which is alive
 * are failed after `actorWaitMs`, whoever submitted them.
 */
import type { Redis } from 'ioredis';
import type { Queue } from 'bullmq';
import type { RedisKeys } from '@starq/protocol';
import { createQueue, JobReaper, PeriodicTask } from '@starq/actors';
import { ActorWaitDeadline, DEFAULT_ACTOR_WAIT_MS } from './actor-wait';
import { isRedisDown } from './failure';
import type { RequestEvent } from './jobs';
import type { ClusterRegistry } from './registry';

/** Block job ids are `<requestId>-b<index>` (StarqClient.submit). */
const BLOCK_JOB_ID = /^(.*)-b(\d+)$/;

export interface StarqReaperOptions {
  redis: Redis;
  keys: RedisKeys;
  registry: ClusterRegistry;
  /** A BullMQ connection (`createRedis(url, { forBullmq: true })`) for the reaper's view of the `requests` queue. */
  bull: Redis;
  /** Sweep period of both. @defaultValue 1000 */
  intervalMs?: number;
  /** STARQ_ACTOR_WAIT_MS. @defaultValue 60000 */
  actorWaitMs?: number;
  /** @defaultValue console.warn */
  log?: (msg: string) => void;
}

export class StarqReaper {
  readonly jobs: JobReaper;
  readonly deadline: ActorWaitDeadline;
  private readonly requests: Queue;
  private readonly periodic: PeriodicTask;

  constructor(private readonly o: StarqReaperOptions) {
    const { redis, keys } = o;
    this.jobs = new JobReaper({
      redis,
      keys,
      registry: o.registry,
      intervalMs: o.intervalMs ?? 1000,
      log: o.log,
      queues: [keys.queues.blocks, keys.queues.requests],
      onReaped: async (queue, jobId, holder) => {
        const m = queue === keys.queues.blocks ? BLOCK_JOB_ID.exec(jobId) : null;
        if (queue === keys.queues.blocks && !m) return;
        const requestId = m ? m[1] : jobId;
        const e: RequestEvent = { type: 'requeued', job: m ? 'block' : 'request', block: m ? Number(m[2]) : null, actor: holder };
        const stream = keys.requestEvents(requestId);
        await redis.multi().xadd(stream, '*', 'e', JSON.stringify(e)).expire(stream, 86400).exec();
      },
    });
    this.requests = createQueue(keys.queues.requests, { connection: o.bull, prefix: keys.bullPrefix });
    this.deadline = new ActorWaitDeadline({ redis, keys, requests: this.requests, limitMs: o.actorWaitMs ?? DEFAULT_ACTOR_WAIT_MS });
    // Outages are logged by the connection, not by every sweep.
    this.periodic = new PeriodicTask(() => this.sweepDeadlines(), o.intervalMs ?? 1000, (e) => !isRedisDown(e) && (o.log ?? console.warn)(`[starq] actor-wait deadline: ${(e as Error).message}`));
  }

  start(): void {
    this.jobs.start();
    this.periodic.start();
  }

  async stop(): Promise<void> {
    await this.periodic.stop();
    await this.jobs.stop();
    await this.requests.close().catch(() => undefined);
  }

  /** One pass of the deadline: requests failed because no actor of the kind they wait for came in time. */
  async sweepDeadlines(): Promise<string[]> {
    return this.deadline.sweep(await this.o.registry.list());
  }
}
