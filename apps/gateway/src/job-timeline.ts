/**
 * A job's life as the admin dashboard draws it: the plan, each block's encode on the host that
 * did it (a Gantt row per host), the request's events (started, recovered, cancelled, errors with
 * their codes) and phase 2's per-token times.
 *
 * Nothing here is recorded specially for the dashboard: the timings are the ones the cluster
 * already keeps with the job, read back and bounded —
 * - block jobs (BullMQ children `<requestId>-b<k>`): `processedOn`/`finishedOn`, attempts, the
 *   returned handle's `hostId`, the failure reason;
 * - blocks the request reused: their KV handles (host, `createdAt`);
 * - the request's event stream (a Redis stream: every entry id carries its epoch-ms time):
 *   `started`, `phase1`, `token` (one per generated token, so the per-token latencies),
 *   `recovered` (blocks re-encoded after a host was lost, with the hosts that took them), `done`,
 *   `error`.
 * The stream is capped by the query actor (MAXLEN ~100000) and the token series sent to the page
 * by {@link MAX_TOKEN_POINTS}; BullMQ keeps finished block jobs for an hour (`removeOnComplete`),
 * after which an encoded block shows as `unknown` timing with its current host.
 */
import { blockCacheId, planMode, privateBlockKey, type StarPlan } from '@starq/attention';
import { jobFailure } from '@starq/actors';
import type { KvHandle } from '@starq/protocol';
import type { RequestEvent, RequestJobData, StarqClient } from '@starq/cluster';
import type { JobMeta } from './jobs';
import { entryTime } from './event-hub';

/** At most this many per-token latencies are sent (longer runs are evenly sampled). */
export const MAX_TOKEN_POINTS = 2000;

/** One block's encode, as one bar in the Gantt. */
export interface BlockSpan {
  block: number;
  /** Context tokens of the block (its anchor not counted). */
  tokens: number;
  /** Host that encoded (or, for `reused`, holds) the block; null if unknown. */
  hostId: string | null;
  /** Epoch ms; null when not known (not started, or the record expired). */
  start: number | null;
  end: number | null;
  /**
   * `encoded` by this request's block job; `reused` from an earlier request; `recovered`:
   * re-encoded during phase 2 after its host was lost (`lostFrom`); `pending`: not encoded yet;
   * `failed`: its block job failed (`error`).
   */
  kind: 'encoded' | 'reused' | 'recovered' | 'pending' | 'failed';
  attempts: number;
  lostFrom?: string;
  /** Why the block job failed (the message of its error record). */
  error?: string;
  /** The code of that error. */
  errorCode?: string;
}

export interface TimelineEvent {
  /** Epoch ms (from the event stream entry id). */
  t: number;
  type: RequestEvent['type'] | 'submitted';
  /** One-line description (codes verbatim). */
  detail: string;
  code?: string;
}

export interface JobTimeline {
  object: 'job.timeline';
  id: string;
  plan: { mode: string; contextTokens: number; queryTokens: number; blockSize: number; anchorSize: number; blocks: number; hosts: number; cache: boolean };
  submittedAt: number;
  /** Host ids in Gantt row order (first use). */
  hosts: string[];
  blocks: BlockSpan[];
  events: TimelineEvent[];
  phase2: {
    startedAt: number | null;
    queryActor: string | null;
    firstTokenAt: number | null;
    /** Time to first token from phase 2's start, ms. */
    ttftMs: number | null;
    tokens: number;
    /** Per-token latencies (ms between consecutive tokens), sampled to ≤ MAX_TOKEN_POINTS: [tokenIndex, ms]. */
    perTokenMs: [number, number][];
    p50Ms: number | null;
    p99Ms: number | null;
    endedAt: number | null;
  };
}

function quantile(sorted: number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** Evenly sample `xs` down to at most `max` entries, always keeping the last. */
export function sampleEvenly<T>(xs: T[], max: number): T[] {
  if (xs.length <= max) return xs;
  const out: T[] = [];
  for (let i = 0; i < max; i++) out.push(xs[Math.floor((i * (xs.length - 1)) / (max - 1))]);
  return out;
}

function parseEvent(fields: string[]): RequestEvent | null {
  try {
    return JSON.parse(fields[fields.indexOf('e') + 1]) as RequestEvent;
  } catch {
    return null;
  }
}

/** A failed block job's error: its record's message and code (BullMQ's own reasons as they are). */
function blockError(failedReason: string): { error: string; errorCode?: string } {
  const r = jobFailure(failedReason);
  return r ? { error: r.message, errorCode: r.code } : { error: failedReason };
}

/** Reads a job's timeline from BullMQ, the KV directory and the event stream. */
export async function jobTimeline(client: StarqClient, meta: JobMeta): Promise<JobTimeline> {
  const [entries, reqJob] = await Promise.all([
    client.redis.xrange(client.keys.requestEvents(meta.id), '-', '+') as Promise<[string, string[]][]>,
    client.requests.getJob(meta.id).catch(() => undefined),
  ]);
  const data = reqJob?.data as RequestJobData | undefined;
  const plan: StarPlan = planMode(meta.mode, meta.contextTokens, { blockSize: meta.blockSize, anchorSize: meta.anchorSize, hosts: data?.hosts ?? null });
  const contextKey = data?.contextKey ?? meta.contextKey ?? null;

  // Blocks: this request's block jobs, else the handles of blocks it reused.
  const childJobs = meta.mode === 'ring' ? [] : await Promise.all(plan.blocks.map((b) => client.blocks.getJob(`${meta.id}-b${b.index}`).catch(() => undefined)));
  // A cache: false request's blocks: its private copy (privateBlockKey) if any, else the shared one.
  const privateKey = contextKey && data && !data.cache ? privateBlockKey(contextKey, meta.id) : null;
  const lookup = async (key: string | null) => (key && meta.mode !== 'ring' ? client.directory.getMany(plan.blocks.map((b) => blockCacheId(key, b.index))) : plan.blocks.map(() => null));
  const [shared, own] = await Promise.all([lookup(contextKey), lookup(privateKey)]);
  const handles: (KvHandle | null)[] = shared.map((h, i) => own[i] ?? h);
  const blocks: BlockSpan[] = plan.blocks.map((b, i) => {
    const job = childJobs[i];
    const tokens = b.end - b.start;
    if (job) {
      const ret = job.returnvalue as { hostId?: unknown } | null;
      const hostId = typeof ret?.hostId === 'string' ? ret.hostId : null;
      const failed = !ret && !!job.finishedOn && typeof job.failedReason === 'string' && job.failedReason.length > 0;
      return {
        block: b.index,
        tokens,
        hostId: hostId ?? handles[i]?.hostId ?? null,
        start: job.processedOn ?? null,
        end: job.finishedOn ?? null,
        kind: failed ? 'failed' : job.finishedOn ? 'encoded' : 'pending',
        attempts: job.attemptsMade ?? 0,
        ...(failed ? blockError(job.failedReason) : {}),
      };
    }
    const h = handles[i];
    if (meta.mode === 'ring') return { block: b.index, tokens, hostId: null, start: null, end: null, kind: 'encoded', attempts: 1 };
    // No block job of this request: the block was encoded earlier (reused) — or its job record expired.
    const reused = h !== null && h.createdAt <= meta.createdAt;
    return { block: b.index, tokens, hostId: h?.hostId ?? null, start: h ? h.createdAt : null, end: h ? h.createdAt : null, kind: reused || meta.blocksReused > 0 ? 'reused' : h ? 'encoded' : 'pending', attempts: 0 };
  });

  const events: TimelineEvent[] = [{ t: meta.createdAt, type: 'submitted', detail: `${meta.mode}, ${plan.numBlocks} block(s) of ${plan.blockSize} tokens, anchor ${plan.anchorSize}` }];
  const tokenTimes: number[] = [];
  let startedAt: number | null = null;
  let queryActor: string | null = null;
  let endedAt: number | null = null;
  for (const [id, fields] of entries) {
    const e = parseEvent(fields);
    if (!e) continue;
    const t = entryTime(id);
    switch (e.type) {
      case 'token':
        tokenTimes[e.index] = t; // a rerun after a stall re-sends from index 0: the later time wins
        break;
      case 'phase1':
        break; // the block spans show phase 1
      case 'started':
        startedAt = t;
        queryActor = e.queryActor;
        events.push({ t, type: 'started', detail: `phase 2 on ${e.queryActor}: ${e.blocks} block(s), ${e.reused} reused` });
        break;
      case 'recovered': {
        const to = e.toHosts;
        events.push({ t, type: 'recovered', detail: `host ${e.fromHost || '(unknown)'} lost: block(s) ${e.blocks.join(', ')} re-encoded` });
        e.blocks.forEach((k, j) => {
          const span = blocks[k];
          if (!span) return;
          const target = Array.isArray(to) && typeof to[j] === 'string' ? (to[j] as string) : (handles[k]?.hostId ?? null);
          blocks.push({ block: k, tokens: span.tokens, hostId: target, start: t, end: t, kind: 'recovered', attempts: 1, lostFrom: e.fromHost });
        });
        break;
      }
      case 'done':
        endedAt = t;
        events.push({ t, type: 'done', detail: `${e.result.generatedIds.length} token(s), finish ${e.result.finishReason}` });
        break;
      case 'error':
        endedAt = t;
        events.push({ t, type: 'error', detail: e.error.message, code: e.error.code });
        break;
      default: {
        const other = e as { type: string };
        events.push({ t, type: other.type as TimelineEvent['type'], detail: JSON.stringify(other) });
      }
    }
  }
  for (const b of blocks) if (b.kind === 'failed' && b.end) events.push({ t: b.end, type: 'error', detail: `block ${b.block}: ${b.error ?? 'failed'}` });
  events.sort((x, y) => x.t - y.t);

  const dense = tokenTimes.filter((x) => typeof x === 'number');
  const gaps: [number, number][] = [];
  for (let i = 1; i < tokenTimes.length; i++) if (tokenTimes[i] !== undefined && tokenTimes[i - 1] !== undefined) gaps.push([i, Math.max(0, tokenTimes[i] - tokenTimes[i - 1])]);
  const sorted = gaps.map((g) => g[1]).sort((a, b) => a - b);
  const firstTokenAt = tokenTimes[0] ?? null;
  const hosts: string[] = [];
  for (const b of [...blocks].sort((x, y) => (x.start ?? Infinity) - (y.start ?? Infinity))) if (b.hostId && !hosts.includes(b.hostId)) hosts.push(b.hostId);
  return {
    object: 'job.timeline',
    id: meta.id,
    plan: { mode: meta.mode, contextTokens: meta.contextTokens, queryTokens: meta.queryTokens, blockSize: plan.blockSize, anchorSize: plan.anchorSize, blocks: plan.numBlocks, hosts: plan.effectiveHosts, cache: meta.cache },
    submittedAt: meta.createdAt,
    hosts,
    blocks,
    events,
    phase2: {
      startedAt,
      queryActor,
      firstTokenAt,
      ttftMs: firstTokenAt !== null && startedAt !== null ? Math.max(0, firstTokenAt - startedAt) : null,
      tokens: dense.length,
      perTokenMs: sampleEvenly(gaps, MAX_TOKEN_POINTS),
      p50Ms: quantile(sorted, 0.5),
      p99Ms: quantile(sorted, 0.99),
      endedAt,
    },
  };
}
