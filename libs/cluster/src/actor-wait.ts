/**
 * The actor-wait deadline: a request that cannot progress because no live actor of a kind it needs
 * exists (no query actor for a request ready for phase 2 or held by a dead query actor; no host for
 * one whose block jobs wait) is failed with `query_actor_unavailable` / `host_unavailable` once it
 * has waited longer than the limit (STARQ_ACTOR_WAIT_MS, default 60 s).
 *
 * It holds for every request, whoever submitted it, because it is enforced in three places that
 * share one record of since when a request waits (`<prefix>:waiting:<id>`, kept while someone sees
 * it waiting) and one way to fail it ({@link failRequest}: the first to mark the request decides):
 * - in the cluster: every actor's reaper sweep ({@link ActorWaitDeadline.sweep}) looks for
 *   requests waiting for an actor kind that has no live actor — the actors of the other kind see
 *   them (a request waiting for a query actor is failed by the hosts, and the other way round);
 * - by `StarqClient.wait` (the CLI), for the case where no actor of either kind is alive;
 * - by the gateway, for the jobs it follows.
 */
import type { Redis } from 'ioredis';
import type { Queue } from 'bullmq';
import type { RedisKeys } from '@starq/protocol';
import type { RequestEvent } from './jobs';

/** What a request waits for when no live actor can move it on (the gateway's `waitingFor`). */
export const WAITING_FOR_QUERY_ACTOR = 'waiting for a query actor';
export const WAITING_FOR_HOST = 'waiting for a host actor';

/** Default of STARQ_ACTOR_WAIT_MS. */
export const DEFAULT_ACTOR_WAIT_MS = 60000;

/** How long a waiting mark lives without being seen again (longer than every enforcer's period). */
const MARK_TTL_MS = 10000;

/** Most request jobs one sweep looks at per state. */
const SWEEP_MAX = 1000;

/**
 * What a request job in BullMQ state `state` waits for given the live `actors`: a query actor
 * (ready for phase 2, or held by a query actor that died), a host (block jobs waiting), or null.
 */
export function missingActor(state: string, actors: readonly { type: string }[]): string | null {
  if (state === 'waiting-children') return actors.some((a) => a.type === 'host') ? null : WAITING_FOR_HOST;
  if (state === 'waiting' || state === 'prioritized' || state === 'active') return actors.some((a) => a.type === 'query') ? null : WAITING_FOR_QUERY_ACTOR;
  return null;
}

/** Redis key marking a request as cancelled or failed from outside its actors (checked by the query actor). */
export function requestCancelKey(keys: RedisKeys, requestId: string): string {
  return `${keys.prefix}:cancel:${requestId}`;
}

/**
 * End a request with an error from outside its actors: the first of cancel/fail to mark the
 * request decides; later calls do nothing. Its block jobs that no host started are removed; an
 * actor that takes it later stops at once (as after a cancel).
 * @returns false when the request was already cancelled or failed this way.
 */
export async function failRequest(redis: Redis, keys: RedisKeys, requests: Queue, requestId: string, error: { code: string; message: string; param: string | null }): Promise<boolean> {
  const first = await redis.set(requestCancelKey(keys, requestId), error.code, 'EX', 86400, 'NX');
  if (first !== 'OK') return false;
  const job = await requests.getJob(requestId);
  await job?.removeUnprocessedChildren().catch(() => undefined);
  const stream = keys.requestEvents(requestId);
  const e: RequestEvent = { type: 'error', error };
  await redis.multi().xadd(stream, '*', 'e', JSON.stringify(e)).expire(stream, 86400).exec();
  return true;
}

export interface ActorWaitDeadlineOptions {
  redis: Redis;
  keys: RedisKeys;
  /** The `requests` queue (to remove a failed request's unstarted block jobs). */
  requests: Queue;
  /** How long a request may wait for a missing actor kind (ms). @defaultValue 60000 */
  limitMs?: number;
}

export class ActorWaitDeadline {
  readonly limitMs: number;

  constructor(private readonly o: ActorWaitDeadlineOptions) {
    this.limitMs = o.limitMs ?? DEFAULT_ACTOR_WAIT_MS;
  }

  private markKey(requestId: string): string {
    return `${this.o.keys.prefix}:waiting:${requestId}`;
  }

  /**
   * Records that `requestId` waits for `waiting` (null: it can progress) and fails it once it has
   * waited longer than the limit. @returns true when this call failed it.
   */
  async check(requestId: string, waiting: string | null): Promise<boolean> {
    const key = this.markKey(requestId);
    if (waiting === null) {
      await this.o.redis.del(key);
      return false;
    }
    const now = Date.now();
    const r = await this.o.redis.multi().set(key, String(now), 'PX', MARK_TTL_MS, 'NX').get(key).pexpire(key, MARK_TTL_MS).exec();
    const since = Number(r?.[1]?.[1] ?? now);
    if (!(now - since > this.limitMs)) return false;
    const host = waiting === WAITING_FOR_HOST;
    return failRequest(this.o.redis, this.o.keys, this.o.requests, requestId, {
      code: host ? 'host_unavailable' : 'query_actor_unavailable',
      message: `request ${requestId} waited ${Math.round((now - since) / 1000)} s for a ${host ? 'host' : 'query'} actor and none came (the limit is STARQ_ACTOR_WAIT_MS = ${this.limitMs} ms): start one (\`starq cluster up\` restarts dead actors) and resubmit`,
      param: null,
    });
  }

  /**
   * The cluster side: when an actor kind has no live actor, every request job waiting for that
   * kind is checked (requests already cancelled or failed are skipped). @returns the requests failed.
   */
  async sweep(actors: readonly { type: string }[]): Promise<string[]> {
    const noQuery = !actors.some((a) => a.type === 'query');
    const noHost = !actors.some((a) => a.type === 'host');
    if (!noQuery && !noHost) return [];
    const q = `${this.o.keys.bullPrefix}:${this.o.keys.queues.requests}`;
    const p = this.o.redis.pipeline();
    if (noQuery) p.lrange(`${q}:wait`, 0, SWEEP_MAX - 1).zrange(`${q}:prioritized`, 0, SWEEP_MAX - 1).lrange(`${q}:active`, 0, SWEEP_MAX - 1);
    if (noHost) p.zrange(`${q}:waiting-children`, 0, SWEEP_MAX - 1);
    const lists = ((await p.exec()) ?? []).map(([err, v]) => (err ? [] : (v as string[])));
    const waiting = new Map<string, string>();
    let i = 0;
    if (noQuery) for (const id of [...lists[i++], ...lists[i++], ...lists[i++]]) waiting.set(id, WAITING_FOR_QUERY_ACTOR);
    if (noHost) for (const id of lists[i++]) waiting.set(id, WAITING_FOR_HOST);
    if (waiting.size === 0) return [];
    const ids = [...waiting.keys()];
    const ended = await this.o.redis.mget(ids.map((id) => requestCancelKey(this.o.keys, id)));
    const failed: string[] = [];
    for (const [k, id] of ids.entries()) {
      if (ended[k] !== null) continue;
      if (await this.check(id, waiting.get(id)!)) failed.push(id);
    }
    return failed;
  }
}
