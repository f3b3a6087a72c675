/**
 * The JobReaper of a starq actor: watches both queues (`blocks`, `requests`) and tells the
 * request whose job it requeued with a `requeued` event on the request's event stream.
 */
import type { Redis } from 'ioredis';
import type { RedisKeys } from '@starq/protocol';
import { JobReaper, type LivenessSource } from '@starq/actors';
import type { RequestEvent } from './jobs';

/** Block job ids are `<requestId>-b<index>` (StarqClient.submit). */
const BLOCK_JOB_ID = /^(.*)-b(\d+)$/;

export function starqReaper(redis: Redis, keys: RedisKeys, registry: LivenessSource, intervalMs = 1000): JobReaper {
  return new JobReaper({
    redis,
    keys,
    registry,
    intervalMs,
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
}
