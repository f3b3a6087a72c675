/**
 * Errors of the actor runtime. Each is a StarqError with a stable `code` and a message that says
 * what to do about it.
 */
import { StarqError, type WireError } from '@starq/protocol';

/**
 * Redis cannot be reached (initial connect failed or timed out). Code `redis_unavailable`; `param`
 * is where the URL came from (`urlSource`, e.g. a flag or an environment variable), else `redis`.
 */
export class RedisUnavailableError extends StarqError {
  constructor(
    readonly url: string,
    reason: string,
    cause?: unknown,
    urlSource?: string,
  ) {
    super(
      'redis_unavailable',
      `Redis is not reachable at ${url} (${reason}). Start it with \`redis-server --daemonize yes\` ` +
        `(or \`docker run -d -p 6379:6379 redis:7\`), or point ${urlSource ?? 'the Redis URL'} at a running server.`,
      { param: urlSource ?? 'redis', status: 503, cause },
    );
  }
}

/** The target actor is gone: nobody listens on its inbox, or its heartbeat expired. Code `actor_died`. */
export class ActorDiedError extends StarqError {
  constructor(
    readonly actorId: string,
    readonly method: string,
    reason: string,
  ) {
    super(
      'actor_died',
      `actor ${actorId} is gone (${reason}); call ${method} was not answered. Its in-memory state ` +
        'is lost: pick a live actor from the registry (ActorRegistry.list()) and retry there, ' +
        'rebuilding any state it held.',
      { status: 503 },
    );
  }
}

/** No reply within the timeout while the actor still heartbeats (busy or stuck). Code `actor_timeout`. */
export class ActorTimeoutError extends StarqError {
  constructor(
    readonly actorId: string,
    readonly method: string,
    readonly timeoutMs: number,
    detail = 'the actor is alive (heartbeating) but did not answer in time',
  ) {
    super(
      'actor_timeout',
      `call ${method} to actor ${actorId} timed out after ${timeoutMs} ms: ${detail}. ` +
        'Raise timeoutMs if the work is legitimately long, or check the actor for overload (registry status.busy).',
      { status: 504 },
    );
  }
}

/** The remote handler threw. `code`, `param` and `status` are the remote error's. */
export class RemoteCallError extends StarqError {
  /** Class name of the error on the remote side. */
  readonly remoteName: string;

  constructor(
    readonly actorId: string,
    readonly method: string,
    err: WireError,
  ) {
    super(err.code, `${err.message} (remote ${err.name} in ${method} on actor ${actorId})`, {
      param: err.param,
      status: err.status ?? 500,
    });
    this.remoteName = err.name;
  }
}

/** The client (or server) was closed; its pending and new calls fail with this. Code `actor_client_closed`. */
export class ActorClientClosedError extends StarqError {
  constructor(what: string) {
    super('actor_client_closed', `${what} is closed; create a new one (and do not use it after close()).`, { status: 503 });
  }
}

/** The call was aborted by the caller's AbortSignal. Code `call_aborted`. */
export class CallAbortedError extends StarqError {
  constructor(
    readonly actorId: string,
    readonly method: string,
  ) {
    super('call_aborted', `call ${method} to actor ${actorId} was aborted by the caller; the actor may still run it.`, { status: 499 });
  }
}

/** Another live process already holds this actor id. Code `actor_id_in_use`. */
export class ActorIdInUseError extends StarqError {
  constructor(
    readonly actorId: string,
    holder: string,
    ttlMs: number,
  ) {
    super(
      'actor_id_in_use',
      `actor id ${actorId} is held by a live actor (${holder}). Use a unique id (e.g. include hostname and pid), ` +
        `stop the other process, or wait up to ${ttlMs} ms for its record to expire if it crashed.`,
      { param: 'id', status: 409 },
    );
  }
}

/** A BullMQ worker was given a Redis connection that retries requests. Code `bullmq_connection`. */
export class BullmqConnectionError extends StarqError {
  constructor(detail: string) {
    super(
      'bullmq_connection',
      `BullMQ worker connection: ${detail}. Create it with createRedis(url, { forBullmq: true }) (sets maxRetriesPerRequest: null).`,
      { param: 'connection', status: 500 },
    );
  }
}
