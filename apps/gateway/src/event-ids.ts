/**
 * Ids of the native job event stream (`GET /v1/jobs/:id/events`), which make it resumable with
 * `Last-Event-ID` (or `?lastEventId=`).
 *
 * A job's events come from its Redis stream (`keys.requestEvents(id)`, written by the query actor
 * and by cancel), so an id is a position in that stream and means the same on every connection
 * and every gateway replica:
 *
 * - `<ms>-<seq>`: the event made from the stream entry with that id (a `token`, the `progress`
 *   that announces phase 2, a phase-1 `progress` of ring mode, `recovered`, or the final
 *   `result` / `error`). The same entry always gives the same event with the same id.
 * - `<ms>-<seq>.<n>` (n ≥ 1): the n-th event the gateway made itself after that entry: the
 *   opening `job` snapshot (`0-0.1`: before every entry) and the phase-1 `progress` it polls from
 *   the queue. They report a state, are not replayed, and only mark the position.
 * - `<ms>-<seq>.end`: the final `result` / `error` when no entry carries it (a block job failed,
 *   so the query actor never ran the job, or the job's events expired).
 *
 * Ordered by entry, then n (`.end` last): ids only increase along a stream, and a resumed stream
 * continues the order. Resuming from a position sends every entry strictly after it.
 */
import { HttpError, type Req } from './http';

export interface StreamPosition {
  /** A stream entry id `ms-seq` in canonical form; `0-0` = before every entry. */
  entry: string;
  /** 0: the entry's own event; k ≥ 1: the k-th gateway-made event after it; Infinity: `.end`. */
  n: number;
}

/** The position before everything (the opening `job` snapshot is its first made event). */
export const START: StreamPosition = { entry: '0-0', n: 0 };

const ID = /^(0|[1-9]\d{0,19})-(0|[1-9]\d{0,19})(?:\.(?:([1-9]\d{0,8})|(end)))?$/;
const U64_MAX = (1n << 64n) - 1n;

/** The position an `id:` value names, or null when it is not one (malformed). */
export function parseEventId(raw: string): StreamPosition | null {
  const m = ID.exec(raw);
  if (!m || BigInt(m[1]) > U64_MAX || BigInt(m[2]) > U64_MAX) return null;
  return { entry: `${m[1]}-${m[2]}`, n: m[4] ? Infinity : m[3] ? Number(m[3]) : 0 };
}

export function formatEventId(p: StreamPosition): string {
  return p.n === 0 ? p.entry : p.n === Infinity ? `${p.entry}.end` : `${p.entry}.${p.n}`;
}

/** Stream entry ids compared exactly (Redis ids are two unsigned 64-bit integers). */
export function compareEntries(a: string, b: string): number {
  const [am, as = '0'] = a.split('-');
  const [bm, bs = '0'] = b.split('-');
  const d = BigInt(am) - BigInt(bm) || BigInt(as) - BigInt(bs);
  return d < 0n ? -1 : d > 0n ? 1 : 0;
}

export function comparePositions(a: StreamPosition, b: StreamPosition): number {
  return compareEntries(a.entry, b.entry) || (a.n === b.n ? 0 : a.n < b.n ? -1 : 1);
}

/** Where a client asks to resume, with the name of the field it used (for error `param`). */
export interface ResumeRequest {
  raw: string;
  param: 'Last-Event-ID' | 'lastEventId';
  pos: StreamPosition;
}

function shown(raw: string): string {
  return JSON.stringify(raw.length > 80 ? `${raw.slice(0, 80)}…` : raw);
}

/**
 * The resume position of a request: the `Last-Event-ID` header (what EventSource sends when it
 * reconnects), else the `lastEventId` query parameter (clients that cannot set headers). The
 * header wins: an EventSource reconnecting to a URL with `?lastEventId=` sends a newer id in it.
 * An empty value is no id (start from the beginning).
 * @throws HttpError 400 `invalid_last_event_id` for a value that is not an id of this stream.
 */
export function resumeRequest(req: Req): ResumeRequest | null {
  let raw: string | null = null;
  let param: ResumeRequest['param'] = 'Last-Event-ID';
  const header = req.headers['last-event-id'];
  if (typeof header === 'string' && header !== '') raw = header;
  else {
    const url = (req as Req & { originalUrl?: string }).originalUrl ?? req.url ?? '/';
    const values = new URL(url, 'http://gateway.invalid').searchParams.getAll('lastEventId');
    if (values.length > 1) throw new HttpError(400, 'invalid_last_event_id', `lastEventId is given ${values.length} times: give it once`, 'lastEventId');
    if (values.length === 1 && values[0] !== '') {
      raw = values[0];
      param = 'lastEventId';
    }
  }
  if (raw === null) return null;
  const pos = parseEventId(raw);
  if (!pos) {
    throw new HttpError(
      400,
      'invalid_last_event_id',
      `${param} ${shown(raw)} is not an id of a job event stream: send the value of the last "id:" field received ("<ms>-<seq>", "<ms>-<seq>.<n>" or "<ms>-<seq>.end")`,
      param,
    );
  }
  return { raw, param, pos };
}

/** 400 `unknown_last_event_id`: a well-formed id this job's stream never sent. */
export function unknownEventId(r: ResumeRequest, why: string): HttpError {
  return new HttpError(400, 'unknown_last_event_id', `${r.param} ${shown(r.raw)} ${why}`, r.param);
}
