import { jsonData, SseParser, sseEvents, type SseItem } from './parser';

const events = (items: SseItem[]) => items.flatMap((i) => (i.kind === 'event' ? [i.event] : []));

describe('SseParser', () => {
  it('joins multi-line data with \\n and names events (message by default)', () => {
    const p = new SseParser();
    expect(events(p.push('event: token\ndata: {"a":\ndata: 1}\n\ndata: plain\n\n'))).toEqual([
      { name: 'token', data: '{"a":\n1}', id: null },
      { name: 'message', data: 'plain', id: null },
    ]);
  });

  it('gives each event its own id, and keeps the last id seen across events', () => {
    const p = new SseParser();
    expect(events(p.push('id: 5-1\nevent: a\ndata: x\n\nevent: b\ndata: y\n\n'))).toEqual([
      { name: 'a', data: 'x', id: '5-1' },
      { name: 'b', data: 'y', id: null },
    ]);
    expect(p.lastEventId).toBe('5-1');
    p.push('id: bad\0id\ndata: z\n\n');
    expect(p.lastEventId).toBe('5-1');
  });

  it('reports comments and retry hints in stream order; ignores unknown fields and a non-numeric retry', () => {
    const p = new SseParser();
    expect(p.push(': ping\nretry: 3000\nretry: 3s\nfoo: bar\ndata: 1\n\n')).toEqual([
      { kind: 'comment', text: 'ping' },
      { kind: 'retry', ms: 3000 },
      { kind: 'event', event: { name: 'message', data: '1', id: null } },
    ]);
  });

  it('accepts CRLF and CR line ends, also split across chunks, and lines split anywhere', () => {
    const text = 'event: t\r\ndata: a\r\rdata:b\r\n\r\n';
    const whole = events(new SseParser().push(text));
    expect(whole).toEqual([
      { name: 't', data: 'a', id: null },
      { name: 'message', data: 'b', id: null },
    ]);
    for (let cut = 1; cut < text.length; cut++) {
      const p = new SseParser();
      expect(events([...p.push(text.slice(0, cut)), ...p.push(text.slice(cut))])).toEqual(whole);
    }
  });

  it('drops fields with no data, and an event the stream never ended', () => {
    const p = new SseParser();
    expect(events(p.push('event: empty\n\ndata: unfinished\n'))).toEqual([]);
  });

  it('a field line without a colon has an empty value; one space after the colon is removed', () => {
    expect(events(new SseParser().push('data\ndata:  two spaces\n\n'))).toEqual([{ name: 'message', data: '\n two spaces', id: null }]);
  });
});

describe('sseEvents / jsonData', () => {
  it('decodes UTF-8 split inside a character and yields events in order', async () => {
    const bytes = new TextEncoder().encode('data: {"t":"é✓"}\n\ndata: [DONE]\n\n');
    async function* chunks() {
      for (let i = 0; i < bytes.length; i += 3) yield bytes.subarray(i, i + 3);
    }
    const got = [];
    for await (const e of sseEvents(chunks())) got.push(jsonData(e));
    expect(got).toEqual([{ t: 'é✓' }, '[DONE]']);
  });
});
