import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { QueueEvents, type Job } from 'bullmq';
import { InvalidInputError, RedisKeys, StarqError } from '@starq/protocol';
import { BullmqConnectionError } from './errors';
import { createRedis, deleteKeysByPrefix } from './redis';
import { DEFAULT_JOB_OPTIONS, createFlowProducer, createQueue, createWorker, failJob, jobFailure } from './task-queue';

const keys = new RedisKeys(`t-tq-${randomBytes(4).toString('hex')}`);
let redis: Redis; // plain connection
let bull: Redis; // maxRetriesPerRequest: null
const closers: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  redis = await createRedis();
  bull = await createRedis(undefined, { forBullmq: true });
});
afterAll(async () => {
  for (const c of closers.reverse()) await c();
  await deleteKeysByPrefix(redis, keys.prefix);
  await bull.quit();
  await redis.quit();
});

/** A JSON job payload. */
interface BlockJob {
  cacheId: string;
  blockIndex: number;
  segments: { start: number; end: number }[];
}

function block(i: number): BlockJob {
  return { cacheId: `ctx:x/b${i}`, blockIndex: i, segments: [{ start: 4 + 8 * i, end: 12 + 8 * i }] };
}

describe('task queue helpers', () => {
  it('uses the starq BullMQ prefix and documented job defaults', async () => {
    const q = createQueue('defaults', { connection: bull, prefix: keys.bullPrefix });
    closers.push(() => q.close());
    expect(q.opts.prefix).toBe(keys.bullPrefix);
    expect(q.defaultJobOptions).toMatchObject({ attempts: 3, backoff: { type: 'exponential', delay: 1000 } });
    expect(DEFAULT_JOB_OPTIONS.attempts).toBe(3);
    const job = await q.add('x', { a: 1 });
    expect(await redis.exists(`${keys.bullPrefix}:defaults:${job.id}`)).toBe(1);
  });

  it('processes JSON jobs and retries a failing one (at-least-once)', async () => {
    const name = keys.queues.blocks;
    const q = createQueue<BlockJob, string>(name, { connection: bull, prefix: keys.bullPrefix, defaultJobOptions: { backoff: { type: 'fixed', delay: 10 } } });
    const events = new QueueEvents(name, { connection: bull.duplicate(), prefix: keys.bullPrefix });
    await events.waitUntilReady();
    const attemptsSeen: Record<string, number> = {};
    const worker = createWorker<BlockJob, string>(
      name,
      async (job: Job<BlockJob>) => {
        const req = job.data;
        attemptsSeen[req.cacheId] = (attemptsSeen[req.cacheId] ?? 0) + 1;
        if (req.blockIndex === 1 && attemptsSeen[req.cacheId] === 1) throw new Error('transient failure');
        return req.cacheId;
      },
      { connection: bull, prefix: keys.bullPrefix, concurrency: 2 },
    );
    closers.push(() => q.close(), () => events.close(), () => worker.close());
    const jobs = await Promise.all([0, 1].map((i) => q.add('encode', block(i), { jobId: `blk-${i}` })));
    const results = await Promise.all(jobs.map((j) => j.waitUntilFinished(events, 10000)));
    expect(results).toEqual(['ctx:x/b0', 'ctx:x/b1']);
    expect(attemptsSeen).toEqual({ 'ctx:x/b0': 1, 'ctx:x/b1': 2 });
  });

  it('runs a flow: parent request after its block children', async () => {
    const flow = createFlowProducer({ connection: bull, prefix: keys.bullPrefix });
    const order: string[] = [];
    const blocks = createWorker<BlockJob, string>(
      'flowblocks',
      async (job) => {
        order.push(job.data.cacheId);
        return job.data.cacheId;
      },
      { connection: bull, prefix: keys.bullPrefix },
    );
    let resolveParent: (v: Record<string, string>) => void = () => undefined;
    const parentDone = new Promise<Record<string, string>>((r) => (resolveParent = r));
    const requests = createWorker<{ requestId: string }, string>(
      'flowrequests',
      async (job) => {
        order.push('request');
        resolveParent(await job.getChildrenValues<string>());
        return 'ok';
      },
      { connection: bull, prefix: keys.bullPrefix },
    );
    closers.push(() => flow.close(), () => blocks.close(), () => requests.close());
    await flow.add({
      name: 'request',
      queueName: 'flowrequests',
      data: { requestId: 'r1' },
      opts: { ...DEFAULT_JOB_OPTIONS },
      children: [0, 1, 2].map((i) => ({ name: 'encode', queueName: 'flowblocks', data: block(i), opts: { ...DEFAULT_JOB_OPTIONS } })),
    });
    const values = await parentDone;
    expect(Object.values(values).sort()).toEqual(['ctx:x/b0', 'ctx:x/b1', 'ctx:x/b2']);
    expect(order[order.length - 1]).toBe('request');
  });

  it('records why a job failed as data (code, message, param), and fails it for good when asked', async () => {
    const name = 'failures';
    const q = createQueue<{ how: string }, string>(name, { connection: bull, prefix: keys.bullPrefix, defaultJobOptions: { backoff: { type: 'fixed', delay: 10 } } });
    const events = new QueueEvents(name, { connection: bull.duplicate(), prefix: keys.bullPrefix });
    await events.waitUntilReady();
    const worker = createWorker<{ how: string }, string>(
      name,
      async (job) => {
        if (job.data.how === 'coded') throw new StarqError('bad_thing', 'the thing [x] is bad', { param: 'thing', status: 422 });
        if (job.data.how === 'final') throw failJob(new StarqError('no_retry', 'retrying cannot help', { param: null }), { retry: false });
        throw new TypeError('plain');
      },
      { connection: bull, prefix: keys.bullPrefix },
    );
    closers.push(() => q.close(), () => events.close(), () => worker.close());
    const jobs = await Promise.all(['coded', 'final', 'plain'].map((how) => q.add(how, { how }, { jobId: `fail-${how}` })));
    await Promise.all(jobs.map((j) => j.waitUntilFinished(events, 20000).catch(() => undefined)));
    const [coded, final, plain] = await Promise.all(jobs.map((j) => q.getJob(j.id!)));
    expect(jobFailure(coded!.failedReason)).toEqual({ code: 'bad_thing', message: 'the thing [x] is bad', param: 'thing', name: 'StarqError', status: 422 });
    expect(coded!.attemptsMade).toBe(3); // retried: the queue default
    expect(jobFailure(final!.failedReason)).toMatchObject({ code: 'no_retry', message: 'retrying cannot help', param: null });
    expect(final!.attemptsMade).toBe(1);
    expect(jobFailure(plain!.failedReason)).toEqual({ code: 'internal_error', message: 'plain', param: null, name: 'TypeError' });
    // reasons that are not records (BullMQ's own) are not mistaken for one
    expect(jobFailure('job stalled more than allowable limit')).toBeNull();
    expect(jobFailure('{"code": 3}')).toBeNull();
    expect(jobFailure(undefined)).toBeNull();
  });

  it('rejects queue names with a colon and worker connections that retry requests', () => {
    expect(() => createQueue('starq:blocks', { connection: bull, prefix: keys.bullPrefix })).toThrow(InvalidInputError);
    expect(() => createQueue('starq:blocks', { connection: bull })).toThrow(/no ':'.*prefix option/);
    expect(() => createWorker('w', async () => 1, { connection: redis, prefix: keys.bullPrefix })).toThrow(BullmqConnectionError);
    expect(() => createWorker('w', async () => 1, { connection: redis, prefix: keys.bullPrefix })).toThrow(/forBullmq: true/);
  });
});
