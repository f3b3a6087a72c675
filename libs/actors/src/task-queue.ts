/**
 * Thin BullMQ factories for stateless, durable work (single jobs, or flows: a parent job that
 * runs once its children are done). Nothing is hidden: these return plain BullMQ objects with the
 * runtime's defaults filled in. Job data must be JSON: never tensors (pass token ranges or Redis keys).
 *
 * Delivery: at-least-once. A job whose processor throws is retried (`attempts`, `backoff`); a job
 * whose worker dies (lock not renewed for `lockDuration`) is moved back to wait by the stalled
 * check, up to `maxStalledCount` times. Processors must therefore be idempotent (e.g. a job that
 * computes a pure function of its data and stores the result under a key derived from that data).
 */
import { FlowProducer, Queue, Worker, type ConnectionOptions, type JobsOptions, type Processor } from 'bullmq';
import { InvalidInputError, RedisKeys } from '@starq/protocol';
import { BullmqConnectionError } from './errors';

/**
 * Default options of every job added through {@link createQueue} (per job overridable):
 * 3 attempts, exponential backoff from 1 s (1 s, 2 s), completed jobs kept 1 h (max 1000),
 * failed jobs kept 24 h.
 */
export const DEFAULT_JOB_OPTIONS: Readonly<JobsOptions> = Object.freeze({
  attempts: 3,
  backoff: { type: 'exponential', delay: 1000 },
  removeOnComplete: { age: 3600, count: 1000 },
  removeOnFail: { age: 24 * 3600 },
});

export interface QueueFactoryOptions {
  /** A Redis instance (shared) or connection options (BullMQ connects itself). */
  connection: ConnectionOptions;
  /** BullMQ key prefix. @defaultValue `new RedisKeys().bullPrefix` (`starq:bull`) */
  prefix?: string;
}

export interface CreateQueueOptions extends QueueFactoryOptions {
  /** Merged over {@link DEFAULT_JOB_OPTIONS}. @defaultValue `{}` */
  defaultJobOptions?: JobsOptions;
}

export interface CreateWorkerOptions extends QueueFactoryOptions {
  /** Jobs processed at once by this worker. @defaultValue 1 */
  concurrency?: number;
  /** Job lock; renewed every lockDuration/2 while the processor runs. @defaultValue 30000 */
  lockDuration?: number;
  /** How often stalled jobs (dead workers) are looked for. @defaultValue 30000 */
  stalledInterval?: number;
  /** Times a job may stall before it fails. @defaultValue 1 */
  maxStalledCount?: number;
  /** Start processing at once. @defaultValue true */
  autorun?: boolean;
}

function checkQueueName(name: string): void {
  if (typeof name !== 'string' || name.length === 0 || name.includes(':')) {
    throw new InvalidInputError(
      'invalid_queue_name',
      `BullMQ queue name must be non-empty and contain no ':' (got ${JSON.stringify(name)}); put namespaces in the prefix option`,
      'name',
    );
  }
}

function prefixOf(opts: QueueFactoryOptions): string {
  return opts.prefix ?? new RedisKeys().bullPrefix;
}

/** A BullMQ Queue with {@link DEFAULT_JOB_OPTIONS}. */
export function createQueue<D = unknown, R = unknown>(name: string, opts: CreateQueueOptions): Queue<D, R> {
  checkQueueName(name);
  return new Queue<D, R>(name, {
    connection: opts.connection,
    prefix: prefixOf(opts),
    defaultJobOptions: { ...DEFAULT_JOB_OPTIONS, ...opts.defaultJobOptions },
  });
}

/**
 * A BullMQ Worker. A Redis instance passed as `connection` must have `maxRetriesPerRequest: null`
 * (`createRedis(url, { forBullmq: true })`).
 * @throws BullmqConnectionError otherwise.
 */
export function createWorker<D = unknown, R = unknown>(name: string, processor: Processor<D, R>, opts: CreateWorkerOptions): Worker<D, R> {
  checkQueueName(name);
  const conn = opts.connection as { options?: { maxRetriesPerRequest?: number | null } };
  if (conn && typeof conn === 'object' && 'options' in conn && conn.options && conn.options.maxRetriesPerRequest !== null) {
    throw new BullmqConnectionError(`the Redis instance has maxRetriesPerRequest = ${conn.options.maxRetriesPerRequest}; workers need null`);
  }
  return new Worker<D, R>(name, processor, {
    connection: opts.connection,
    prefix: prefixOf(opts),
    concurrency: opts.concurrency ?? 1,
    lockDuration: opts.lockDuration ?? 30000,
    stalledInterval: opts.stalledInterval ?? 30000,
    maxStalledCount: opts.maxStalledCount ?? 1,
    autorun: opts.autorun ?? true,
  });
}

/**
 * A BullMQ FlowProducer (parent job + children, e.g. request + its block jobs). Note: flows do not
 * apply a Queue's defaultJobOptions; give each node `opts: { ...DEFAULT_JOB_OPTIONS, ... }`.
 */
export function createFlowProducer(opts: QueueFactoryOptions): FlowProducer {
  return new FlowProducer({ connection: opts.connection, prefix: prefixOf(opts) });
}
