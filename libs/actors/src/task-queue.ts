/**
 * Thin BullMQ factories for stateless, durable work (single jobs, or flows: a parent job that
 * runs once its children are done). Nothing is hidden: these return plain BullMQ objects with the
 * runtime's defaults filled in. Job data must be JSON: never tensors (pass token ranges or Redis keys).
 *
 * Failures are data: whatever a processor run through {@link createWorker} throws, the job's
 * `failedReason` holds a JSON error record (code, message, param, name, status), read back with
 * {@link jobFailure}. Throw {@link failJob}(err, { retry: false }) to fail a job for good at once.
 *
 * Delivery: at-least-once. A job whose processor throws is retried (`attempts`, `backoff`); a job
 * whose worker dies (lock not renewed for `lockDuration`) is moved back to wait by the stalled
 * check, up to `maxStalledCount` times. Processors must therefore be idempotent (e.g. a job that
 * computes a pure function of its data and stores the result under a key derived from that data).
 */
import { FlowProducer, Queue, UnrecoverableError, Worker, type ConnectionOptions, type Job, type JobsOptions, type Processor } from 'bullmq';
import { InvalidInputError, RedisKeys, WIRE_ERROR_SCHEMA, checkFields, toWireError, type WireError } from '@starq/protocol';
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
  /** Worker name, stored by BullMQ as each job's `processedBy` when it takes the job (JobReaper reads it). @defaultValue none */
  name?: string;
}

/** Errors made by {@link failJob} (their message already is an error record). */
const encodedFailures = new WeakSet<Error>();

/** BullMQ's control-flow errors, which a processor throws on purpose and must reach BullMQ as they are. */
const BULLMQ_CONTROL_ERRORS = new Set(['DelayedError', 'WaitingChildrenError', 'WaitingError', 'RateLimitError']);

/**
 * The error to throw from a processor so that the job fails with `err` as data: the job's
 * `failedReason` becomes the JSON of `err`'s {@link WireError} (code, message, param, name,
 * status). With `retry: false` the job fails for good at once (BullMQ UnrecoverableError);
 * otherwise its remaining attempts are used.
 */
export function failJob(err: unknown, opts: { retry: boolean }): Error {
  const record = JSON.stringify(toWireError(err));
  const e = opts.retry ? new Error(record) : new UnrecoverableError(record);
  encodedFailures.add(e);
  return e;
}

/**
 * The error record of a failed job (its `failedReason`, written by {@link failJob} or any error a
 * {@link createWorker} processor threw), or null when the reason is not one: BullMQ's own reasons
 * (e.g. a job that stalled too often, or a flow parent failed by a child) and empty reasons.
 */
export function jobFailure(failedReason: string | null | undefined): WireError | null {
  if (!failedReason || failedReason[0] !== '{') return null;
  try {
    return checkFields(JSON.parse(failedReason), 'failedReason', WIRE_ERROR_SCHEMA) as unknown as WireError;
  } catch {
    return null;
  }
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
 * (`createRedis(url, { forBullmq: true })`). An error the processor throws fails the job with the
 * error's record ({@link failJob}; an UnrecoverableError is not retried).
 * @throws BullmqConnectionError otherwise.
 */
export function createWorker<D = unknown, R = unknown>(name: string, processor: Processor<D, R>, opts: CreateWorkerOptions): Worker<D, R> {
  checkQueueName(name);
  const conn = opts.connection as { options?: { maxRetriesPerRequest?: number | null } };
  if (conn && typeof conn === 'object' && 'options' in conn && conn.options && conn.options.maxRetriesPerRequest !== null) {
    throw new BullmqConnectionError(`the Redis instance has maxRetriesPerRequest = ${conn.options.maxRetriesPerRequest}; workers need null`);
  }
  const recorded = async (job: Job<D, R>, token?: string): Promise<R> => {
    try {
      return await processor(job, token);
    } catch (err) {
      if (!(err instanceof Error) || encodedFailures.has(err) || BULLMQ_CONTROL_ERRORS.has(err.name)) throw err;
      throw failJob(err, { retry: !(err instanceof UnrecoverableError || err.name === 'UnrecoverableError') });
    }
  };
  return new Worker<D, R>(name, recorded, {
    connection: opts.connection,
    prefix: prefixOf(opts),
    concurrency: opts.concurrency ?? 1,
    lockDuration: opts.lockDuration ?? 30000,
    stalledInterval: opts.stalledInterval ?? 30000,
    maxStalledCount: opts.maxStalledCount ?? 1,
    autorun: opts.autorun ?? true,
    ...(opts.name ? { name: opts.name } : {}),
  });
}

/**
 * A BullMQ FlowProducer (parent job + children, e.g. request + its block jobs). Note: flows do not
 * apply a Queue's defaultJobOptions; give each node `opts: { ...DEFAULT_JOB_OPTIONS, ... }`.
 */
export function createFlowProducer(opts: QueueFactoryOptions): FlowProducer {
  return new FlowProducer({ connection: opts.connection, prefix: prefixOf(opts) });
}
