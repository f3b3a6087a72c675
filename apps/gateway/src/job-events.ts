/**
 * `GET /v1/jobs/:id/events`: a job's progress, tokens and end as Server-Sent Events, resumable.
 *
 * The events are made from the job's Redis stream (see event-ids.ts for their ids), so a client
 * that reconnects with `Last-Event-ID` (or `?lastEventId=`) gets exactly the events after the last
 * one it received, from any gateway replica, even when the job ended meanwhile: the entries up to
 * that id are folded again (token count, incremental text decoder, last progress) without being
 * sent, and the stream continues from the next entry. A client resuming after the final event
 * gets 204 No Content, which tells EventSource to stop reconnecting.
 */
import type { RequestEvent } from '@starq/cluster';
import type { IncrementalDecoder } from '@starq/model/tokenizer';
import { compareEntries, formatEventId, resumeRequest, START, unknownEventId, type StreamPosition } from './event-ids';
import type { Gateway } from './gateway';
import { SseWriter, type Req, type Res } from './http';
import type { JobMeta, JobView } from './jobs';

interface SseOut {
  name: string;
  data: unknown;
}

const isFinished = (s: string) => s === 'completed' || s === 'failed' || s === 'cancelled';

function parseEntry(fields: string[]): RequestEvent | null {
  try {
    return JSON.parse(fields[fields.indexOf('e') + 1]) as RequestEvent;
  } catch {
    return null; // not one of ours (the event hub skips it too)
  }
}

/**
 * Turns a job's stream entries, in order, into the SSE events they make. Deterministic: the same
 * entries give the same events, on every connection.
 */
class EntryMapper {
  started = false;
  /** A `done` or `error` entry was seen: later entries make nothing. */
  terminal = false;
  /** Dedup key of the last `progress` sent (a polled one needs a change to be sent). */
  lastProgress: string | null = null;
  /** Dedup key of the last `progress` made from an entry (entries are compared among themselves only, so they make the same events on every connection). */
  private lastEntryProgress: string | null = null;
  private next = 0;

  constructor(
    private readonly meta: JobMeta,
    private readonly decoder: IncrementalDecoder | null,
  ) {}

  /** A polled phase-1 `progress`, or null when nothing changed since the last one sent. */
  polled(status: string, done: number, total: number): SseOut | null {
    const data = { status, blocks: { done, total }, tokens: 0 };
    const key = JSON.stringify(data);
    if (key === this.lastProgress) return null;
    this.lastProgress = key;
    return { name: 'progress', data };
  }

  private fromEntry(status: string, done: number, total: number, always = false): SseOut | null {
    const data = { status, blocks: { done, total }, tokens: 0 };
    const key = JSON.stringify(data);
    if (key === this.lastEntryProgress && !always) return null;
    this.lastEntryProgress = this.lastProgress = key;
    return { name: 'progress', data };
  }

  map(e: RequestEvent): SseOut | null {
    if (this.terminal) return null;
    const total = this.meta.blocksTotal;
    switch (e.type) {
      case 'started':
        this.started = true;
        return this.fromEntry('generating', total, total, true); // always announced before the first token
      case 'phase1':
        return this.fromEntry('encoding', Math.round((e.done / Math.max(1, e.total)) * total), total);
      case 'token':
        if (e.index !== this.next) return null; // a rerun after a stall re-sends from index 0
        this.next++;
        return { name: 'token', data: { index: e.index, id: e.id, text: this.decoder ? this.decoder.push(e.id) : '' } };
      case 'recovered':
        return { name: 'recovered', data: { blocks: e.blocks, fromHost: e.fromHost } };
      case 'queued':
        return { name: 'queued', data: { reason: e.reason, position: e.position } };
      case 'requeued':
        return { name: 'requeued', data: { job: e.job, block: e.block, actor: e.actor } };
      case 'done':
      case 'error':
        this.terminal = true;
        return null; // the final event is made from the job's view once the follower ends
      default:
        return null;
    }
  }
}

function finalEvent(view: JobView): SseOut {
  return view.status === 'completed' ? { name: 'result', data: view } : { name: 'error', data: { error: view.error, job: view } };
}

export async function serveJobEvents(gw: Gateway, req: Req, res: Res, id: string): Promise<void> {
  const who = gw.auth.authenticate(req, 'user');
  const meta = await gw.jobs.meta(id, who);
  const resume = resumeRequest(req);
  const redis = gw.client.redis;
  const key = gw.client.keys.requestEvents(meta.id);
  const decoder = gw.tokenizer?.createIncrementalDecoder({ skipSpecialTokens: false }) ?? null;
  const mapper = new EntryMapper(meta, decoder);
  let from: StreamPosition = START;

  if (resume) {
    const p = resume.pos;
    // Fold the entries up to the id again (nothing is sent); the id must be one of them.
    if (p.entry !== '0-0' || p.n === 0) {
      const entries = (await redis.xrange(key, '-', p.entry)) as [string, string[]][];
      if (entries.length === 0 || entries[entries.length - 1][0] !== p.entry) {
        const latest = ((await redis.xrevrange(key, '+', '-', 'COUNT', 1)) as [string, string[]][])[0]?.[0] ?? null;
        throw unknownEventId(
          resume,
          latest === null
            ? `is not an event of job ${id}: the job has no events stored (none yet, or they expired after it ended; GET /v1/jobs/${id} gives its state)`
            : compareEntries(p.entry, latest) > 0
              ? `is after the latest event of job ${id} (${latest}): not an id this job's stream sent`
              : `is not an event of job ${id}'s stream`,
        );
      }
      for (const [, fields] of entries) {
        const e = parseEntry(fields);
        if (e) mapper.map(e);
      }
    }
    if (p.n === Infinity && !mapper.terminal) {
      const v = await gw.jobs.view(meta);
      if (!isFinished(v.status)) throw unknownEventId(resume, `marks the end of job ${id}'s stream, but the job has not ended (status ${v.status})`);
    }
    if (mapper.terminal || p.n === Infinity) {
      // The client has the final event: nothing follows (204 stops EventSource reconnecting).
      res.writeHead(204, { 'Cache-Control': 'no-store' });
      res.end();
      return;
    }
    from = p;
  }

  const snapshot = await gw.jobs.view(meta);
  if (!resume) mapper.lastProgress = JSON.stringify({ status: snapshot.status, blocks: { done: snapshot.progress.blocks.done, total: snapshot.progress.blocks.total }, tokens: 0 });
  const sse = new SseWriter(res, gw.cfg.sseKeepAliveMs);
  sse.retry(gw.cfg.sseRetryMs);

  // Position of the last event sent: the last entry seen and how many events were made after it.
  let cursor = from.entry;
  let made = from.n;
  const sendEntry = (entryId: string, out: SseOut | null) => {
    cursor = entryId;
    made = 0;
    if (out) sse.event(out.name, out.data, entryId);
  };
  const sendMade = (out: SseOut) => {
    made++;
    sse.event(out.name, out.data, formatEventId({ entry: cursor, n: made }));
  };
  const sendFinal = (out: SseOut, entryId: string | null) => sse.event(out.name, out.data, entryId ?? formatEventId({ entry: cursor, n: Infinity }));

  if (!resume) sendMade({ name: 'job', data: snapshot });
  // A finished job whose events expired (or that never had any: a block job failed) ends at once;
  // one whose events are still in Redis is replayed (tokens included) like a live one.
  if (isFinished(snapshot.status) && (await redis.exists(key)) === 0) {
    sendFinal(finalEvent(snapshot), null);
    sse.end();
    return;
  }

  let terminalEntry: string | null = null;
  const f = gw.jobs.follow(
    id,
    (e, entryId) => {
      if (e.type === 'done' || e.type === 'error') terminalEntry = entryId;
      sendEntry(entryId, mapper.map(e));
    },
    from.entry,
    (waitingFor) => sendMade({ name: 'waitingFor', data: { waitingFor } }),
  );
  sse.onClose(() => f.stop());
  // Phase-1 progress of star and global jobs is not in the stream (hosts encode the blocks): poll it.
  let polling = false;
  const poll = setInterval(() => {
    if (mapper.started || mapper.terminal || polling || sse.closed || meta.mode === 'ring') return;
    polling = true;
    gw.jobs
      .phase1Progress(id)
      .then((p) => {
        if (mapper.started || mapper.terminal || sse.closed) return;
        const out = mapper.polled(p.encoded > 0 || p.running ? 'encoding' : 'queued', meta.blocksReused + p.encoded, meta.blocksTotal);
        if (out) sendMade(out);
      })
      .catch(() => undefined)
      .finally(() => (polling = false));
  }, 200);
  try {
    const t = await f.done;
    if (sse.closed || (t.kind === 'error' && t.error.code === 'unsubscribed')) return;
    const final = await gw.jobs.view(meta);
    sendFinal(t.kind === 'done' ? { name: 'result', data: final } : { name: 'error', data: { error: final.error ?? t.error, job: final } }, terminalEntry);
  } finally {
    clearInterval(poll);
    sse.end();
  }
}
