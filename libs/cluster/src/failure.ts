/**
 * Why a request failed, as one of the documented job error codes ({@link JOB_ERRORS}, the table in
 * docs/API.md "Job errors") and a message that says what happened (which actors, how often).
 * Every path that ends a job goes through here: the query actor's error event
 * ({@link jobErrorOf}), BullMQ's own failure reasons read back by StarqClient.requestFailure,
 * the gateway's job view and event follower, and StarqClient.wait. No client ever sees driver
 * text or a BullMQ reason as a code.
 *
 * | failure                                                         | code                  |
 * | --------------------------------------------------------------- | --------------------- |
 * | a starq error with a documented code                            | that code             |
 * | a host lost in phase 2 and not recovered (serving loop)         | `host_lost`           |
 * | a host call failing outside phase 2 (Ring phase 1, first locate) | `host_lost`           |
 * | a block job whose hosts died more often than its queue allows   | `host_lost`           |
 * | a request whose query actors died more often than its queue allows | `query_actor_lost` |
 * | a job whose worker lost its lock (looked dead, requeued)        | `host_lost` / `query_actor_lost` |
 * | no live query actor / host within the wait deadline             | `query_actor_unavailable` / `host_unavailable` |
 * | Redis unreachable while the job ran, or Redis lost the job      | `redis_unavailable`   |
 * | anything else (a starq bug)                                     | `internal_error`      |
 */
import { ActorDiedError, ActorTimeoutError, SERVER_ERROR_CODES } from '@starq/actors';
import { HostCallError } from '@starq/attention';
import { StarqError } from '@starq/protocol';

export interface FailureDescription {
  code: string;
  message: string;
  param: string | null;
}

/**
 * Every code a job can end with once accepted, with the HTTP status of a request that waits for
 * the job. docs/API.md "Job errors" says when each happens; failure.spec.ts checks that both list
 * the same codes and statuses.
 */
export const JOB_ERRORS: Readonly<Record<string, number>> = Object.freeze({
  cancelled: 409,
  context_expired: 409,
  context_too_long: 422,
  context_over_capacity: 422,
  block_too_large: 422,
  query_kv_too_large: 422,
  invalid_token_id: 400,
  malformed_job: 400,
  unknown_model: 400,
  host_lost: 503,
  query_actor_lost: 503,
  query_actor_unavailable: 503,
  host_unavailable: 503,
  redis_unavailable: 503,
  internal_error: 500,
});

/** The HTTP status of a job that failed with `code` (500 for a code that is not a job error). */
export function statusOfJobError(code: string): number {
  return JOB_ERRORS[code] ?? 500;
}

/** Texts ioredis and Node produce when Redis cannot be reached. */
const REDIS_DOWN = /max retries per request|Connection is closed|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|Stream isn't writeable|connect ETIMEDOUT|getaddrinfo|LOADING Redis is loading/i;

/** BullMQ's reason for a job whose worker died (stopped renewing its lock) too often. */
const STALLED = /stalled more than allowable limit|started more than allowable limit/i;

/** BullMQ's reason for a flow parent failed by a child: `child <bullPrefix>:<queue>:<jobId> failed`. */
const CHILD_FAILED = /^child (.+) failed$/s;

/** BullMQ's errors when a worker finishes a job whose lock it lost (another worker owns it now). */
const LOCK_LOST = /Missing lock for job|Lock mismatch for job|is not in the active state|Missing key for job/i;

/** True for errors that mean Redis cannot be reached (ioredis / socket errors). */
export function isRedisDown(e: unknown): boolean {
  const m = (e as Error)?.message;
  return typeof m === 'string' && REDIS_DOWN.test(m);
}

/** The child job key a BullMQ "child … failed" reason names, or null. */
export function failedChildKey(reason: string): string | null {
  return CHILD_FAILED.exec(reason)?.[1] ?? null;
}

/** What is known about the job a failure reason belongs to (gathered by StarqClient.requestFailure). */
export interface FailureFacts {
  /** The request's id. */
  requestId: string;
  /** Whose reason it is: the request job itself, or one of its block jobs (index `block`). */
  job: 'request' | 'block';
  block?: number | null;
  /** Actors that held the job (oldest first; from its events and BullMQ's processedBy). */
  actors?: readonly string[];
  /** Times the job stalled (BullMQ's counter), when known. */
  stalls?: number | null;
}

const listOr = (xs: readonly string[] | undefined, none: string) => (xs && xs.length > 0 ? xs.join(', ') : none);

/**
 * A BullMQ failure reason that is not an error record (see `jobFailure` in libs/actors) as a
 * documented code; `null` reason = the job is no longer in the queue.
 */
export function describeFailure(reason: string | null, facts: FailureFacts): FailureDescription {
  const { requestId } = facts;
  const what = facts.job === 'block' ? `block ${facts.block ?? '?'} of request ${requestId}` : `request ${requestId}`;
  if (reason === null) {
    return {
      code: 'redis_unavailable',
      message: `${what} is no longer in the queue: Redis lost it (restarted without persistence, or within the last second before a crash with AOF everysec: see docs/DEPLOY.md "Redis"); resubmit it`,
      param: null,
    };
  }
  const stalled = STALLED.test(reason);
  const lockLost = !stalled && LOCK_LOST.test(reason);
  if (stalled || lockLost) {
    const times = facts.stalls ? ` ${facts.stalls} times` : '';
    const how = stalled ? `died or stopped answering${times}, more often than the queue allows` : 'lost the job (it looked dead and the job was requeued)';
    if (facts.job === 'block') {
      return { code: 'host_lost', message: `${what} was never encoded: the hosts encoding it (${listOr(facts.actors, 'unknown')}) ${how}; resubmit it`, param: null };
    }
    return { code: 'query_actor_lost', message: `${what} failed: the query actors running it (${listOr(facts.actors, 'unknown')}) ${how}; resubmit it`, param: null };
  }
  if (REDIS_DOWN.test(reason)) {
    return { code: 'redis_unavailable', message: `${what} failed: Redis could not be reached while it ran; resubmit it once Redis is back`, param: null };
  }
  const child = failedChildKey(reason);
  if (child) {
    // The child's own record is gone (the caller found none): only Redis loses a failed job.
    return { code: 'redis_unavailable', message: `${what} failed because its job ${child} failed, and Redis no longer has that job's record (lost in a restart); resubmit it`, param: null };
  }
  return { code: 'internal_error', message: `${what} failed for a reason starq does not know (a bug: please report it): ${reason}`, param: null };
}

/**
 * An error record (code, message, param) as a documented job error: documented codes pass,
 * driver text becomes `redis_unavailable`, host-call failures become `host_lost`, anything else
 * `internal_error` keeping the original code in the message.
 */
export function documentedFailure(e: FailureDescription, requestId: string): FailureDescription {
  if (e.code !== 'internal_error' && e.code in JOB_ERRORS) return e;
  if (REDIS_DOWN.test(e.message)) return { code: 'redis_unavailable', message: `request ${requestId} failed: Redis could not be reached while it ran; resubmit it once Redis is back`, param: null };
  if (e.code === 'internal_error') return e;
  if (HOST_CALL_CODES.has(e.code)) return { code: 'host_lost', message: `request ${requestId} failed: a host it needed is gone ([${e.code}] ${e.message}); resubmit it`, param: null };
  if (e.code === 'cluster_unavailable') return { code: 'host_lost', message: `request ${requestId} failed: ${e.message}`, param: null };
  return { code: 'internal_error', message: `request ${requestId} failed: [${e.code}] ${e.message}`, param: e.param };
}

/** Codes of a host call that failed because the host is gone or not answering. */
const HOST_CALL_CODES = new Set(['actor_died', 'actor_timeout', SERVER_ERROR_CODES.stopped, SERVER_ERROR_CODES.deadlineExceeded]);

/**
 * The documented error of anything a query actor's run of a request threw (see the table above):
 * driver errors are `redis_unavailable`, a HostCallError or an actor error of a host call is
 * `host_lost` naming the host.
 */
export function jobErrorOf(err: unknown, requestId: string): FailureDescription {
  if (!(err instanceof StarqError) && isRedisDown(err)) {
    return { code: 'redis_unavailable', message: `request ${requestId} failed: Redis was not reachable while it ran; resubmit it`, param: null };
  }
  if (err instanceof HostCallError) {
    const cause = err.cause as { code?: unknown; message?: string } | undefined;
    return { code: 'host_lost', message: `request ${requestId} failed: ${err.message}${typeof cause?.code === 'string' ? ` [${cause.code}]` : ''}; resubmit it`, param: null };
  }
  if (err instanceof ActorDiedError || err instanceof ActorTimeoutError) {
    return { code: 'host_lost', message: `request ${requestId} failed: host ${err.actorId} is gone (${err.code}: ${err.message}); resubmit it`, param: null };
  }
  if (err instanceof StarqError) return documentedFailure({ code: err.code, message: err.message, param: err.param }, requestId);
  const m = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return { code: 'internal_error', message: `request ${requestId} failed (a bug: please report it): ${m}`, param: null };
}
