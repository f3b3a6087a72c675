/**
 * Why a request failed, as a code and a message, from what BullMQ kept of it. One place maps
 * BullMQ's and ioredis's own failure texts to documented codes, so that no client ever sees
 * driver text as an error code (the gateway's job view, its event follower and
 * StarqClient.wait all use it).
 *
 * | failure                                             | code                |
 * | --------------------------------------------------- | ------------------- |
 * | a starq error thrown by an actor (`[code] message`)  | that code           |
 * | the job's worker stopped renewing its lock too often | `actor_lost`        |
 * | Redis unreachable while the job ran                  | `redis_unavailable` |
 * | the job is no longer in the queue                    | `job_lost`          |
 * | anything else                                        | `job_failed`        |
 */

export interface FailureDescription {
  code: string;
  message: string;
  param: string | null;
}

/** Texts ioredis and Node produce when Redis cannot be reached. */
const REDIS_DOWN = /max retries per request|Connection is closed|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|Stream isn't writeable|connect ETIMEDOUT|getaddrinfo|LOADING Redis is loading/i;

/**
 * A failure reason (`job.failedReason`, possibly already resolved to the failing block job's own
 * reason) as a code and message; `null` when the job is gone from the queue.
 */
export function describeFailure(reason: string | null, requestId: string): FailureDescription {
  if (reason === null) return { code: 'job_lost', message: `request ${requestId} is no longer in the queue (it expired or was removed)`, param: null };
  const coded = /^\[([a-z_]+)\] (.*)$/s.exec(reason);
  if (coded) return { code: coded[1], message: coded[2], param: null };
  if (/stalled more than allowable limit/i.test(reason)) {
    return {
      code: 'actor_lost',
      message: `request ${requestId} failed: the actors running it stopped responding (died, or their event loop stalled) more often than the queue allows; resubmit it`,
      param: null,
    };
  }
  if (REDIS_DOWN.test(reason)) {
    return { code: 'redis_unavailable', message: `request ${requestId} failed: Redis could not be reached while it ran; resubmit it once Redis is back`, param: null };
  }
  return { code: 'job_failed', message: `request ${requestId} failed: ${reason}`, param: null };
}

/** True for errors that mean Redis cannot be reached (ioredis / socket errors). */
export function isRedisDown(e: unknown): boolean {
  const m = (e as Error)?.message;
  return typeof m === 'string' && REDIS_DOWN.test(m);
}
