import type { IncomingHttpHeaders } from 'node:http';
import { comparePositions, formatEventId, parseEventId, resumeRequest } from './event-ids';
import { HttpError, type Req } from './http';

const req = (url: string, headers: IncomingHttpHeaders = {}) => ({ url, headers }) as Req;

function errorOf(fn: () => unknown): HttpError {
  try {
    fn();
  } catch (e) {
    if (e instanceof HttpError) return e;
    throw e;
  }
  throw new Error('expected an error');
}

describe('job event stream ids', () => {
  it('parse and format round-trip: entries, made events, the end', () => {
    for (const id of ['1730000000000-0', '1730000000000-17', '0-0.1', '1730000000000-3.12', '1730000000000-3.end', '18446744073709551615-18446744073709551615']) {
      const p = parseEventId(id);
      expect(p).not.toBeNull();
      expect(formatEventId(p!)).toBe(id);
    }
    expect(parseEventId('5-2')).toEqual({ entry: '5-2', n: 0 });
    expect(parseEventId('5-2.3')).toEqual({ entry: '5-2', n: 3 });
    expect(parseEventId('5-2.end')).toEqual({ entry: '5-2', n: Infinity });
  });

  it('rejects anything else', () => {
    for (const bad of ['', 'abc', '5', '5-', '-5', '05-1', '5-01', '5-1.0', '5-1.', '5-1.01', '5-1.END', '5-1.2.3', ' 5-1', '5-1 ', '5-1\n', '1e3-0', '18446744073709551616-0', '5-1.1234567890', 'x'.repeat(5000)]) {
      expect({ bad, p: parseEventId(bad) }).toEqual({ bad, p: null });
    }
  });

  it('order: by entry (numerically), then made events, `.end` last', () => {
    const ids = ['0-0.1', '0-0.2', '9-0', '9-1', '9-1.1', '9-1.2', '9-1.10', '10-0', '10-0.end', '100-0'];
    const ps = ids.map((i) => parseEventId(i)!);
    for (let i = 1; i < ps.length; i++) {
      expect(comparePositions(ps[i - 1], ps[i])).toBeLessThan(0);
      expect(comparePositions(ps[i], ps[i - 1])).toBeGreaterThan(0);
    }
    expect(comparePositions(parseEventId('9-1.2')!, parseEventId('9-1.2')!)).toBe(0);
    expect(comparePositions(parseEventId('18446744073709551614-0')!, parseEventId('18446744073709551615-0')!)).toBeLessThan(0); // beyond 2^53
  });

  it('resume position: the Last-Event-ID header wins over ?lastEventId=, empty values are none', () => {
    expect(resumeRequest(req('/v1/jobs/j/events'))).toBeNull();
    expect(resumeRequest(req('/v1/jobs/j/events?lastEventId=', { 'last-event-id': '' }))).toBeNull();
    expect(resumeRequest(req('/v1/jobs/j/events', { 'last-event-id': '7-1' }))).toEqual({ raw: '7-1', param: 'Last-Event-ID', pos: { entry: '7-1', n: 0 } });
    expect(resumeRequest(req('/v1/jobs/j/events?lastEventId=7-1.2'))).toEqual({ raw: '7-1.2', param: 'lastEventId', pos: { entry: '7-1', n: 2 } });
    expect(resumeRequest(req('/v1/jobs/j/events?lastEventId=7-1', { 'last-event-id': '8-0' }))!.pos.entry).toBe('8-0');
  });

  it('malformed ids: 400 invalid_last_event_id naming the field used', () => {
    const h = errorOf(() => resumeRequest(req('/v1/jobs/j/events', { 'last-event-id': 'nope' })));
    expect(h).toMatchObject({ status: 400, code: 'invalid_last_event_id', param: 'Last-Event-ID' });
    expect(h.message).toContain('"nope"');
    expect(errorOf(() => resumeRequest(req('/v1/jobs/j/events?lastEventId=1-2-3')))).toMatchObject({ status: 400, code: 'invalid_last_event_id', param: 'lastEventId' });
    expect(errorOf(() => resumeRequest(req('/v1/jobs/j/events?lastEventId=1-2&lastEventId=1-3')))).toMatchObject({ status: 400, code: 'invalid_last_event_id', param: 'lastEventId' });
    const long = errorOf(() => resumeRequest(req('/v1/jobs/j/events', { 'last-event-id': 'y'.repeat(10000) })));
    expect(long.message.length).toBeLessThan(400); // not echoed in full
  });
});
